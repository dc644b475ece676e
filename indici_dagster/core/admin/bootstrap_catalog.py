"""What bootstrap sets up inside the two schemas: the pipeline's own tables, owned by the owner
role with only the privileges the writer's statements need; the owner's DDL functions, the
writer's only way to create and widen data tables; the privileges on the data tables; and the
event trigger that refuses the writer any DDL of its own. Used by `bootstrap.bootstrap_database`,
inside its transaction."""

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.pipeline_names import (
    AUDIT_DAILY_TABLE,
    AUDIT_TABLE,
    LEDGER_TABLE,
    LOCKS_TABLE,
    PIPELINE_TABLES,
    ROW_COUNTS_TABLE,
    RPT_PIPELINE_TABLES,
    RPT_SCHEMA,
    STAGING_SCHEMA,
)
from indici_dagster.core.warehouse import owner_ddl
from indici_dagster.core.warehouse.catalog import catalog_statements, rpt_catalog_statements

WRITER_CATALOG_PRIVILEGES = {
    AUDIT_TABLE: "SELECT, INSERT",
    LEDGER_TABLE: "SELECT, INSERT, UPDATE",
    ROW_COUNTS_TABLE: "SELECT, INSERT, UPDATE",
    LOCKS_TABLE: "SELECT, INSERT, UPDATE",
}
"""What the writer may do with each of the pipeline's own tables (constants, never input)."""

WRITER_RPT_CATALOG_PRIVILEGES = {AUDIT_DAILY_TABLE: "SELECT, INSERT, DELETE"}
"""What the writer may do with the pipeline's own tables in rpt: the summary replaces a date's
rows (delete, insert); the reader may SELECT them like every rpt table."""

WRITER_DATA_PRIVILEGES = {
    STAGING_SCHEMA: "SELECT, INSERT, DELETE",
    RPT_SCHEMA: "SELECT, INSERT, UPDATE, DELETE",
}
"""What the writer may do with the data tables of each schema: staging loads append by COPY and
replace a re-sent file's rows; rpt upserts insert and update, and a static snapshot replaces
the rows (constants, never input). No TRUNCATE, REFERENCES, TRIGGER or MAINTAIN."""

GUARD_FUNCTION = "writer_ddl_guard"
GUARD_TRIGGER = "indici_writer_ddl_guard"

GUARD_BODY = """
BEGIN
    IF EXISTS (
        SELECT FROM pg_catalog.pg_namespace n
        WHERE n.nspname IN ('indici_staging', 'rpt')
          AND NOT pg_catalog.pg_has_role(CURRENT_USER, n.nspowner, 'USAGE')
          AND (pg_catalog.has_schema_privilege(CURRENT_USER, n.oid, 'CREATE')
               OR EXISTS (SELECT FROM pg_catalog.pg_proc p
                          WHERE p.pronamespace = n.oid AND p.proname = 'create_data_table'
                            AND pg_catalog.has_function_privilege(CURRENT_USER, p.oid, 'EXECUTE')))
    ) THEN
        RAISE EXCEPTION 'role % may not run % in this database: the pipeline''s writer changes '
            'tables only through the owner''s functions (indici bootstrap)', CURRENT_USER, TG_TAG
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
"""
"""The event trigger's body: a role that may create pipeline tables (EXECUTE on the owner's
function, or CREATE on a pipeline schema) without being the schemas' owner, that is the writer,
may run no DDL at all. A superuser or the owner role (the owner's functions) is not restricted.
Every name is qualified and the function's search_path is pinned, so nothing a caller plants
(a table `rpt.pg_namespace`, a search_path of its own) changes what it reads."""


