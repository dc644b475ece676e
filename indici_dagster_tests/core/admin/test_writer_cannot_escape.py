"""The writer cannot escape its limits: it owns no table, runs no DDL of its own, and creates and
widens data tables only through the owner's functions, which accept nothing but a validated rule.

Each reproduction of issue 17 runs as the real writer and reader roles `bootstrap_database`
made, against a real PostgreSQL server.
"""

import contextlib
from collections.abc import Sequence
from datetime import date

import psycopg2
import psycopg2.errors
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance

from indici_dagster.core.admin.bootstrap import BootstrapError, bootstrap_database
from indici_dagster.core.admin.bootstrap_catalog import GUARD_BODY
from indici_dagster.core.rules.store import load_rules
from indici_dagster.core.sample.data import write_sample_files
from indici_dagster.core.settings import Settings
from indici_dagster.core.storage.local_storage import LocalStorage
from indici_dagster.core.types import registry as types
from indici_dagster.core.warehouse import owner_ddl
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster.core.warehouse.owner_ddl import OwnerFunctionsMissingError
from indici_dagster_tests.core.admin import test_least_privilege
from indici_dagster_tests.core.admin.test_least_privilege import (
    SQL_FILE,
    Bootstrapped,
    _create_table,
    _execute,
)
from indici_dagster_tests.support.common import TIMEZONE, build, execute_requests, query, tick

bootstrapped = test_least_privilege.bootstrapped
"""A database after `bootstrap_database` ran twice, with its writer and reader (the fixture)."""

SHADOW = "CREATE TABLE rpt.pg_namespace (oid oid, nspname name, nspowner oid)"
SHADOWED = "SET search_path = rpt, pg_catalog"
ESCAPES = (
    "CREATE FUNCTION rpt.leak() RETURNS bigint LANGUAGE sql SECURITY DEFINER "
    "AS 'SELECT count(*) FROM indici_staging.auditlog'",
    "CREATE VIEW rpt.leak_view AS SELECT * FROM indici_staging.auditlog",
    "GRANT SELECT ON rpt.report TO PUBLIC",
    "CREATE FUNCTION rpt.nothing() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'",
    "CREATE TRIGGER t BEFORE INSERT ON rpt.report FOR EACH ROW EXECUTE FUNCTION rpt.nothing()",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA rpt GRANT ALL ON TABLES TO PUBLIC",
    "ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC",
    "CREATE TABLE rpt.sneaky (id int)",
)
"""What the shadowing bypass let the writer do; each must fail."""

FORGE = (
    "CREATE FUNCTION rpt.forge() RETURNS void LANGUAGE sql SECURITY DEFINER AS $$ "
    "INSERT INTO indici_staging.landing_ledger (source_key, etag, outcome) "
    "VALUES ('Patients_20261124_020000.parquet', 'forged', 'done') $$"
)


def _refused(dsn: str, *statements: str, params: Sequence | None = None) -> bool:
    """Run `statements` in one transaction; True if the last is refused for lack of privilege
    (the earlier ones must succeed)."""
    with contextlib.closing(psycopg2.connect(dsn)) as connection, connection.cursor() as cursor:
        for statement in statements[:-1]:
            cursor.execute(statement)
        try:
            cursor.execute(statements[-1], params)
        except psycopg2.errors.InsufficientPrivilege:
            return True
        connection.commit()
        return False


def _ready(b: Bootstrapped) -> None:
    """The catalog, and one rpt and one staging table made as the pipeline makes them."""
    Warehouse(b.writer_dsn, "UTC").ensure_catalog()
    _create_table(b.writer_dsn, "rpt", "report")
    _create_table(b.writer_dsn, "indici_staging", "report")
    _execute(
        b.writer_dsn,
        "INSERT INTO rpt.report (id, _source_file, _source_ts, _row_number, _loaded_at) "
        "VALUES (1, 'f', now(), 1, now())",
    )


def test_the_shadowing_bypass_fails_as_the_writer(bootstrapped: Bootstrapped):
    b = bootstrapped
    _ready(b)
    assert _refused(b.writer_dsn, SHADOW)
    for statement in ESCAPES:
        assert _refused(b.writer_dsn, SHADOWED, statement), statement
        assert _refused(b.writer_dsn, statement), statement
    assert query(b.admin, "SELECT to_regclass('rpt.pg_namespace')") == [(None,)]
    assert query(b.reader_dsn, "SELECT count(*) FROM rpt.report") == [(1,)]


