"""Failures no retry can fix fail the step at once, with a clear message."""

from dagster import DagsterEventType, DagsterInstance

from indici_dagster.definitions import INGEST_JOB
from indici_dagster_tests.support import build, make_settings


def test_a_missing_landing_bucket_fails_without_spending_retries(tmp_path, database, buckets):
    _, partitioned = buckets
    defs = build(make_settings(tmp_path, database, "s3://no-such-bucket-here/in", partitioned))
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(INGEST_JOB).execute_in_process(
            instance=instance,
            partition_key="2026-11-24",
            asset_selection=[
                k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[-1] == "raw"
            ],
            raise_on_error=False,
        )
        events = instance.all_logs(result.run_id)
    assert not result.success
    assert not [
        e
        for e in events
        if e.dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_UP_FOR_RETRY
    ]
    failure = next(
        e
        for e in events
        if e.dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_FAILURE
    )
    assert "NoSuchBucket" in str(failure.dagster_event.event_specific_data.error)