FOREIGN_OBJECTS = r"""
SELECT 'view or other relation ' || n.nspname || '.' || c.relname FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('indici_staging', 'rpt') AND c.relkind NOT IN ('r', 'p', 'i', 'I', 'S', 't')
  AND NOT (n.nspname = 'rpt' AND c.relkind = 'v' AND c.relname LIKE '%%\_history' AND NOT EXISTS (
      SELECT FROM pg_catalog.pg_rewrite w JOIN pg_catalog.pg_depend d ON d.objid = w.oid
      WHERE w.ev_class = c.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
        AND d.refobjid <> c.oid AND d.refobjid NOT IN (
            SELECT t.oid FROM pg_catalog.pg_class t WHERE t.relnamespace = n.oid
              AND t.relkind = 'r' AND t.relname IN (pg_catalog.left(c.relname, -8),
                                                    pg_catalog.left(c.relname, -8) || '_past'))))
UNION ALL
SELECT 'function ' || n.nspname || '.' || p.proname FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname IN ('indici_staging', 'rpt') AND NOT (n.nspname = 'indici_staging'
  AND p.proname = ANY (%(functions)s))
  AND NOT (n.nspname = 'rpt' AND p.proname LIKE '%%\_as\_of' AND p.prosqlbody IS NOT NULL
      AND NOT p.prosecdef AND p.proconfig IS NULL AND p.prokind = 'f' AND NOT EXISTS (
      SELECT FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
        AND d.objid = p.oid AND d.deptype = 'n' AND (
          (d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid NOT IN (
              SELECT t.oid FROM pg_catalog.pg_class t WHERE t.relnamespace = n.oid
                AND t.relkind = 'r' AND t.relname IN (pg_catalog.left(p.proname, -6),
                                                      pg_catalog.left(p.proname, -6) || '_past')))
          OR (d.refclassid IN ('pg_catalog.pg_proc'::pg_catalog.regclass,
                               'pg_catalog.pg_operator'::pg_catalog.regclass)
              AND d.refobjid >= 16384))))
UNION ALL
SELECT 'trigger ' || t.tgname || ' on ' || n.nspname || '.' || c.relname
FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('indici_staging', 'rpt') AND NOT t.tgisinternal
UNION ALL
SELECT 'policy ' || p.polname || ' on ' || n.nspname || '.' || c.relname
FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('indici_staging', 'rpt')
ORDER BY 1
"""
"""Objects the pipeline never makes in its schemas (views, functions other than its own,
triggers, row-level security policies): a writer could have planted them before its DDL guard
held, e.g. a view or a SECURITY DEFINER function that hands the reader the audit log. A
history's view `rpt.<t>_history` and function `rpt.<t>_as_of` are the pipeline's when they read
nothing but `rpt.<t>` and `rpt.<t>_past` (and the function is plain SQL with a body bound at
creation, SECURITY INVOKER, no SET, calling only built-in functions and operators)."""


def foreign_objects(cursor: Cursor) -> list[str]:
    """What `FOREIGN_OBJECTS` finds, by kind and name (never more than 20)."""
    functions = [name for name, _ in owner_ddl.FUNCTIONS] + [GUARD_FUNCTION]
    cursor.execute(FOREIGN_OBJECTS, {"functions": functions})
    return [row[0] for row in cursor.fetchall()][:20]


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
    for table, statement in rpt_catalog_statements():
        qualified = sql.SQL("{}.{}").format(sql.Identifier(RPT_SCHEMA), sql.Identifier(table))
        existed = fetch_one(cursor, "SELECT to_regclass(%s)", (f'"{RPT_SCHEMA}"."{table}"',))[0]
        cursor.execute(statement)
        if existed is None:
            actions.append(f"created table {RPT_SCHEMA}.{table}")
        current = fetch_one(
            cursor,
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(%s)",
            (f'"{RPT_SCHEMA}"."{table}"',),
        )
        if current != (owner,):
            cursor.execute(
                sql.SQL("ALTER TABLE {} OWNER TO {}").format(qualified, sql.Identifier(owner))
            )
        cursor.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(qualified, roles))
        privileges = WRITER_RPT_CATALOG_PRIVILEGES[table]
        cursor.execute(
            sql.SQL("GRANT " + privileges + " ON {} TO {}").format(
                qualified, sql.Identifier(writer)
            )
        )
        cursor.execute(
            sql.SQL("GRANT SELECT ON {} TO {}").format(qualified, sql.Identifier(reader))
        )
        actions.append(f"{writer} may {privileges} on {RPT_SCHEMA}.{table}, {reader} SELECT")
    return actions


def ensure_ddl_guard(cursor: Cursor, owner: str) -> list[str]:
    """(Re)create the event trigger that limits the writer's DDL; raises
    `psycopg2.errors.InsufficientPrivilege` unless run by a superuser (rds_superuser on RDS)."""
    function = sql.SQL("{}.{}").format(
        sql.Identifier(STAGING_SCHEMA), sql.Identifier(GUARD_FUNCTION)
    )
    cursor.execute(
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {}() RETURNS event_trigger LANGUAGE plpgsql "
            "SET search_path = " + owner_ddl.SEARCH_PATH + " AS {}"
        ).format(function, sql.Literal(GUARD_BODY))
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
    return [f"created event trigger {GUARD_TRIGGER}: the writer may run no DDL of its own"]


