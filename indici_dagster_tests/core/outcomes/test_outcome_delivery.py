"""The boto3 sender against moto's CloudWatch Logs over HTTP: groups and streams created on first
use (or found), batches of at most 10,000 events, refused events counted, never raised."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import boto3

from indici_dagster.core.outcomes.delivery import OutcomeSender, open_sender
from indici_dagster.core.warehouse.audit import AuditEntry, Status, Step


def _entry(number: int, status: Status = Status.SUCCESS) -> tuple[AuditEntry, datetime]:
    entry = AuditEntry(Step.RPT, status, f"Patients_{number}.parquet", dataset="Patients")
    return entry, datetime.now(UTC)


def _messages(group: str, stream: str) -> list[dict]:
    client = boto3.client("logs")
    events, token = [], None
    while True:
        page = client.get_log_events(
            logGroupName=group,
            logStreamName=stream,
            startFromHead=True,
            **({"nextToken": token} if token else {}),
        )
        if not page["events"]:
            return events
        events += [json.loads(e["message"]) for e in page["events"]]
        token = page["nextForwardToken"]


class _Counting:
    """A logs client that counts put_log_events calls."""

    def __init__(self, client):
        self._client, self.puts = client, []

    def put_log_events(self, **request):
        self.puts.append(len(request["logEvents"]))
        return self._client.put_log_events(**request)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_missing_groups_and_streams_are_created_and_existing_ones_used(moto_endpoint):
    prefix = f"/t{uuid.uuid4().hex[:8]}"
    boto3.client("logs").create_log_group(logGroupName=f"{prefix}/error")  # as infra apply would
    sender = open_sender(prefix)
    first = sender.send([_entry(1), _entry(2, Status.ERROR)], "run-a")
    second = sender.send([_entry(3)], "run-a")
    third = sender.send([_entry(4)], "run-b")
    assert (first.sent, first.failed, second.sent, third.sent) == (2, 0, 1, 1)
    assert [m["file"] for m in _messages(f"{prefix}/success", "run-a")] == [
        "Patients_1.parquet",
        "Patients_3.parquet",
    ]
    assert [m["status"] for m in _messages(f"{prefix}/error", "run-a")] == ["error"]
    assert [m["file"] for m in _messages(f"{prefix}/success", "run-b")] == ["Patients_4.parquet"]


def test_events_beyond_one_calls_limits_go_in_several_batches(moto_endpoint):
    prefix = f"/t{uuid.uuid4().hex[:8]}"
    client = _Counting(boto3.client("logs"))
    delivery = OutcomeSender(prefix, client).send([_entry(i) for i in range(10_001)], "run-a")
    assert (delivery.sent, delivery.failed) == (10_001, 0)
    # the first call finds no group (then created and the call repeated); ~270 bytes an
    # event, so 1 MiB, not 10,000 events, cuts each batch
    assert client.puts[0] == client.puts[1]
    assert sum(client.puts[1:]) == 10_001 and len(client.puts) >= 4
    assert all(p <= 1_048_576 // 270 for p in client.puts)
    assert len(_messages(f"{prefix}/success", "run-a")) == 10_001


def test_events_cloudwatch_refuses_are_counted_not_raised(moto_endpoint):
    prefix = f"/t{uuid.uuid4().hex[:8]}"
    old = datetime.now(UTC) - timedelta(days=30)
    entries = [(_entry(1)[0], old), (_entry(2)[0], old), _entry(3)]
    delivery = open_sender(prefix).send(entries, "run-a")
    assert (delivery.sent, delivery.failed) == (1, 2)
    assert delivery.problems == [
        f"CloudWatch rejected 2 outcome event(s) for {prefix}/success (too old or new)"
    ]
