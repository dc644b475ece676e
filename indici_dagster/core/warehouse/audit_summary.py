"""The daily audit summary: what became of each date's files, per dataset, from the audit log
and the ledger; written to `rpt.indici_audit_daily` and printed by `indici status`.

One definition of the counting (`SUMMARY_QUERY`), used by both:

- the files of a date are every file name the ledger or the audit log dates to it (each landed
  file counts once, however many versions or attempts it had);
- each file counts by its latest outcome: the status of its newest audit row of the steps
  `partitioned`, `staging` and `rpt` (by the row's id): `success` or `static` of the rpt step is
  loaded, `empty` is empty, `error` is failed, `no_rule` is no rule; anything else (copied or
  staged, its rpt step not yet done) is received but not yet loaded;
- its `rows_read` and `rows_loaded` come from its newest staging row (rows in the file, rows
  staged), its `rows_inserted`, `rows_updated`, `rows_unchanged` and `rows_rejected` from its
  newest rpt row when that row is newer than the staging row (the same attempt), else 0.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.pipeline_names import (
    AUDIT_DAILY_TABLE,
    AUDIT_TABLE,
    LEDGER_TABLE,
    RPT_SCHEMA,
    STAGING_SCHEMA,
)
from indici_dagster.core.warehouse.sql import qualified

SUMMARY = qualified(RPT_SCHEMA, AUDIT_DAILY_TABLE)
COUNTS = (
    "files_received",
    "files_loaded",
    "files_empty",
    "files_failed",
    "files_no_rule",
    "rows_read",
    "rows_loaded",
    "rows_inserted",
    "rows_updated",
    "rows_unchanged",
    "rows_rejected",
)
"""The summary's counts, in table order, after `partition_key` and `dataset`."""
FILE_STEPS = ("partitioned", "staging", "rpt")
"""The audit steps that describe one file of a dataset (`landing` rows are the sensor's refusals
of keys that never became a dataset's file; other steps describe runs)."""

_PER_FILE = sql.SQL(
    """
    WITH files AS (
        SELECT dataset, partition_key, file_name FROM {ledger}
        WHERE partition_key = ANY(%(dates)s) AND dataset IS NOT NULL AND file_name IS NOT NULL
        UNION
        SELECT dataset, partition_key, source_file FROM {audit}
        WHERE partition_key = ANY(%(dates)s) AND dataset IS NOT NULL
          AND source_file IS NOT NULL AND step = ANY(%(steps)s)
    ), attempts AS (
        SELECT dataset, partition_key, source_file, id, step, status, rows_read, rows_loaded,
               rows_inserted, rows_updated, rows_unchanged, rows_rejected,
               row_number() OVER (PARTITION BY dataset, partition_key, source_file
                                  ORDER BY id DESC) AS newest,
               row_number() OVER (PARTITION BY dataset, partition_key, source_file, step
                                  ORDER BY id DESC) AS newest_of_step
        FROM {audit}
        WHERE partition_key = ANY(%(dates)s) AND dataset IS NOT NULL
          AND source_file IS NOT NULL AND step = ANY(%(steps)s)
    )
    SELECT f.partition_key, f.dataset, f.file_name,
        CASE WHEN l.step = 'rpt' AND l.status IN ('success', 'static') THEN 'loaded'
             WHEN l.status = 'empty' THEN 'empty'
             WHEN l.status = 'error' THEN 'failed'
             WHEN l.status = 'no_rule' THEN 'no_rule'
             ELSE 'pending' END AS outcome,
        COALESCE(s.rows_read, 0) AS rows_read,
        COALESCE(s.rows_loaded, 0) AS rows_loaded,
        COALESCE(r.rows_inserted, 0) AS rows_inserted,
        COALESCE(r.rows_updated, 0) AS rows_updated,
        COALESCE(r.rows_unchanged, 0) AS rows_unchanged,
        COALESCE(r.rows_rejected, 0) AS rows_rejected,
        l.step AS latest_step, l.status AS latest_status
    FROM files f
    LEFT JOIN attempts l ON (l.dataset, l.partition_key, l.source_file)
        = (f.dataset, f.partition_key, f.file_name) AND l.newest = 1
    LEFT JOIN attempts s ON (s.dataset, s.partition_key, s.source_file)
        = (f.dataset, f.partition_key, f.file_name) AND s.step = 'staging' AND s.newest_of_step = 1
    LEFT JOIN attempts r ON (r.dataset, r.partition_key, r.source_file)
        = (f.dataset, f.partition_key, f.file_name) AND r.step = 'rpt' AND r.newest_of_step = 1
        AND r.id > COALESCE(s.id, 0)
    """
).format(
    ledger=qualified(STAGING_SCHEMA, LEDGER_TABLE), audit=qualified(STAGING_SCHEMA, AUDIT_TABLE)
)
"""One row per file of the dates: its outcome and the counts of its latest attempt."""

