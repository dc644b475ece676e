"""`indici_run_failure_sensor`: a run made to fail (a damaged file, through a real Dagster
instance) is audited once and announced once on SNS (a moto server, read from SQS)."""

import dataclasses

import pytest
from dagster import build_run_status_sensor_context, build_sensor_context

from indici_dagster.defs.alerts.run_failures import RUN_FAILURE_SENSOR
from indici_dagster_tests.support.common import (
    build,
    execute_requests,
    make_settings,
    patients,
    put_s3,
    query,
    tick,
)
from indici_dagster_tests.support.sns import missing_topic_arn, received, subscribed_topic

DAMAGED = "Patients_20261124_050000.parquet"
UI = "http://127.0.0.1:3000/"


def failed_run(defs, instance, landing):
    """Land a good and a damaged file of one date and run the date: the run fails."""
    put_s3(landing, "Patients_20261124_020000.parquet", patients([(1, "Secretvalue")]))
    put_s3(landing, DAMAGED, b"not parquet at all")
    (outcome,) = execute_requests(defs, instance, tick(defs, instance))
    assert not outcome.success
    return outcome


def evaluate(defs, instance, outcome):
    """The sensor's function on one failed run, as Dagster calls it for each failure."""
    sensor = defs.resolve_sensor_def(RUN_FAILURE_SENSOR)
    with build_run_status_sensor_context(
        sensor_name=RUN_FAILURE_SENSOR,
        dagster_event=outcome.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=outcome.dagster_run,
        resources={
            "warehouse": defs.resources["warehouse"],
            "outcomes": defs.resources["outcomes"],
        },
    ).for_run_failure() as context:
        return sensor(context)


def run_rows(database):
    return query(
        database,
        "SELECT run_id, partition_key, status, message FROM indici_staging.auditlog "
        "WHERE step = 'run'",
    )


@pytest.fixture
def settings(tmp_path, database, buckets):
    landing, partitioned = buckets
    return make_settings(tmp_path, database, landing, partitioned)


def test_a_failed_run_is_audited_and_announced_once_with_a_link(settings, database, instance):
    topic = subscribed_topic()
    defs = build(dataclasses.replace(settings, alert_sns_topic=topic.topic_arn, ui_url=UI[:-1]))
    outcome = failed_run(defs, instance, settings.landing)
    run_id = outcome.run_id

    request = evaluate(defs, instance, outcome)
    again = evaluate(defs, instance, outcome)  # a re-evaluated tick: nothing written or sent again

    ((audited_run, partition, status, message),) = run_rows(database)
    assert (audited_run, partition, status) == (run_id, "2026-11-24", "error")
    # the damaged file fails the date's rpt step (after its neighbour loaded), with a Failure
    assert message == (
        "run failed: job indici_ingest_job; failed steps: indici__rpt__Patients; errors: Failure"
    )
    ((subject, body),) = received(topic.queue_url)
    assert subject == "indici: run failed (indici_ingest_job, 2026-11-24)"
    assert f"Run: {run_id}" in body and f"Run in Dagster: {UI}runs/{run_id}" in body
    for text in (message, subject, body):
        assert "Secretvalue" not in text and "not parquet at all" not in text
    # the run's own summary step was skipped: the sensor asks for the date's summary again
    assert request.partition_key == "2026-11-24" and request.run_key == f"audit_summary:{run_id}"
    assert again is None


def test_a_failed_runs_date_gets_its_audit_summary_after_all(settings, database, instance):
    from dagster import execute_job, reconstructable  # noqa: F401 - documents the daemon path

    from indici_dagster.definitions import SUMMARY_JOB

    defs = build(settings)
    outcome = failed_run(defs, instance, settings.landing)
    request = evaluate(defs, instance, outcome)

    summary = defs.resolve_job_def(SUMMARY_JOB).execute_in_process(
        instance=instance, partition_key=request.partition_key, tags=request.tags
    )

    assert summary.success
    rows = query(
        database,
        "SELECT dataset, files_received, files_loaded, files_failed FROM rpt.indici_audit_daily "
        "WHERE partition_key = '2026-11-24'",
    )
    assert rows == [("Patients", 2, 1, 1)]


def test_a_missing_topic_is_one_log_line_and_the_audit_row_is_still_written(
    settings, database, instance, capfd
):
    defs = build(dataclasses.replace(settings, alert_sns_topic=missing_topic_arn()))
    outcome = failed_run(defs, instance, settings.landing)

    capfd.readouterr()
    evaluate(defs, instance, outcome)

    assert [row[0] for row in run_rows(database)] == [outcome.run_id]
    logged = capfd.readouterr().err  # the sensor's log (Dagster's handler writes to stderr)
    lines = [line for line in logged.splitlines() if "INDICI_ALERT_SNS_TOPIC" in line]
    assert len(lines) == 1 and "ERROR" in lines[0]
    assert "names an SNS topic that does not exist (NotFound)" in lines[0]


def test_the_sensor_as_the_daemon_evaluates_it_finds_the_failure_after_it_started(
    settings, database, instance
):
    topic = subscribed_topic()
    defs = build(dataclasses.replace(settings, alert_sns_topic=topic.topic_arn))
    sensor = defs.resolve_sensor_def(RUN_FAILURE_SENSOR)

    def sensor_tick(cursor):
        with build_sensor_context(
            instance=instance, cursor=cursor, resources=defs.resources, definitions=defs
        ) as context:
            sensor.evaluate_tick(context)
            return context.cursor

    started = sensor_tick(None)  # the first evaluation starts after the newest run event
    outcome = failed_run(defs, instance, settings.landing)
    after = sensor_tick(started)
    sensor_tick(started)  # the same tick again (its cursor was lost): nothing twice

    assert after != started
    assert [row[0] for row in run_rows(database)] == [outcome.run_id]
    assert len(received(topic.queue_url)) == 1
