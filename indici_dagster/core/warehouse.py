"""The Postgres warehouse: connections, tables, staging loads and rpt upserts.

Each file's staging load and each window's rpt upsert is one transaction that also writes its
audit rows, serialised per table with a row lock in `indici_staging.pipeline_locks` (which only the
writer can take, and waits at most `lock_timeout`), so a replay, a crash or a concurrent run can
never leave half a file or a doubled row behind.
"""

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core import sql as statements
from indici_dagster.core.arrow_batches import COPY_CHUNK_BYTES, StagingBatches, binary_type_for
from indici_dagster.core.audit import (
    CREATE_AUDIT_TABLE,
    AuditEntry,
    Status,
    Step,
    write_audit_entries,
)
from indici_dagster.core.db_errors import (
    ErrorKind,
    classify,
    describe_database_error,
    describe_library_error,
    quote_name,
)
from indici_dagster.core.dsn import connect
from indici_dagster.core.filenames import LandedFileName
from indici_dagster.core.naming import InvalidIdentifierError, to_identifier
from indici_dagster.core.parquet import (
    TargetColumn,
    UnsupportedColumnTypeError,
    ValueCastError,
    postgres_type_for,
)
from indici_dagster.core.parquet_budget import FileTooLargeError
from indici_dagster.core.row_counts import (
    CREATE_ROW_COUNTS_TABLE,
    add_to_row_count,
    recount,
    set_row_count,
    start_counting,
)
from indici_dagster.core.rules import METADATA_COLUMNS, Rule, RuleError, canonical_type
from indici_dagster.core.types import TypeSpellingError, canonical, widens

APPLICATION_NAME = "indici-dagster"
MAX_TABLE_COLUMNS = 1000
"""Columns a staging table may reach, metadata and dropped columns included: well under
PostgreSQL's 1,600, so a legitimate new column always has room. A file that would pass it fails."""
NOT_RETRIED = "content error, not retried"
"""Ends the audit message of a file (or rpt window) that failed on its content."""

log = logging.getLogger(__name__)


DEFAULT_LOCK_TIMEOUT = "10min"
"""How long a load, upsert or catalog change waits for any lock before it fails (and is retried):
longer than the pipeline's own longest hold of a table (a big upsert), far shorter than forever."""


class LockTimeoutError(psycopg2.OperationalError):
    """A lock was not granted within `lock_timeout`; infrastructure, so the step is retried."""


class FileLoadError(RuntimeError):
    """A file that could not be loaded; the message is safe to log (no values, no secrets)."""


@dataclass(frozen=True)
class StagingPlan:
    """How a file's columns map onto its staging table."""

    columns: tuple[TargetColumn, ...]
    missing: tuple[str, ...]
    """Rule columns the file lacks (they load as NULL)."""
    extra: tuple[str, ...]
    """File columns the rule does not name (added to staging with a type from Parquet)."""
    drift: tuple[str, ...] = ()
    """Staging names of the columns the rule does not name (for a static rule: every column)."""
    static: bool = False
    """The rule names no columns: the first file's columns define the table."""


def plan_staging_columns(rule: Rule, schema: pa.Schema) -> StagingPlan:
    """Map a file's Arrow schema onto the rule's columns.

    File columns match rule columns by snake_case name. Raises `FileLoadError` for a file column
    that cannot become an identifier, that collides with another or with a metadata column, or
    whose type is unsupported; and for a keyed dataset whose file holds none of its columns.
    """
    fields = list(schema)
    by_name: dict[str, pa.Field] = {}
    for field in fields:
        try:
            name = to_identifier(field.name)
        except InvalidIdentifierError:
            raise FileLoadError(
                f"column {quote_name(field.name)} cannot become a Postgres identifier "
                "(in snake_case it is empty, longer than 63 characters or starts with a digit)"
            ) from None
        if name in METADATA_COLUMNS:
            raise FileLoadError(
                f"column {quote_name(field.name)} collides with metadata column {name!r}"
            )
        if name in by_name:
            raise FileLoadError(
                f"columns {quote_name(by_name[name].name)} and {quote_name(field.name)} "
                f"both map to {name!r}"
            )
        by_name[name] = field
    targets: list[TargetColumn] = []
    missing: list[str] = []
    for column in rule.columns:
        field = by_name.get(column.name)
        targets.append(TargetColumn(column.name, column.type, field.name if field else None))
        if field is None:
            missing.append(column.source)
    if rule.columns and len(missing) == len(rule.columns):
        raise FileLoadError("the file holds none of the rule's columns")
    known = {c.name for c in rule.columns}
    extra: list[str] = []
    for name, field in by_name.items():
        if name in known:
            continue
        try:
            type_name = postgres_type_for(field.type)
        except UnsupportedColumnTypeError as error:
            raise FileLoadError(f"column {quote_name(field.name)}: {error}") from None
        targets.append(TargetColumn(name, type_name, field.name))
        if not rule.is_static:
            extra.append(field.name)
    drift = tuple(t.name for t in targets if t.name not in known)
    return StagingPlan(tuple(targets), tuple(missing), tuple(extra), drift, rule.is_static)