def test_the_guard_reads_only_the_real_catalog_even_with_a_shadow_in_place(
    bootstrapped: Bootstrapped,
):
    """A second wall: even a writer given CREATE on rpt by mistake (as bootstrap once did), with
    a planted `rpt.pg_namespace` first on its search_path, runs no DDL of its own."""
    b = bootstrapped
    _ready(b)
    writer = f'"{b.writer}"'
    _execute(b.admin, SHADOW)
    _execute(b.admin, f"GRANT SELECT ON rpt.pg_namespace TO {writer}")
    _execute(b.admin, f"GRANT CREATE ON SCHEMA rpt TO {writer}")
    for statement in (*ESCAPES, FORGE):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="may not run"):
            _refused_by_guard(b.writer_dsn, statement)
    assert query(
        b.admin, "SELECT count(*) FROM pg_proc WHERE pronamespace = 'rpt'::regnamespace"
    ) == [(0,)]


def _refused_by_guard(dsn: str, statement: str) -> None:
    with contextlib.closing(psycopg2.connect(dsn)) as connection, connection.cursor() as cursor:
        cursor.execute(SHADOWED)
        cursor.execute(statement)
        connection.commit()


def test_the_definer_escalation_fails(bootstrapped: Bootstrapped):
    """The writer cannot plant a SECURITY DEFINER function for the reader to forge a ledger row
    with, and the reader can execute none of the pipeline's functions."""
    b = bootstrapped
    _ready(b)
    assert _refused(b.writer_dsn, SHADOW)
    assert _refused(b.writer_dsn, SHADOWED, FORGE)
    assert _refused(b.writer_dsn, FORGE.replace("rpt.forge", "indici_staging.forge"))
    assert _refused(b.writer_dsn, f"DO $do$ BEGIN EXECUTE $e${FORGE}$e$; END $do$")
    with pytest.raises(psycopg2.errors.UndefinedFunction):
        _execute(b.reader_dsn, "SELECT rpt.forge()")
    for name, argument_types in owner_ddl.FUNCTIONS:
        signature = f"indici_staging.{name}({argument_types})"
        assert query(
            b.admin, "SELECT has_function_privilege(%s, %s, 'EXECUTE')", (b.reader, signature)
        ) == [(False,)]
    assert _refused(
        b.reader_dsn, "SELECT indici_staging.create_data_table('rpt', 'x', '{}', '{}', '{}')"
    )
    assert query(b.admin, "SELECT count(*) FROM indici_staging.landing_ledger") == [(0,)]


def test_as_the_writer_truncate_unlogged_rls_triggers_grants_and_ownership_all_fail(
    bootstrapped: Bootstrapped,
):
    b = bootstrapped
    _ready(b)
    reader = f'"{b.reader}"'
    for statement in (
        "TRUNCATE rpt.report",
        "TRUNCATE indici_staging.report",
        "ALTER TABLE rpt.report SET UNLOGGED",
        "ALTER TABLE rpt.report ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE rpt.report FORCE ROW LEVEL SECURITY",
        "CREATE POLICY hide ON rpt.report USING (false)",
        "ALTER TABLE rpt.report DISABLE TRIGGER ALL",
        "ALTER TABLE rpt.report OWNER TO CURRENT_USER",
        "ALTER TABLE rpt.report ADD COLUMN extra text",
        "ALTER TABLE rpt.report ALTER COLUMN id TYPE text",
        "CREATE INDEX report_id ON rpt.report (id)",
        "COMMENT ON TABLE rpt.report IS 'x'",
        "DROP TABLE rpt.report",
        f"GRANT SELECT ON indici_staging.report TO {reader}",
        "GRANT SELECT ON rpt.report TO PUBLIC",
        f"REVOKE SELECT ON rpt.report FROM {reader}",
        "UPDATE indici_staging.report SET id = 2",
    ):
        assert _refused(b.writer_dsn, statement), statement
    state = query(
        b.admin,
        "SELECT relpersistence, relrowsecurity, pg_get_userbyid(relowner) FROM pg_class "
        "WHERE oid = 'rpt.report'::regclass",
    )
    assert state == [("p", False, f"{b.writer}_owner")]
    assert query(b.reader_dsn, "SELECT id FROM rpt.report") == [(1,)]
    assert query(
        b.admin, "SELECT count(*) FROM pg_class WHERE relowner = %s::regrole", (b.writer,)
    ) == [(0,)]


