"""What bootstrap sets up inside `indici_staging`: the pipeline's own tables, owned by the owner
role with only the privileges the writer's statements need, and the event trigger that limits
the writer's DDL. Used by `bootstrap.bootstrap_database`, inside its transaction."""

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.catalog import catalog_statements
from indici_dagster.core.sql import (
    AUDIT_TABLE,
    LEDGER_TABLE,
    LOCKS_TABLE,
    ROW_COUNTS_TABLE,
    STAGING_SCHEMA,
)

WRITER_CATALOG_PRIVILEGES = {
    AUDIT_TABLE: "SELECT, INSERT",
    LEDGER_TABLE: "SELECT, INSERT, UPDATE",
    ROW_COUNTS_TABLE: "SELECT, INSERT, UPDATE",
    LOCKS_TABLE: "SELECT, INSERT, UPDATE",
}
"""What the writer may do with each of the pipeline's own tables (constants, never input)."""

WRITER_DDL = ("CREATE TABLE", "CREATE INDEX", "ALTER TABLE")
"""The only DDL commands the writer may run."""
GUARD_FUNCTION = "writer_ddl_guard"
GUARD_TRIGGER = "indici_writer_ddl_guard"

_GUARD_BODY = """
BEGIN
    IF TG_TAG NOT IN ('CREATE TABLE', 'CREATE INDEX', 'ALTER TABLE') AND EXISTS (
        SELECT FROM pg_namespace n WHERE n.nspname IN ('indici_staging', 'rpt')
        AND has_schema_privilege(current_user, n.oid, 'CREATE')
        AND NOT pg_has_role(current_user, n.nspowner, 'USAGE')
    ) THEN
        RAISE EXCEPTION 'role % may not run % in this database: the pipeline''s writer may only '
            'create and alter tables and indexes (indici bootstrap)', current_user, TG_TAG
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
"""
"""The event trigger's body: a role that may create in the pipeline's schemas without owning
them (the writer) may run no other DDL. A superuser or the owner role is not restricted."""


def fetch_one(cursor: Cursor, query: str, params: tuple = ()) -> tuple | None:
    """Run `query` and return its first row (None if it has none)."""
    cursor.execute(query, params)
    return cursor.fetchone()


def ensure_catalog_tables(cursor: Cursor, owner: str, writer: str, reader: str) -> list[str]:
    """Create the pipeline's own tables (as `Warehouse.ensure_catalog` would), owned by the
    owner role, and grant the writer only what the pipeline does with each."""
    actions: list[str] = []
    staging = sql.Identifier(STAGING_SCHEMA)
    roles = sql.SQL("PUBLIC, {}, {}").format(sql.Identifier(writer), sql.Identifier(reader))
    for table, statement in catalog_statements():
        qualified = sql.SQL("{}.{}").format(staging, sql.Identifier(table))
        existed = fetch_one(cursor, "SELECT to_regclass(%s)", (f'"{STAGING_SCHEMA}"."{table}"',))[0]
        cursor.execute(statement)  # idempotent; brings an existing table up to date too
        if existed is None:
            actions.append(f"created table {STAGING_SCHEMA}.{table}")
        current = fetch_one(
            cursor,
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(%s)",
            (f'"{STAGING_SCHEMA}"."{table}"',),
        )
        if current != (owner,):  # (ALTER ... OWNER locks the table even when nothing changes)
            cursor.execute(
                sql.SQL("ALTER TABLE {} OWNER TO {}").format(qualified, sql.Identifier(owner))
            )
        cursor.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(qualified, roles))
        privileges = WRITER_CATALOG_PRIVILEGES[table]
        cursor.execute(
            sql.SQL("GRANT " + privileges + " ON {} TO {}").format(
                qualified, sql.Identifier(writer)
            )
        )
        cursor.execute(
            "SELECT s.relname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid "
            "WHERE d.refobjid = to_regclass(%s) AND s.relkind = 'S' AND d.deptype IN ('a', 'i') "
            "ORDER BY 1",
            (f'"{STAGING_SCHEMA}"."{table}"',),
        )
        for (sequence,) in cursor.fetchall():
            sequence_id = sql.Identifier(STAGING_SCHEMA, sequence)
            cursor.execute(sql.SQL("REVOKE ALL ON SEQUENCE {} FROM {}").format(sequence_id, roles))
            cursor.execute(
                sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(
                    sequence_id, sql.Identifier(writer)
                )
            )
        actions.append(f"{writer} may {privileges} on {STAGING_SCHEMA}.{table}, nothing more")
    return actions


def ensure_ddl_guard(cursor: Cursor, owner: str) -> list[str]:
    """(Re)create the event trigger that limits the writer's DDL; raises
    `psycopg2.errors.InsufficientPrivilege` unless run by a superuser (rds_superuser on RDS)."""
    function = sql.SQL("{}.{}").format(
        sql.Identifier(STAGING_SCHEMA), sql.Identifier(GUARD_FUNCTION)
    )
    cursor.execute(
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {}() RETURNS event_trigger LANGUAGE plpgsql AS {}"
        ).format(function, sql.Literal(_GUARD_BODY))
    )
    cursor.execute(
        sql.SQL("ALTER FUNCTION {}() OWNER TO {}").format(function, sql.Identifier(owner))
    )
    cursor.execute(sql.SQL("REVOKE ALL ON FUNCTION {}() FROM PUBLIC").format(function))
    if fetch_one(cursor, "SELECT 1 FROM pg_event_trigger WHERE evtname = %s", (GUARD_TRIGGER,)):
        return [f"event trigger {GUARD_TRIGGER} already in place"]
    # needs a superuser (rds_superuser on RDS): psycopg2.errors.InsufficientPrivilege otherwise
    cursor.execute(
        sql.SQL("CREATE EVENT TRIGGER {} ON ddl_command_start EXECUTE FUNCTION {}()").format(
            sql.Identifier(GUARD_TRIGGER), function
        )
    )
    return [
        f"created event trigger {GUARD_TRIGGER}: the writer may run no DDL but "
        f"{', '.join(WRITER_DDL)}"
    ]
