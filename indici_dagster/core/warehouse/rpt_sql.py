"""SQL text for the rpt upserts, composed with `psycopg2.sql` from validated identifiers.

Pure functions like those of `core/warehouse/sql.py` (which holds the names, the DDL and the staging
statements): each returns a statement for a rule's table; values always travel as parameters.
Windows are bounded by `_source_ts`, so the staging table's BRIN index finds their rows.
"""

from collections.abc import Collection, Sequence

from psycopg2 import sql

from indici_dagster.core.naming import validate_identifier
from indici_dagster.core.pipeline_names import RPT_SCHEMA, STAGING_SCHEMA
from indici_dagster.core.warehouse.sql import RPT_METADATA, identifiers, qualified

RPT_ROW_VERSION = ("_source_ts", "_row_number", "_source_file")
"""A row's version in rpt: a newer version wins, compared in this order."""


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
        key=identifiers(primary_key),
        newest_first=sql.SQL(", ").join(
            sql.SQL("{} DESC").format(sql.Identifier(c)) for c in RPT_ROW_VERSION
        ),
        key_present=key_present,
        all_columns=identifiers([*columns, *RPT_COLUMNS_FROM_STAGING]),
    )


def upsert_into_rpt(
    table: str,
    columns: Sequence[str],
    primary_key: Sequence[str],
    compared_as_text: Collection[str] = (),
) -> sql.Composed:
    """One set-based upsert of the staged rows in a time window into `rpt.<table>`.

    Parameters: `start` and `end` (timestamptz) bound `_source_ts`. Among staged rows with a
    complete key, the newest version per key wins (`_source_ts`, then `_row_number`, then file
    name); it replaces the rpt row only if it is at least as new and differs from it, so a late
    file never overwrites newer data and a replay changes nothing. Returns one row per source
    file: file, rows staged, rows rejected (NULL key), rows inserted, rows updated.
    Columns in `compared_as_text` (`json`, which has no equality operator) are compared by their
    text.
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
        key=identifiers(primary_key),
        all_columns=identifiers(all_columns),
        updates=updates,
        current_version=identifiers(RPT_ROW_VERSION, "current"),
        excluded_version=identifiers(RPT_ROW_VERSION, "excluded"),
        current_compared=compared_values(compared, "current", compared_as_text),
        excluded_compared=compared_values(compared, "excluded", compared_as_text),
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
        all_columns=identifiers([*columns, *RPT_COLUMNS_FROM_STAGING]),
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
    """Add rpt.<table>'s primary key through the owner's function: for a table created without
    it in the same transaction, so the index is built once, sorted, rather than row by row."""
    return sql.SQL("SELECT {}({}, {}::text[])").format(
        sql.Identifier(STAGING_SCHEMA, "add_rpt_primary_key"),
        sql.Literal(validate_identifier(table)),
        sql.Literal([validate_identifier(k) for k in primary_key]),
    )


def replace_static_snapshot(table: str, columns: Sequence[str]) -> sql.Composed:
    """Replace `rpt.<table>` with one staged file's rows; parameters: its timestamp and name."""
    names = identifiers([*columns, *RPT_COLUMNS_FROM_STAGING])
    return sql.SQL(
        "DELETE FROM {rpt}; INSERT INTO {rpt} ({names}) SELECT {names} FROM {staging} "
        "WHERE _source_ts = %s AND _source_file = %s"
    ).format(
        rpt=qualified(RPT_SCHEMA, table), staging=qualified(STAGING_SCHEMA, table), names=names
    )


def files_in_window(table: str) -> sql.Composed:
    """The staged files with `start <= _source_ts < end`: (timestamp, names) per timestamp,
    oldest first; parameters: start and end."""
    return sql.SQL(
        "SELECT _source_ts, array_agg(DISTINCT _source_file) FROM {} "
        "WHERE _source_ts >= %s AND _source_ts < %s GROUP BY 1 ORDER BY 1"
    ).format(qualified(STAGING_SCHEMA, table))


def rpt_is_empty(table: str) -> sql.Composed:
    """One row, one column: whether `rpt.<table>` holds no row."""
    return sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(qualified(RPT_SCHEMA, table))


def static_snapshots_in_window(table: str) -> sql.Composed:
    """(file, its timestamp, rows) of each file staged with `start <= _source_ts < end`, newest
    first (timestamp, then name); parameters: start and end."""
    return sql.SQL(
        "SELECT _source_file, min(_source_ts), count(*) FROM {} "
        "WHERE _source_ts >= %s AND _source_ts < %s GROUP BY _source_file "
        "ORDER BY min(_source_ts) DESC, _source_file DESC"
    ).format(qualified(STAGING_SCHEMA, table))


def current_static_snapshot(table: str) -> sql.Composed:
    """(timestamp, file) of the snapshot `rpt.<table>` holds; no row if it is empty."""
    return sql.SQL(
        "SELECT _source_ts, _source_file FROM {} "
        "ORDER BY _source_ts DESC, _source_file DESC LIMIT 1"
    ).format(qualified(RPT_SCHEMA, table))


def compared_values(names: Sequence[str], prefix: str, as_text: Collection[str]) -> sql.Composed:
    """`prefix.a, prefix.b::text, ...`: the values a changed row differs in."""
    return sql.SQL(", ").join(
        sql.SQL("{}::text" if name in as_text else "{}").format(
            sql.Identifier(prefix, validate_identifier(name))
        )
        for name in names
    )
