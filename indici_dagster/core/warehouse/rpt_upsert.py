"""Applying a time window of staged rows to a `rpt` table, set-based.

Each window's upsert is one transaction that also writes its audit rows, under the table's lock
(`catalog.lock`), so a replay, a crash or a concurrent run never leaves a doubled or half-applied
window behind. Three paths: keyed rows into a table with rows (INSERT ... ON CONFLICT), keyed
rows into an empty table (a plain INSERT, same counts), and static snapshots (the newest
replaces rpt). A window whose rows break the rpt table is applied again file by file.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg2
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core import pipeline_names
from indici_dagster.core.db_errors import (
    NOT_RETRIED,
    ErrorKind,
    classify,
    describe_database_error,
)
from indici_dagster.core.rules.model import Rule, canonical_type
from indici_dagster.core.types.registry import METADATA_NAMES
from indici_dagster.core.warehouse import history, ledger, rpt_sql
from indici_dagster.core.warehouse import sql as statements
from indici_dagster.core.warehouse.analyst_views import ensure_analyst_view
from indici_dagster.core.warehouse.audit import AuditEntry, Status, Step, write_audit_entries
from indici_dagster.core.warehouse.catalog import (
    add_missing_columns,
    check_rpt_types,
    existing_columns,
    lock,
    table_exists,
    write_audit,
)
from indici_dagster.core.warehouse.comments import ensure_comments, ensure_history_comments
from indici_dagster.core.warehouse.connections import Connections
from indici_dagster.core.warehouse.row_counts import add_to_row_count, set_row_count, start_counting

PartitionKeyOf = Callable[[str], str | None]
"""The partition key of a file, from its name."""


@dataclass(frozen=True)
class FileUpsert:
    """What one source file contributed to an rpt upsert."""

    source_file: str
    rows_staged: int
    rows_rejected: int
    rows_inserted: int
    rows_updated: int

    @property
    def rows_unchanged(self) -> int:
        """Rows that changed nothing: superseded by a newer version, or identical to rpt."""
        return self.rows_staged - self.rows_rejected - self.rows_inserted - self.rows_updated


class RptUpserter:
    """Applies staged windows to rpt, one transaction per window, each under the table's lock."""

    def __init__(self, connections: Connections, lock_timeout: str, work_mem: str) -> None:
        self._connections = connections
        self._lock_timeout = lock_timeout
        self._work_mem = work_mem

    def upsert_window_into_rpt(
        self,
        rule: Rule,
        start: datetime,
        end: datetime,
        *,
        run_id: str,
        partition_key_of: PartitionKeyOf,
        ledger_dates: Sequence[str] | None = None,
    ) -> list[FileUpsert]:
        """Apply every staged row with `start <= _source_ts < end` to `rpt.<table>`, set-based.

        For keyed datasets: one INSERT ... ON CONFLICT DO UPDATE; the newest version of each key
        wins and older data never overwrites newer. Into an empty table (a first load) the same
        rows go in as a plain INSERT, with the same counts. For static datasets: the newest
        snapshot in the window replaces rpt if it is at least as new as the one there. Audit rows
        (with the statement's own inserted/updated counts) commit in the same transaction.

        When the window's rows break a constraint or limit of the rpt table (a content error),
        the window is applied again file by file, oldest first (the newest version still wins):
        each file that fails alone changes nothing and is audited as `error` with a message
        rebuilt from names; the others are applied. Other database errors propagate unchanged.

        With `ledger_dates` (the dates of a run's rpt step), the ledger records `run_id` as the
        rpt run of the staged versions of the dataset dated so, in each upsert's transaction,
        leaving out files whose upsert failed (`ledger.mark_applied`).
        """
        dates = None if ledger_dates is None else list(ledger_dates)
        try:
            return self._upsert_window(rule, start, end, run_id, partition_key_of, dates)
        except psycopg2.Error as error:
            if classify(error) is not ErrorKind.CONTENT:
                raise
        results: list[FileUpsert] = []
        failed: list[str] = []
        for stamp, names in self._files_in_window(rule, start, end):
            try:  # the files of one timestamp (a file's rows all share it) together
                results += self._upsert_window(
                    rule,
                    stamp,
                    stamp + timedelta(microseconds=1),
                    run_id,
                    partition_key_of,
                    dates,
                    names,
                )
            except psycopg2.Error as error:
                if classify(error) is not ErrorKind.CONTENT:
                    raise
                failed += names
                note = f"rpt upsert failed, nothing applied: {describe_database_error(error)}"
                write_audit(
                    self._connections,
                    [
                        AuditEntry(
                            step=Step.RPT,
                            status=Status.ERROR,
                            source_file=name,
                            dataset=rule.dataset,
                            partition_key=partition_key_of(name),
                            run_id=run_id,
                            rows_loaded=0,
                            message=f"{note} (this file failed: {NOT_RETRIED})",
                        )
                        for name in names
                    ],
                )
        if dates is not None:  # staged files without rows (empty ones): nothing to apply
            with self._connections.connection() as connection, connection.cursor() as cursor:
                lock(cursor, rule.table, self._lock_timeout)
                ledger.mark_applied(cursor, rule.dataset, dates, run_id, excluding=failed)
                connection.commit()
        return results

    def _files_in_window(
        self, rule: Rule, start: datetime, end: datetime
    ) -> list[tuple[datetime, list[str]]]:
        """The staged files with `start <= _source_ts < end`, by timestamp, oldest first."""
        with self._connections.connection() as connection, connection.cursor() as cursor:
            cursor.execute(statements.READ_STAGING_THROUGH_BRIN)
            cursor.execute(rpt_sql.files_in_window(rule.table), (start, end))
            return [(stamp, sorted(names)) for stamp, names in cursor.fetchall()]

    def _upsert_window(
        self,
        rule: Rule,
        start: datetime,
        end: datetime,
        run_id: str,
        partition_key_of: PartitionKeyOf,
        ledger_dates: Sequence[str] | None,
        only_files: Sequence[str] | None = None,
    ) -> list[FileUpsert]:
        """One transaction: lock the table, apply the window, write its audit rows and (with
        `ledger_dates`) the ledger's rpt marks of the window's files, or `only_files`, commit."""
        with self._connections.connection() as connection, connection.cursor() as cursor:
            lock(cursor, rule.table, self._lock_timeout)
            if not table_exists(cursor, pipeline_names.STAGING_SCHEMA, rule.table):
                if ledger_dates is not None:  # only empty files staged: nothing to apply
                    ledger.mark_applied(cursor, rule.dataset, ledger_dates, run_id)
                    connection.commit()
                return []
            check_rpt_types(cursor, rule.table)
            note = None
            if rule.is_static:
                results = _replace_static(cursor, rule, start, end)
                status = Status.STATIC
            else:
                before = history.state_before_upsert(cursor, rule)
                results = _upsert_keyed(cursor, rule, start, end, self._work_mem)
                status = Status.SUCCESS
                note = history.note_after_upsert(cursor, rule, before)
                ensure_history_comments(cursor, rule)
            ensure_analyst_view(cursor, rule)
            write_audit_entries(
                cursor,
                [
                    AuditEntry(
                        step=Step.RPT,
                        status=status,
                        source_file=r.source_file,
                        dataset=rule.dataset,
                        partition_key=partition_key_of(r.source_file),
                        run_id=run_id,
                        rows_read=r.rows_staged,
                        rows_loaded=r.rows_inserted + r.rows_updated,
                        rows_inserted=r.rows_inserted,
                        rows_updated=r.rows_updated,
                        rows_unchanged=r.rows_unchanged,
                        rows_rejected=r.rows_rejected,
                        message=_upsert_message(r, status, note),
                    )
                    for r in results
                ],
            )
            if ledger_dates is not None:
                ledger.mark_applied(cursor, rule.dataset, ledger_dates, run_id, only=only_files)
            connection.commit()
            return results


