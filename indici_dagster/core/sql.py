"""SQL text for the warehouse, composed with `psycopg2.sql` from validated identifiers.

Every function here is pure: it takes names and types that `rules`/`naming` have validated and
returns a `Composed` statement with identifiers quoted by `sql.Identifier`. Values always travel
as query parameters, never in the text.
"""

from collections.abc import Sequence
from typing import Literal

from psycopg2 import sql

from indici_dagster.core.naming import validate_identifier
from indici_dagster.core.rules import canonical_type

STAGING_SCHEMA = "indici_staging"
RPT_SCHEMA = "rpt"
AUDIT_TABLE = "auditlog"
LEDGER_TABLE = "landing_ledger"
ROW_COUNTS_TABLE = "table_row_counts"

STAGING_METADATA = (
    ("_source_file", "text NOT NULL"),
    ("_source_ts", "timestamptz NOT NULL"),
    ("_row_number", "bigint NOT NULL"),
    ("_loaded_at", "timestamptz NOT NULL DEFAULT now()"),
    ("_run_id", "text"),
)
RPT_METADATA = (
    ("_source_file", "text NOT NULL"),
    ("_source_ts", "timestamptz NOT NULL"),
    ("_row_number", "bigint NOT NULL"),
    ("_loaded_at", "timestamptz NOT NULL"),
)
COPY_METADATA = ("_source_file", "_source_ts", "_run_id", "_row_number")
"""Metadata columns a staging COPY supplies, in feed order (`_loaded_at` takes its default)."""

RPT_ROW_VERSION = ("_source_ts", "_row_number", "_source_file")
"""A row's version in rpt: a newer version wins, compared in this order."""


def qualified(schema: str, table: str) -> sql.Composed:
    """`schema.table`, both quoted."""
    return sql.SQL("{}.{}").format(
        sql.Identifier(validate_identifier(schema)), sql.Identifier(validate_identifier(table))
    )


def _column_definitions(columns: Sequence[tuple[str, str]]) -> list[sql.Composable]:
    return [
        sql.SQL("{} {}").format(sql.Identifier(validate_identifier(n)), sql.SQL(canonical_type(t)))
        for n, t in columns
    ]


def _metadata_definitions(metadata: Sequence[tuple[str, str]]) -> list[sql.Composable]:
    # metadata names and definitions are constants of this module, never input
    return [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(d)) for n, d in metadata]


def _identifiers(names: Sequence[str], prefix: str | None = None) -> sql.Composed:
    parts = [
        sql.Identifier(prefix, validate_identifier(n)) if prefix else sql.Identifier(n)
        for n in names
    ]
    return sql.SQL(", ").join(parts)


def create_staging_table(table: str, columns: Sequence[tuple[str, str]]) -> list[sql.Composed]:
    """CREATE TABLE IF NOT EXISTS for a staging table (data columns plus load metadata) and its
    index on `_source_ts`; one statement per list item."""
    target = qualified(STAGING_SCHEMA, table)
    body = _column_definitions(columns) + _metadata_definitions(STAGING_METADATA)
    return [
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(target, sql.SQL(", ").join(body)),
        # BRIN: next to free to maintain during COPY, and files arrive roughly in time order;
        # every per-file statement also bounds _source_ts, so this one index serves them all.
        # autosummarize: autovacuum summarizes each filled page range soon after a load, rather
        # than leaving it to be scanned by every later statement until the next VACUUM
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS {} ON {} USING brin (_source_ts) WITH (autosummarize = on)"
        ).format(sql.Identifier(_staging_brin_index(table)), target),
    ]


def create_rpt_table(
    table: str, columns: Sequence[tuple[str, str]], primary_key: Sequence[str]
) -> sql.Composed:
    """CREATE TABLE IF NOT EXISTS for a reporting table (keyed, or keyless for static data)."""
    body = _column_definitions(columns) + _metadata_definitions(RPT_METADATA)
    if primary_key:
        body.append(sql.SQL("PRIMARY KEY ({})").format(_identifiers(primary_key)))
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
        qualified(RPT_SCHEMA, table), sql.SQL(", ").join(body)
    )


def add_column(schema: str, table: str, column: str, type_name: str) -> sql.Composed:
    """ALTER TABLE ... ADD COLUMN IF NOT EXISTS (columns are only ever added, never dropped)."""
    return sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
        qualified(schema, table),
        sql.Identifier(validate_identifier(column)),
        sql.SQL(canonical_type(type_name)),
    )


def _staging_brin_index(table: str) -> str:
    return validate_identifier(f"{table[:45]}__source_ts_brin")


def summarize_new_ranges(table: str) -> tuple[str, tuple[str]]:
    """Summarize the staging table's page ranges its BRIN index does not cover yet.

    Until a range is summarized, every statement bounded by `_source_ts` reads it; a step that
    loads many files would read all earlier files' rows again for each file.
    """
    index = f'"{STAGING_SCHEMA}"."{_staging_brin_index(table)}"'
    return "SELECT brin_summarize_new_values(to_regclass(%s))", (index,)