SUMMARY_QUERY = sql.SQL(
    """
    SELECT partition_key::date, dataset, count(*)::integer,
        (count(*) FILTER (WHERE outcome = 'loaded'))::integer,
        (count(*) FILTER (WHERE outcome = 'empty'))::integer,
        (count(*) FILTER (WHERE outcome = 'failed'))::integer,
        (count(*) FILTER (WHERE outcome = 'no_rule'))::integer,
        sum(rows_read)::bigint, sum(rows_loaded)::bigint, sum(rows_inserted)::bigint,
        sum(rows_updated)::bigint, sum(rows_unchanged)::bigint, sum(rows_rejected)::bigint
    FROM ({per_file}) AS per_file
    GROUP BY partition_key, dataset
    """
).format(per_file=_PER_FILE)
"""One row per date and dataset with any file: `partition_key`, `dataset`, then `COUNTS`."""


@dataclass(frozen=True)
class DailySummary:
    """One row of the summary: a date, a dataset and what became of its files."""

    partition_key: dt.date
    dataset: str
    files_received: int
    files_loaded: int
    files_empty: int
    files_failed: int
    files_no_rule: int
    rows_read: int
    rows_loaded: int
    rows_inserted: int
    rows_updated: int
    rows_unchanged: int
    rows_rejected: int

    @property
    def files_pending(self) -> int:
        """Files received with no outcome yet (copied or staged, rpt step not done)."""
        done = self.files_loaded + self.files_empty + self.files_failed + self.files_no_rule
        return self.files_received - done


@dataclass(frozen=True)
class FileState:
    """One file of a date as the summary counts it."""

    partition_key: str
    dataset: str
    file_name: str
    outcome: str
    """`loaded`, `empty`, `failed`, `no_rule` or `pending` (not yet loaded)."""
    latest_step: str | None
    latest_status: str | None
    ledger_outcome: str | None
    """The ledger's outcome of the file's newest version (None if the ledger has none)."""
    message: str | None
    """The message of the file's newest audit row (names and counts, never a value)."""

    @property
    def needs_attention(self) -> bool:
        """Failed, no rule or not yet loaded by the audit log, or not settled `done` by the
        ledger (a loaded or empty file the ledger settled needs nothing)."""
        settled = self.ledger_outcome in (None, "done")
        return self.outcome not in ("loaded", "empty") or not settled


def _params(dates: Sequence[str]) -> dict[str, object]:
    return {"dates": sorted(set(dates)), "steps": list(FILE_STEPS)}


def summarise(cursor: Cursor, dates: Sequence[str]) -> list[DailySummary]:
    """The summary of these dates (`YYYY-MM-DD`), computed from the audit log and the ledger
    now, by date then dataset; nothing is written."""
    cursor.execute(
        sql.SQL("{} ORDER BY 1, 2").format(SUMMARY_QUERY),
        _params(dates),
    )
    return [DailySummary(*row) for row in cursor.fetchall()]


def file_states(cursor: Cursor, dates: Sequence[str]) -> list[FileState]:
    """Each file of these dates with the outcome the summary counts it by, by date, dataset and
    file name."""
    cursor.execute(
        sql.SQL(
            "SELECT p.partition_key, p.dataset, p.file_name, p.outcome, p.latest_step, "
            "p.latest_status, (SELECT g.outcome FROM {ledger} g WHERE g.dataset = p.dataset "
            "AND g.partition_key = p.partition_key AND g.file_name = p.file_name "
            "ORDER BY g.updated_at DESC, g.first_seen_at DESC LIMIT 1), "
            "(SELECT a.message FROM {audit} a WHERE a.dataset = p.dataset "
            "AND a.partition_key = p.partition_key AND a.source_file = p.file_name "
            "AND a.step = ANY(%(steps)s) ORDER BY a.id DESC LIMIT 1) "
            "FROM ({per_file}) AS p ORDER BY 1, 2, 3"
        ).format(
            ledger=qualified(STAGING_SCHEMA, LEDGER_TABLE),
            audit=qualified(STAGING_SCHEMA, AUDIT_TABLE),
            per_file=_PER_FILE,
        ),
        _params(dates),
    )
    return [FileState(*row) for row in cursor.fetchall()]


