"""Concurrent runs: the same date twice at once, and adjacent dates of one dataset at once.

The overlap is made real, not hoped for: the test holds the table's pipeline lock while the runs
start, waits until every run's staging step is queued on it (pg_stat_activity), then lets go.
"""

import contextlib
from concurrent.futures import ThreadPoolExecutor

import boto3
from dagster import DagsterInstance
from dagster._core.definitions.run_request import RunRequest

from indici_dagster.core.storage.s3_storage import parse_s3_url
from indici_dagster.definitions import INGEST_JOB
from indici_dagster_tests.support.common import build, make_settings, patients, query, tick
from indici_dagster_tests.support.sabotage import (
    connect_admin,
    holding_table_lock,
    release_table_lock,
    wait_for_backends,
)

EARLY, LATE = "Patients_20261124_020000.parquet", "Patients_20261124_150000.parquet"
PREVIOUS_DAY = "Patients_20261123_020000.parquet"


def land(moto_endpoint: str, url: str, name: str, data: bytes) -> None:
    bucket, prefix = parse_s3_url(url)
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    client.put_object(Bucket=bucket, Key=prefix + name, Body=data)


def execute(defs, request: RunRequest):
    """One run of the request in this thread, on an instance of its own."""
    with DagsterInstance.ephemeral() as instance:
        return defs.resolve_job_def(INGEST_JOB).execute_in_process(
            partition_key=request.partition_key,
            asset_selection=list(request.asset_selection),
            tags=request.tags,
            instance=instance,
            raise_on_error=False,
        )


def run_at_once(defs, requests: list[RunRequest], admin_dsn: str) -> list:
    """Start every run while holding the Patients lock; release once all of them queue on it.

    The runs are started one by one, each only once the previous one is queued, so that the
    lock is granted in that order (Postgres queues conflicting waiters first come, first served).
    """
    with (
        holding_table_lock(admin_dsn, "patients") as lock,
        contextlib.closing(connect_admin(admin_dsn)) as admin,
        ThreadPoolExecutor(len(requests)) as pool,
    ):
        futures = []
        for count, request in enumerate(requests, start=1):
            futures.append(pool.submit(execute, defs, request))
            wait_for_backends(admin, count=count, waiting_for="pipeline lock", timeout=60)
        release_table_lock(lock, "patients")
        return [f.result(timeout=120) for f in futures]


def rpt_patients(dsn: str) -> list[tuple]:
    return query(
        dsn, "SELECT patient_id, family_name, _source_file FROM rpt.patients ORDER BY patient_id"
    )


def staged(dsn: str) -> list[tuple]:
    """(file, rows, distinct row numbers) per file in staging."""
    return query(
        dsn,
        "SELECT _source_file, count(*), count(DISTINCT _row_number) FROM indici_staging.patients "
        "GROUP BY 1 ORDER BY 1",
    )


def no_duplicate_staged_rows(dsn: str) -> bool:
    return not query(
        dsn,
        "SELECT _source_file, _row_number FROM indici_staging.patients "
        "GROUP BY 1, 2 HAVING count(*) > 1",
    )


def test_two_runs_of_the_same_date_at_once_both_succeed_without_duplicates_and_rpt_is_exact(
    tmp_path, database, admin_database_dsn, buckets, moto_endpoint, instance
):
    landing, partitioned = buckets
    land(moto_endpoint, landing, EARLY, patients([(1, "A1"), (2, "B1"), (3, "C1")]))
    land(moto_endpoint, landing, LATE, patients([(2, "B2"), (4, "D1")]))
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    (request,) = tick(defs, instance).run_requests

    results = run_at_once(defs, [request, request], admin_database_dsn)

    assert [r.success for r in results] == [True, True]
    assert results[0].run_id != results[1].run_id
    assert no_duplicate_staged_rows(database)
    assert staged(database) == [(EARLY, 3, 3), (LATE, 2, 2)]
    # what one run alone gives
    assert rpt_patients(database) == [
        (1, "A1", EARLY),
        (2, "B2", LATE),
        (3, "C1", EARLY),
        (4, "D1", LATE),
    ]
    # the run that upserted second found everything in place and changed nothing
    rpt_audit = query(
        database,
        "SELECT run_id, sum(rows_inserted), sum(rows_updated) FROM indici_staging.auditlog "
        "WHERE step = 'rpt' GROUP BY run_id ORDER BY min(id)",
    )
    assert [row[1:] for row in rpt_audit] == [(4, 0), (0, 0)]
    assert {row[0] for row in rpt_audit} == {r.run_id for r in results}


def test_runs_of_adjacent_dates_at_once_give_the_sequential_rpt(
    tmp_path, database, admin_database_dsn, buckets, moto_endpoint, instance
):
    landing, partitioned = buckets
    land(moto_endpoint, landing, PREVIOUS_DAY, patients([(1, "A1"), (2, "B1"), (3, "C1")]))
    land(moto_endpoint, landing, EARLY, patients([(1, "A2"), (4, "D2")]))
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    requests = tick(defs, instance).run_requests
    assert [r.partition_key for r in requests] == ["2026-11-23", "2026-11-24"]

    # the newer date gets the lock first: the older file arrives after the newer one
    results = run_at_once(defs, [requests[1], requests[0]], admin_database_dsn)

    assert [r.success for r in results] == [True, True]
    assert no_duplicate_staged_rows(database)
    assert staged(database) == [(PREVIOUS_DAY, 3, 3), (EARLY, 2, 2)]
    # applying 2026-11-23 then 2026-11-24 one after the other gives exactly this
    assert rpt_patients(database) == [
        (1, "A2", EARLY),
        (2, "B1", PREVIOUS_DAY),
        (3, "C1", PREVIOUS_DAY),
        (4, "D2", EARLY),
    ]