def _upsert_keyed(
    cursor: Cursor, rule: Rule, start: datetime, end: datetime, work_mem: str
) -> list[FileUpsert]:
    """Inside the caller's transaction, holding the table's lock: apply the window to rpt."""
    columns = [(c.name, c.type) for c in rule.columns]
    names = [c.name for c in rule.columns]
    window = {"start": start, "end": end}
    # the DISTINCT ON sort of a big window should stay in memory: 1M rows of 24 columns
    # need about 290 MB, and sorting them on disk costs 1.5 to 2 s more; Postgres takes
    # only what a sort needs, so small daily windows stay small
    cursor.execute(statements.SET_LOCAL_WORK_MEM, (work_mem,))
    created = not table_exists(cursor, pipeline_names.RPT_SCHEMA, rule.table)
    # a table created in this transaction is invisible to everyone else until it commits,
    # so its primary key can wait until the rows are in and then be built in one sort
    cursor.execute(
        statements.create_rpt_table(rule.table, columns, () if created else rule.primary_key)
    )
    add_missing_columns(cursor, pipeline_names.RPT_SCHEMA, rule.table, columns)
    ensure_comments(cursor, rule, pipeline_names.RPT_SCHEMA, rule.table)
    start_counting(cursor, pipeline_names.RPT_SCHEMA, rule.table)
    cursor.execute(rpt_sql.rpt_is_empty(rule.table))
    (is_empty,) = cursor.fetchone()
    cursor.execute(statements.READ_STAGING_THROUGH_BRIN)
    if not is_empty:
        if rule.history:  # the rows the upsert replaces go into history first
            history.before_upsert(cursor, rule, window)
        without_equality = [c.name for c in rule.columns if c.type == "json"]
        upsert = rpt_sql.upsert_into_rpt(rule.table, names, rule.primary_key, without_equality)
        cursor.execute(upsert, window)
        results = [FileUpsert(*row) for row in cursor.fetchall()]
    else:
        results = _insert_into_empty_rpt(cursor, rule, names, window, work_mem, created=created)
        if rule.history:
            history.sync(cursor, rule)
    # into an empty rpt, one file's versions are all current: its history has nothing more
    if rule.history and (not is_empty or len(results) > 1):
        applied = [(r.source_file, r.rows_inserted + r.rows_updated) for r in results]
        history.after_upsert(cursor, rule, window, applied)
    inserted = sum(r.rows_inserted for r in results)
    add_to_row_count(cursor, pipeline_names.RPT_SCHEMA, rule.table, inserted)
    return results


