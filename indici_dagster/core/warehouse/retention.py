"""Staging retention: delete the staging rows of old files that rpt already holds.

A file's staging rows are deleted only when all of these hold, checked in the one statement
that deletes them (set-based, per table, holding the table's pipeline lock like every load):
- its rows are older than the cutoff (`_source_ts`, the file's own timestamp);
- the ledger has a version of it that an rpt step applied (`rpt_run_id`) and none unsettled
  (`in_run`, `needs_rpt`, `run_failed`): nothing about it waits for a run;
- its newest successful staging or rpt audit row is an rpt one: its last load into staging was
  applied to rpt afterwards.
A file the ledger does not know (loaded before the ledger existed, or by hand) is never
deleted. rpt is never touched, so a replayed file is staged again and upserted as before (older
data never overwrites newer). Each table's deletion writes one `retention` audit row with the
counts (files, rows, cutoff) and no value. The writer role may DELETE staging rows
(`sql/bootstrap.sql`); no table is altered, truncated or dropped.
"""

from dataclasses import dataclass
from datetime import datetime

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.pipeline_names import AUDIT_TABLE, STAGING_SCHEMA
from indici_dagster.core.warehouse.audit import AuditEntry, Status, Step, write_audit_entries
from indici_dagster.core.warehouse.catalog import lock, table_exists
from indici_dagster.core.warehouse.ledger import LEDGER, UNSETTLED
from indici_dagster.core.warehouse.row_counts import add_to_row_count, start_counting
from indici_dagster.core.warehouse.sql import qualified

AUDIT = qualified(STAGING_SCHEMA, AUDIT_TABLE)


@dataclass(frozen=True)
class Pruned:
    """What one table's retention deleted."""

    dataset: str
    table: str
    files: int
    rows: int


def _delete_applied_files(table: str) -> sql.Composed:
    """The statement deleting the old, applied files' rows of `indici_staging.<table>` and
    returning (file, rows deleted) per file."""
    return sql.SQL(
        """
        WITH candidates AS (
            SELECT DISTINCT s._source_file AS file_name
            FROM {staging} s WHERE s._source_ts < %(cutoff)s
        ), applied AS (
            SELECT c.file_name FROM candidates c
            WHERE EXISTS (SELECT 1 FROM {ledger} l WHERE l.dataset = %(dataset)s
                          AND l.file_name = c.file_name AND l.rpt_run_id IS NOT NULL)
            AND NOT EXISTS (SELECT 1 FROM {ledger} l WHERE l.dataset = %(dataset)s
                            AND l.file_name = c.file_name AND l.outcome = ANY(%(unsettled)s))
            AND (SELECT a.step FROM {audit} a
                 WHERE a.dataset = %(dataset)s AND a.source_file = c.file_name
                 AND a.step IN ('staging', 'rpt') AND a.status IN ('success', 'static')
                 ORDER BY a.logged_at DESC, a.id DESC LIMIT 1) = 'rpt'
        ), gone AS (
            DELETE FROM {staging} s USING applied
            WHERE s._source_file = applied.file_name AND s._source_ts < %(cutoff)s
            RETURNING s._source_file
        )
        SELECT _source_file, count(*) FROM gone GROUP BY 1 ORDER BY 1
        """
    ).format(staging=qualified(STAGING_SCHEMA, table), ledger=LEDGER, audit=AUDIT)


def prune_staging_table(
    cursor: Cursor,
    dataset: str,
    table: str,
    cutoff: datetime,
    *,
    run_id: str,
    lock_timeout: str,
    days: int,
) -> Pruned:
    """Inside the caller's transaction: take the table's pipeline lock, delete the staging rows
    of files older than `cutoff` that rpt holds (see the module), adjust the table's row
    counter and write one `retention` audit row with the counts. A missing table deletes
    nothing and writes no row."""
    lock(cursor, table, lock_timeout)
    if not table_exists(cursor, STAGING_SCHEMA, table):
        return Pruned(dataset, table, 0, 0)
    start_counting(cursor, STAGING_SCHEMA, table)
    cursor.execute(
        _delete_applied_files(table),
        {"cutoff": cutoff, "dataset": dataset, "unsettled": [str(o) for o in UNSETTLED]},
    )
    per_file = cursor.fetchall()
    rows = sum(count for _, count in per_file)
    pruned = Pruned(dataset, table, len(per_file), rows)
    if rows:
        add_to_row_count(cursor, STAGING_SCHEMA, table, -rows)
    write_audit_entries(cursor, [retention_audit(pruned, cutoff, run_id, days)])
    return pruned


def retention_audit(pruned: Pruned, cutoff: datetime, run_id: str, days: int) -> AuditEntry:
    """The `retention` audit row of one table's pruning: counts and the cutoff, no value."""
    return AuditEntry(
        Step.RETENTION,
        Status.SUCCESS,
        source_file=None,
        dataset=pruned.dataset,
        run_id=run_id,
        message=(
            f"deleted {pruned.rows} staging row(s) of {pruned.files} file(s) from "
            f"{STAGING_SCHEMA}.{pruned.table}: files dated before {cutoff.isoformat()} "
            f"(INDICI_STAGING_RETENTION_DAYS={days}) whose last load rpt applied; rpt untouched"
        ),
    )


def runs_deleted_audit(deleted: int, cutoff: datetime, run_id: str, days: int) -> AuditEntry:
    """The `retention` audit row of deleting Dagster run records: a count and the cutoff."""
    return AuditEntry(
        Step.RETENTION,
        Status.SUCCESS,
        source_file=None,
        run_id=run_id,
        message=(
            f"deleted {deleted} Dagster run record(s) created before {cutoff.isoformat()} "
            f"(INDICI_RUN_RETENTION_DAYS={days})"
        ),
    )
