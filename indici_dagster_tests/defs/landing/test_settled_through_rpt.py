"""A file is settled `done` only when it went through rpt: through a real `DagsterInstance`, an
operator re-executing one step of a failed run, a UI run that loads staging without rpt, and a
run tagged by hand with the sensor's run key each leave the files to be processed."""

import dataclasses
from datetime import timedelta

import psycopg2
import pyarrow as pa
import pytest
from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    JobDefinition,
    ReexecutionOptions,
    build_reconstructable_job,
    execute_job,
)
from dagster._core.storage.tags import (
    PARENT_RUN_ID_TAG,
    ROOT_RUN_ID_TAG,
    TAGS_TO_MAYBE_OMIT_ON_RETRY,
)

from indici_dagster.core.settings import Settings
from indici_dagster.core.warehouse.ledger import Outcome
from indici_dagster.core.warehouse.ledger_settle import RunEnd, UnsettledVersion, decide
from indici_dagster.definitions import INGEST_JOB
from indici_dagster.defs.landing import runs as landing_runs
from indici_dagster.lib.keys import AUDIT_SUMMARY, PARTITIONED, RAW, rpt_key, staging_key
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

FIRST = "Patients_20261123_020000.parquet"
EMPTY = "Patients_20261123_140000.parquet"
LINES = "InvoiceLines_20261123_030000.parquet"
RUN_KEY_TAG, SENSOR_TAG = "dagster/run_key", "dagster/sensor_name"


def ingest_job(**settings) -> JobDefinition:
    """The ingest job for these settings: what `build_reconstructable_job` calls."""
    return build(Settings(**settings)).resolve_job_def(INGEST_JOB)


def ledger(database: str) -> list[tuple]:
    return query(
        database,
        "SELECT file_name, outcome FROM indici_staging.landing_ledger ORDER BY file_name",
    )


def rpt_rows(database: str) -> list[tuple]:
    return query(database, "SELECT patient_id, _source_file FROM rpt.patients ORDER BY 1")


@pytest.fixture
def instance(tmp_path):
    """A persisted instance (runs, event log): what re-execution reads its parent run from."""
    (tmp_path / "dagster").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster")) as dagster_instance:
        yield dagster_instance


def test_re_executing_only_raw_of_a_failed_run_settles_nothing_and_from_failure_settles_it(
    tmp_path, database, admin_database_dsn, buckets, instance, capfd
):
    landing, partitioned = buckets
    put_s3(landing, FIRST, patients([(1, "A")]))
    lines = {"InvoiceID": [1], "LineNumber": pa.array([1], pa.int32()), "Amount": [5.0]}
    put_s3(landing, LINES, parquet_bytes(lines))
    settings = make_settings(tmp_path, database, landing, partitioned)
    defs = build(settings)
    requested = tick(defs, instance)
    admin = psycopg2.connect(admin_database_dsn)
    admin.autocommit = True
    with admin.cursor() as cursor:  # a table the pipeline's role may not touch: staging fails
        cursor.execute("CREATE TABLE indici_staging.patients (blocked int)")
    (failed,) = execute_requests(defs, instance, requested)
    assert not failed.success
    assert not tick(defs, instance, requested.cursor).run_requests
    # the run failed, but InvoiceLines went through its own staging and rpt steps
    assert ledger(database) == [(LINES, "done"), (FIRST, "run_failed")]

    # the operator re-executes one step, indici/raw, of the failed run, tagged as the UI's
    # re-execution tags it (`DagsterInstance.create_reexecuted_run`): the parent's tags, run key
    # included, and its parent and root run
    job = build_reconstructable_job(
        __name__, "ingest_job", reconstructable_kwargs=dataclasses.asdict(settings)
    )
    parent = instance.get_run_by_id(failed.run_id)
    tags = {
        **{k: v for k, v in parent.tags.items() if k not in TAGS_TO_MAYBE_OMIT_ON_RETRY},
        PARENT_RUN_ID_TAG: failed.run_id,
        ROOT_RUN_ID_TAG: failed.run_id,
    }
    raw_only = execute_job(
        job,
        instance,
        tags=tags,
        reexecution_options=ReexecutionOptions(failed.run_id, step_selection=["indici__raw"]),
    )
    assert raw_only.success
    assert raw_only.dagster_run.root_run_id == failed.run_id
    assert [e.step_key for e in raw_only.get_step_success_events()] == ["indici__raw"]

    capfd.readouterr()
    assert not tick(defs, instance, requested.cursor).run_requests
    assert ledger(database) == [(LINES, "done"), (FIRST, "run_failed")]  # raw never reaches rpt
    assert f"needs attention: run {failed.run_id}" in capfd.readouterr().err

    with admin.cursor() as cursor:
        cursor.execute("DROP TABLE indici_staging.patients")
    admin.close()
    from_failure = execute_job(
        job,
        instance,
        tags=tags,
        reexecution_options=ReexecutionOptions.from_failure(failed.run_id, instance),
    )
    assert from_failure.success
    assert rpt_rows(database) == [(1, FIRST)]
    assert not tick(defs, instance, requested.cursor).run_requests
    assert ledger(database) == [(LINES, "done"), (FIRST, "done")]


