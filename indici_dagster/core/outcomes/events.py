"""Audit rows as CloudWatch log events, and those events in batches CloudWatch accepts.

Pure functions, no AWS: what an event holds (the audit row's fields, never a row value: audit
messages name files, columns and row numbers only) and how events are cut into batches.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from indici_dagster.core.outcome_groups import outcome_log_group, outcome_of_status
from indici_dagster.core.warehouse.audit import AuditEntry

MAX_BATCH_EVENTS = 10_000
"""put_log_events takes at most this many events a call."""
MAX_BATCH_BYTES = 1_048_576
"""... and at most this many bytes: the events' UTF-8 messages plus `EVENT_OVERHEAD` each."""
EVENT_OVERHEAD = 26
MAX_BATCH_SPAN_MS = 24 * 60 * 60 * 1000 - 1
"""... whose timestamps span less than 24 hours."""
MAX_EVENT_BYTES = 256 * 1024 - EVENT_OVERHEAD
"""The largest message one event may carry (an audit row's fields are far below it)."""

_COUNTS = (
    "rows_read",
    "rows_loaded",
    "rows_inserted",
    "rows_updated",
    "rows_unchanged",
    "rows_rejected",
)


@dataclass(frozen=True)
class OutcomeEvent:
    """One audit row as a log event of its outcome group."""

    group: str
    timestamp: int
    """Milliseconds since the epoch: when the audit row was logged."""
    message: str
    """The row's fields as one JSON object."""

    @property
    def size(self) -> int:
        """What the event counts towards a batch's byte limit."""
        return len(self.message.encode("utf-8")) + EVENT_OVERHEAD


def event_fields(entry: AuditEntry) -> dict[str, object]:
    """The fields an event carries: file, dataset, partition, step, status, run id, counts and
    message, exactly as in the audit row (which never holds a row value)."""
    return {
        "file": entry.source_file,
        "dataset": entry.dataset,
        "partition": entry.partition_key,
        "step": str(entry.step),
        "status": str(entry.status),
        "run_id": entry.run_id,
        **{name: getattr(entry, name) for name in _COUNTS},
        "message": entry.message,
    }


def outcome_event(prefix: str, entry: AuditEntry, logged_at: datetime) -> OutcomeEvent:
    """The event of one audit row, in the group its status goes to (`ValueError` for a status
    without a group)."""
    message = json.dumps(event_fields(entry), ensure_ascii=False, separators=(",", ":"))
    if len(message.encode("utf-8")) > MAX_EVENT_BYTES:
        # never cut inside the JSON: the message is the only long field
        fields = {**event_fields(entry), "message": "(message too long for CloudWatch)"}
        message = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return OutcomeEvent(
        outcome_log_group(prefix, outcome_of_status(str(entry.status))),
        int(logged_at.timestamp() * 1000),
        message,
    )


def outcome_events(
    prefix: str, entries: Iterable[tuple[AuditEntry, datetime]]
) -> dict[str, list[OutcomeEvent]]:
    """Group -> its events, oldest first."""
    groups: dict[str, list[OutcomeEvent]] = {}
    for entry, logged_at in entries:
        event = outcome_event(prefix, entry, logged_at)
        groups.setdefault(event.group, []).append(event)
    return {group: sorted(events, key=lambda e: e.timestamp) for group, events in groups.items()}


def batches(
    events: Sequence[OutcomeEvent],
    max_events: int = MAX_BATCH_EVENTS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> list[list[OutcomeEvent]]:
    """`events` (of one group, oldest first) cut into consecutive batches that each respect
    put_log_events' limits on count, bytes and time span."""
    result: list[list[OutcomeEvent]] = []
    batch: list[OutcomeEvent] = []
    size = 0
    for event in events:
        if batch and (
            len(batch) >= max_events
            or size + event.size > max_bytes
            or event.timestamp - batch[0].timestamp > MAX_BATCH_SPAN_MS
        ):
            result.append(batch)
            batch, size = [], 0
        batch.append(event)
        size += event.size
    if batch:
        result.append(batch)
    return result