def check_column_budget(
    plan: StagingPlan, existing: Sequence[str], slots_used: int, max_new_columns: int
) -> None:
    """Refuse (with `FileLoadError`) a file that would add more than `max_new_columns` columns
    the rule does not name to its staging table, or take the table past `MAX_TABLE_COLUMNS`.

    `existing` are the table's columns, `slots_used` the attribute numbers PostgreSQL has used
    for it (dropped columns keep theirs); both empty/0 for a table not created yet. The first
    file of a static rule defines its table, so only the ceiling applies to it.
    """
    have = set(existing)
    new = [c.name for c in plan.columns if c.name not in have]
    new_drift = [name for name in plan.drift if name not in have]
    if not (plan.static and not have) and len(new_drift) > max_new_columns:
        raise FileLoadError(
            f"the file would add {len(new_drift)} columns the rule does not name; at most "
            f"{max_new_columns} are added per file (INDICI_MAX_NEW_COLUMNS): name them in the "
            "rule or raise the limit"
        )
    metadata = 0 if have else len(METADATA_COLUMNS)
    total = slots_used + len(new) + metadata
    if total > MAX_TABLE_COLUMNS:
        raise FileLoadError(
            f"the staging table would have {total} columns ({slots_used} used so far, dropped "
            f"ones included, {metadata} for load metadata, {len(new)} new from this file); at "
            f"most {MAX_TABLE_COLUMNS} are allowed"
        )


def typed_columns(
    columns: Sequence[TargetColumn],
    source_types: Mapping[str, pa.DataType],
    table_types: Mapping[str, str],
) -> tuple[TargetColumn, ...]:
    """Each column with the type its staging column really has (`table_types`, as the catalog
    spells them), so the values sent are always of the column's own type.

    A column the table lacks keeps its planned type. One whose table type differs is accepted
    only if every value of the planned type fits the table's type exactly (a checked widening,
    such as integer into bigint) or the file's column holds nothing but NULLs; otherwise
    `FileLoadError` names the column, the table's type and the file's type.
    """
    typed = []
    for column in columns:
        existing = table_types.get(column.name)
        if existing is None:
            typed.append(column)
            continue
        try:
            actual = canonical(existing)
        except TypeSpellingError:
            actual = None
        source = source_types.get(column.source) if column.source is not None else None
        if source is not None and pa.types.is_dictionary(source):
            source = source.value_type
        only_nulls = source is None or pa.types.is_null(source)
        if actual is not None and (only_nulls or widens(column.type, actual)):
            typed.append(replace(column, type=actual))
            continue
        raise FileLoadError(
            f"column {column.source or column.name!r}: the staging column's type is {existing} "
            f"but the file's is {column.type}, which it cannot hold exactly; nothing of this "
            "file was loaded"
        )
    return tuple(typed)


@dataclass(frozen=True)
class StagingResult:
    """The outcome of loading one file into staging."""

    status: Status
    rows_read: int
    rows_loaded: int
    message: str | None = None
    missing_columns: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()


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