def replace_summary(cursor: Cursor, dates: Sequence[str]) -> int:
    """Inside the caller's transaction (which serialises summaries with the table's pipeline
    lock): replace the rows of these dates in `rpt.indici_audit_daily` with their summary now
    (delete, then one set-based insert); returns the rows written. A date without files keeps
    no row."""
    params = _params(dates)
    cursor.execute(
        sql.SQL("DELETE FROM {} WHERE partition_key = ANY(%(dates)s::date[])").format(SUMMARY),
        params,
    )
    cursor.execute(
        sql.SQL(
            "INSERT INTO {} (partition_key, dataset, {}, summarised_at) "
            "SELECT *, clock_timestamp() FROM ({}) AS s"
        ).format(SUMMARY, sql.SQL(", ").join(sql.Identifier(c) for c in COUNTS), SUMMARY_QUERY),
        params,
    )
    return cursor.rowcount


def stored_summary(cursor: Cursor, dates: Sequence[str]) -> list[DailySummary]:
    """The rows `rpt.indici_audit_daily` holds for these dates, by date then dataset."""
    cursor.execute(
        sql.SQL(
            "SELECT partition_key, dataset, {} FROM {} "
            "WHERE partition_key = ANY(%(dates)s::date[]) ORDER BY 1, 2"
        ).format(sql.SQL(", ").join(sql.Identifier(c) for c in COUNTS), SUMMARY),
        _params(dates),
    )
    return [DailySummary(*row) for row in cursor.fetchall()]


def latest_date(cursor: Cursor) -> str | None:
    """The newest date any file of a dataset is dated to in the ledger or the audit log."""
    cursor.execute(
        sql.SQL(
            "SELECT max(partition_key) FROM (SELECT partition_key FROM {ledger} "
            "WHERE dataset IS NOT NULL UNION ALL SELECT partition_key FROM {audit} "
            "WHERE dataset IS NOT NULL AND step = ANY(%s)) AS d"
        ).format(
            ledger=qualified(STAGING_SCHEMA, LEDGER_TABLE),
            audit=qualified(STAGING_SCHEMA, AUDIT_TABLE),
        ),
        (list(FILE_STEPS),),
    )
    return cursor.fetchone()[0]


def audit_rows(cursor: Cursor, dates: Sequence[str]) -> list[tuple]:
    """The raw audit rows of the files of these dates (id, dataset, partition key, file, step,
    status, then the six counts), oldest first: what the summary's checks recount."""
    cursor.execute(
        sql.SQL(
            "SELECT id, dataset, partition_key, source_file, step, status, rows_read, "
            "rows_loaded, rows_inserted, rows_updated, rows_unchanged, rows_rejected FROM {} "
            "WHERE partition_key = ANY(%(dates)s) AND dataset IS NOT NULL "
            "AND source_file IS NOT NULL AND step = ANY(%(steps)s) ORDER BY id"
        ).format(qualified(STAGING_SCHEMA, AUDIT_TABLE)),
        _params(dates),
    )
    return cursor.fetchall()


def landed_files(cursor: Cursor, dates: Sequence[str]) -> list[tuple[str, str, str]]:
    """(partition key, dataset, file name) of every file the ledger dates to these dates."""
    cursor.execute(
        sql.SQL(
            "SELECT DISTINCT partition_key, dataset, file_name FROM {} "
            "WHERE partition_key = ANY(%(dates)s) AND dataset IS NOT NULL "
            "AND file_name IS NOT NULL ORDER BY 1, 2, 3"
        ).format(qualified(STAGING_SCHEMA, LEDGER_TABLE)),
        _params(dates),
    )
    return cursor.fetchall()
