"""Sending outcome events to CloudWatch Logs: the one place that calls its API.

A minimal boto3 sender, not a logging handler (README, "CloudWatch outcome groups", says why):
each call is synchronous, so the step knows how many events arrived and how many did not. A
group or stream that does not exist yet is created on first use, and a failure is counted and
described by its AWS error code or exception class, never by its text; it never raises.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from indici_dagster.core.outcomes.events import OutcomeEvent, batches, outcome_events
from indici_dagster.core.warehouse.audit import AuditEntry

CLIENT_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=15
)
"""A few quick retries: an unreachable CloudWatch holds a step up for seconds, not minutes."""


@dataclass
class Delivery:
    """What became of the events of one send."""

    sent: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)
    """One line per failed batch: group, event count, AWS error code or exception class."""

    def add(self, other: "Delivery") -> None:
        """Count `other`'s events into this one."""
        self.sent += other.sent
        self.failed += other.failed
        self.problems.extend(other.problems)


def failure_reason(error: Exception) -> str:
    """An error's AWS code (a `ClientError`) or class name: never its text."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code") or type(error).__name__)
    return type(error).__name__


def _rejected(response: dict[str, Any], count: int) -> int:
    """How many events of a batch of `count` CloudWatch accepted the call for but rejected."""
    info = response.get("rejectedLogEventsInfo") or {}
    rejected: set[int] = set()
    if "tooNewLogEventStartIndex" in info:
        rejected.update(range(int(info["tooNewLogEventStartIndex"]), count))
    for key in ("tooOldLogEventEndIndex", "expiredLogEventEndIndex"):
        if key in info:
            rejected.update(range(min(int(info[key]) + 1, count)))
    return len(rejected)


class OutcomeSender:
    """Sends audit rows to the outcome groups under one prefix, through one `logs` client."""

    def __init__(self, prefix: str, client: Any) -> None:
        self.prefix = prefix
        self._client = client

    def send(self, entries: Iterable[tuple[AuditEntry, datetime]], stream: str) -> Delivery:
        """Send each audit row (with its `logged_at`) as one event to its group, in stream
        `stream`, in as few calls as the limits allow. Never raises for CloudWatch's sake."""
        delivery = Delivery()
        for group, events in outcome_events(self.prefix, entries).items():
            for batch in batches(events):
                delivery.add(self._put(group, stream, batch))
        return delivery

    def _put(self, group: str, stream: str, batch: list[OutcomeEvent]) -> Delivery:
        request = {
            "logGroupName": group,
            "logStreamName": stream,
            "logEvents": [{"timestamp": e.timestamp, "message": e.message} for e in batch],
        }
        try:
            try:
                response = self._client.put_log_events(**request)
            except ClientError as error:
                if failure_reason(error) != "ResourceNotFoundException":
                    raise
                self._create(group, stream)
                response = self._client.put_log_events(**request)
        except (BotoCoreError, ClientError) as error:
            return _failed(group, len(batch), failure_reason(error))
        rejected = _rejected(response, len(batch))
        if rejected:
            return Delivery(
                len(batch) - rejected,
                rejected,
                [f"CloudWatch rejected {rejected} outcome event(s) for {group} (too old or new)"],
            )
        return Delivery(sent=len(batch))

    def _create(self, group: str, stream: str) -> None:
        """Create the group and the stream, each unless it exists already."""
        for call, arguments in (
            (self._client.create_log_group, {"logGroupName": group}),
            (self._client.create_log_stream, {"logGroupName": group, "logStreamName": stream}),
        ):
            try:
                call(**arguments)
            except ClientError as error:
                if failure_reason(error) != "ResourceAlreadyExistsException":
                    raise


def _failed(group: str, count: int, reason: str) -> Delivery:
    return Delivery(
        failed=count,
        problems=[
            f"CloudWatch: {count} outcome event(s) for {group} not delivered ({reason}); "
            "the audit log holds them"
        ],
    )


def open_sender(prefix: str, region: str | None = None) -> OutcomeSender:
    """A sender for `prefix` through a new `logs` client (the standard AWS variables apply,
    `AWS_ENDPOINT_URL` included)."""
    return OutcomeSender(prefix, boto3.client("logs", region_name=region, config=CLIENT_CONFIG))