class Warehouse:
    """A Postgres database holding `indici_staging` and `rpt`."""

    def __init__(
        self,
        dsn: str,
        timezone: str,
        *,
        upsert_work_mem: str = "512MB",
        lock_timeout: str = DEFAULT_LOCK_TIMEOUT,
        max_new_columns: int = 50,
    ) -> None:
        self._dsn = dsn
        self.lock_timeout = lock_timeout
        self.max_new_columns = max_new_columns
        self._sessions = threading.local()
        self._staging_columns: dict[str, dict[str, str]] = {}
        self.timezone = ZoneInfo(timezone).key  # validates the zone name
        self.upsert_work_mem = upsert_work_mem

    def _connect(self) -> psycopg2.extensions.connection:
        # binary COPY sends text as UTF-8 bytes, whatever PGCLIENTENCODING says; a failure
        # names only host, port, database and user (`ConnectionFailedError`)
        connection = connect(self._dsn, application_name=APPLICATION_NAME, client_encoding="UTF8")
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE %s", (self.timezone,))
        connection.commit()
        return connection

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg2.extensions.connection]:
        """A connection in the pipeline's time zone, closed afterwards; commit is the caller's."""
        connection = self._connect()
        try:
            yield connection
        finally:
            connection.close()

    @contextlib.contextmanager
    def reusing_connections(self) -> Iterator[None]:
        """Within this block, consecutive staging loads on this thread share one connection.

        Opening a connection costs about as much as a small daily file takes to load; a step
        loading many files opens one. It is closed when the block ends or after any error.
        """
        self._sessions.reuse = True
        try:
            yield
        finally:
            self._sessions.reuse = False
            self._close_load_session()

    def _close_load_session(self) -> None:
        connection, self._sessions.load = getattr(self._sessions, "load", None), None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    @contextlib.contextmanager
    def _load_session(self) -> Iterator[psycopg2.extensions.connection]:
        """A connection for one file's load transaction (kept for the next load when reusing)."""
        if getattr(self._sessions, "load", None) is None:
            self._sessions.load = self._connect()
        connection = self._sessions.load
        try:
            yield connection
        except BaseException:
            self._close_load_session()
            raise
        if connection.closed or not getattr(self._sessions, "reuse", False):
            self._close_load_session()

    def ensure_catalog(self) -> None:
        """Create the schemas and the pipeline's own tables (audit log, ledger, row counts,
        locks) where they are missing; leave alone those another role owns.

        After `indici bootstrap` every one exists, owned by the owner role, and nothing is
        done. Without it (a laptop's server) the writer creates them itself. Concurrent calls
        need no lock: one that loses a race to create an object sees it exist and tries again.
        """
        for attempt in range(3):
            with self.connection() as connection, connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, false)", (self.lock_timeout,))
                try:
                    _create_catalog(cursor)
                except (
                    psycopg2.errors.UniqueViolation,
                    psycopg2.errors.DuplicateObject,
                    psycopg2.errors.DuplicateTable,
                ):
                    if attempt == 2:
                        raise
                    continue  # a concurrent call created it first: look again
                except psycopg2.errors.LockNotAvailable:
                    pass  # raised below, outside the handler
                else:
                    connection.commit()
                    return
            raise LockTimeoutError(
                f"the pipeline's catalog in schema {statements.STAGING_SCHEMA} stayed locked "
                f"for longer than lock_timeout ({self.lock_timeout})"
            )

    def write_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Write audit rows in their own transaction."""
        with self.connection() as connection, connection.cursor() as cursor:
            write_audit_entries(cursor, entries)
            connection.commit()

    def recount_rows(self, table: str) -> dict[str, int]:
        """Count `indici_staging.<table>` and `rpt.<table>` in full and reset their counters.

        For after rows were changed by hand; returns the count of each schema's table.
        """
        with self.connection() as connection, connection.cursor() as cursor:
            _lock(cursor, table, self.lock_timeout)
            counts = {
                schema: recount(cursor, schema, table)
                for schema in (statements.STAGING_SCHEMA, statements.RPT_SCHEMA)
            }
            connection.commit()
            return counts

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
            self.write_audit(
                [replace(audit, status=Status.EMPTY, rows_loaded=0, message=result.message)]
            )
            return result
        plan = None
        try:
            plan = plan_staging_columns(rule, parquet_file.schema_arrow)
            status = Status.STATIC if rule.is_static else Status.SUCCESS
            done = replace(audit, status=status, message=_drift_message(plan))
            rows = self._copy_file(rule, landed, parquet_file, plan, done)
        except (
            FileLoadError,
            FileTooLargeError,
            ValueCastError,
            UnsupportedColumnTypeError,
            RuleError,
        ) as error:
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

    def _replace_file_rows(
        self, cursor: Cursor, table: str, landed: LandedFileName, plan: StagingPlan
    ) -> tuple[int, bool]:
        """Inside the caller's transaction: lock the table, shape it, drop the file's old rows.

        Returns how many rows were dropped, and whether the table was created just now.
        """
        _lock(cursor, table, self.lock_timeout)
        created = self._ensure_staging_table(cursor, table, plan)
        start_counting(cursor, statements.STAGING_SCHEMA, table)
        if created:
            return 0, True
        _read_staging_through_brin(cursor)
        cursor.execute(statements.delete_file_rows(table), (landed.source_ts, landed.file_name))
        return int(cursor.fetchone()[0]), False

    def _finish_file_rows(self, cursor: Cursor, table: str, rows: int, replaced: int) -> None:
        """Inside the caller's transaction, after COPY: count the rows."""
        add_to_row_count(cursor, statements.STAGING_SCHEMA, table, rows - replaced)

    def _index_committed_file(self, cursor: Cursor, table: str) -> None:
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
                statements.STAGING_SCHEMA,
                table,
                describe_database_error(error),
            )
            with contextlib.suppress(psycopg2.Error):
                cursor.connection.rollback()

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
        with self._load_session() as connection, connection.cursor() as cursor:
            replaced, created = self._replace_file_rows(cursor, rule.table, landed, plan)
            source_types = {f.name: f.type for f in parquet_file.schema_arrow}
            columns = typed_columns(plan.columns, source_types, self._staging_columns[rule.table])
            batches = StagingBatches(
                parquet_file,
                columns,
                [binary_type_for(c.type, source_types.get(c.source or "")) for c in columns],
                constants=(landed.file_name, landed.source_ts, done.run_id or ""),
                timezone=self.timezone,
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
            self._finish_file_rows(cursor, rule.table, batches.rows, replaced)
            write_audit_entries(cursor, [replace(done, rows_loaded=batches.rows)])
            connection.commit()
            if not created:
                self._index_committed_file(cursor, rule.table)
        return batches.rows

    def _failed(self, audit: AuditEntry, message: str) -> FileLoadError:
        """Audit a file that failed on its content; the error to raise (its message is safe)."""
        self._staging_columns.clear()
        message = f"{message} (this file failed: {NOT_RETRIED}; the other files still load)"
        self.write_audit([replace(audit, status=Status.ERROR, rows_loaded=0, message=message)])
        return FileLoadError(f"{audit.source_file}: {message}")

    def _ensure_staging_table(self, cursor: Cursor, table: str, plan: StagingPlan) -> bool:
        """Create or widen the staging table; True if it was created, still without its index.

        Raises `FileLoadError` when the file would add too many columns (`check_column_budget`).
        """
        columns = plan.columns
        # the DDL is idempotent but costs round trips; a step loading many files of one shape
        # runs it once (any failed load forgets the table, so the next one checks again)
        if {c.name for c in columns} <= self._staging_columns.get(table, {}).keys():
            return False
        pairs = [(c.name, c.type) for c in columns]
        existing = existing_columns(cursor, statements.STAGING_SCHEMA, table)
        check_column_budget(
            plan, list(existing), _column_slots(cursor, table), self.max_new_columns
        )
        created = not existing
        cursor.execute(statements.create_staging_table(table, pairs))
        if not created:
            cursor.execute(statements.create_staging_index(table))
        existing = _add_missing_columns(cursor, statements.STAGING_SCHEMA, table, pairs)
        self._staging_columns[table] = {**dict(pairs), **existing}
        return created

    def upsert_window_into_rpt(
        self,
        rule: Rule,
        start: datetime,
        end: datetime,
        *,
        run_id: str,
        partition_key_of: "callable",
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
        """
        try:
            return self._upsert_window(rule, start, end, run_id, partition_key_of)
        except psycopg2.Error as error:
            if classify(error) is not ErrorKind.CONTENT:
                raise
        results: list[FileUpsert] = []
        for stamp, names in self._files_in_window(rule, start, end):
            try:  # the files of one timestamp (a file's rows all share it) together
                results += self._upsert_window(
                    rule, stamp, stamp + timedelta(microseconds=1), run_id, partition_key_of
                )
            except psycopg2.Error as error:
                if classify(error) is not ErrorKind.CONTENT:
                    raise
                note = f"rpt upsert failed, nothing applied: {describe_database_error(error)}"
                self.write_audit(
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
                    ]
                )
        return results

    def _files_in_window(
        self, rule: Rule, start: datetime, end: datetime
    ) -> list[tuple[datetime, list[str]]]:
        """The staged files with `start <= _source_ts < end`, by timestamp, oldest first."""
        with self.connection() as connection, connection.cursor() as cursor:
            _read_staging_through_brin(cursor)
            cursor.execute(
                sql.SQL(
                    "SELECT _source_ts, array_agg(DISTINCT _source_file) FROM {} "
                    "WHERE _source_ts >= %s AND _source_ts < %s GROUP BY 1 ORDER BY 1"
                ).format(statements.qualified(statements.STAGING_SCHEMA, rule.table)),
                (start, end),
            )
            return [(stamp, sorted(names)) for stamp, names in cursor.fetchall()]

    def _upsert_window(
        self,
        rule: Rule,
        start: datetime,
        end: datetime,
        run_id: str,
        partition_key_of: "callable",
    ) -> list[FileUpsert]:
        with self.connection() as connection, connection.cursor() as cursor:
            _lock(cursor, rule.table, self.lock_timeout)
            if not _table_exists(cursor, statements.STAGING_SCHEMA, rule.table):
                return []
            if rule.is_static:
                results = self._replace_static(cursor, rule, start, end)
                status = Status.STATIC
            else:
                results = self._upsert_keyed(cursor, rule, start, end)
                status = Status.SUCCESS
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
                        message=_upsert_message(r, status),
                    )
                    for r in results
                ],
            )
            connection.commit()
            return results

    def _upsert_keyed(
        self, cursor: Cursor, rule: Rule, start: datetime, end: datetime
    ) -> list[FileUpsert]:
        """Inside the caller's transaction, holding the table's lock: apply the window to rpt."""
        columns = [(c.name, c.type) for c in rule.columns]
        names = [c.name for c in rule.columns]
        window = {"start": start, "end": end}
        # the DISTINCT ON sort of a big window should stay in memory: 1M rows of 24 columns
        # need about 290 MB, and sorting them on disk costs 1.5 to 2 s more; Postgres takes
        # only what a sort needs, so small daily windows stay small
        cursor.execute("SET LOCAL work_mem = %s", (self.upsert_work_mem,))
        created = not _table_exists(cursor, statements.RPT_SCHEMA, rule.table)
        # a table created in this transaction is invisible to everyone else until it commits,
        # so its primary key can wait until the rows are in and then be built in one sort
        cursor.execute(
            statements.create_rpt_table(rule.table, columns, () if created else rule.primary_key)
        )
        _add_missing_columns(cursor, statements.RPT_SCHEMA, rule.table, columns)
        start_counting(cursor, statements.RPT_SCHEMA, rule.table)
        cursor.execute(
            sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(
                statements.qualified(statements.RPT_SCHEMA, rule.table)
            )
        )
        (is_empty,) = cursor.fetchone()
        _read_staging_through_brin(cursor)
        if not is_empty:
            cursor.execute(statements.upsert_into_rpt(rule.table, names, rule.primary_key), window)
            results = [FileUpsert(*row) for row in cursor.fetchall()]
        else:
            results = self._insert_into_empty_rpt(cursor, rule, names, window, created=created)
        inserted = sum(r.rows_inserted for r in results)
        add_to_row_count(cursor, statements.RPT_SCHEMA, rule.table, inserted)
        return results

    def _insert_into_empty_rpt(
        self,
        cursor: Cursor,
        rule: Rule,
        names: Sequence[str],
        window: dict[str, datetime],
        *,
        created: bool,
    ) -> list[FileUpsert]:
        """The keyed upsert's first load, into an rpt table seen empty under the table's lock:
        the same rows and counts, without the per-row conflict checks."""
        cursor.execute(statements.staged_counts_in_window(rule.table, rule.primary_key), window)
        staged = cursor.fetchall()
        cursor.execute(
            statements.insert_into_empty_rpt(rule.table, names, rule.primary_key), window
        )
        inserted_rows = cursor.rowcount
        if created:
            cursor.execute("SET LOCAL maintenance_work_mem = %s", (self.upsert_work_mem,))
            cursor.execute(statements.add_primary_key(rule.table, rule.primary_key))
        if len(staged) == 1:  # the usual daily window: no need to count rpt again
            inserted = {staged[0][0]: inserted_rows}
        else:
            cursor.execute("SET LOCAL enable_seqscan = on")
            cursor.execute(statements.rpt_rows_by_source_file(rule.table))
            inserted = dict(cursor.fetchall())
        return [
            FileUpsert(name, rows, rejected, inserted.get(name, 0), 0)
            for name, rows, rejected in staged
        ]

    def _replace_static(
        self, cursor: Cursor, rule: Rule, start: datetime, end: datetime
    ) -> list[FileUpsert]:
        staging = statements.qualified(statements.STAGING_SCHEMA, rule.table)
        cursor.execute(
            sql.SQL(
                "SELECT _source_file, min(_source_ts), count(*) FROM {} "
                "WHERE _source_ts >= %s AND _source_ts < %s GROUP BY _source_file "
                "ORDER BY min(_source_ts) DESC, _source_file DESC"
            ).format(staging),
            (start, end),
        )
        snapshots = cursor.fetchall()
        if not snapshots:
            return []
        columns = [
            (name, canonical_type(type_name))
            for name, type_name in existing_columns(
                cursor, statements.STAGING_SCHEMA, rule.table
            ).items()
            if name not in METADATA_COLUMNS
        ]
        cursor.execute(statements.create_rpt_table(rule.table, columns, ()))
        _add_missing_columns(cursor, statements.RPT_SCHEMA, rule.table, columns)
        rpt = statements.qualified(statements.RPT_SCHEMA, rule.table)
        cursor.execute(
            sql.SQL(
                "SELECT _source_ts, _source_file FROM {} "
                "ORDER BY _source_ts DESC, _source_file DESC LIMIT 1"
            ).format(rpt)
        )
        current = cursor.fetchone()
        newest_file, newest_ts, newest_rows = snapshots[0]
        results = [FileUpsert(f, n, 0, 0, 0) for f, _, n in snapshots[1:]]
        if current is None or (newest_ts, newest_file) >= tuple(current):
            cursor.execute(
                statements.replace_static_snapshot(rule.table, [c for c, _ in columns]),
                (newest_ts, newest_file),
            )
            set_row_count(cursor, statements.RPT_SCHEMA, rule.table, newest_rows)
            results.insert(0, FileUpsert(newest_file, newest_rows, 0, newest_rows, 0))
        else:
            results.insert(0, FileUpsert(newest_file, newest_rows, 0, 0, 0))
        return results


def _lock(cursor: Cursor, name: str, timeout: str) -> None:
    """Serialise work on one table across processes until the transaction ends.

    Locks the table's row in `indici_staging.pipeline_locks`, which only the writer (and its
    owner role) may lock: unlike an advisory lock, no reader or other role can take it to stall
    the pipeline. Sets the transaction's `lock_timeout` to `timeout`, so this and every later
    statement of the transaction waits at most that long for a lock; this wait failing raises
    `LockTimeoutError` naming the table (infrastructure: the step is retried).
    """
    try:
        cursor.execute(statements.TAKE_LOCK, {"timeout": timeout, "name": name})
    except psycopg2.errors.LockNotAvailable:
        pass  # raised below, outside the handler: the database's text is not kept
    else:
        return
    raise LockTimeoutError(
        f"table {name}: the pipeline's lock on it was not granted within lock_timeout "
        f"({timeout}); another load or upsert of the table still holds it"
    )


def _create_catalog(cursor: Cursor) -> None:
    """Create the schemas and each pipeline table that is missing, or that this role owns (its
    statements are idempotent); skip a table another role owns (bootstrap's owner role)."""
    for schema in (statements.STAGING_SCHEMA, statements.RPT_SCHEMA):
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    for table, statement in catalog_statements():
        cursor.execute(
            "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass(%s)",
            (f'"{statements.STAGING_SCHEMA}"."{table}"',),
        )
        row = cursor.fetchone()
        if row is None or row[0]:
            cursor.execute(statement)


def catalog_statements() -> list[tuple[str, sql.Composable]]:
    """(table, CREATE ... IF NOT EXISTS) for each of the pipeline's own tables in staging."""
    from indici_dagster.core.ledger import CREATE_LEDGER_TABLE

    return [
        (statements.AUDIT_TABLE, CREATE_AUDIT_TABLE),
        (statements.LEDGER_TABLE, CREATE_LEDGER_TABLE),
        (statements.ROW_COUNTS_TABLE, CREATE_ROW_COUNTS_TABLE),
        (statements.LOCKS_TABLE, statements.CREATE_LOCKS_TABLE),
    ]


def _read_staging_through_brin(cursor: Cursor) -> None:
    """For the rest of the transaction, read staging windows through the BRIN index.

    A table loaded moments ago has no statistics yet, and the planner would read all of it
    rather than the few page ranges the window's `_source_ts` bounds leave.
    """
    cursor.execute("SET LOCAL enable_seqscan = off")


def _check_complete(audit: AuditEntry, rows: int) -> None:
    """Refuse to commit a file whose pages held a different number of rows than its footer."""
    if rows != audit.rows_read:
        raise FileLoadError(
            f"the file's pages hold {rows} rows but its footer says {audit.rows_read}; "
            "the file is damaged"
        )


def _column_slots(cursor: Cursor, table: str) -> int:
    """Attribute numbers PostgreSQL has used for a staging table (dropped columns included: they
    count toward its 1,600-column limit); 0 if it does not exist."""
    cursor.execute(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0",
        (f'"{statements.STAGING_SCHEMA}"."{table}"',),
    )
    return int(cursor.fetchone()[0])


def _table_exists(cursor: Cursor, schema: str, table: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}"."{table}"',))
    return bool(cursor.fetchone()[0])


def existing_columns(cursor: Cursor, schema: str, table: str) -> dict[str, str]:
    """Column name -> type (as Postgres spells it) of `schema.table`, in order; {} if absent."""
    cursor.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        (schema, table),
    )
    return dict(cursor.fetchall())


def _add_missing_columns(
    cursor: Cursor, schema: str, table: str, columns: Sequence[tuple[str, str]]
) -> dict[str, str]:
    """Add to `schema.table` each of `columns` (name, type) it lacks; returns the columns it had."""
    existing = existing_columns(cursor, schema, table)
    for name, type_name in columns:
        if name not in existing:
            cursor.execute(statements.add_column(schema, table, name, type_name))
    return existing


def _drift_message(plan: StagingPlan) -> str | None:
    parts = []
    if plan.extra:
        names = ", ".join(quote_name(name) for name in plan.extra)
        parts.append(f"columns not in the rule, added to staging: {names}")
    if plan.missing:
        parts.append(
            f"rule columns missing from the file, loaded as NULL: {', '.join(plan.missing)}"
        )
    return "; ".join(parts) or None


def _upsert_message(result: FileUpsert, status: Status) -> str | None:
    if status is Status.STATIC:
        return "newest snapshot applied" if result.rows_inserted else "older snapshot, not applied"
    if result.rows_rejected:
        return f"{result.rows_rejected} rows with a NULL primary-key column kept out of rpt"
    return None
