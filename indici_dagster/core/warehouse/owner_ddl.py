"""The only DDL the pipeline causes on its data tables: functions owned by the schemas' owner.

After `indici bootstrap` the writer owns no table and may create nothing. The data tables of
`indici_staging` and `rpt` (and their indexes) belong to the NOLOGIN owner role, and the writer
creates and widens them only by calling these SECURITY DEFINER functions. Each accepts nothing
else: the schema is one of the two pipeline schemas; every table and column name matches
`core/naming.py`'s rule and is none of the pipeline's own relations or metadata columns; every
type is a spelling of the type registry (`core/types/registry.py`); everything is quoted with
`format('%I')`; no argument is SQL text. Each runs with `search_path = pg_catalog, pg_temp` and
names every catalog object by its schema, so no object a caller plants can stand in for one.
A refusal raises SQLSTATE 42501 (insufficient_privilege), naming no value.

Where bootstrap never ran (a developer's database, the tests' own databases), the role that
owns `indici_staging` installs them itself (`ensure_owner_functions`), so the pipeline has one
path everywhere; a role that cannot install them is refused with one line: run `indici bootstrap`.
`sql/bootstrap.sql` holds the same text for the default type registry (a test compares them).
"""

import re
from collections.abc import Callable

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.db_errors import CleanError, ErrorKind
from indici_dagster.core.pipeline_names import RPT_SCHEMA, STAGING_SCHEMA
from indici_dagster.core.types import registry as types
from indici_dagster.core.warehouse.owner_analyst_ddl import ANALYST_FUNCTIONS, analyst_bodies
from indici_dagster.core.warehouse.owner_ddl_checks import IDENTIFIER_PATTERN, SEARCH_PATH
from indici_dagster.core.warehouse.owner_ddl_checks import array_literal as _array
from indici_dagster.core.warehouse.owner_ddl_checks import check_keys as _check_keys
from indici_dagster.core.warehouse.owner_ddl_checks import check_table as _check_table
from indici_dagster.core.warehouse.owner_ddl_checks import refuse as _refuse
from indici_dagster.core.warehouse.owner_history_ddl import HISTORY_FUNCTIONS, history_bodies
from indici_dagster.core.warehouse.sql import RPT_METADATA, STAGING_METADATA

MAX_COLUMNS = 1000
"""Data columns one call may define (the staging plan's own ceiling, `MAX_TABLE_COLUMNS`)."""
FUNCTIONS = (
    ("create_data_table", "text, text, text[], text[], text[]"),
    ("add_data_column", "text, text, text, text"),
    ("create_staging_index", "text"),
    ("add_rpt_primary_key", "text, text[]"),
    ("summarize_staging_index", "text"),
    ("comment_data_table", "text, text, text, text[], text[]"),
    *ANALYST_FUNCTIONS,
    *HISTORY_FUNCTIONS,
)
"""(name, argument types) of each function in `indici_staging`, in the order they are made."""


class OwnerFunctionsMissingError(CleanError):
    """The owner's DDL functions are missing or out of date and this role cannot install them
    (configuration: the step fails at once, not retried)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ErrorKind.PERMANENT)


def type_pattern() -> str:
    """An anchored regular expression matching exactly the canonical spellings of the type
    registry's types (`numeric`, `numeric(12,2)`, `varchar(40)`, `double precision`).

    Parentheses are bracket expressions and there is no backslash, so the pattern means the
    same whatever `standard_conforming_strings` says."""
    parts = []
    for column_type in types.REGISTRY.values():
        if not re.fullmatch(r"[a-z][a-z0-9 ]*", column_type.name):
            raise ValueError(f"type name {column_type.name!r} cannot be placed in the allow-list")
        if not column_type.parameters:
            parts.append(column_type.name)
            continue
        numbers = "[0-9]{1,9}" + "(?:,[0-9]{1,9})?" * (len(column_type.parameters) - 1)
        parameters = f"[(]{numbers}[)]"
        parts.append(column_type.name + (f"(?:{parameters})?" if column_type.plain else parameters))
    return "^(?:" + "|".join(parts) + ")$"


def _check_column(name: str, type_name: str) -> str:
    metadata = sorted({n for n, _ in STAGING_METADATA})
    return f"""
        IF {name} IS NULL OR {name} COLLATE "C" !~ '{IDENTIFIER_PATTERN}'
           OR {name} = ANY ({_array(metadata)}) THEN
            {_refuse("a column name is not the identifier of a data column")}
        END IF;
        IF {type_name} IS NULL OR {type_name} COLLATE "C" !~ '{type_pattern()}' THEN
            {_refuse("a column type is not one the type registry allows")}
        END IF;"""


def _metadata(columns: tuple[tuple[str, str], ...]) -> str:
    return _array(f"{name} {definition}" for name, definition in columns)


def _bodies() -> dict[str, tuple[str, str, str]]:
    """name -> (parameters, return type, body) of each function."""
    staging, rpt = STAGING_SCHEMA, RPT_SCHEMA
    brin = "pg_catalog.left(target_table, 45) || '__source_ts_brin'"
    create = f"""
