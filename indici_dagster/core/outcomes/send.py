"""What a step or the sensor calls: the audit rows it committed, sent to the outcome groups.

The audit log in Postgres is the record of truth, so events go out only after their rows
committed: a step's rows are read back from the audit log, and the sensor sends the rows it
committed. Nothing here raises for CloudWatch's sake: failures are counted in the `Delivery`.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError

from indici_dagster.core.outcomes.delivery import (
    Delivery,
    OutcomeSender,
    failure_reason,
    open_sender,
)
from indici_dagster.core.warehouse.audit import (
    AuditEntry,
    Step,
    audit_entries_after,
    latest_audit_id,
)
from indici_dagster.core.warehouse.facade import Warehouse


def audit_mark(warehouse: Warehouse) -> int:
    """The newest audit row's id: rows a step writes after this call have higher ids."""
    with warehouse.transaction() as cursor:
        return latest_audit_id(cursor)


def send_committed(
    warehouse: Warehouse,
    prefix: str,
    region: str | None,
    *,
    after: int,
    run_id: str,
    steps: Sequence[Step],
    dataset: str | None = None,
) -> Delivery:
    """Send the committed audit rows of `run_id` for `steps` (of `dataset`) above id `after`, in
    the run's stream. Rows that cannot be read back count as one failure (the audit log has
    them)."""
    try:
        with warehouse.transaction() as cursor:
            entries = audit_entries_after(cursor, after, run_id, steps, dataset)
    except Exception as error:  # a read-back failure must not fail the load it follows
        return Delivery(
            failed=1,
            problems=[
                f"CloudWatch: the {'/'.join(steps)} step's audit rows could not be read back "
                f"({failure_reason(error)}); not sent, the audit log holds them"
            ],
        )
    return _send(prefix, region, entries, run_id)


def send_entries(
    prefix: str, region: str | None, entries: Sequence[AuditEntry], stream: str
) -> Delivery:
    """Send audit rows the caller has just committed, stamped now, in stream `stream`."""
    now = datetime.now(UTC)
    return _send(prefix, region, [(entry, now) for entry in entries], stream)


def _send(
    prefix: str, region: str | None, entries: Sequence[tuple[AuditEntry, datetime]], stream: str
) -> Delivery:
    if not entries:
        return Delivery()
    try:
        sender: OutcomeSender = open_sender(prefix, region)
    except BotoCoreError as error:
        return Delivery(
            failed=len(entries),
            problems=[
                f"CloudWatch: {len(entries)} outcome event(s) not delivered: no client "
                f"({failure_reason(error)}); the audit log holds them"
            ],
        )
    return sender.send(entries, stream)
