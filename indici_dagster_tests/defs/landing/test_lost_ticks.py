"""A lost sensor tick loses nothing: the sensor records no hand-over, run keys are a function of
the date and the object versions, runs record what they processed, failed runs stay visible."""

import uuid

import boto3
import pytest
from dagster import DagsterEventType, DagsterRunStatus

from indici_dagster.cli import main as indici
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster.definitions import INGEST_JOB
from indici_dagster_tests.support.common import (
    build,
    execute_requests,
    make_settings,
    patients,
    put_s3,
    query,
    store_requests,
    tick,
)

FIRST = "Patients_20261123_020000.parquet"
SECOND = "Patients_20261124_020000.parquet"


def ledger(database: str) -> list[tuple]:
    return query(
        database,
        "SELECT file_name, outcome FROM indici_staging.landing_ledger ORDER BY file_name",
    )


def keys(result) -> list[tuple[str, str]]:
    return [(r.partition_key, r.run_key) for r in result.run_requests or []]


def test_a_lost_tick_is_requested_again_under_the_same_run_keys_and_its_files_reach_rpt(
    tmp_path, database, buckets, instance
):
    landing, partitioned = buckets
    put_s3(landing, FIRST, patients([(1, "A")]))
    put_s3(landing, SECOND, patients([(2, "B")]))
    defs = build(make_settings(tmp_path, database, landing, partitioned))

    lost = tick(defs, instance)  # the daemon never receives this result
    assert ledger(database) == []  # nothing recorded as handed over
    again = tick(defs, instance)  # evaluated again from the same (empty) cursor

    assert keys(again) == keys(lost)
    assert [p for p, _ in keys(again)] == ["2026-11-23", "2026-11-24"]
    assert all(r.success for r in execute_requests(defs, instance, again))
    assert query(database, "SELECT patient_id FROM rpt.patients ORDER BY 1") == [(1,), (2,)]
    assert ledger(database) == [(FIRST, "in_run"), (SECOND, "in_run")]  # written by the runs

    settled = tick(defs, instance, again.cursor)
    assert not settled.run_requests
    assert ledger(database) == [(FIRST, "done"), (SECOND, "done")]


def test_a_result_stored_twice_makes_one_run_per_key_through_the_daemons_run_key_check(
    tmp_path, database, buckets, instance
):
    landing, partitioned = buckets
    put_s3(landing, FIRST, patients([(1, "A")]))
    defs = build(make_settings(tmp_path, database, landing, partitioned))

    first = tick(defs, instance)
    second = tick(defs, instance)  # the first result reached the daemon late, or twice
    assert keys(first) == keys(second)

    created = store_requests(defs, instance, first)  # the daemon's own run-key look-up
    assert len(created) == 1
    assert store_requests(defs, instance, second) == []  # found by run key: not created again
    assert len(instance.get_runs()) == 1
    # a stored, unfinished request is not requested again by the sensor either
    assert not tick(defs, instance, first.cursor).run_requests


