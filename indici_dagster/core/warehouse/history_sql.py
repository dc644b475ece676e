"""SQL text for a keyed dataset's history, composed with `psycopg2.sql` from validated names.

The history of `rpt.<table>` is its current rows (in rpt) and `rpt.<table>_past`, the versions
that are no longer current (see `owner_history_ddl.py`). A version is a key's newest row in one
file; versions are ordered like the rpt upsert's rows (`rpt_sql.RPT_ROW_VERSION`), and each
past version's `valid_to` is the next version's `valid_from`. Parameters: `start` and `end`
bound the window's `_source_ts`, as for `rpt_sql.upsert_into_rpt`.
"""

from collections.abc import Collection, Sequence

from psycopg2 import sql

from indici_dagster.core.naming import validate_identifier
from indici_dagster.core.pipeline_names import (
    RPT_SCHEMA,
    STAGING_SCHEMA,
    as_of_function,
    history_past,
)
from indici_dagster.core.warehouse.rpt_sql import (
    RPT_COLUMNS_FROM_STAGING,
    RPT_ROW_VERSION,
    compared_values,
)
from indici_dagster.core.warehouse.sql import identifiers, qualified


def _keys_match(left: str, right: str, primary_key: Sequence[str]) -> sql.Composed:
    return sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(left, k), sql.Identifier(right, k))
        for k in primary_key
    )


def _version(prefix: str) -> sql.Composed:
    return identifiers(RPT_ROW_VERSION, prefix)


def sync_history(table: str, primary_key: Sequence[str]) -> sql.Composed:
    """Create or widen the history of `rpt.<table>` through the owner's function; one row:
    whether anything changed."""
    return sql.SQL("SELECT {}({}, {}::text[])").format(
        sql.Identifier(STAGING_SCHEMA, "sync_history"),
        sql.Literal(validate_identifier(table)),
        sql.Literal([validate_identifier(k) for k in primary_key]),
    )


def archive_displaced(
    table: str, rpt_columns: Sequence[str], primary_key: Sequence[str]
) -> sql.Composed:
    """Before the window's upsert: copy into `_past` each rpt row the upsert will replace by a
    newer version of another file (the newest version of its key in the window is newer than
    it and is not the same file's). A same-file newer row replaces it in place (same version).
    Its `valid_to` is that newest version's `valid_from`: no version lies between them unless the
    window holds another, which `insert_past_versions` adds with no `valid_to`, so that
    `set_valid_to` computes the key again."""
    key = identifiers(primary_key)
    return sql.SQL(
        """
        INSERT INTO {past} ({columns}, valid_from, valid_to)
        SELECT {r_columns}, r._source_ts, n._source_ts
        FROM {rpt} r JOIN (
            SELECT DISTINCT ON ({key}) {key}, {version}
            FROM {staging}
            WHERE _source_ts >= %(start)s AND _source_ts < %(end)s
            ORDER BY {key}, {newest_first}
        ) n ON {match}
        WHERE ({n_version}) > ({r_version})
          AND (n._source_ts, n._source_file) <> (r._source_ts, r._source_file)
        ON CONFLICT DO NOTHING
        """
    ).format(
        past=qualified(RPT_SCHEMA, history_past(table)),
        columns=identifiers(rpt_columns),
        r_columns=identifiers(rpt_columns, "r"),
        rpt=qualified(RPT_SCHEMA, table),
        staging=qualified(STAGING_SCHEMA, table),
        key=key,
        version=identifiers(RPT_ROW_VERSION),
        newest_first=sql.SQL(", ").join(
            sql.SQL("{} DESC").format(sql.Identifier(c)) for c in RPT_ROW_VERSION
        ),
        match=_keys_match("n", "r", primary_key),
        n_version=_version("n"),
        r_version=_version("r"),
    )