def test_alter_role_search_path_then_ddl_fails_and_the_pipeline_still_works(
    bootstrapped: Bootstrapped,
):
    b = bootstrapped
    _ready(b)
    with contextlib.suppress(psycopg2.Error):  # whether it may or not, DDL must fail after it
        _execute(b.writer_dsn, f'ALTER ROLE "{b.writer}" SET search_path = rpt, pg_catalog')
    assert _refused(b.writer_dsn, SHADOW)
    for statement in ESCAPES:
        assert _refused(b.writer_dsn, statement), statement
    # the pipeline names everything by its schema: a search_path of the writer's own changes
    # nothing it does
    Warehouse(b.writer_dsn, "UTC").ensure_catalog()
    _create_table(b.writer_dsn, "rpt", "after", "id,name")
    assert query(b.reader_dsn, "SELECT count(*) FROM rpt.after") == [(0,)]


def test_public_has_no_execute_on_the_pipelines_functions(
    bootstrapped: Bootstrapped, database: str, admin_database_dsn: str
):
    b = bootstrapped
    _ready(b)
    owner = f'"{b.writer}_owner"'
    # one the owner makes later gets no EXECUTE for PUBLIC either (default privileges)
    _execute(
        b.admin,
        f"SET ROLE {owner}; CREATE FUNCTION indici_staging.later() RETURNS int "
        "LANGUAGE sql AS 'SELECT 1'",
    )
    Warehouse(database, "UTC").ensure_catalog()  # a database bootstrap never ran in
    for admin in (b.admin, admin_database_dsn):
        public = query(
            admin,
            "SELECT p.proname FROM pg_proc p, aclexplode(coalesce(p.proacl, "
            "acldefault('f', p.proowner))) a WHERE p.pronamespace IN "
            "('indici_staging'::regnamespace, 'rpt'::regnamespace) AND a.grantee = 0",
        )
        assert public == []
        made = query(
            admin,
            "SELECT proname, prosecdef, proconfig FROM pg_proc "
            "WHERE pronamespace = 'indici_staging'::regnamespace AND proname <> 'later' "
            "AND proname <> 'writer_ddl_guard' ORDER BY 1",
        )
        assert made == sorted(
            (name, True, ["search_path=pg_catalog, pg_temp"]) for name, _ in owner_ddl.FUNCTIONS
        )


COMMENT = "SELECT indici_staging.comment_data_table(%s, %s, %s, %s::text[], %s::text[])"


