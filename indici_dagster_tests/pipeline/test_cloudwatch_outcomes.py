"""CloudWatch outcome groups: every audit row of a sensor-driven run, read back from moto's
CloudWatch Logs over HTTP, in its outcome group and the run's stream, without a row value; and
a CloudWatch that cannot be reached leaves the load committed and the failure counted."""

import dataclasses
import json
import socket
import uuid

import boto3
import pyarrow as pa
from dagster import DagsterEventType

from indici_dagster.core.outcome_groups import outcome_log_group, outcome_of_status
from indici_dagster.lib.outcomes import DELIVERY_FAILURES, EVENTS_SENT
from indici_dagster_tests.support.common import (
    build,
    execute_requests,
    make_settings,
    parquet_bytes,
    patients,
    put_s3,
    query,
    tick,
)

MARKER = "MarkerValue7Qx"
"""A value in the data: it must never reach CloudWatch."""

AUDIT_FIELDS = (
    "source_file, dataset, partition_key, step, status, run_id, rows_read, rows_loaded, "
    "rows_inserted, rows_updated, rows_unchanged, rows_rejected, message"
)


def _land_files(landing: str) -> None:
    """One file of each outcome: loaded, static, empty, no rule, broken, and a bad name."""
    put_s3(landing, "Patients_20261124_020000.parquet", patients([(1, MARKER), (2, "B1")]))
    put_s3(landing, "Patients_20261124_030000.parquet", b"PAR1 " + MARKER.encode())
    put_s3(
        landing,
        "EthnicityCode_20261124_010000.parquet",
        parquet_bytes({"EthnicityCode": pa.array([11], pa.int32()), "Description": [MARKER]}),
    )
    put_s3(
        landing,
        "InvoiceLines_20261124_030000.parquet",
        parquet_bytes(
            pa.table(
                {
                    "InvoiceID": pa.array([], pa.int64()),
                    "LineNumber": pa.array([], pa.int32()),
                }
            )
        ),
    )
    put_s3(landing, "Mystery_20261124_020000.parquet", patients([(9, MARKER)]))
    put_s3(landing, "Patients_2026112.parquet", MARKER.encode())


def _events(prefix: str) -> list[tuple[str, str, dict, str]]:
    """(group, stream, parsed event, raw message) of every event under `prefix`."""
    client = boto3.client("logs")
    found = []
    for group in client.describe_log_groups(logGroupNamePrefix=prefix)["logGroups"]:
        name = group["logGroupName"]
        for stream in client.describe_log_streams(logGroupName=name)["logStreams"]:
            events = client.get_log_events(
                logGroupName=name, logStreamName=stream["logStreamName"], startFromHead=True
            )["events"]
            found += [
                (name, stream["logStreamName"], json.loads(e["message"]), e["message"])
                for e in events
            ]
    return found


def _step_metadata(instance, run_id: str) -> dict[str, dict]:
    """Step key -> the metadata of its materializations (merged), for one run."""
    metadata: dict[str, dict] = {}
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
        event = entry.dagster_event
        values = event.event_specific_data.materialization.metadata
        metadata.setdefault(event.step_key, {}).update({k: v.value for k, v in values.items()})
    return metadata


def test_every_audit_row_reaches_its_outcome_group_in_the_run_stream(
    tmp_path, database, buckets, instance
):
    landing, partitioned = buckets
    _land_files(landing)
    prefix = f"/indici-test/{uuid.uuid4().hex[:8]}"
    settings = dataclasses.replace(
        make_settings(tmp_path, database, landing, partitioned), cloudwatch_prefix=prefix
    )
    defs = build(settings)
    result = tick(defs, instance)
    (outcome,) = execute_requests(defs, instance, result)
    assert not outcome.success  # the broken Patients file fails the run; the others load

    rows = query(database, f"SELECT {AUDIT_FIELDS} FROM indici_staging.auditlog ORDER BY id")
    assert {r[4] for r in rows} == {"success", "static", "empty", "no_rule", "error"}
    events = _events(prefix)
    assert len(events) == len(rows)
    sensor_stream = "indici_landing_sensor"
    names = (
        "file dataset partition step status run_id rows_read rows_loaded rows_inserted "
        "rows_updated rows_unchanged rows_rejected message"
    ).split()
    expected = sorted(
        json.dumps(
            [
                outcome_log_group(prefix, outcome_of_status(r[4])),
                r[5] or sensor_stream,
                dict(zip(names, r, strict=True)),
            ],
            sort_keys=True,
        )
        for r in rows
    )
    got = sorted(
        json.dumps([group, stream, event], sort_keys=True) for group, stream, event, _ in events
    )
    assert got == expected
    assert {stream for _, stream, _, _ in events} == {outcome.run_id, sensor_stream}
    assert {group for group, *_ in events} == {
        f"{prefix}/{o}" for o in ("success", "empty", "error")
    }
    assert not [raw for *_, raw in events if MARKER in raw]

    metadata = _step_metadata(instance, outcome.run_id)
    sent = {step: m[EVENTS_SENT] for step, m in metadata.items() if EVENTS_SENT in m}
    assert sent["indici__partitioned"] >= 5  # a success per file, the no_rule row
    assert all(m.get(DELIVERY_FAILURES, 0) == 0 for m in metadata.values())
    assert sum(sent.values()) < len(rows)  # the failed rpt step logged its counts instead


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_cloudwatch_leaves_the_load_committed_and_counts_the_failure(
    tmp_path, database, buckets, instance, monkeypatch
):
    landing, partitioned = buckets
    put_s3(landing, "Patients_20261124_020000.parquet", patients([(1, MARKER), (2, "B1")]))
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", f"http://127.0.0.1:{_closed_port()}")
    settings = dataclasses.replace(
        make_settings(tmp_path, database, landing, partitioned), cloudwatch_prefix="/indici"
    )
    defs = build(settings)
    (outcome,) = execute_requests(defs, instance, tick(defs, instance))

    assert outcome.success
    assert query(database, "SELECT patient_id FROM rpt.patients ORDER BY 1") == [(1,), (2,)]
    metadata = _step_metadata(instance, outcome.run_id)
    for step in ("indici__partitioned", "indici__staging__Patients", "indici__rpt__Patients"):
        assert metadata[step][EVENTS_SENT] == 0
        assert metadata[step][DELIVERY_FAILURES] == 1, step
    warnings = [
        entry.user_message
        for entry in instance.all_logs(outcome.run_id)
        if "not delivered" in (entry.user_message or "")
    ]
    assert len(warnings) == 3
    assert all("EndpointConnectionError" in w and MARKER not in w for w in warnings)
