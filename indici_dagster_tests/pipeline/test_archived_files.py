"""An archived file (S3 `InvalidObjectState`) fails alone: its neighbours load, its audit row
says it is archived and names the `indici restore` command, it is not retried as an
infrastructure failure, and after the restore a replay of the date loads it."""

from datetime import date

import boto3
from dagster import DagsterEventType

from indici_dagster.core.landing.restore import RestoreRange, restore_range
from indici_dagster.core.steps.ingest import load_partitions_into_staging
from indici_dagster.core.storage.open_storage import open_storage
from indici_dagster.core.storage.s3_storage import parse_s3_url
from indici_dagster.definitions import INGEST_JOB
from indici_dagster_tests.support.common import (
    PATIENTS,
    TIMEZONE,
    build,
    execute_requests,
    make_settings,
    patients,
    put_s3,
    query,
    tick,
)

GOOD, COLD = "Patients_20261124_020000.parquet", "Patients_20261124_030000.parquet"
COMMAND = "indici restore --from 2026-11-24 --to 2026-11-24 --dataset Patients"


def _put_archived(url: str, key: str, data: bytes) -> None:
    bucket, prefix = parse_s3_url(url)
    boto3.client("s3").put_object(
        Bucket=bucket, Key=prefix + key, Body=data, StorageClass="GLACIER"
    )


def test_an_archived_landed_file_fails_alone_and_loads_after_restore_and_replay(
    tmp_path, database, buckets, instance
):
    landing, partitioned = buckets
    put_s3(landing, GOOD, patients([(1, "A1"), (2, "B1")]))
    _put_archived(landing, COLD, patients([(3, "C1")]))
    settings = make_settings(tmp_path, database, landing, partitioned)
    defs = build(settings)

    first = tick(defs, instance)
    (outcome,) = execute_requests(defs, instance, first)

    assert query(database, "SELECT patient_id FROM rpt.patients ORDER BY 1") == [(1,), (2,)]
    errors = query(
        database,
        "SELECT step, message FROM indici_staging.auditlog "
        "WHERE source_file = %s AND status = 'error'",
        (COLD,),
    )
    assert [step for step, _ in errors] == ["partitioned"]
    assert "archived in S3 (ObjectNotInActiveTierError)" in errors[0][1]
    assert COMMAND in errors[0][1]
    events = instance.all_logs(outcome.run_id)
    # not retried as an infrastructure failure: no step restarted
    assert not [e for e in events if e.dagster_event_type == DagsterEventType.STEP_RESTARTED]
    checks = {
        e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data
        for e in events
        if e.dagster_event_type == DagsterEventType.ASSET_CHECK_EVALUATION
    }
    assert checks["no_archived_files"].passed is False
    tick(defs, instance, first.cursor)  # settles the run's files: the archived one needs attention
    outcomes = query(
        database, "SELECT file_name, outcome FROM indici_staging.landing_ledger ORDER BY 1"
    )
    assert outcomes == [(GOOD, "done"), (COLD, "run_failed")]

    report = restore_range(
        open_storage(landing),
        open_storage(partitioned),
        RestoreRange(date(2026, 11, 24), date(2026, 11, 24), "Patients"),
        timezone=TIMEZONE,
        days=7,
        tier="Standard",
    )
    assert report.requested == [f"{landing}/{COLD}"]
    replay = defs.resolve_job_def(INGEST_JOB).execute_in_process(
        partition_key="2026-11-24", instance=instance, raise_on_error=False
    )
    assert replay.success
    assert query(database, "SELECT patient_id FROM rpt.patients ORDER BY 1") == [(1,), (2,), (3,)]


def test_an_archived_partitioned_copy_fails_alone_in_staging(database, buckets, warehouse):
    _, partitioned = buckets
    folder = "dataset=Patients/date=2026-11-24/"
    put_s3(partitioned, folder + GOOD, patients([(1, "A1")]))
    _put_archived(partitioned, folder + COLD, patients([(3, "C1")]))

    outcomes = load_partitions_into_staging(
        open_storage(partitioned), warehouse, PATIENTS, ["2026-11-24"], run_id="r1"
    )

    by_file = {o.file_name: o for o in outcomes}
    assert by_file[GOOD].result is not None and by_file[GOOD].result.rows_loaded == 1
    assert by_file[COLD].result is None
    assert "archived in S3 (InvalidObjectState)" in by_file[COLD].error
    assert COMMAND in by_file[COLD].error
    assert query(
        database,
        "SELECT step, status FROM indici_staging.auditlog WHERE source_file = %s",
        (COLD,),
    ) == [("staging", "error")]
