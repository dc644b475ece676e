"""SQL text for the warehouse, composed with `psycopg2.sql` from validated identifiers.

Every function here is pure: it takes names and types that `rules`/`naming` have validated and
returns a `Composed` statement with identifiers quoted by `sql.Identifier`. Values always travel
as query parameters, never in the text.
"""

from collections.abc import Sequence

from psycopg2 import sql

from indici_dagster.core.naming import validate_identifier
from indici_dagster.core.types import METADATA, canonical

STAGING_SCHEMA = "indici_staging"
RPT_SCHEMA = "rpt"
AUDIT_TABLE = "auditlog"
LEDGER_TABLE = "landing_ledger"
ROW_COUNTS_TABLE = "table_row_counts"
LOCKS_TABLE = "pipeline_locks"

PIPELINE_TABLES = frozenset({AUDIT_TABLE, LEDGER_TABLE, ROW_COUNTS_TABLE, LOCKS_TABLE})
"""The pipeline's own tables in `indici_staging`; no rule may name its table like one."""
PIPELINE_RELATIONS = PIPELINE_TABLES | {
    f"{AUDIT_TABLE}_id_seq",
    f"{AUDIT_TABLE}_pkey",
    f"{AUDIT_TABLE}_source_file_idx",
    f"{AUDIT_TABLE}_run_idx",
    f"{LEDGER_TABLE}_pkey",
    f"{LEDGER_TABLE}_outcome_idx",
    f"{ROW_COUNTS_TABLE}_pkey",
    f"{LOCKS_TABLE}_pkey",
}
"""Every relation (table, index, sequence) the pipeline creates for itself in `indici_staging`
(a test compares it with the catalog): a dataset's table must not take one of these names."""

STAGING_METADATA = tuple((c.name, f"{c.type} {c.staging}".strip()) for c in METADATA)
RPT_METADATA = tuple((c.name, f"{c.type} {c.rpt}".strip()) for c in METADATA if c.rpt is not None)
COPY_METADATA = tuple(c.name for c in METADATA if c.loaded)
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
        sql.SQL("{} {}").format(sql.Identifier(validate_identifier(n)), sql.SQL(canonical(t)))
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


def create_staging_table(table: str, columns: Sequence[tuple[str, str]]) -> sql.Composed:
    """CREATE TABLE IF NOT EXISTS for a staging table: data columns plus load metadata."""
    body = _column_definitions(columns) + _metadata_definitions(STAGING_METADATA)
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
        qualified(STAGING_SCHEMA, table), sql.SQL(", ").join(body)
    )


def create_staging_index(table: str) -> sql.Composed:
    """CREATE INDEX IF NOT EXISTS for the staging table's one index, a BRIN on `_source_ts`."""
    # BRIN: next to free to maintain during COPY, and files arrive roughly in time order;
    # every per-file statement also bounds _source_ts, so this one index serves them all.
    # each load summarizes the page ranges it filled as soon as it commits; autosummarize
    # covers rows written any other way
    return sql.SQL(
        "CREATE INDEX IF NOT EXISTS {} ON {} USING brin (_source_ts) WITH (autosummarize = on)"
    ).format(sql.Identifier(_staging_brin_index(table)), qualified(STAGING_SCHEMA, table))


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
        sql.SQL(canonical(type_name)),
    )


def _staging_brin_index(table: str) -> str:
    return validate_identifier(f"{table[:45]}__source_ts_brin")


def dataset_relations(table: str) -> frozenset[str]:
    """The relations a dataset's tables bring besides themselves: the staging table's BRIN index
    and the name Postgres gives rpt's primary key index (a 63-byte name at most)."""
    return frozenset({_staging_brin_index(table), f"{table[: 63 - len('_pkey')]}_pkey"})


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


def copy_into_staging(table: str, columns: Sequence[str], *, freeze: bool = False) -> sql.Composed:
    """COPY ... FROM STDIN in binary format for the given data columns followed by
    `COPY_METADATA`.

    `freeze` writes the rows already frozen; Postgres allows it only into a table created
    (or truncated) in the same transaction.
    """
    return sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary{})").format(
        qualified(STAGING_SCHEMA, table),
        _identifiers([*columns, *COPY_METADATA]),
        sql.SQL(", FREEZE" if freeze else ""),
    )


RPT_COLUMNS_FROM_STAGING = tuple(name for name, _ in RPT_METADATA)
"""The load metadata each rpt row carries over from the staged row it came from."""


def _window_counts_by_file(staging: sql.Composable, primary_key: Sequence[str]) -> sql.Composed:
    """Per source file in the window: rows staged and rows rejected for a NULL key column."""
    key_missing = sql.SQL(" OR ").join(
        sql.SQL("{} IS NULL").format(sql.Identifier(k)) for k in primary_key
    )
    return sql.SQL(
        """SELECT _source_file, count(*) AS staged,
                  count(*) FILTER (WHERE {key_missing}) AS rejected
           FROM {staging} WHERE _source_ts >= %(start)s AND _source_ts < %(end)s
           GROUP BY _source_file"""
    ).format(staging=staging, key_missing=key_missing)