def test_a_ui_run_of_staging_without_rpt_leaves_files_needing_rpt_and_the_sensor_requests_it(
    tmp_path, database, buckets, instance, capfd
):
    landing, partitioned = buckets
    put_s3(landing, FIRST, patients([(1, "A"), (2, "B")]))
    put_s3(landing, EMPTY, patients([]))  # staged without rows: nothing for rpt to apply
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    ui_run = defs.resolve_job_def(INGEST_JOB).execute_in_process(
        partition_key="2026-11-23",
        asset_selection=[RAW, PARTITIONED, staging_key("Patients")],
        instance=instance,
    )
    assert ui_run.success
    assert ledger(database) == [(FIRST, "in_run"), (EMPTY, "in_run")]

    first = tick(defs, instance)
    assert ledger(database) == [(FIRST, "needs_rpt"), (EMPTY, "needs_rpt")]
    (request,) = first.run_requests
    assert request.partition_key == "2026-11-23"
    assert list(request.asset_selection) == [rpt_key("Patients"), AUDIT_SUMMARY]
    assert request.run_key.startswith("2026-11-23:rpt:")
    assert request.tags["indici/trigger"] == "rpt"
    assert ui_run.run_id in request.tags["indici/reason"]
    again = tick(defs, instance, first.cursor)  # a lost tick: the same request, the same key
    assert [r.run_key for r in again.run_requests] == [request.run_key]

    (rpt_run,) = execute_requests(defs, instance, first)
    assert rpt_run.success
    assert rpt_rows(database) == [(1, FIRST), (2, FIRST)]
    capfd.readouterr()
    assert not tick(defs, instance, first.cursor).run_requests
    assert ledger(database) == [(FIRST, "done"), (EMPTY, "done")]
    assert not tick(defs, instance, first.cursor).run_requests
    assert "needs attention" not in capfd.readouterr().err


