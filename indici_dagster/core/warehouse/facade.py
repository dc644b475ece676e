"""The Postgres warehouse: one object that callers hold, composed of one part per job.

- `connections.Connections`: connections and when they are reused;
- `catalog`: the pipeline's own tables, per-table locks, table shapes;
- `staging_load.StagingLoader`: one file into `indici_staging` by binary COPY;
- `rpt_upsert.RptUpserter`: staged windows into `rpt`.

Each file's staging load and each window's rpt upsert is one transaction that also writes its
audit rows, serialised per table with a row lock in `indici_staging.pipeline_locks` (which only the
writer can take, and waits at most `lock_timeout`), so a replay, a crash or a concurrent run can
never leave half a file or a doubled row behind.
"""

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core import pipeline_names
from indici_dagster.core.filenames import LandedFileName
from indici_dagster.core.rules.model import Rule
from indici_dagster.core.warehouse import audit_summary, catalog, retention
from indici_dagster.core.warehouse.audit import AuditEntry
from indici_dagster.core.warehouse.connections import Connection, Connections
from indici_dagster.core.warehouse.row_counts import recount
from indici_dagster.core.warehouse.rpt_upsert import FileUpsert, PartitionKeyOf, RptUpserter
from indici_dagster.core.warehouse.run_audit import record_failed_run
from indici_dagster.core.warehouse.staging_load import StagingLoader, StagingResult


class Warehouse:
    """A Postgres database holding `indici_staging` and `rpt`."""

    def __init__(
        self,
        dsn: str,
        timezone: str,
        *,
        upsert_work_mem: str = "512MB",
        lock_timeout: str = catalog.DEFAULT_LOCK_TIMEOUT,
        max_new_columns: int = 50,
    ) -> None:
        self.timezone = ZoneInfo(timezone).key  # validates the zone name
        self.lock_timeout = lock_timeout
        self.max_new_columns = max_new_columns
        self.upsert_work_mem = upsert_work_mem
        self._connections = Connections(dsn, self.timezone)
        self._staging = StagingLoader(
            self._connections, self.timezone, lock_timeout, max_new_columns
        )
        self._rpt = RptUpserter(self._connections, lock_timeout, upsert_work_mem)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for one unit of work, closed afterwards; commit is the caller's."""
        with self._connections.connection() as connection:
            yield connection

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """One unit of work on a connection of its own: a cursor whose statements are committed
        together when the block ends normally, and none of them when it raises."""
        with self._connections.connection() as connection, connection.cursor() as cursor:
            yield cursor
            connection.commit()

    @contextlib.contextmanager
    def reusing_connections(self) -> Iterator[None]:
        """Within this block, consecutive staging loads on this thread share one connection."""
        with self._connections.reusing_connections():
            yield

    def load_file_into_staging(
        self,
        rule: Rule,
        landed: LandedFileName,
        parquet_file: pq.ParquetFile,
        *,
        run_id: str,
        source_key: str,
        source_etag: str,
    ) -> StagingResult:
        """Replace a file's rows in `indici_staging.<table>` with its content, in one transaction
        with its audit row (`StagingLoader.load_file_into_staging` says what it guarantees)."""
        return self._staging.load_file_into_staging(
            rule,
            landed,
            parquet_file,
            run_id=run_id,
            source_key=source_key,
            source_etag=source_etag,
        )

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
        """Apply a window of staged rows to `rpt.<table>`, in one transaction with its audit rows
        (`RptUpserter.upsert_window_into_rpt` says what it guarantees)."""
        return self._rpt.upsert_window_into_rpt(
            rule,
            start,
            end,
            run_id=run_id,
            partition_key_of=partition_key_of,
            ledger_dates=ledger_dates,
        )

    def ensure_catalog(self) -> None:
        """Create the schemas and the pipeline's own tables where they are missing
        (`catalog.ensure_catalog`)."""
        catalog.ensure_catalog(self._connections, self.lock_timeout)

    def replace_audit_summary(self, dates: Sequence[str]) -> list[audit_summary.DailySummary]:
        """Replace these dates' rows of `rpt.indici_audit_daily` with their summary now, in one
        transaction (`audit_summary.replace_summary`); returns the rows now stored. Two runs
        summarising at once take turns (the table's pipeline lock), so neither fails on the
        other's rows."""
        with self.transaction() as cursor:
            catalog.lock(cursor, pipeline_names.AUDIT_DAILY_TABLE, self.lock_timeout)
            audit_summary.replace_summary(cursor, dates)
            return audit_summary.stored_summary(cursor, dates)

    def audit_summary_sources(
        self, dates: Sequence[str]
    ) -> tuple[list[audit_summary.DailySummary], list[tuple], list[tuple[str, str, str]]]:
        """What the summary's checks compare, read in one snapshot: the stored rows of these
        dates, their files' raw audit rows and the ledger's files of the dates."""
        with self.connection() as connection, connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            sources = (
                audit_summary.stored_summary(cursor, dates),
                audit_summary.audit_rows(cursor, dates),
                audit_summary.landed_files(cursor, dates),
            )
            connection.rollback()
            return sources

    def write_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Write audit rows in their own transaction."""
        catalog.write_audit(self._connections, entries)

    def record_failed_run(self, entry: AuditEntry) -> bool:
        """Write a failed run's audit row in its own transaction, once per run id
        (`run_audit.record_failed_run`); True when written, False when it was already there."""
        with self.transaction() as cursor:
            return record_failed_run(cursor, entry)

    def prune_staging(
        self, dataset: str, table: str, cutoff: datetime, *, run_id: str, days: int
    ) -> retention.Pruned:
        """Delete the staging rows of `table`'s files older than `cutoff` that rpt already
        holds, with one `retention` audit row, in one transaction
        (`retention.prune_staging_table` says what it guarantees)."""
        with self.transaction() as cursor:
            return retention.prune_staging_table(
                cursor,
                dataset,
                table,
                cutoff,
                run_id=run_id,
                lock_timeout=self.lock_timeout,
                days=days,
            )

    def recount_rows(self, table: str) -> dict[str, int]:
        """Count `indici_staging.<table>` and `rpt.<table>` in full and reset their counters.

        For after rows were changed by hand; returns the count of each schema's table.
        """
        with self.connection() as connection, connection.cursor() as cursor:
            catalog.lock(cursor, table, self.lock_timeout)
            counts = {
                schema: recount(cursor, schema, table)
                for schema in (pipeline_names.STAGING_SCHEMA, pipeline_names.RPT_SCHEMA)
            }
            connection.commit()
            return counts