def _newest_per_key(
    staging: sql.Composable, columns: Sequence[str], primary_key: Sequence[str]
) -> sql.Composed:
    """The newest staged version of each complete key in the window, in key order."""
    key_present = sql.SQL(" AND ").join(
        sql.SQL("{} IS NOT NULL").format(sql.Identifier(k)) for k in primary_key
    )
    return sql.SQL(
        """SELECT DISTINCT ON ({key}) {all_columns}
           FROM {staging}
           WHERE _source_ts >= %(start)s AND _source_ts < %(end)s AND {key_present}
           ORDER BY {key}, {newest_first}"""
    ).format(
        staging=staging,
        key=_identifiers(primary_key),
        newest_first=sql.SQL(", ").join(
            sql.SQL("{} DESC").format(sql.Identifier(c)) for c in RPT_ROW_VERSION
        ),
        key_present=key_present,
        all_columns=_identifiers([*columns, *RPT_COLUMNS_FROM_STAGING]),
    )


def upsert_into_rpt(table: str, columns: Sequence[str], primary_key: Sequence[str]) -> sql.Composed:
    """One set-based upsert of the staged rows in a time window into `rpt.<table>`.

    Parameters: `start` and `end` (timestamptz) bound `_source_ts`. Among staged rows with a
    complete key, the newest version per key wins (`_source_ts`, then `_row_number`, then file
    name); it replaces the rpt row only if it is at least as new and differs from it, so a late
    file never overwrites newer data and a replay changes nothing. Returns one row per source
    file: file, rows staged, rows rejected (NULL key), rows inserted, rows updated.
    """
    staging = qualified(STAGING_SCHEMA, table)
    all_columns = [*columns, *RPT_COLUMNS_FROM_STAGING]
    compared = [*columns, *RPT_ROW_VERSION]
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
        for c in all_columns
        if c not in primary_key
    )
    return sql.SQL(
        """
        WITH staged AS (
            {staged}
        ), applied AS (
            -- the window is scanned again rather than shared with `staged`: a shared CTE
            -- would be materialised in full
            INSERT INTO {rpt} AS current ({all_columns})
            {newest}
            ON CONFLICT ({key}) DO UPDATE SET {updates}
            WHERE ({current_version}) <= ({excluded_version})
              AND ({current_compared}) IS DISTINCT FROM ({excluded_compared})
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
        staged=_window_counts_by_file(staging, primary_key),
        newest=_newest_per_key(staging, columns, primary_key),
        rpt=qualified(RPT_SCHEMA, table),
        key=_identifiers(primary_key),
        all_columns=_identifiers(all_columns),
        updates=updates,
        current_version=_identifiers(RPT_ROW_VERSION, "current"),
        excluded_version=_identifiers(RPT_ROW_VERSION, "excluded"),
        current_compared=_identifiers(compared, "current"),
        excluded_compared=_identifiers(compared, "excluded"),
    )


def insert_into_empty_rpt(
    table: str, columns: Sequence[str], primary_key: Sequence[str]
) -> sql.Composed:
    """The first load of an empty `rpt.<table>`: a plain INSERT of the newest version per key.

    Same parameters and same rows as `upsert_into_rpt` on an empty table; the caller must hold
    the table's lock and have seen it empty. Nothing can conflict, so it skips the per-row
    conflict checks, and it returns no rows: see `rpt_rows_by_source_file`.
    """
    return sql.SQL("INSERT INTO {rpt} ({all_columns}) {newest}").format(
        rpt=qualified(RPT_SCHEMA, table),
        all_columns=_identifiers([*columns, *RPT_COLUMNS_FROM_STAGING]),
        newest=_newest_per_key(qualified(STAGING_SCHEMA, table), columns, primary_key),
    )


def staged_counts_in_window(table: str, primary_key: Sequence[str]) -> sql.Composed:
    """Per source file with rows in the window, in name order: file, rows staged, rows with a
    NULL key column; parameters `start` and `end` as for `upsert_into_rpt`."""
    return sql.SQL("{} ORDER BY _source_file").format(
        _window_counts_by_file(qualified(STAGING_SCHEMA, table), primary_key)
    )


def rpt_rows_by_source_file(table: str) -> sql.Composed:
    """Rows of `rpt.<table>` per source file: after `insert_into_empty_rpt`, in its transaction,
    what each file inserted (rpt was empty). Far cheaper than having the INSERT return a
    million rows to group."""
    return sql.SQL("SELECT _source_file, count(*) FROM {} GROUP BY _source_file").format(
        qualified(RPT_SCHEMA, table)
    )


def add_primary_key(table: str, primary_key: Sequence[str]) -> sql.Composed:
    """ALTER TABLE rpt.<table> ADD PRIMARY KEY: for a table created without it in the same
    transaction, so the index is built once, sorted, rather than row by row."""
    return sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
        qualified(RPT_SCHEMA, table), _identifiers(primary_key)
    )


def replace_static_snapshot(table: str, columns: Sequence[str]) -> sql.Composed:
    """Replace `rpt.<table>` with one staged file's rows; parameters: its timestamp and name."""
    names = _identifiers([*columns, *RPT_COLUMNS_FROM_STAGING])
    return sql.SQL(
        "DELETE FROM {rpt}; INSERT INTO {rpt} ({names}) SELECT {names} FROM {staging} "
        "WHERE _source_ts = %s AND _source_file = %s"
    ).format(
        rpt=qualified(RPT_SCHEMA, table), staging=qualified(STAGING_SCHEMA, table), names=names
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