def delete_file_rows(table: str) -> sql.Composed:
    """DELETE a file's rows from a staging table, yielding how many went (one row, one column);
    parameters: its embedded timestamp and name."""
    return sql.SQL(
        "WITH deleted AS (DELETE FROM {} WHERE _source_ts = %s AND _source_file = %s "
        "RETURNING 1) SELECT count(*) FROM deleted"
    ).format(qualified(STAGING_SCHEMA, table))


def copy_into_staging(
    table: str, columns: Sequence[str], copy_format: Literal["csv", "binary"] = "csv"
) -> sql.Composed:
    """COPY ... FROM STDIN in `copy_format` for the given data columns followed by
    `COPY_METADATA`."""
    return sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT {})").format(
        qualified(STAGING_SCHEMA, table),
        _identifiers([*columns, *COPY_METADATA]),
        sql.SQL({"csv": "csv", "binary": "binary"}[copy_format]),
    )


def upsert_into_rpt(
    table: str, columns: Sequence[str], primary_key: Sequence[str], *, target_is_empty: bool = False
) -> sql.Composed:
    """One set-based upsert of the staged rows in a time window into `rpt.<table>`.

    Parameters: `start` and `end` (timestamptz) bound `_source_ts`. Among staged rows with a
    complete key, the newest version per key wins (`_source_ts`, then `_row_number`, then file
    name); it replaces the rpt row only if it is at least as new and differs from it, so a late
    file never overwrites newer data and a replay changes nothing. Returns one row per source
    file: file, rows staged, rows rejected (NULL key), rows inserted, rows updated.

    With `target_is_empty` (the caller holds the table's lock and saw no rows) the statement is
    a plain insert: with one row per key there is nothing to conflict with, and Postgres skips
    the per-row conflict checks.
    """
    key = _identifiers(primary_key)
    all_columns = [*columns, "_source_file", "_source_ts", "_row_number", "_loaded_at"]
    compared = [*columns, "_source_file", "_source_ts", "_row_number"]
    key_present = sql.SQL(" AND ").join(
        sql.SQL("{} IS NOT NULL").format(sql.Identifier(k)) for k in primary_key
    )
    key_missing = sql.SQL(" OR ").join(
        sql.SQL("{} IS NULL").format(sql.Identifier(k)) for k in primary_key
    )
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
        for c in all_columns
        if c not in primary_key
    )
    on_conflict = sql.SQL(
        """ON CONFLICT ({key}) DO UPDATE SET {updates}
            WHERE (current._source_ts, current._row_number, current._source_file)
                  <= (EXCLUDED._source_ts, EXCLUDED._row_number, EXCLUDED._source_file)
              AND ({current_compared}) IS DISTINCT FROM ({excluded_compared})"""
    ).format(
        key=key,
        updates=updates,
        current_compared=_identifiers(compared, "current"),
        excluded_compared=_identifiers(compared, "excluded"),
    )
    return sql.SQL(
        """
        WITH staged AS (
            SELECT _source_file, count(*) AS staged,
                   count(*) FILTER (WHERE {key_missing}) AS rejected
            FROM {staging} WHERE _source_ts >= %(start)s AND _source_ts < %(end)s
            GROUP BY _source_file
        ), newest AS (
            -- scanned again rather than shared: a shared CTE would be materialised in full
            SELECT DISTINCT ON ({key}) {all_columns}
            FROM {staging}
            WHERE _source_ts >= %(start)s AND _source_ts < %(end)s AND {key_present}
            ORDER BY {key}, _source_ts DESC, _row_number DESC, _source_file DESC
        ), applied AS (
            INSERT INTO {rpt} AS current ({all_columns})
            SELECT {all_columns} FROM newest
            {on_conflict}
            RETURNING current._source_file AS source_file, (xmax = 0) AS inserted
        ), applied_by_file AS (
            -- aggregate first: joining every returned row to its file would cost a join per row
            SELECT source_file, count(*) FILTER (WHERE inserted) AS inserted,
                   count(*) FILTER (WHERE NOT inserted) AS updated
            FROM applied GROUP BY source_file
        )
        SELECT staged._source_file, staged.staged, staged.rejected,
               coalesce(applied_by_file.inserted, 0), coalesce(applied_by_file.updated, 0)
        FROM staged LEFT JOIN applied_by_file ON applied_by_file.source_file = staged._source_file
        ORDER BY staged._source_file
        """
    ).format(
        staging=qualified(STAGING_SCHEMA, table),
        rpt=qualified(RPT_SCHEMA, table),
        key=key,
        key_present=key_present,
        key_missing=key_missing,
        all_columns=_identifiers(all_columns),
        on_conflict=sql.SQL("") if target_is_empty else on_conflict,
    )


def replace_static_snapshot(table: str, columns: Sequence[str]) -> sql.Composed:
    """Replace `rpt.<table>` with one staged file's rows; parameters: its timestamp and name."""
    names = _identifiers([*columns, "_source_file", "_source_ts", "_row_number", "_loaded_at"])
    return sql.SQL(
        "DELETE FROM {rpt}; INSERT INTO {rpt} ({names}) SELECT {names} FROM {staging} "
        "WHERE _source_ts = %s AND _source_file = %s"
    ).format(
        rpt=qualified(RPT_SCHEMA, table), staging=qualified(STAGING_SCHEMA, table), names=names
    )
