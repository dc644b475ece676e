"""Least-privilege roles and schemas for the warehouse, set up once by an administrator.

`bootstrap_database` is the source of truth; `indici_dagster/sql/bootstrap.sql` is the same
thing for a DBA with psql (a test compares the privileges both leave behind).

After it has run, in the database of `admin_dsn`:

- only the writer and the reader may connect: `PUBLIC` loses CONNECT and TEMPORARY on the
  database, and neither role may create schemas or temporary tables there;
- the owner role (`<writer>_owner`, NOLOGIN: nobody logs in as it) owns the schemas
  `indici_staging` and `rpt` and every table in them: the pipeline's own tables (audit log,
  landing ledger, row counts, locks) and the data tables alike, with their indexes. Tables a
  writer owned before (an older bootstrap) are handed to it on every run. The writer owns
  nothing and has USAGE (no CREATE) on both schemas. It creates a staging or rpt table, adds a
  column and creates the staging index only by calling the owner's SECURITY DEFINER functions
  (`core/warehouse/owner_ddl.py`), which accept nothing but a validated rule's names and
  registry types.
  On the data tables it may SELECT, INSERT and DELETE in staging and also UPDATE in rpt (now and
  later: the owner's default privileges), so it cannot TRUNCATE, SET UNLOGGED, enable row-level
  security, disable triggers or grant. On the audit log it has INSERT and SELECT only
  (append-only), on the ledger, row counts and locks SELECT, INSERT and UPDATE;
- every function in the two schemas belongs to the owner, names catalog objects by their
  schema and runs with `search_path = pg_catalog, pg_temp`; PUBLIC (and the reader) may execute
  none, nor any function the owner or the writer create later (default privileges);
- an event trigger refuses the writer any DDL of its own: no CREATE, ALTER, GRANT or REVOKE, no
  ALTER DEFAULT PRIVILEGES, no functions, views or triggers, no DROP. Its function reads only
  qualified catalog names under a pinned search_path, so a planted `rpt.pg_namespace` or a
  search_path the writer sets (even with ALTER ROLE) changes nothing (creating an event trigger
  needs a superuser, or rds_superuser on RDS);
- the reader has CONNECT, USAGE on `rpt`, SELECT (only) on every table in `rpt`, now and
  created later (default privileges of the owner), and no privilege on `indici_staging`, whose
  tables hold raw patient rows; `PUBLIC` has no privilege on either schema, and may no longer
  create in `public`, where neither role has any privilege;
- with `analyst`, an analyst role that reads only the schema `rpt_analyst` (views with NHI
  numbers as keyed pseudonyms, other personal columns left out) and the pseudonym key in
  `indici_keys`, which only the owner may read (`core/admin/analyst.py`);
- the reader's (and the analyst's) sessions have an idle-in-transaction timeout, a statement
  timeout and a connection limit (`reader_limits`, `core.admin.session_limits`), updated when
  they change.

Residual risk, by design: the writer writes `rpt`, so whatever it puts there the reader reads;
and the loads need DELETE (a re-sent file replaces its rows, a static snapshot replaces rpt), so
it may delete rows, though never truncate, unlog, hide or re-own a table.

The writer and reader are created if missing as LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE, the
owner as NOLOGIN; an existing role is left as it is, except that a given password is (re)set,
and a role with SUPERUSER, CREATEDB, CREATEROLE or BYPASSRLS (or an owner role that can log in)
is refused rather than silently changed. Passwords are hashed by libpq on the client
(`encrypt_password`, the server's `password_encryption`), so the clear text reaches neither the
server's statement log nor the returned actions.

Everything runs in one transaction, so a failure changes nothing, and running it again changes
nothing more: it is safe to run any number of times.
"""

import contextlib
from collections.abc import Iterator

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.admin.analyst import ensure_analyst, key_from_text, rotate_pseudonym_key
from indici_dagster.core.admin.bootstrap_catalog import (
    ensure_catalog_tables,
    ensure_ddl_guard,
    ensure_owner_functions,
    ensure_table_privileges,
    fetch_one,
    foreign_objects,
)
from indici_dagster.core.admin.roles import (
    OWNER_ATTRIBUTES,
    BootstrapError,
    ensure_role,
)
from indici_dagster.core.admin.session_limits import (
    DEFAULT_READER_LIMITS,
    SessionLimits,
    ensure_session_limits,
)
from indici_dagster.core.naming import InvalidIdentifierError, validate_identifier
from indici_dagster.core.pipeline_names import RPT_SCHEMA, STAGING_SCHEMA
from indici_dagster.core.warehouse.dsn import ConnectionFailedError, connect

DEFAULT_WRITER = "indici_writer"
DEFAULT_READER = "indici_reader"
OWNER_SUFFIX = "_owner"