DECLARE
    definitions text[] := ARRAY[]::text[];
    keys text[] := ARRAY[]::text[];
    column_name text;
    column_type text;
    key_column text;
    existed boolean;
BEGIN{_check_table(None)}
    IF column_names IS NULL OR column_types IS NULL OR primary_key IS NULL
       OR pg_catalog.cardinality(column_names) <> pg_catalog.cardinality(column_types)
       OR pg_catalog.cardinality(column_names) > {MAX_COLUMNS} THEN
        {_refuse("the column names and types must be two arrays of the same length")}
    END IF;
    FOR column_name, column_type IN
        SELECT c.n, c.t FROM ROWS FROM (
            pg_catalog.unnest(column_names), pg_catalog.unnest(column_types)) AS c (n, t)
    LOOP{_check_column("column_name", "column_type")}
        definitions := definitions || pg_catalog.format('%I %s', column_name, column_type);
    END LOOP;
    IF target_schema = '{staging}' AND pg_catalog.cardinality(primary_key) > 0 THEN
        {_refuse("a staging table has no primary key")}
    END IF;{_check_keys("primary_key")}
    IF NOT keys <@ (SELECT COALESCE(pg_catalog.array_agg(pg_catalog.format('%I', n)),
                    ARRAY[]::text[]) FROM pg_catalog.unnest(column_names) AS n) THEN
        {_refuse("a primary-key column is not one of the columns of the table")}
    END IF;
    definitions := definitions || CASE WHEN target_schema = '{staging}'
        THEN {_metadata(STAGING_METADATA)}
        ELSE {_metadata(RPT_METADATA)} END;
    IF pg_catalog.cardinality(keys) > 0 THEN
        definitions := definitions
            || ('PRIMARY KEY (' || pg_catalog.array_to_string(keys, ', ') || ')');
    END IF;
    existed := pg_catalog.to_regclass(
        pg_catalog.format('%I.%I', target_schema, target_table)) IS NOT NULL;
    EXECUTE pg_catalog.format('CREATE TABLE IF NOT EXISTS %I.%I (%s)', target_schema,
        target_table, pg_catalog.array_to_string(definitions, ', '));
    RETURN NOT existed;
END
"""
    add_column = f"""
DECLARE
    existed boolean;
BEGIN{_check_table(None)}{_check_column("column_name", "column_type")}
    existed := EXISTS (
        SELECT FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = pg_catalog.to_regclass(
                  pg_catalog.format('%I.%I', target_schema, target_table))
          AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped);
    EXECUTE pg_catalog.format('ALTER TABLE %I.%I ADD COLUMN IF NOT EXISTS %I %s',
        target_schema, target_table, column_name, column_type);
    RETURN NOT existed;
END
"""
    index = f"""
BEGIN{_check_table(staging)}
    EXECUTE pg_catalog.format(
        'CREATE INDEX IF NOT EXISTS %I ON {staging}.%I USING brin (_source_ts) '
        'WITH (autosummarize = on)', {brin}, target_table);
END
"""
    primary = f"""
DECLARE
    keys text[] := ARRAY[]::text[];
    key_column text;
BEGIN{_check_table(rpt)}
    IF primary_key IS NULL OR pg_catalog.cardinality(primary_key) = 0 THEN
        {_refuse("a primary key needs at least one column")}
    END IF;{_check_keys("primary_key")}
    EXECUTE pg_catalog.format('ALTER TABLE {rpt}.%I ADD PRIMARY KEY (%s)', target_table,
        pg_catalog.array_to_string(keys, ', '));
END
"""
    summarize = f"""
BEGIN{_check_table(staging)}
    RETURN COALESCE(pg_catalog.brin_summarize_new_values(pg_catalog.to_regclass(
        pg_catalog.format('{staging}.%I', {brin}))), 0);
END
"""
    comment = f"""
DECLARE
    relation regclass;
    column_name text;
    column_comment text;
BEGIN{_check_table(None)}
    relation := pg_catalog.to_regclass(pg_catalog.format('%I.%I', target_schema, target_table));
    IF relation IS NULL THEN
        {_refuse("the table does not exist")}
    END IF;
    IF column_names IS NULL OR column_comments IS NULL
       OR pg_catalog.cardinality(column_names) <> pg_catalog.cardinality(column_comments) THEN
        {_refuse("the column names and comments must be two arrays of the same length")}
    END IF;
    EXECUTE pg_catalog.format(CASE WHEN (SELECT c.relkind FROM pg_catalog.pg_class c
        WHERE c.oid = relation) = 'v' THEN 'COMMENT ON VIEW %I.%I IS %L'
        ELSE 'COMMENT ON TABLE %I.%I IS %L' END, target_schema, target_table, table_comment);
    FOR column_name, column_comment IN
        SELECT c.n, c.t FROM ROWS FROM (
            pg_catalog.unnest(column_names), pg_catalog.unnest(column_comments)) AS c (n, t)
    LOOP
        IF column_name IS NULL OR column_name COLLATE "C" !~ '{IDENTIFIER_PATTERN}' THEN
            {_refuse("a column name is not an identifier")}
        END IF;
        IF EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = relation
                   AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped) THEN
            EXECUTE pg_catalog.format('COMMENT ON COLUMN %I.%I.%I IS %L', target_schema,
                target_table, column_name, column_comment);
        END IF;
    END LOOP;