def _insert_into_empty_rpt(
    cursor: Cursor,
    rule: Rule,
    names: Sequence[str],
    window: dict[str, datetime],
    work_mem: str,
    *,
    created: bool,
) -> list[FileUpsert]:
    """The keyed upsert's first load, into an rpt table seen empty under the table's lock:
    the same rows and counts, without the per-row conflict checks."""
    cursor.execute(rpt_sql.staged_counts_in_window(rule.table, rule.primary_key), window)
    staged = cursor.fetchall()
    cursor.execute(rpt_sql.insert_into_empty_rpt(rule.table, names, rule.primary_key), window)
    inserted_rows = cursor.rowcount
    if created:
        cursor.execute(statements.SET_LOCAL_MAINTENANCE_WORK_MEM, (work_mem,))
        cursor.execute(rpt_sql.add_primary_key(rule.table, rule.primary_key))
    if len(staged) == 1:  # the usual daily window: no need to count rpt again
        inserted = {staged[0][0]: inserted_rows}
    else:
        cursor.execute(statements.ALLOW_SEQUENTIAL_SCANS)
        cursor.execute(rpt_sql.rpt_rows_by_source_file(rule.table))
        inserted = dict(cursor.fetchall())
    return [
        FileUpsert(name, rows, rejected, inserted.get(name, 0), 0)
        for name, rows, rejected in staged
    ]


def _replace_static(cursor: Cursor, rule: Rule, start: datetime, end: datetime) -> list[FileUpsert]:
    """Inside the caller's transaction, holding the table's lock: replace rpt with the window's
    newest snapshot if it is at least as new as the one rpt holds."""
    cursor.execute(rpt_sql.static_snapshots_in_window(rule.table), (start, end))
    snapshots = cursor.fetchall()
    if not snapshots:
        return []
    columns = [
        (name, canonical_type(type_name))
        for name, type_name in existing_columns(
            cursor, pipeline_names.STAGING_SCHEMA, rule.table
        ).items()
        if name not in METADATA_NAMES
    ]
    cursor.execute(statements.create_rpt_table(rule.table, columns, ()))
    add_missing_columns(cursor, pipeline_names.RPT_SCHEMA, rule.table, columns)
    ensure_comments(cursor, rule, pipeline_names.RPT_SCHEMA, rule.table)
    cursor.execute(rpt_sql.current_static_snapshot(rule.table))
    current = cursor.fetchone()
    newest_file, newest_ts, newest_rows = snapshots[0]
    results = [FileUpsert(f, n, 0, 0, 0) for f, _, n in snapshots[1:]]
    if current is None or (newest_ts, newest_file) >= tuple(current):
        cursor.execute(
            rpt_sql.replace_static_snapshot(rule.table, [c for c, _ in columns]),
            (newest_ts, newest_file),
        )
        set_row_count(cursor, pipeline_names.RPT_SCHEMA, rule.table, newest_rows)
        results.insert(0, FileUpsert(newest_file, newest_rows, 0, newest_rows, 0))
    else:
        results.insert(0, FileUpsert(newest_file, newest_rows, 0, 0, 0))
    return results


def _upsert_message(result: FileUpsert, status: Status, note: str | None = None) -> str | None:
    if status is Status.STATIC:
        return "newest snapshot applied" if result.rows_inserted else "older snapshot, not applied"
    parts = [note] if note else []
    if result.rows_rejected:
        parts.insert(
            0, f"{result.rows_rejected} rows with a NULL primary-key column kept out of rpt"
        )
    return "; ".join(parts) or None