@contextlib.contextmanager
def _admin_connection(admin_dsn: str) -> Iterator[psycopg2.extensions.connection]:
    try:
        connection = connect(
            admin_dsn, variable="the administrator's DSN", application_name="indici-bootstrap"
        )
    except ConnectionFailedError as error:
        message = str(error)
    else:
        try:
            yield connection
        finally:
            connection.close()
        return
    raise BootstrapError(message)  # outside the handler: no chained cause


def _ensure_schema(cursor: Cursor, schema: str, owner: str, writer: str) -> list[str]:
    """Create `schema` owned by the owner role, or hand it to it, with every table in it (the
    pipeline's own and the data tables alike: the writer owns none); the writer may use the
    schema but create nothing in it."""
    schema_id, owner_id, writer_id = (sql.Identifier(n) for n in (schema, owner, writer))
    row = fetch_one(
        cursor,
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s",
        (schema,),
    )
    actions: list[str] = []
    if row is None:
        cursor.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(schema_id, owner_id))
        actions.append(f"created schema {schema} owned by {owner}")
    elif row[0] != owner:
        cursor.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(schema_id, owner_id))
        actions.append(f"schema {schema} was owned by {row[0]}; now owned by {owner}")
    else:
        actions.append(f"schema {schema} already owned by {owner}")
    cursor.execute(
        "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND c.relowner <> %s::regrole "
        "ORDER BY c.relname",
        (schema, owner),
    )
    for table, current in cursor.fetchall():  # (ALTER ... OWNER locks even an unchanged table)
        cursor.execute(
            sql.SQL("ALTER TABLE {}.{} OWNER TO {}").format(
                schema_id, sql.Identifier(table), owner_id
            )
        )
        actions.append(f"table {schema}.{table} was owned by {current}; now owned by {owner}")
    actions += _hand_over_histories(cursor, schema, owner)
    cursor.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(schema_id))
    cursor.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(schema_id, writer_id))
    cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema_id, writer_id))
    actions.append(
        f"revoked every privilege on schema {schema} from PUBLIC; {writer} may use it but "
        "create nothing in it"
    )
    return actions


def _hand_over_histories(cursor: Cursor, schema: str, owner: str) -> list[str]:
    """Hand the owner role the histories' views and `_as_of` functions another role made (the
    writer, before bootstrap); `foreign_objects` has checked they are the pipeline's."""
    cursor.execute(
        "SELECT 'VIEW', c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %(schema)s AND c.relkind = 'v' AND c.relowner <> %(owner)s::regrole "
        "UNION ALL SELECT 'FUNCTION', p.proname, pg_get_userbyid(p.proowner) FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %(schema)s "
        "AND n.nspname = 'rpt' AND p.proowner <> %(owner)s::regrole ORDER BY 1, 2",
        {"schema": schema, "owner": owner},
    )
    actions = []
    for kind, name, current in cursor.fetchall():
        target = sql.Identifier(schema, name)
        if kind == "FUNCTION":
            target = sql.SQL("{}(timestamptz)").format(target)
        cursor.execute(
            sql.SQL("ALTER " + kind + " {} OWNER TO {}").format(target, sql.Identifier(owner))
        )
        actions.append(f"{kind.lower()} {schema}.{name} was owned by {current}; now {owner}")
    return actions


def _refuse_foreign_objects(cursor: Cursor) -> None:
    found = foreign_objects(cursor)
    if found:
        raise BootstrapError(
            f"the pipeline's schemas hold objects it never creates ({'; '.join(found)}): they may "
            "have been planted to reach the audit log or the ledger. Check and drop them, then "
            "run bootstrap again"
        )


def _ensure_ddl_guard(cursor: Cursor, owner: str) -> list[str]:
    try:
        return ensure_ddl_guard(cursor, owner)
    except psycopg2.errors.InsufficientPrivilege:
        pass  # raised below, outside the handler: nothing of the server's text is kept
    raise BootstrapError(
        "creating the event trigger that limits the writer's DDL needs a superuser "
        "(or rds_superuser on RDS); run bootstrap as one"
    )


