"""SQL text for the warehouse, composed with `psycopg2.sql` from validated identifiers.

Every function here is pure: it takes names and types that `rules`/`naming` have validated and
returns a `Composed` statement with identifiers quoted by `sql.Identifier`. Values travel as query
parameters or `sql.Literal`s, never as SQL text. Here: the names, the calls of the owner's DDL
functions (`owner_ddl.py`: the pipeline runs no DDL of its own on its data tables), the catalog
look-ups, the session settings and the staging statements; the rpt upserts' statements are in
`rpt_sql.py`.
"""

from collections.abc import Sequence

from psycopg2 import sql

from indici_dagster.core.naming import validate_identifier
from indici_dagster.core.pipeline_names import LOCKS_TABLE, RPT_SCHEMA, STAGING_SCHEMA
from indici_dagster.core.types.registry import METADATA, canonical

STAGING_METADATA = tuple((c.name, f"{c.type} {c.staging}".strip()) for c in METADATA)
RPT_METADATA = tuple((c.name, f"{c.type} {c.rpt}".strip()) for c in METADATA if c.rpt is not None)
COPY_METADATA = tuple(c.name for c in METADATA if c.loaded)
"""Metadata columns a staging COPY supplies, in feed order (`_loaded_at` takes its default)."""


def qualified(schema: str, table: str) -> sql.Composed:
    """`schema.table`, both quoted."""
    return sql.SQL("{}.{}").format(
        sql.Identifier(validate_identifier(schema)), sql.Identifier(validate_identifier(table))
    )


def identifiers(names: Sequence[str], prefix: str | None = None) -> sql.Composed:
    """`a, b, c` quoted, each qualified by `prefix` (`prefix.a`) when one is given."""
    parts = [
        sql.Identifier(prefix, validate_identifier(n)) if prefix else sql.Identifier(n)
        for n in names
    ]
    return sql.SQL(", ").join(parts)


def _call(function: str, *arguments: sql.Composable) -> sql.Composed:
    """`SELECT indici_staging.<function>(arguments)`: one of the owner's DDL functions
    (`core/warehouse/owner_ddl.py`), the only way the pipeline creates or widens its data tables."""
    return sql.SQL("SELECT {}({})").format(
        sql.Identifier(STAGING_SCHEMA, function), sql.SQL(", ").join(arguments)
    )


def _texts(values: Sequence[str]) -> sql.Composed:
    return sql.SQL("{}::text[]").format(sql.Literal(list(values)))


def _table_call(
    schema: str, table: str, columns: Sequence[tuple[str, str]], primary_key: Sequence[str]
) -> sql.Composed:
    return _call(
        "create_data_table",
        sql.Literal(validate_identifier(schema)),
        sql.Literal(validate_identifier(table)),
        _texts([validate_identifier(n) for n, _ in columns]),
        _texts([canonical(t) for _, t in columns]),
        _texts([validate_identifier(k) for k in primary_key]),
    )


def create_staging_table(table: str, columns: Sequence[tuple[str, str]]) -> sql.Composed:
    """Create the staging table if it does not exist (data columns plus load metadata), through
    the owner's function; one row: whether it was created."""
    return _table_call(STAGING_SCHEMA, table, columns, ())


def create_staging_index(table: str) -> sql.Composed:
    """Create the staging table's one index if it does not exist, a BRIN on `_source_ts`
    (`<table[:45]>__source_ts_brin`, autosummarize on), through the owner's function."""
    # BRIN: next to free to maintain during COPY, and files arrive roughly in time order;
    # every per-file statement also bounds _source_ts, so this one index serves them all.
    # each load summarizes the page ranges it filled as soon as it commits; autosummarize
    # covers rows written any other way
    return _call("create_staging_index", sql.Literal(validate_identifier(table)))


def create_rpt_table(
    table: str, columns: Sequence[tuple[str, str]], primary_key: Sequence[str]
) -> sql.Composed:
    """Create the reporting table if it does not exist (keyed, or keyless for static data),
    through the owner's function; one row: whether it was created."""
    return _table_call(RPT_SCHEMA, table, columns, primary_key)


def add_column(schema: str, table: str, column: str, type_name: str) -> sql.Composed:
    """Add a column if the table lacks it, through the owner's function (columns are only ever
    added, never dropped); one row: whether it was added."""
    return _call(
        "add_data_column",
        sql.Literal(validate_identifier(schema)),
        sql.Literal(validate_identifier(table)),
        sql.Literal(validate_identifier(column)),
        sql.Literal(canonical(type_name)),
    )