def test_a_failed_rpt_only_run_needs_attention_until_its_re_execution_applies_the_files(
    tmp_path, database, admin_database_dsn, buckets, instance, capfd
):
    landing, partitioned = buckets
    put_s3(landing, FIRST, patients([(1, "A")]))
    settings = make_settings(tmp_path, database, landing, partitioned)
    defs = build(settings)
    staged = defs.resolve_job_def(INGEST_JOB).execute_in_process(
        partition_key="2026-11-23",
        asset_selection=[RAW, PARTITIONED, staging_key("Patients")],
        instance=instance,
    )
    assert staged.success
    admin = psycopg2.connect(admin_database_dsn)
    admin.autocommit = True
    with admin.cursor() as cursor:  # an rpt table altered by hand: the upsert refuses it
        cursor.execute("CREATE TABLE rpt.patients (patient_id date)")
    requested = tick(defs, instance)
    (failed,) = execute_requests(defs, instance, requested)
    assert not failed.success

    capfd.readouterr()
    assert not tick(defs, instance).run_requests  # not requested again: it needs attention
    assert ledger(database) == [(FIRST, "run_failed")]
    assert f"needs attention: run {failed.run_id}" in capfd.readouterr().err
    assert not tick(defs, instance).run_requests
    assert ledger(database) == [(FIRST, "run_failed")]

    with admin.cursor() as cursor:
        cursor.execute("DROP TABLE rpt.patients")
    admin.close()
    job = build_reconstructable_job(
        __name__, "ingest_job", reconstructable_kwargs=dataclasses.asdict(settings)
    )
    parent = instance.get_run_by_id(failed.run_id)
    retried = execute_job(
        job,
        instance,
        tags={**parent.tags, PARENT_RUN_ID_TAG: failed.run_id, ROOT_RUN_ID_TAG: failed.run_id},
        reexecution_options=ReexecutionOptions.from_failure(failed.run_id, instance),
    )
    assert retried.success
    assert not tick(defs, instance).run_requests
    assert ledger(database) == [(FIRST, "done")]
    assert rpt_rows(database) == [(1, FIRST)]


def test_a_run_tagged_by_hand_with_the_sensors_run_key_does_not_stop_the_files(
    tmp_path, database, buckets, instance, capfd
):
    landing, partitioned = buckets
    put_s3(landing, FIRST, patients([(1, "A")]))
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    (request,) = tick(defs, instance).run_requests  # the key is predictable
    job = defs.resolve_job_def(INGEST_JOB)
    forged = job.execute_in_process(
        partition_key=request.partition_key,
        asset_selection=[RAW],
        tags={RUN_KEY_TAG: request.run_key, SENSOR_TAG: "indici_landing_sensor"},
        instance=instance,
    )
    assert forged.success

    capfd.readouterr()
    result = tick(defs, instance)
    (again,) = result.run_requests
    assert again.run_key == f"{request.run_key}:attempt2"
    assert again.tags["indici/requested_again_after"] == forged.run_id
    assert set(again.asset_selection) == set(request.asset_selection)
    said = capfd.readouterr().err
    assert said.count("requested again under run key") == 1 and forged.run_id in said

    (run,) = execute_requests(defs, instance, result)
    assert run.success
    assert not tick(defs, instance, result.cursor).run_requests
    assert ledger(database) == [(FIRST, "done")]
    assert rpt_rows(database) == [(1, FIRST)]
    assert "requested again" not in capfd.readouterr().err  # said once, not every tick


def test_a_cancelled_run_that_could_not_process_the_files_and_a_forged_rpt_key_are_requested_again(
    tmp_path, database, buckets, instance
):
    landing, partitioned = buckets
    put_s3(landing, FIRST, patients([(1, "A")]))
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    job = defs.resolve_job_def(INGEST_JOB)
    (request,) = tick(defs, instance).run_requests
    # launched by hand with the key for indici/raw alone, and cancelled before it started
    forged = instance.create_run_for_job(
        job_def=job.get_subset(asset_selection={RAW}),
        asset_selection=frozenset({RAW}),
        status=DagsterRunStatus.NOT_STARTED,
        tags={
            RUN_KEY_TAG: request.run_key,
            SENSOR_TAG: "indici_landing_sensor",
            "dagster/partition": request.partition_key,
        },
    )
    instance.report_run_canceled(forged)
    assert instance.get_run_by_id(forged.run_id).status == DagsterRunStatus.CANCELED
    (again,) = tick(defs, instance).run_requests
    assert again.run_key == f"{request.run_key}:attempt2"

    # staged without rpt, then the rpt request's key taken by a run that applied nothing
    staged = job.execute_in_process(
        partition_key="2026-11-23",
        asset_selection=[RAW, PARTITIONED, staging_key("Patients")],
        instance=instance,
    )
    assert staged.success
    (rpt_request,) = tick(defs, instance).run_requests
    assert rpt_request.run_key.startswith("2026-11-23:rpt:")
    job.execute_in_process(
        partition_key="2026-11-23",
        asset_selection=[RAW],
        tags={RUN_KEY_TAG: rpt_request.run_key, SENSOR_TAG: "indici_landing_sensor"},
        instance=instance,
    )
    result = tick(defs, instance)
    (rpt_again,) = result.run_requests
    assert rpt_again.run_key == f"{rpt_request.run_key}:attempt2"
    assert all(r.success for r in execute_requests(defs, instance, result))
    assert not tick(defs, instance).run_requests
    assert ledger(database) == [(FIRST, "done")]


