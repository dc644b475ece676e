"""Loading one Parquet file into its `indici_staging` table by binary COPY.

Each file's load is one transaction that also writes its audit row, under the table's lock
(`catalog.lock`): the file's earlier rows are deleted, every row is streamed in, or nothing
changes. A file that fails on its content is audited as `error` with a message rebuilt from
names; infrastructure errors propagate for the caller to retry.
"""

import contextlib
import logging
from dataclasses import dataclass, replace

import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core import pipeline_names
from indici_dagster.core.db_errors import (
    NOT_RETRIED,
    ErrorKind,
    FileLoadError,
    classify,
    describe_database_error,
    describe_library_error,
)
from indici_dagster.core.filenames import LandedFileName
from indici_dagster.core.parquet.arrow_batches import (
    COPY_CHUNK_BYTES,
    StagingBatches,
    binary_type_for,
)
from indici_dagster.core.parquet.budget import FileTooLargeError
from indici_dagster.core.parquet.reader import UnsupportedColumnTypeError, ValueCastError
from indici_dagster.core.rules.model import Rule, RuleError
from indici_dagster.core.warehouse import ledger
from indici_dagster.core.warehouse import sql as statements
from indici_dagster.core.warehouse.audit import AuditEntry, Status, Step, write_audit_entries
from indici_dagster.core.warehouse.catalog import (
    add_missing_columns,
    column_slots,
    existing_columns,
    lock,
    write_audit,
)
from indici_dagster.core.warehouse.comments import ensure_comments
from indici_dagster.core.warehouse.connections import Connections
from indici_dagster.core.warehouse.ddl_locks import run_ddl
from indici_dagster.core.warehouse.row_counts import add_to_row_count, start_counting
from indici_dagster.core.warehouse.staging_plan import (
    StagingPlan,
    check_column_budget,
    drift_message,
    plan_staging_columns,
    typed_columns,
)

log = logging.getLogger(__name__)

_CONTENT_ERRORS = (
    FileLoadError,
    FileTooLargeError,
    ValueCastError,
    UnsupportedColumnTypeError,
    RuleError,
)
"""Raised by the pipeline's own checks of a file: the file fails, audited, not retried."""


@dataclass(frozen=True)
class StagingResult:
    """The outcome of loading one file into staging."""

    status: Status
    rows_read: int
    rows_loaded: int
    message: str | None = None
    missing_columns: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()