END
"""
    table = "target_schema text, target_table text"
    return {
        "create_data_table": (
            f"{table}, column_names text[], column_types text[], primary_key text[]",
            "boolean",
            create,
        ),
        "add_data_column": (f"{table}, column_name text, column_type text", "boolean", add_column),
        "create_staging_index": ("target_table text", "void", index),
        "add_rpt_primary_key": ("target_table text, primary_key text[]", "void", primary),
        "summarize_staging_index": ("target_table text", "integer", summarize),
        "comment_data_table": (
            f"{table}, table_comment text, column_names text[], column_comments text[]",
            "void",
            comment,
        ),
        **history_bodies(),
        **analyst_bodies(),
    }


def function_sources() -> dict[str, str]:
    """name -> the body (`prosrc`) each function must have."""
    return {name: body for name, (_, _, body) in _bodies().items()}


def create_statements() -> list[tuple[str, str]]:
    """(`indici_staging.name(argument types)`, CREATE OR REPLACE FUNCTION ...) of each
    function, as `sql/bootstrap.sql` holds them; constants of this package, never input."""
    bodies = _bodies()
    statements = []
    for name, argument_types in FUNCTIONS:
        parameters, returns, body = bodies[name]
        statements.append(
            (
                f"{STAGING_SCHEMA}.{name}({argument_types})",
                f"CREATE OR REPLACE FUNCTION {STAGING_SCHEMA}.{name}({parameters})\n"
                f"RETURNS {returns} LANGUAGE plpgsql SECURITY DEFINER\n"
                f"SET search_path = {SEARCH_PATH} AS $fn${body}$fn$",
            )
        )
    return statements


def missing_or_outdated(cursor: Cursor) -> list[str]:
    """The functions (`indici_staging.name(types)`) that are missing, or differ from this
    version's: another body, not SECURITY DEFINER, or another search_path."""
    sources = function_sources()
    wrong = []
    for (name, _), (signature, _) in zip(FUNCTIONS, create_statements(), strict=True):
        cursor.execute(
            "SELECT p.prosrc, p.prosecdef, p.proconfig FROM pg_catalog.pg_proc p "
            "WHERE p.oid = pg_catalog.to_regprocedure(%s)",
            (signature,),
        )
        row = cursor.fetchone()
        if row is None or tuple(row) != (sources[name], True, [f"search_path={SEARCH_PATH}"]):
            wrong.append(signature)
    return wrong


def install(cursor: Cursor, owner: str | None = None) -> None:
    """(Re)create every function, take EXECUTE away from PUBLIC, and hand each to `owner` when
    one is given (else it stays with the role that runs this)."""
    for signature, statement in create_statements():
        cursor.execute(statement)
        function = sql.SQL(signature.replace(f"{STAGING_SCHEMA}.", "{}.", 1)).format(
            sql.Identifier(STAGING_SCHEMA)
        )
        cursor.execute(sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC").format(function))
        if owner is not None:
            cursor.execute(
                sql.SQL("ALTER FUNCTION {} OWNER TO {}").format(function, sql.Identifier(owner))
            )


def ensure_owner_functions(cursor: Cursor, serialise: Callable[[], None]) -> None:
    """Make sure this version's functions are in place: install them when this role owns
    `indici_staging` (a database bootstrap never ran in), else raise
    `OwnerFunctionsMissingError` with one line saying to run `indici bootstrap`.

    `serialise` is called (inside the caller's transaction) before installing, to keep two
    processes from replacing the same function at once; the check is then made again."""
    if not missing_or_outdated(cursor):
        return
    serialise()
    wrong = missing_or_outdated(cursor)
    if not wrong:
        return
    cursor.execute(
        "SELECT pg_catalog.pg_has_role(n.nspowner, 'USAGE') FROM pg_catalog.pg_namespace n "
        "WHERE n.nspname = %s",
        (STAGING_SCHEMA,),
    )
    row = cursor.fetchone()
    if row is None or not row[0]:
        raise OwnerFunctionsMissingError(
            f"the functions the pipeline creates and widens its tables with are missing or out "
            f"of date in schema {STAGING_SCHEMA} ({len(wrong)} of {len(FUNCTIONS)}), and this "
            "role may not install them: run `indici bootstrap` as an administrator"
        )
    install(cursor)
