"""Failed runs in the audit log: one `run` / `error` row per run id, whoever asks how often.

A run-failure sensor may be evaluated again for a run it already handled (a lost tick, a daemon
restarted before its cursor was stored): the row is written only when none exists for that run,
under a transaction-scoped advisory lock on the run id, so two evaluations never write two.
"""

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.pipeline_names import AUDIT_TABLE, STAGING_SCHEMA
from indici_dagster.core.warehouse.audit import AuditEntry, Status, Step, write_audit_entries
from indici_dagster.core.warehouse.sql import qualified

_LOCK_SPACE = "indici_run_audit"
"""Hashed with the run id into the advisory lock's key, apart from other advisory locks."""


def record_failed_run(cursor: Cursor, entry: AuditEntry) -> bool:
    """Inside the caller's transaction: write `entry` (step `run`, status `error`, with its
    run id) unless the audit log already holds a `run` row for that run. Returns True when it
    wrote the row, False when one was there already."""
    if entry.step is not Step.RUN or entry.status is not Status.ERROR or not entry.run_id:
        raise ValueError("a failed run's audit row has step run, status error and a run id")
    cursor.execute(
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(%s, 0))",
        (f"{_LOCK_SPACE}:{entry.run_id}",),
    )
    cursor.execute(
        sql.SQL("SELECT 1 FROM {} WHERE run_id = %s AND step = %s LIMIT 1").format(
            qualified(STAGING_SCHEMA, AUDIT_TABLE)
        ),
        (entry.run_id, str(Step.RUN)),
    )
    if cursor.fetchone() is not None:
        return False
    write_audit_entries(cursor, [entry])
    return True