def insert_past_versions(
    table: str,
    columns: Sequence[str],
    primary_key: Sequence[str],
    compared_as_text: Collection[str] = (),
    *,
    whole_table: bool = False,
) -> sql.Composed:
    """After the window's upsert: insert into `_past` each version (a key's newest row of one
    file) of the window that rpt does not hold as current: late versions, and versions a newer
    one of the same window superseded. A version already there (a replay) changes only if the
    file was sent again with other content, and its `valid_to` is then computed again.
    With `whole_table`, every staged version older than rpt's current one (a rebuild), and no
    parameters."""
    staging, rpt = qualified(STAGING_SCHEMA, table), qualified(RPT_SCHEMA, table)
    all_columns = [*columns, *RPT_COLUMNS_FROM_STAGING]
    compared = [*columns, *RPT_ROW_VERSION]
    key_present = sql.SQL(" AND ").join(
        sql.SQL("s.{} IS NOT NULL").format(sql.Identifier(k)) for k in primary_key
    )
    if whole_table:
        which = sql.SQL(
            "EXISTS (SELECT 1 FROM {rpt} r WHERE {match} AND ({s_version}) < ({r_version}) "
            "AND (s._source_ts, s._source_file) <> (r._source_ts, r._source_file))"
        )
    else:
        which = sql.SQL(
            "s._source_ts >= %(start)s AND s._source_ts < %(end)s AND NOT EXISTS ("
            "SELECT 1 FROM {rpt} r WHERE {match} AND r._source_ts = s._source_ts "
            "AND r._source_file = s._source_file)"
        )
    which = which.format(
        rpt=rpt,
        match=_keys_match("r", "s", primary_key),
        s_version=_version("s"),
        r_version=_version("r"),
    )
    return sql.SQL(
        """
        INSERT INTO {past} AS past ({all_columns}, valid_from)
        SELECT DISTINCT ON ({key}, s._source_file) {s_columns}, s._source_ts
        FROM {staging} s
        WHERE {key_present} AND {which}
        ORDER BY {key}, s._source_file, s._row_number DESC
        ON CONFLICT ({plain_key}, valid_from, _source_file) DO UPDATE SET {updates}, valid_to = NULL
        WHERE ({past_compared}) IS DISTINCT FROM ({excluded_compared})
        """
    ).format(
        past=qualified(RPT_SCHEMA, history_past(table)),
        all_columns=identifiers(all_columns),
        key=identifiers(primary_key, "s"),
        plain_key=identifiers(primary_key),
        s_columns=identifiers(all_columns, "s"),
        staging=staging,
        key_present=key_present,
        which=which,
        updates=sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
            for c in all_columns
            if c not in primary_key and c != "_source_file"
        ),
        past_compared=compared_values(compared, "past", compared_as_text),
        excluded_compared=compared_values(compared, "excluded", compared_as_text),
    )


def set_valid_to(table: str, primary_key: Sequence[str]) -> sql.Composed:
    """For every key with a past version whose `valid_to` is not set (the ones just inserted or
    changed): compute `valid_to` of all its past versions again, each the `valid_from` of the
    next version in rpt's order (`_source_ts`, `_row_number`, `_source_file`), the current row
    in rpt included. Returns no rows."""
    past, rpt = qualified(RPT_SCHEMA, history_past(table)), qualified(RPT_SCHEMA, table)
    key = identifiers(primary_key)
    return sql.SQL(
        """
        WITH open_keys AS (
            SELECT DISTINCT {key} FROM {past} WHERE valid_to IS NULL
        ), versions AS (
            SELECT {p_key}, p.valid_from, p._row_number, p._source_file, true AS is_past
            FROM {past} p JOIN open_keys o ON {p_match}
            UNION ALL
            SELECT {r_key}, r._source_ts, r._row_number, r._source_file, false
            FROM {rpt} r JOIN open_keys o ON {r_match}
        ), ordered AS (
            SELECT {key}, valid_from, _source_file, is_past, lead(valid_from) OVER (
                PARTITION BY {key} ORDER BY valid_from, _row_number, _source_file) AS next
            FROM versions
        )
        UPDATE {past} p SET valid_to = ordered.next
        FROM ordered
        WHERE ordered.is_past AND {ordered_match} AND p.valid_from = ordered.valid_from
          AND p._source_file = ordered._source_file
          AND p.valid_to IS DISTINCT FROM ordered.next
        """
    ).format(
        key=key,
        past=past,
        rpt=rpt,
        p_key=identifiers(primary_key, "p"),
        r_key=identifiers(primary_key, "r"),
        p_match=_keys_match("p", "o", primary_key),
        r_match=_keys_match("r", "o", primary_key),
        ordered_match=_keys_match("p", "ordered", primary_key),
    )


def window_keys(table: str, primary_key: Sequence[str]) -> sql.Composed:
    """One row, one column: the distinct complete keys staged in the window."""
    key_present = sql.SQL(" AND ").join(
        sql.SQL("{} IS NOT NULL").format(sql.Identifier(k)) for k in primary_key
    )
    return sql.SQL(
        "SELECT count(*) FROM (SELECT DISTINCT {key} FROM {staging} "
        "WHERE _source_ts >= %(start)s AND _source_ts < %(end)s AND {key_present}) keys"
    ).format(
        key=identifiers(primary_key),
        staging=qualified(STAGING_SCHEMA, table),
        key_present=key_present,
    )


def clear_past(table: str) -> sql.Composed:
    """DELETE every past version of `rpt.<table>` (a rebuild, inside its transaction)."""
    return sql.SQL("DELETE FROM {}").format(qualified(RPT_SCHEMA, history_past(table)))


def select_as_of(table: str, key: Sequence[str]) -> sql.Composed:
    """`SELECT * FROM rpt.<table>_as_of(%s) ORDER BY <key>`: the business columns as they stood
    then, in key order, so the same time gives the same file whatever has loaded since."""
    return sql.SQL("SELECT * FROM {}(%s) ORDER BY {}").format(
        sql.Identifier(RPT_SCHEMA, as_of_function(table)),
        sql.SQL(", ").join(sql.Identifier(column) for column in key),
    )


def open_versions(table: str) -> sql.Composed:
    """One row, one column: how many past versions have no `valid_to` (none, once consistent)."""
    return sql.SQL("SELECT count(*) FROM {} WHERE valid_to IS NULL").format(
        qualified(RPT_SCHEMA, history_past(table))
    )