def bootstrap_database(
    admin_dsn: str,
    *,
    writer: str = DEFAULT_WRITER,
    reader: str = DEFAULT_READER,
    writer_password: str | None = None,
    reader_password: str | None = None,
    reader_limits: SessionLimits = DEFAULT_READER_LIMITS,
    analyst: str | None = None,
    analyst_password: str | None = None,
    pseudonym_key: str | None = None,
) -> list[str]:
    """Set up the owner, writer and reader roles, the two schemas and the pipeline's tables in
    the database of `admin_dsn`.

    Run by an administrator (a superuser, or rds_superuser on RDS). Guarantees the state
    described in this module's docstring, in one transaction, idempotently. Returns the actions
    taken, in order, in plain words; they name roles, schemas and tables, never a password or
    any part of the DSN but host, port, database and user. Raises `BootstrapError` (nothing
    changed) for invalid or clashing role names, an existing elevated role, a failed connection
    or a missing privilege to create the event trigger; any other refusal by the server raises
    its `psycopg2.Error`, also with nothing changed.
    """
    for role in (writer, reader) + ((analyst,) if analyst is not None else ()):
        try:
            validate_identifier(role)
        except InvalidIdentifierError as error:
            raise BootstrapError(f"role name: {error}") from None
    owner = writer + OWNER_SUFFIX
    try:
        validate_identifier(owner)
    except InvalidIdentifierError:
        raise BootstrapError(f"role name {writer} is too long for its owner role") from None
    if writer == reader or reader == owner:
        raise BootstrapError("the writer and the reader must be different roles")
    if analyst is not None and analyst in (writer, reader, owner):
        raise BootstrapError("the analyst must be a role of its own, not the writer or reader")
    if analyst is not None:
        key_from_text(pseudonym_key)  # a short key stops bootstrap before it connects
    writer_id, reader_id = sql.Identifier(writer), sql.Identifier(reader)
    owner_id = sql.Identifier(owner)
    actions: list[str] = []
    with _admin_connection(admin_dsn) as connection, connection.cursor() as cursor:
        database, admin = fetch_one(cursor, "SELECT current_database(), current_user")  # type: ignore[misc]
        if admin in (writer, reader, owner, analyst):
            raise BootstrapError(f"run bootstrap as an administrator, not as role {admin}")
        database_id = sql.Identifier(database)
        # role names are cluster-wide: serialise concurrent bootstraps, but never wait forever
        cursor.execute("SET LOCAL lock_timeout = '60s'")
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('indici_dagster:bootstrap'))")

        actions += ensure_role(cursor, connection, writer, writer_password)
        actions += ensure_role(cursor, connection, reader, reader_password)
        actions += ensure_role(cursor, connection, owner, None, OWNER_ATTRIBUTES)
        actions += ensure_session_limits(cursor, reader, reader_limits)
        if analyst is not None:
            actions += ensure_role(cursor, connection, analyst, analyst_password)
            actions += ensure_session_limits(cursor, analyst, reader_limits)

        cursor.execute(
            sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(database_id)
        )
        cursor.execute(
            sql.SQL("REVOKE CREATE, TEMPORARY ON DATABASE {} FROM {}, {}, {}").format(
                database_id, writer_id, reader_id, owner_id
            )
        )
        cursor.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}").format(
                database_id, writer_id, reader_id
            )
        )
        actions.append(
            f"revoked CONNECT and TEMPORARY on database {database} from PUBLIC; granted CONNECT "
            f"(only: no CREATE, no TEMPORARY) to {writer}, {reader}"
        )

        if fetch_one(cursor, "SELECT 1 FROM pg_namespace WHERE nspname = 'public'"):
            cursor.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            cursor.execute(
                sql.SQL("REVOKE ALL ON SCHEMA public FROM {}, {}, {}").format(
                    writer_id, reader_id, owner_id
                )
            )
            actions.append(
                f"revoked CREATE on schema public from PUBLIC, and every privilege on it "
                f"from {writer}, {reader}"
            )

        _refuse_foreign_objects(cursor)
        actions += _ensure_schema(cursor, STAGING_SCHEMA, owner, writer)
        actions += _ensure_schema(cursor, RPT_SCHEMA, owner, writer)
        actions += ensure_catalog_tables(cursor, owner, writer, reader)
        actions += ensure_owner_functions(cursor, owner, writer)
        actions += _ensure_ddl_guard(cursor, owner)
        actions += ensure_table_privileges(cursor, owner, writer, reader)
        if analyst is not None:
            cursor.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    database_id, sql.Identifier(analyst)
                )
            )
            cursor.execute(
                sql.SQL("REVOKE CREATE, TEMPORARY ON DATABASE {} FROM {}").format(
                    database_id, sql.Identifier(analyst)
                )
            )
            actions.append(
                f"granted CONNECT (only: no CREATE, no TEMPORARY) on database {database} "
                f"to {analyst}"
            )
            actions += ensure_analyst(cursor, owner, writer, reader, analyst, pseudonym_key)
        connection.commit()
    return actions


def rotate_key(admin_dsn: str, key_text: str | None) -> str:
    """Replace the pseudonym key in the database of `admin_dsn` (as its administrator), in one
    transaction: every pseudonym of every analyst view changes at once. Returns what was done;
    raises `BootstrapError` (nothing changed) without a key to replace or with a short one."""
    key_from_text(key_text)
    with _admin_connection(admin_dsn) as connection, connection.cursor() as cursor:
        action = rotate_pseudonym_key(cursor, key_text)
        connection.commit()
    return action
