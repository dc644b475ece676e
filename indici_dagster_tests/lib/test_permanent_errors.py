"""Failures no retry can fix fail the step at once, with a clear message."""

import pytest
from dagster import DagsterEventType, DagsterInstance, Failure

from indici_dagster.definitions import INGEST_JOB
from indici_dagster_tests.support.common import build, make_settings


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
    error = str(failure.dagster_event.event_specific_data.error)
    assert "NoSuchBucket" in error and "create it with indici infra apply" in error


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_):
        yield self.data


def refusing_client(code: str, status: int = 403):
    """A real boto3 client whose every request is answered `status` with AWS error `code`."""
    import boto3
    from botocore.awsrequest import AWSResponse

    client = boto3.client("s3")
    body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>no</Message></Error>"

    def refuse(request, **_):
        return AWSResponse(request.url, status, {}, _Body(body.encode()))

    client.meta.events.register("before-send.s3.*", refuse)
    return client


@pytest.mark.parametrize(("code", "status"), [("AccessDenied", 403), ("NoSuchBucket", 404)])
def test_a_refused_copy_to_the_partitioned_store_fails_at_once_naming_the_aws_code(
    tmp_path, moto_endpoint, code, status
):
    from indici_dagster.core.steps.ingest import copy_to_partitioned, landed_files_for
    from indici_dagster.core.storage.local_storage import LocalStorage
    from indici_dagster.core.storage.s3_storage import S3Storage
    from indici_dagster.lib.step_failures import fail_fast_on_permanent_errors
    from indici_dagster_tests.support.common import PATIENTS, TIMEZONE, patients

    landing = LocalStorage(tmp_path / "landing")
    landing.put_bytes("Patients_20261123_020000.parquet", patients([(1, "A")]))
    target = S3Storage("s3://partitioned/indici", refusing_client(code, status))
    files = landed_files_for(landing, ["2026-11-23"], TIMEZONE)

    @fail_fast_on_permanent_errors
    def step() -> None:
        copy_to_partitioned(landing, target, files, {"Patients": PATIENTS}, run_id="r")

    with pytest.raises(Failure) as failure:
        step()
    assert not failure.value.allow_retries
    assert code in failure.value.description or str(status) in failure.value.description
    # a missing bucket names the command that creates it; a refusal points at the policy
    expected = "create it with indici infra apply" if code == "NoSuchBucket" else "IAM policy"
    assert failure.value.description.endswith(expected + " and names" * (code != "NoSuchBucket"))