def test_a_run_that_fails_leaves_its_files_needing_attention_until_a_backfill_processes_them(
    tmp_path, database, buckets, moto_endpoint, instance, capfd, monkeypatch
):
    landing, _ = buckets
    missing = f"missing-{uuid.uuid4().hex[:10]}"
    put_s3(landing, FIRST, patients([(1, "A")]))
    defs = build(make_settings(tmp_path, database, landing, f"s3://{missing}/indici"))

    requested = tick(defs, instance)
    (failed,) = execute_requests(defs, instance, requested)
    assert not failed.success
    events = instance.all_logs(failed.run_id)
    assert not [e for e in events if e.dagster_event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    (failure,) = [e for e in events if e.dagster_event_type == DagsterEventType.STEP_FAILURE]
    assert "NoSuchBucket" in str(failure.dagster_event.event_specific_data.error)

    capfd.readouterr()
    for _ in range(2):  # reported tick after tick, never requested again, never marked done
        assert not tick(defs, instance, requested.cursor).run_requests
        assert f"needs attention: run {failed.run_id}" in capfd.readouterr().err
        assert ledger(database) == [(FIRST, "run_failed")]

    monkeypatch.setenv("INDICI_PG_DSN", database)
    assert indici(["audit", FIRST]) == 0
    printed = capfd.readouterr().out
    assert "run_failed" in printed and "NEEDS ATTENTION" in printed and failed.run_id in printed

    # the bucket exists now; a backfill of the date (no sensor, no run key) processes the file
    boto3.client("s3").create_bucket(Bucket=missing)
    (request,) = requested.run_requests
    backfill = defs.resolve_job_def(INGEST_JOB).execute_in_process(
        partition_key=request.partition_key,
        asset_selection=list(request.asset_selection),
        instance=instance,
    )
    assert backfill.success
    assert query(database, "SELECT patient_id FROM rpt.patients") == [(1,)]
    assert not tick(defs, instance, requested.cursor).run_requests
    assert ledger(database) == [(FIRST, "done")]
    assert instance.get_run_by_id(failed.run_id).status == DagsterRunStatus.FAILURE


def test_a_missing_landing_location_is_an_error_on_every_tick(
    tmp_path, database, buckets, instance
):
    _, partitioned = buckets
    for landing, expected in [
        (str(tmp_path / "no-such-folder"), "is missing"),
        (
            f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/in",
            "does not exist: create it with indici infra apply",
        ),
    ]:
        defs = build(make_settings(tmp_path, database, landing, partitioned))
        for _ in range(2):
            with pytest.raises(Exception, match=expected):
                tick(defs, instance)


def test_the_catalog_is_ensured_once_per_process_not_on_every_tick(
    tmp_path, database, buckets, instance, monkeypatch
):
    landing, partitioned = buckets
    calls = []
    ensure = Warehouse.ensure_catalog
    monkeypatch.setattr(Warehouse, "ensure_catalog", lambda self: calls.append(ensure(self)))
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    for _ in range(3):
        tick(defs, instance)
    assert len(calls) == 1


def test_a_failed_run_whose_re_execution_succeeds_is_settled_done(
    tmp_path, database, admin_database_dsn, buckets, instance
):
    import psycopg2

    landing, partitioned = buckets
    put_s3(landing, FIRST, patients([(1, "A")]))
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    requested = tick(defs, instance)
    admin = psycopg2.connect(admin_database_dsn)
    admin.autocommit = True
    with admin.cursor() as cursor:  # a table the pipeline's role may not touch: staging fails
        cursor.execute("CREATE TABLE indici_staging.patients (blocked int)")

    (failed,) = execute_requests(defs, instance, requested)
    assert not failed.success
    assert ledger(database) == [(FIRST, "in_run")]  # partitioned ran; the run failed later
    assert not tick(defs, instance, requested.cursor).run_requests
    assert ledger(database) == [(FIRST, "run_failed")]

    with admin.cursor() as cursor:
        cursor.execute("DROP TABLE indici_staging.patients")
    admin.close()
    (request,) = requested.run_requests
    retried = defs.resolve_job_def(INGEST_JOB).execute_in_process(
        partition_key=request.partition_key,
        # a re-execution from failure: only the failed steps, under the failed run's root
        asset_selection=[k for k in request.asset_selection if k.path[1] in ("staging", "rpt")],
        tags={"dagster/root_run_id": failed.run_id, "dagster/parent_run_id": failed.run_id},
        instance=instance,
    )
    assert retried.success
    assert query(database, "SELECT patient_id FROM rpt.patients") == [(1,)]
    assert not tick(defs, instance, requested.cursor).run_requests
    assert ledger(database) == [(FIRST, "done")]


def test_a_run_that_copies_files_without_loading_them_leaves_them_new_work(
    tmp_path, database, buckets, instance
):
    landing, partitioned = buckets
    put_s3(landing, FIRST, patients([(1, "A")]))
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    graph_keys = defs.resolve_asset_graph().get_all_asset_keys()
    copy_only = defs.resolve_job_def(INGEST_JOB).execute_in_process(
        partition_key="2026-11-23",
        asset_selection=[k for k in graph_keys if k.path[1] in ("raw", "partitioned")],
        instance=instance,
    )
    assert copy_only.success
    assert ledger(database) == []  # copied, not loaded: not recorded as processed

    (request,) = tick(defs, instance).run_requests
    assert request.partition_key == "2026-11-23"