def summarize_new_ranges(table: str) -> tuple[str, tuple[str]]:
    """Summarize the staging table's page ranges its BRIN index does not cover yet.

    Until a range is summarized, every statement bounded by `_source_ts` reads it; a step that
    loads many files would read all earlier files' rows again for each file.
    """
    # the index belongs to the owner role, and summarizing needs its owner: the owner's function
    return "SELECT indici_staging.summarize_staging_index(%s)", (validate_identifier(table),)


def delete_file_rows(table: str) -> sql.Composed:
    """DELETE a file's rows from a staging table, yielding how many went (one row, one column);
    parameters: its embedded timestamp and name."""
    return sql.SQL(
        "WITH deleted AS (DELETE FROM {} WHERE _source_ts = %s AND _source_file = %s "
        "RETURNING 1) SELECT count(*) FROM deleted"
    ).format(qualified(STAGING_SCHEMA, table))


def copy_into_staging(table: str, columns: Sequence[str], *, freeze: bool = False) -> sql.Composed:
    """COPY ... FROM STDIN in binary format for the given data columns followed by
    `COPY_METADATA`.

    `freeze` writes the rows already frozen; Postgres allows it only into a table created
    (or truncated) in the same transaction.
    """
    return sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary{})").format(
        qualified(STAGING_SCHEMA, table),
        identifiers([*columns, *COPY_METADATA]),
        sql.SQL(", FREEZE" if freeze else ""),
    )


CREATE_LOCKS_TABLE = sql.SQL(
    "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, first_locked_at timestamptz "
    "NOT NULL DEFAULT now())"
).format(qualified(STAGING_SCHEMA, LOCKS_TABLE))
"""One row per name the pipeline serialises work on (a table, or the catalog)."""

TAKE_LOCK = sql.SQL(
    "SELECT set_config('lock_timeout', %(timeout)s, true); "
    "INSERT INTO {locks} (name) VALUES (%(name)s) ON CONFLICT DO NOTHING; "
    "SELECT 1 FROM {locks} WHERE name = %(name)s FOR UPDATE"
).format(locks=qualified(STAGING_SCHEMA, LOCKS_TABLE))
"""Set the transaction's `lock_timeout`, then lock the row of `name` in `pipeline_locks` until
the transaction ends (inserting it first if it is new). Three statements in one round trip;
the last takes a fresh snapshot, so it sees a row another transaction inserted and committed
while this one waited. Locking a row takes UPDATE on the table, and no role but the writer may
even see the schema, so the reader cannot take (and hold) the pipeline's locks."""


# The catalog: what exists, who owns it, which columns it has. Parameters name a relation as
# `regclass_name` spells it, or a schema and a table.

TABLE_EXISTS = "SELECT to_regclass(%s) IS NOT NULL"
"""One row, one column: whether the relation named (`regclass_name`) exists."""

SCHEMA_EXISTS = "SELECT 1 FROM pg_namespace WHERE nspname = %s"
"""A row if the schema named exists."""

OWNS_RELATION = "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass(%s)"
"""No row if the relation named (`regclass_name`) is missing; else whether this role owns it
(directly or through a role it is a member of)."""

COLUMN_SLOTS = "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0"
"""Attribute numbers a table (`regclass_name`) has used, dropped columns included; 0 if none."""

TABLE_COLUMNS = (
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
    "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY a.attnum"
)
"""(name, type as Postgres spells it) of each live column of a table, in order; parameters:
schema and table."""


def regclass_name(schema: str, table: str) -> str:
    """`"schema"."table"`, the text `to_regclass` parameters take (a value, not SQL text)."""
    return f'"{schema}"."{table}"'


def create_schema(schema: str) -> sql.Composed:
    """CREATE SCHEMA (the caller has seen it missing)."""
    return sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(validate_identifier(schema)))


# Session and transaction settings (parameters are values, never SQL text)

SET_TIME_ZONE = "SET TIME ZONE %s"
SET_SESSION_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', %s, false)"
SET_LOCAL_WORK_MEM = "SET LOCAL work_mem = %s"
SET_LOCAL_MAINTENANCE_WORK_MEM = "SET LOCAL maintenance_work_mem = %s"
READ_STAGING_THROUGH_BRIN = "SET LOCAL enable_seqscan = off"
"""For the rest of the transaction, read staging windows through the BRIN index: a table loaded
moments ago has no statistics yet, and the planner would read all of it rather than the few
page ranges the window's `_source_ts` bounds leave."""
ALLOW_SEQUENTIAL_SCANS = "SET LOCAL enable_seqscan = on"
"""Undo `READ_STAGING_THROUGH_BRIN` for a statement that reads a whole table."""