def ensure_owner_functions(cursor: Cursor, owner: str, writer: str) -> list[str]:
    """(Re)create the owner's DDL functions (`owner_ddl`), owned by the owner role; PUBLIC may
    not execute them, the writer may."""
    outdated = owner_ddl.missing_or_outdated(cursor)
    owner_ddl.install(cursor, owner)  # every time: also re-takes EXECUTE from PUBLIC
    for signature, _ in owner_ddl.create_statements():
        schema, rest = signature.split(".", 1)
        cursor.execute(
            sql.SQL("GRANT EXECUTE ON FUNCTION {}." + rest + " TO {}").format(
                sql.Identifier(schema), sql.Identifier(writer)
            )
        )
    names = ", ".join(name for name, _ in owner_ddl.FUNCTIONS)
    done = "created or replaced" if outdated else "checked"
    return [
        f"{done} the owner's DDL functions in {STAGING_SCHEMA} ({names}), owned by {owner}; "
        f"{writer} may execute them, PUBLIC may not"
    ]


def default_privileges(cursor: Cursor, role: str, statement: str, *names: str) -> None:
    """ALTER DEFAULT PRIVILEGES FOR ROLE `role` `statement` (a constant with {} for `names`)."""
    cursor.execute(
        sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} " + statement).format(
            sql.Identifier(role), *(sql.Identifier(n) for n in names)
        )
    )


def ensure_table_privileges(cursor: Cursor, owner: str, writer: str, reader: str) -> list[str]:
    """The writer's privileges on every data table, now and later (`WRITER_DATA_PRIVILEGES`);
    the reader's SELECT on rpt and nothing on staging; no EXECUTE for PUBLIC (or the reader) on
    any function in either schema, nor on functions the owner or the writer create later."""
    staging, rpt = sql.Identifier(STAGING_SCHEMA), sql.Identifier(RPT_SCHEMA)
    writer_id, reader_id = sql.Identifier(writer), sql.Identifier(reader)
    actions: list[str] = []
    for schema, privileges in WRITER_DATA_PRIVILEGES.items():
        schema_id = sql.Identifier(schema)
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relname = ANY(%s) "
            "ORDER BY 1",
            (
                schema,
                sorted(PIPELINE_TABLES if schema == STAGING_SCHEMA else RPT_PIPELINE_TABLES),
            ),
        )
        for (table,) in cursor.fetchall():
            qualified = sql.SQL("{}.{}").format(schema_id, sql.Identifier(table))
            cursor.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(qualified, writer_id))
            cursor.execute(
                sql.SQL("GRANT " + privileges + " ON {} TO {}").format(qualified, writer_id)
            )
        for role in (writer, owner):  # the writer made the tables once; it makes none now
            default_privileges(
                cursor, role, "IN SCHEMA {} REVOKE ALL ON TABLES FROM {}", schema, writer
            )
            default_privileges(
                cursor, role, "IN SCHEMA {} REVOKE ALL ON TABLES FROM {}", schema, reader
            )
        default_privileges(
            cursor, owner, "IN SCHEMA {} GRANT " + privileges + " ON TABLES TO {}", schema, writer
        )
        cursor.execute(
            sql.SQL("REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {} FROM PUBLIC, {}").format(
                schema_id, reader_id
            )
        )
        actions.append(
            f"{writer} may {privileges} on every data table in {schema}, now and later, "
            "and owns none"
        )
    for role in (owner, writer):
        default_privileges(cursor, role, "REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC")
    actions.append(
        f"PUBLIC may execute no function in {STAGING_SCHEMA} or {RPT_SCHEMA}, nor any that "
        f"{owner} or {writer} create later"
    )

    cursor.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(staging, reader_id))
    cursor.execute(
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(staging, reader_id)
    )
    actions.append(f"{reader} has no privilege on schema {STAGING_SCHEMA} or its tables")
    cursor.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(rpt, reader_id))
    cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(rpt, reader_id))
    cursor.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(rpt, reader_id))
    cursor.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(rpt, reader_id))
    default_privileges(
        cursor, owner, "IN SCHEMA {} GRANT SELECT ON TABLES TO {}", RPT_SCHEMA, reader
    )
    # the only functions in rpt are the histories' `_as_of` (`foreign_objects` refuses others)
    for role in (reader, writer):  # the writer too: `indici as-of` runs as it
        cursor.execute(
            sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {} TO {}").format(
                rpt, sql.Identifier(role)
            )
        )
        default_privileges(
            cursor, owner, "IN SCHEMA {} GRANT EXECUTE ON FUNCTIONS TO {}", RPT_SCHEMA, role
        )
    actions.append(
        f"granted {reader} USAGE on schema {RPT_SCHEMA}, SELECT (only) on its tables and views "
        f"and EXECUTE on its `_as_of` functions (as {writer} has), including those created "
        "later"
    )
    return actions