def test_the_functions_refuse_anything_but_a_validated_rule(bootstrapped: Bootstrapped):
    b = bootstrapped
    _ready(b)
    create = "SELECT indici_staging.create_data_table(%s, %s, %s::text[], %s::text[], %s::text[])"
    for arguments in (
        ("public", "t", ["id"], ["integer"], []),
        ("pg_catalog", "t", ["id"], ["integer"], []),
        (None, "t", ["id"], ["integer"], []),
        ("rpt", "T", ["id"], ["integer"], []),
        ("rpt", 'x"; DROP TABLE rpt.report; --', ["id"], ["integer"], []),
        ("indici_staging", "auditlog", ["id"], ["integer"], []),
        ("indici_staging", "landing_ledger_pkey", ["id"], ["integer"], []),
        ("rpt", "t", ["Id"], ["integer"], []),
        ("rpt", "t", ["_source_ts"], ["integer"], []),
        ("rpt", "t", [None], ["integer"], []),
        ("rpt", "t", ["id"], ["money"], []),
        ("rpt", "t", ["id"], ["integer[]"], []),
        ("rpt", "t", ["id"], ["varchar"], []),
        ("rpt", "t", ["id"], ["integer); DROP TABLE rpt.report; --"], []),
        ("rpt", "t", ["id"], ["integer DEFAULT 1"], []),
        ("rpt", "t", ["id"], [None], []),
        ("rpt", "t", ["id", "x"], ["integer"], []),
        ("rpt", "t", ["id"], ["integer"], ["other"]),
        ("rpt", "t", ["id"], ["integer"], None),
        ("indici_staging", "t", ["id"], ["integer"], ["id"]),
        ("rpt", "t", [f"c{i}" for i in range(1001)], ["integer"] * 1001, []),
    ):
        assert _refused(b.writer_dsn, create, params=arguments), arguments
    for statement, arguments in (
        ("SELECT indici_staging.add_data_column(%s, %s, %s, %s)", ("public", "t", "x", "text")),
        (
            "SELECT indici_staging.add_data_column(%s, %s, %s, %s)",
            ("indici_staging", "landing_ledger", "x", "text"),
        ),
        ("SELECT indici_staging.add_data_column(%s, %s, %s, %s)", ("rpt", "report", "X", "text")),
        ("SELECT indici_staging.add_data_column(%s, %s, %s, %s)", ("rpt", "report", "x", "xml")),
        ("SELECT indici_staging.create_staging_index(%s)", ("auditlog",)),
        ("SELECT indici_staging.create_staging_index(%s)", ("a b",)),
        ("SELECT indici_staging.add_rpt_primary_key(%s, %s::text[])", ("report", ["Id"])),
        ("SELECT indici_staging.add_rpt_primary_key(%s, %s::text[])", ("report", [])),
        ("SELECT indici_staging.summarize_staging_index(%s)", ("pipeline_locks",)),
        (COMMENT, ("indici_staging", "auditlog", "x", [], [])),
        (COMMENT, ("public", "report", "x", [], [])),
        (COMMENT, ("rpt", "no_such_table", "x", [], [])),
        (COMMENT, ("rpt", "report", "x", ["Id"], ["x"])),
        (COMMENT, ("rpt", "report", "x", ["id"], [])),
    ):
        assert _refused(b.writer_dsn, statement, params=arguments), arguments
    assert query(b.admin, "SELECT count(*) FROM rpt.report") == [(1,)]
    # a comment is text, never SQL: quoted whatever it holds
    hostile = "x' IS NULL; DROP TABLE rpt.report; --"
    _execute(b.writer_dsn, COMMENT, ("rpt", "report", hostile, ["id"], [hostile]))
    assert query(b.admin, "SELECT obj_description('rpt.report'::regclass, 'pg_class')") == [
        (hostile,)
    ]
    # every type of the registry, spelled canonically, is accepted
    spellings = [t.spell((12, 2)[: len(t.parameters)]) for t in types.REGISTRY.values()]
    names = [f"c{i}" for i in range(len(spellings))]
    _execute(b.writer_dsn, create, ("rpt", "every_type", names, spellings, []))
    columns = query(
        b.admin,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'rpt.every_type'::regclass AND attname LIKE 'c%%' AND attnum > 0 "
        "ORDER BY attnum",
    )
    assert [types.canonical(c) for (c,) in columns] == spellings


def test_a_writer_that_cannot_install_missing_functions_is_told_to_run_bootstrap(
    bootstrapped: Bootstrapped,
):
    b = bootstrapped
    _execute(b.admin, "DROP FUNCTION indici_staging.add_data_column(text, text, text, text)")
    with pytest.raises(OwnerFunctionsMissingError) as raised:
        Warehouse(b.writer_dsn, "UTC").ensure_catalog()
    assert "run `indici bootstrap`" in str(raised.value)
    assert "\n" not in str(raised.value)
    bootstrap_database(b.admin, writer=b.writer, reader=b.reader)
    Warehouse(b.writer_dsn, "UTC").ensure_catalog()


