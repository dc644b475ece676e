"""`indici_run_failure_sensor`: every failed run of this code location, in the audit log and
(when `INDICI_ALERT_SNS_TOPIC` is set) as one SNS message.

Dagster's run-failure sensor starts at the newest run-status event the first time it is
evaluated and sees only later failures, so it runs by default. It advances its cursor past a
run even when handling it raised, so the audit write comes first and a failed publish is one
logged line, never an exception. A run handled twice (a re-evaluated tick) finds its audit row
and sends nothing again.
"""

from collections.abc import Iterable
from typing import Any

from dagster import (
    DagsterRun,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    SensorDefinition,
    run_failure_sensor,
)

from indici_dagster.core.alerts import failed_runs
from indici_dagster.core.alerts.sns import publish_alert
from indici_dagster.lib.outcomes import OutcomeLogResource, log_delivery
from indici_dagster.lib.resources import WarehouseResource

_RANGE_START = "dagster/asset_partition_range_start"
_RANGE_END = "dagster/asset_partition_range_end"

RUN_FAILURE_SENSOR = "indici_run_failure_sensor"


def _error_classes(error: Any) -> Iterable[str]:
    """The class names of a Dagster `SerializableErrorInfo` and of its causes and contexts;
    never its message."""
    seen = 0
    while error is not None and seen < 10:
        name = getattr(error, "cls_name", None)
        if name:
            yield str(name)
        error = getattr(error, "cause", None) or getattr(error, "context", None)
        seen += 1


def describe_failure(context: RunFailureSensorContext) -> failed_runs.FailedRun:
    """The failed run, its failed steps and their error classes, from Dagster's events."""
    run = context.dagster_run
    steps, classes = [], []
    for event in context.get_step_failure_events():
        if event.step_key:
            steps.append(event.step_key)
        classes += _error_classes(event.step_failure_data.error)
    if not classes:  # the run failed outside its steps (a resource, the run worker)
        data = context.failure_event.event_specific_data
        classes += _error_classes(getattr(data, "error", None))
        reason = getattr(data, "failure_reason", None)
        if not classes and reason is not None:
            classes.append(str(getattr(reason, "value", reason)))
    return failed_runs.failed_run(run.run_id, run.job_name, run.tags, steps, classes)


def summary_request(run: DagsterRun, ingest_job: str) -> RunRequest | None:
    """A run of the audit summary for the dates of a failed ingest run (its summary step was
    skipped when a step before it failed), or None for any other run. Keyed by the failed run,
    so a re-evaluated tick requests nothing twice."""
    if run.job_name != ingest_job:
        return None
    tags = {"indici/trigger": "summary", "indici/after_failed_run": run.run_id}
    key = f"audit_summary:{run.run_id}"
    if run.tags.get(_RANGE_START) and run.tags.get(_RANGE_END):
        tags |= {_RANGE_START: run.tags[_RANGE_START], _RANGE_END: run.tags[_RANGE_END]}
        return RunRequest(run_key=key, tags=tags)
    partition = run.tags.get("dagster/partition")
    return RunRequest(run_key=key, partition_key=partition, tags=tags) if partition else None


def build_run_failure_sensor(
    alert_sns_topic: str | None,
    ui_url: str | None,
    summary_job: Any,  # what define_asset_job returns (its class is not exported)
    ingest_job: str,
) -> SensorDefinition:
    """The run-failure sensor over every job of this code location; with `alert_sns_topic`,
    one SNS message per failed run, linking to the run when `ui_url` is set. The failed run's
    audit row also goes to CloudWatch (`INDICI_CLOUDWATCH_PREFIX`), and a failed `ingest_job`
    run's dates get their audit summary again through `summary_job`."""

    @run_failure_sensor(
        name=RUN_FAILURE_SENSOR,
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        request_job=summary_job,
        description=(
            "Writes every failed run of the pipeline's jobs to the audit log (step run, status "
            "error: run id, job, partition, failed steps, error classes) and, when "
            "INDICI_ALERT_SNS_TOPIC is set, publishes one message per failed run to it; "
            "requests the audit summary of a failed ingest run's dates again."
        ),
    )
    def indici_run_failure_sensor(
        context: RunFailureSensorContext,
        warehouse: WarehouseResource,
        outcomes: OutcomeLogResource,
    ) -> RunRequest | None:
        failed = describe_failure(context)
        entry = failed_runs.audit_entry(failed)
        if not warehouse.get_warehouse().record_failed_run(entry):
            context.log.info(f"run {failed.run_id}: already in the audit log, nothing sent again")
            return None
        context.log.info(f"run {failed.run_id} ({failed.job}) failed: written to the audit log")
        log_delivery(context.log, outcomes.send_entries([entry], failed.run_id))
        if alert_sns_topic is not None:
            subject, body = failed_runs.alert_text(failed, ui_url)
            problem = publish_alert(alert_sns_topic, subject, body)
            if problem is not None:
                context.log.error(f"run {failed.run_id}: {problem}")
            else:
                context.log.info(f"run {failed.run_id}: alert published to the SNS topic")
        return summary_request(context.dagster_run, ingest_job)

    return indici_run_failure_sensor
