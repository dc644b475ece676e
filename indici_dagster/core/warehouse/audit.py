"""The audit log (`indici_staging.auditlog`): one row per file per step, explaining its fate."""

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from enum import StrEnum

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.pipeline_names import AUDIT_TABLE, STAGING_SCHEMA
from indici_dagster.core.warehouse.sql import qualified


class Step(StrEnum):
    """Pipeline steps that write audit rows."""

    LANDING = "landing"
    PARTITIONED = "partitioned"
    STAGING = "staging"
    RPT = "rpt"
    RUN = "run"
    """A whole run, written when it failed (`run_audit`): no file, the failed steps named."""
    RETENTION = "retention"
    """A scheduled deletion of old staging rows or Dagster runs (counts only)."""


class Status(StrEnum):
    """Audit outcomes."""

    SUCCESS = "success"
    EMPTY = "empty"
    STATIC = "static"
    NO_RULE = "no_rule"
    ERROR = "error"


@dataclass(frozen=True)
class AuditEntry:
    """One audit row. Messages name files, columns and row numbers, never row values."""

    step: Step
    status: Status
    source_file: str | None
    dataset: str | None = None
    partition_key: str | None = None
    run_id: str | None = None
    source_key: str | None = None
    source_etag: str | None = None
    rows_read: int | None = None
    rows_loaded: int | None = None
    rows_inserted: int | None = None
    rows_updated: int | None = None
    rows_unchanged: int | None = None
    rows_rejected: int | None = None
    message: str | None = None


CREATE_AUDIT_TABLE = sql.SQL(
    """
    CREATE TABLE IF NOT EXISTS {table} (
        id bigserial PRIMARY KEY,
        logged_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        run_id text,
        dataset text,
        partition_key text,
        source_file text,
        source_key text,
        source_etag text,
        step text NOT NULL,
        status text NOT NULL,
        rows_read bigint,
        rows_loaded bigint,
        rows_inserted bigint,
        rows_updated bigint,
        rows_unchanged bigint,
        rows_rejected bigint,
        message text
    );
    CREATE INDEX IF NOT EXISTS auditlog_source_file_idx ON {table} (source_file, logged_at);
    CREATE INDEX IF NOT EXISTS auditlog_run_idx ON {table} (run_id)
    """
).format(table=qualified(STAGING_SCHEMA, AUDIT_TABLE))

_COLUMNS = [f.name for f in fields(AuditEntry)]
_INSERT = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
    qualified(STAGING_SCHEMA, AUDIT_TABLE),
    sql.SQL(", ").join(sql.Identifier(c) for c in _COLUMNS),
    sql.SQL(", ").join(sql.Placeholder(c) for c in _COLUMNS),
)


def write_audit_entries(cursor: Cursor, entries: Iterable[AuditEntry]) -> None:
    """Insert audit rows through `cursor`, inside the caller's transaction."""
    rows = [{**asdict(e), "step": str(e.step), "status": str(e.status)} for e in entries]
    if rows:
        cursor.executemany(_INSERT, rows)


_SELECT_AFTER = sql.SQL(
    "SELECT {columns}, logged_at FROM {table} WHERE id > %(after)s AND run_id = %(run_id)s"
    " AND step = ANY(%(steps)s) AND (%(dataset)s::text IS NULL OR dataset = %(dataset)s)"
    " ORDER BY id"
).format(
    columns=sql.SQL(", ").join(sql.Identifier(c) for c in _COLUMNS),
    table=qualified(STAGING_SCHEMA, AUDIT_TABLE),
)
_LATEST_ID = sql.SQL("SELECT coalesce(max(id), 0) FROM {}").format(
    qualified(STAGING_SCHEMA, AUDIT_TABLE)
)


def latest_audit_id(cursor: Cursor) -> int:
    """The id of the newest audit row (0 when there is none): a mark to read later rows from."""
    cursor.execute(_LATEST_ID)
    return int(cursor.fetchone()[0])


def audit_entries_after(
    cursor: Cursor, after: int, run_id: str, steps: Sequence[Step], dataset: str | None = None
) -> list[tuple[AuditEntry, datetime]]:
    """The committed audit rows of `run_id` for `steps` (of `dataset`, when given) with an id
    above `after`, oldest first, each with its `logged_at`."""
    cursor.execute(
        _SELECT_AFTER,
        {"after": after, "run_id": run_id, "steps": [str(s) for s in steps], "dataset": dataset},
    )
    entries = []
    for row in cursor.fetchall():
        values = dict(zip(_COLUMNS, row[:-1], strict=True))
        values["step"], values["status"] = Step(values["step"]), Status(values["status"])
        entries.append((AuditEntry(**values), row[-1]))
    return entries