def test_bootstrap_hands_tables_the_writer_owned_to_the_owner(bootstrapped: Bootstrapped):
    """A deployment bootstrapped before: its data tables belong to the writer; a re-run converges."""
    b = bootstrapped
    writer = f'"{b.writer}"'
    _execute(b.admin, "CREATE TABLE rpt.old (id int); CREATE TABLE indici_staging.old (id int)")
    _execute(b.admin, f"ALTER TABLE rpt.old OWNER TO {writer}")
    _execute(b.admin, f"ALTER TABLE indici_staging.old OWNER TO {writer}")
    _execute(b.admin, "INSERT INTO rpt.old VALUES (1)")
    actions = bootstrap_database(b.admin, writer=b.writer, reader=b.reader)
    assert f"table rpt.old was owned by {b.writer}; now owned by {b.writer}_owner" in actions
    for statement in (
        "TRUNCATE rpt.old",
        "ALTER TABLE rpt.old SET UNLOGGED",
        "TRUNCATE indici_staging.old",
    ):
        assert _refused(b.writer_dsn, statement), statement
    _execute(b.writer_dsn, "INSERT INTO rpt.old VALUES (2)")
    _execute(b.writer_dsn, "UPDATE rpt.old SET id = 3 WHERE id = 2")
    _execute(b.writer_dsn, "DELETE FROM indici_staging.old")
    assert query(b.reader_dsn, "SELECT id FROM rpt.old ORDER BY 1") == [(1,), (3,)]


@pytest.mark.parametrize(
    "planted",
    [
        "CREATE VIEW rpt.leak AS SELECT * FROM indici_staging.auditlog",
        "CREATE FUNCTION rpt.forge() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'",
    ],
)
def test_bootstrap_refuses_objects_a_writer_planted_before_its_guard_held(
    bootstrapped: Bootstrapped, planted: str
):
    b = bootstrapped
    drop = planted.replace("CREATE", "DROP").split(" AS ")[0].split(" RETURNS")[0]
    _execute(b.admin, planted)
    _execute(b.admin, drop.replace("DROP", "ALTER") + f' OWNER TO "{b.writer}"')
    kind = planted.split()[1].lower()
    with pytest.raises(BootstrapError, match=f"{kind} .*rpt.(leak|forge).*drop them"):
        bootstrap_database(b.admin, writer=b.writer, reader=b.reader)
    _execute(b.admin, drop)
    bootstrap_database(b.admin, writer=b.writer, reader=b.reader)


def test_the_sql_file_holds_the_functions_the_package_renders():
    text = SQL_FILE.read_text()
    for signature, statement in owner_ddl.create_statements():
        assert statement + ";" in text, signature
    assert f"AS $guard${GUARD_BODY}$guard$;" in text


def test_sample_data_drift_and_rpt_creation_work_end_to_end_as_the_writer(
    tmp_path, bootstrapped: Bootstrapped
):
    b = bootstrapped
    landing, partitioned = tmp_path / "landing", tmp_path / "partitioned"
    rules = load_rules()
    write_sample_files(
        LocalStorage(landing), rules, timezone=TIMEZONE, days=2, end_date=date(2026, 11, 24)
    )
    # a later file of a keyed dataset brings a column its rule does not name (schema drift)
    first = sorted(landing.glob("Patients_*"))[0]
    drifted = pq.read_table(first)
    drifted = drifted.append_column("Nickname", pa.array(["n"] * drifted.num_rows))
    pq.write_table(drifted, landing / "Patients_20261124_230000.parquet")
    settings = Settings(
        landing=str(landing),
        partitioned=str(partitioned),
        rules=None,
        pg_dsn=b.writer_dsn,
        timezone=TIMEZONE,
        start_date="2026-01-01",
    )
    defs = build(settings)
    with DagsterInstance.ephemeral() as instance:
        result = tick(defs, instance)
        outcomes = execute_requests(defs, instance, result)
        assert [o.success for o in outcomes] == [True] * len(outcomes) and outcomes
    assert query(
        b.admin,
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'indici_staging' "
        "AND table_name = 'patients' AND column_name = 'nickname'",
    ) == [(1,)]
    for rule in rules.values():
        ((rows,),) = query(b.reader_dsn, f"SELECT count(*) FROM rpt.{rule.table}")
        assert rows > 0 or rule.dataset == "Medications", rule.dataset
    owners = query(
        b.admin,
        "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c "
        "WHERE c.relnamespace IN ('indici_staging'::regnamespace, 'rpt'::regnamespace)",
    )
    assert owners == [(f"{b.writer}_owner",)]
    assert query(
        b.admin, "SELECT count(*) FROM indici_staging.auditlog WHERE status = 'error'"
    ) == [(0,)]
