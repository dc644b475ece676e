"""`indici_freshness_sensor` and the `landing_freshness` check: a feed left quiet (a landed
object older than its rule's limit) gives a WARN check result and one SNS message (a moto
server, read from SQS), and a backfill of an old date does not make it fresh."""

import dataclasses
import time
from decimal import Decimal

import pyarrow as pa
from dagster import AssetCheckKey, AssetCheckSeverity, build_sensor_context

from indici_dagster.definitions import INGEST_JOB
from indici_dagster.defs.alerts.freshness import CHECK_NAME, FRESHNESS_SENSOR, landing_key
from indici_dagster_tests.support.common import (
    TEST_RULES,
    build,
    execute_requests,
    make_settings,
    parquet_bytes,
    patients,
    put_s3,
    tick,
)
from indici_dagster_tests.support.sns import received, subscribed_topic

RULES = TEST_RULES.replace(
    "- dataset: Patients\n", "- dataset: Patients\n  max_file_age_hours: 0.001\n"
).replace("- dataset: EthnicityCode", "- dataset: EthnicityCode\n  max_file_age_hours: 0")
"""Patients may be 3.6 seconds old, InvoiceLines 36 hours; EthnicityCode is never checked."""


def invoice_lines() -> bytes:
    return parquet_bytes(
        {
            "InvoiceID": pa.array([1], pa.int64()),
            "LineNumber": pa.array([1], pa.int32()),
            "Amount": pa.array([Decimal("12.50")], pa.decimal128(12, 2)),
        }
    )


def freshness_tick(defs, instance, cursor=None):
    """Evaluate the freshness sensor once and store its check results, as the daemon does."""
    sensor = defs.resolve_sensor_def(FRESHNESS_SENSOR)
    with build_sensor_context(
        instance=instance, definitions=defs, cursor=cursor, resources=defs.resources
    ) as context:
        result = sensor.evaluate_tick(context)
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    return result


def test_a_quiet_feed_warns_once_and_a_backfill_does_not_make_it_fresh(
    tmp_path, database, buckets, instance
):
    landing, partitioned = buckets
    topic = subscribed_topic()
    settings = make_settings(tmp_path, database, landing, partitioned, RULES)
    defs = build(
        dataclasses.replace(
            settings, alert_sns_topic=topic.topic_arn, ui_url="http://127.0.0.1:3000"
        )
    )
    put_s3(landing, "Patients_20261124_020000.parquet", patients([(1, "A")]))
    put_s3(landing, "InvoiceLines_20261124_020000.parquet", invoice_lines())
    assert all(r.success for r in execute_requests(defs, instance, tick(defs, instance)))
    time.sleep(4)  # the Patients file is now older than its 3.6 seconds

    # a backfill of that (old) date materializes every asset of it again, now
    backfill = defs.resolve_job_def(INGEST_JOB).execute_in_process(
        partition_key="2026-11-24", instance=instance, raise_on_error=False
    )
    assert backfill.success

    # no run evaluated the check: neither the sensor's run nor the backfill of the date
    key = AssetCheckKey(landing_key("Patients"), CHECK_NAME)
    assert instance.event_log_storage.get_latest_asset_check_execution_by_key([key]) == {}

    first = freshness_tick(defs, instance)
    evaluations = {e.asset_key: e for e in first.asset_events}
    assert set(evaluations) == {landing_key("Patients"), landing_key("InvoiceLines")}
    quiet = evaluations[landing_key("Patients")]
    assert (quiet.check_name, quiet.passed, quiet.severity) == (
        CHECK_NAME,
        False,
        AssetCheckSeverity.WARN,
    )
    assert quiet.metadata["max_file_age_hours"].value == 0.001
    assert quiet.metadata["age_hours"].value >= 0.001
    assert "newest_landing" in quiet.metadata
    assert evaluations[landing_key("InvoiceLines")].passed

    ((subject, body),) = received(topic.queue_url)
    assert subject.startswith("indici: Patients feed quiet for")
    assert "Limit: 0.001 h" in body
    assert "http://127.0.0.1:3000/assets/indici/landing/Patients?view=checks" in body

    # evaluated again (every half hour): recorded again, never sent again while still quiet
    again = freshness_tick(defs, instance, first.cursor)
    assert [e.passed for e in again.asset_events if e.asset_key == landing_key("Patients")] == [
        False
    ]
    assert received(topic.queue_url) == []

    # the check shows per dataset in the UI: its latest result is stored on the asset
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])
    assert key in latest

    # a new file lands: fresh again, and a later silence would be announced again
    put_s3(landing, "Patients_20261125_020000.parquet", patients([(2, "B")]))
    fresh = freshness_tick(defs, instance, again.cursor)
    assert [e.passed for e in fresh.asset_events if e.asset_key == landing_key("Patients")] == [
        True
    ]
    assert '"alerted": []' in (fresh.cursor or "")


def test_the_check_is_on_an_external_landing_asset_outside_the_ingest_job(
    tmp_path, database, buckets
):
    landing, partitioned = buckets
    defs = build(make_settings(tmp_path, database, landing, partitioned, RULES))
    graph = defs.resolve_asset_graph()
    job = defs.resolve_job_def(INGEST_JOB)
    for dataset in ("Patients", "InvoiceLines"):
        node = graph.get(landing_key(dataset))
        assert not node.is_materializable and node.group_name == "landing"
        assert AssetCheckKey(landing_key(dataset), CHECK_NAME) in graph.asset_check_keys
        assert landing_key(dataset) not in job.asset_layer.selected_asset_keys
    assert not graph.has(landing_key("EthnicityCode"))  # max_file_age_hours: 0