def test_a_run_made_by_hand_with_the_key_and_never_started_spends_the_key_after_an_hour(
    tmp_path, database, buckets, instance, monkeypatch
):
    landing, partitioned = buckets
    put_s3(landing, FIRST, patients([(1, "A")]))
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    (request,) = tick(defs, instance).run_requests
    instance.create_run_for_job(  # created through the API, never submitted
        job_def=defs.resolve_job_def(INGEST_JOB),
        status=DagsterRunStatus.NOT_STARTED,
        tags={RUN_KEY_TAG: request.run_key, SENSOR_TAG: "indici_landing_sensor"},
    )
    assert not tick(defs, instance).run_requests  # waited for, as a stored request is

    monkeypatch.setattr(landing_runs, "NEVER_STARTED_AFTER", timedelta(0))  # an hour later
    (again,) = tick(defs, instance).run_requests
    assert again.run_key == f"{request.run_key}:attempt2"


def version(**changes) -> UnsettledVersion:
    base = UnsettledVersion(
        "landing/P.parquet", "e1", Outcome.IN_RUN, "R", "R", "R", "Patients", "P.parquet", "d"
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("unsettled", "ends", "outcome", "attention"),
    [
        # its rpt upsert applied it: done, even though the run failed on another file
        (version(), {"R": RunEnd.FAILURE}, "done", False),
        # applied by a run Dagster no longer knows: done from the ledger alone
        (version(), {}, "done", False),
        # applied while the run still runs: its rows are in rpt
        (version(), {"R": RunEnd.UNFINISHED}, "done", False),
        # staged, not applied, its rpt upsert did not fail: needs its rpt step
        (version(rpt_run_id=None), {"R": RunEnd.SUCCESS}, "needs_rpt", False),
        (version(rpt_run_id=None), {"R": RunEnd.FAILURE}, "needs_rpt", False),
        (version(rpt_run_id=None), {}, "needs_rpt", False),
        # staged, and the audit log says its own rpt upsert failed: attention
        (version(rpt_run_id=None, rpt_failed=True), {"R": RunEnd.FAILURE}, "run_failed", True),
        # never staged: attention, whatever the run's end (said once if the run is unknown)
        (version(staged_run_id=None, rpt_run_id=None), {"R": RunEnd.SUCCESS}, "run_failed", True),
        (version(staged_run_id=None, rpt_run_id=None), {"R": RunEnd.FAILURE}, "run_failed", True),
        (version(staged_run_id=None, rpt_run_id=None), {}, "run_failed", True),
        # already run_failed: stays, said every tick while its run is known, then no more
        (
            version(outcome=Outcome.RUN_FAILED, staged_run_id=None, rpt_run_id=None),
            {"R": RunEnd.FAILURE},
            None,
            True,
        ),
        (version(outcome=Outcome.RUN_FAILED, staged_run_id=None, rpt_run_id=None), {}, None, False),
        # still running
        (version(rpt_run_id=None), {"R": RunEnd.UNFINISHED}, None, False),
        (
            version(run_id="A", rpt_run_id=None),
            {"A": RunEnd.SUCCESS, "R": RunEnd.UNFINISHED},
            None,
            False,
        ),
    ],
)
def test_settling_judges_each_version_by_its_own_load(unsettled, ends, outcome, attention):
    decision = decide(unsettled, ends)
    assert (decision.outcome and str(decision.outcome)) == outcome
    assert bool(decision.attention) is attention