class StagingLoader:
    """Loads files into staging; remembers the shape of each table it has already widened."""

    def __init__(
        self, connections: Connections, timezone: str, lock_timeout: str, max_new_columns: int
    ) -> None:
        self._connections = connections
        self._timezone = timezone
        self._lock_timeout = lock_timeout
        self._max_new_columns = max_new_columns
        self._staging_columns: dict[str, dict[str, str]] = {}

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
        """Replace the file's rows in `indici_staging.<table>` with its current content.

        One transaction: the file's earlier rows are deleted, every row is streamed in with COPY
        and the audit row is written, or nothing changes and `FileLoadError` says why (column,
        type and first offending row for a value that does not fit). An empty file changes
        nothing and returns status `empty`.
        """
        rows_read = parquet_file.metadata.num_rows
        audit = AuditEntry(
            step=Step.STAGING,
            status=Status.SUCCESS,
            source_file=landed.file_name,
            dataset=rule.dataset,
            partition_key=landed.partition_key,
            run_id=run_id,
            source_key=source_key,
            source_etag=source_etag,
            rows_read=rows_read,
        )
        if rows_read == 0:
            result = StagingResult(Status.EMPTY, 0, 0, "the file has no rows; skipped")
            with self._connections.connection() as connection, connection.cursor() as cursor:
                empty = replace(audit, status=Status.EMPTY, rows_loaded=0, message=result.message)
                write_audit_entries(cursor, [empty])
                ledger.mark_staged(
                    cursor, rule.dataset, landed.partition_key, landed.file_name, run_id
                )
                connection.commit()
            return result
        plan = None
        try:
            plan = plan_staging_columns(rule, parquet_file.schema_arrow)
            status = Status.STATIC if rule.is_static else Status.SUCCESS
            done = replace(audit, status=status, message=drift_message(plan))
            rows = self._copy_file(rule, landed, parquet_file, plan, done)
        except _CONTENT_ERRORS as error:
            raise self._failed(audit, str(error)) from None
        except psycopg2.Error as error:
            if classify(error) is not ErrorKind.CONTENT:
                self._staging_columns.clear()
                raise  # infrastructure or permissions: the caller audits, the step decides
            raise self._failed(audit, describe_database_error(error)) from None
        except (OSError, ValueError, pa.ArrowException) as error:  # decode errors mid-COPY
            if classify(error) is not ErrorKind.CONTENT:
                self._staging_columns.clear()
                raise
            message = f"the file could not be decoded: {describe_library_error(error)}"
            raise self._failed(audit, message) from None
        except BaseException:
            # the transaction rolled back: any table shape it created is gone again
            self._staging_columns.clear()
            raise
        return StagingResult(status, rows_read, rows, done.message, plan.missing, plan.extra)

    def _copy_file(
        self,
        rule: Rule,
        landed: LandedFileName,
        parquet_file: pq.ParquetFile,
        plan: StagingPlan,
        done: AuditEntry,
    ) -> int:
        """One transaction: replace the file's rows with its content, sent by binary COPY as
        values of each staging column's own type, audit, commit."""
        with self._connections.load_session() as connection, connection.cursor() as cursor:
            replaced, created = self._replace_file_rows(cursor, rule, landed, plan)
            source_types = {f.name: f.type for f in parquet_file.schema_arrow}
            columns = typed_columns(plan.columns, source_types, self._staging_columns[rule.table])
            batches = StagingBatches(
                parquet_file,
                columns,
                [binary_type_for(c.type, source_types.get(c.source or "")) for c in columns],
                constants=(landed.file_name, landed.source_ts, done.run_id or ""),
                timezone=self._timezone,
            )
            stream = batches.copy_stream()
            # a table this transaction created takes its rows frozen, so no reader ever has to
            # mark them committed and write every page again, and gets its index once they are
            # in, in one pass that leaves every range summarized. (Frozen rows are visible even
            # to snapshots older than the commit; those could not see the table at all.)
            copy = statements.copy_into_staging(
                rule.table, [c.name for c in columns], freeze=created
            )
            try:
                cursor.copy_expert(copy, stream, size=COPY_CHUNK_BYTES)
            except psycopg2.Error as error:
                if batches.error is not None:  # raised while reading the file, not by Postgres
                    raise batches.error from None
                if classify(error) is not ErrorKind.CONTENT:
                    raise
                message = describe_database_error(
                    error,
                    copy_table=rule.table,
                    columns=[(c.name, c.source) for c in plan.columns],
                )
                raise FileLoadError(message) from None
            finally:
                stream.close()
            _check_complete(done, batches.rows)
            if created:
                cursor.execute(statements.create_staging_index(rule.table))
            add_to_row_count(
                cursor, pipeline_names.STAGING_SCHEMA, rule.table, batches.rows - replaced
            )
            write_audit_entries(cursor, [replace(done, rows_loaded=batches.rows)])
            ledger.mark_staged(
                cursor, rule.dataset, landed.partition_key, landed.file_name, done.run_id or ""
            )
            connection.commit()
            if not created:
                _index_committed_file(cursor, rule.table)
        return batches.rows

    def _replace_file_rows(
        self, cursor: Cursor, rule: Rule, landed: LandedFileName, plan: StagingPlan
    ) -> tuple[int, bool]:
        """Inside the caller's transaction: lock the table, shape it, give it the rule's comments,
        drop the file's old rows.

        Returns how many rows were dropped, and whether the table was created just now.
        """
        table = rule.table
        lock(cursor, table, self._lock_timeout)
        created = self._ensure_staging_table(cursor, rule, plan)
        ensure_comments(cursor, rule, pipeline_names.STAGING_SCHEMA, table)
        start_counting(cursor, pipeline_names.STAGING_SCHEMA, table)
        if created:
            return 0, True
        cursor.execute(statements.READ_STAGING_THROUGH_BRIN)
        cursor.execute(statements.delete_file_rows(table), (landed.source_ts, landed.file_name))
        return int(cursor.fetchone()[0]), False

    def _ensure_staging_table(self, cursor: Cursor, rule: Rule, plan: StagingPlan) -> bool:
        """Create or widen the staging table; True if it was created, still without its index.

        Raises `FileLoadError` when the file would add too many columns (`check_column_budget`).
        """
        table, columns = rule.table, plan.columns
        # the DDL is idempotent but costs round trips; a step loading many files of one shape
        # runs it once (any failed load forgets the table, so the next one checks again)
        if {c.name for c in columns} <= self._staging_columns.get(table, {}).keys():
            return False
        pairs = [(c.name, c.type) for c in columns]
        existing = existing_columns(cursor, pipeline_names.STAGING_SCHEMA, table)
        check_column_budget(
            plan, list(existing), column_slots(cursor, table), self._max_new_columns
        )
        created = not existing
        cursor.execute(statements.create_staging_table(table, pairs))
        if not created:
            run_ddl(
                cursor,
                statements.create_staging_index(table),
                table=f"{pipeline_names.STAGING_SCHEMA}.{table}",
            )
        existing = add_missing_columns(cursor, pipeline_names.STAGING_SCHEMA, table, pairs)
        self._staging_columns[table] = {**dict(pairs), **existing}
        return created

    def _failed(self, audit: AuditEntry, message: str) -> FileLoadError:
        """Audit a file that failed on its content; the error to raise (its message is safe)."""
        self._staging_columns.clear()
        message = f"{message} (this file failed: {NOT_RETRIED}; the other files still load)"
        write_audit(
            self._connections,
            [replace(audit, status=Status.ERROR, rows_loaded=0, message=message)],
        )
        return FileLoadError(f"{audit.source_file}: {message}")


def _check_complete(audit: AuditEntry, rows: int) -> None:
    """Refuse to commit a file whose pages held a different number of rows than its footer."""
    if rows != audit.rows_read:
        raise FileLoadError(
            f"the file's pages hold {rows} rows but its footer says {audit.rows_read}; "
            "the file is damaged"
        )


def _index_committed_file(cursor: Cursor, table: str) -> None:
    """After a load commits: summarize the BRIN ranges its pages filled. Never raises.

    Re-reading the pages costs about a tenth of the load. Left to autovacuum, the next
    load's DELETE and every upsert until then would read them all instead. Done after the
    commit, the same read also marks the rows committed (hint bits) while no checkpoint has
    intervened; the first reader after a checkpoint would otherwise log every page again.
    The file is loaded whatever happens here: a range left unsummarized is summarized by
    the next load or by autovacuum, so a failure is logged, not raised (the step would
    otherwise fail, and audit as interrupted, a load that committed).
    """
    try:
        cursor.execute(*statements.summarize_new_ranges(table))
        cursor.connection.commit()
    except psycopg2.Error as error:
        log.warning(
            "%s.%s: loaded, but its new BRIN ranges were not summarized: %s",
            pipeline_names.STAGING_SCHEMA,
            table,
            describe_database_error(error),
        )
        with contextlib.suppress(psycopg2.Error):
            cursor.connection.rollback()
