"""The production instance, deploy/dagster.yaml: Dagster's state in PostgreSQL, kept across
instances (processes), with the warehouse pool enforced through it."""

import os
import subprocess
import sys
import threading
import time

import psycopg2
import pytest
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterRunStatus,
    EventRecordsFilter,
)
from dagster._core.instance.config import dagster_instance_config
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from indici_dagster.definitions import INGEST_JOB
from indici_dagster_tests.support.common import build, make_settings, patients, tick
from indici_dagster_tests.support.deploy import (
    DAGSTER_PASSWORD,
    DEPLOY,
    REPO,
    dagster_pg_database,
    instance_from,
)

POOL = "indici_warehouse"
DATE = "2026-11-23"


@pytest.fixture
def dagster_pg(admin_dsn, monkeypatch):
    yield from dagster_pg_database(admin_dsn, monkeypatch)


def land_patients(tmp_path):
    landing, partitioned = tmp_path / "landing", tmp_path / "partitioned"
    landing.mkdir()
    (landing / "Patients_20261123_020000.parquet").write_bytes(patients([(1, "A1"), (2, "B1")]))
    return str(landing), str(partitioned)


def test_production_instance_file_is_valid_and_pins_what_the_issue_asks():
    config, _ = dagster_instance_config(str(DEPLOY))  # raises on any schema error
    postgres = config["storage"]["postgres"]["postgres_db"]
    assert postgres["scheme"] == "postgresql+psycopg2"
    assert {k: v for k, v in postgres.items() if k != "scheme"} == {
        "hostname": {"env": "DAGSTER_PG_HOST"},
        "port": {"env": "DAGSTER_PG_PORT"},
        "db_name": {"env": "DAGSTER_PG_DB"},
        "username": {"env": "DAGSTER_PG_USER"},
        "password": {"env": "DAGSTER_PG_PASSWORD"},
    }
    assert isinstance(config["concurrency"]["runs"]["max_concurrent_runs"], int)
    assert "pools" not in config["concurrency"]  # pool limits live in the database
    assert config["retention"]["sensor"]["purge_after_days"]
    assert config["telemetry"] == {"enabled": False}


def test_every_asset_that_writes_the_warehouse_is_in_the_warehouse_pool(tmp_path, database):
    landing, partitioned = land_patients(tmp_path)
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    pools = {
        key.to_user_string(): (assets.op.pool, "warehouse" in assets.required_resource_keys)
        for assets in defs.resolve_asset_graph().assets_defs
        if assets.is_executable  # the external indici/landing/<D> assets have no op
        for key in assets.keys
    }
    assert pools["indici/raw"] == (None, False)  # reads the landing only
    writers = {key: pool for key, (pool, writes) in pools.items() if writes}
    assert {"indici/partitioned", "indici/staging/Patients", "indici/rpt/Patients"} <= set(writers)
    assert set(writers.values()) == {POOL}


def test_a_run_through_the_production_instance_is_read_back_by_a_second_instance(
    tmp_path, database, dagster_pg
):
    landing, partitioned = land_patients(tmp_path)
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    home = tmp_path / "dagster_home"

    with instance_from(DEPLOY / "dagster.yaml", home) as first:
        assert isinstance(first.run_storage, PostgresRunStorage)
        assert isinstance(first.event_log_storage, PostgresEventLogStorage)
        assert isinstance(first.schedule_storage, PostgresScheduleStorage)
        (request,) = tick(defs, first).run_requests
        result = defs.resolve_job_def(INGEST_JOB).execute_in_process(
            partition_key=request.partition_key,
            asset_selection=list(request.asset_selection),
            tags=request.tags,
            instance=first,
        )
        assert result.success
        run_id = result.run_id

    with instance_from(DEPLOY / "dagster.yaml", tmp_path / "another_home") as second:
        run = second.get_run_by_id(run_id)
        assert run is not None and run.status == DagsterRunStatus.SUCCESS
        assert run.job_name == INGEST_JOB and run.tags["dagster/partition"] == DATE
        for key in (["indici", "staging", "Patients"], ["indici", "rpt", "Patients"]):
            records = second.fetch_materializations(
                AssetRecordsFilter(asset_key=AssetKey(key), asset_partitions=[DATE]), limit=10
            ).records
            assert [r.run_id for r in records] == [run_id], key
        checks = second.get_event_records(
            EventRecordsFilter(DagsterEventType.ASSET_CHECK_EVALUATION)
        )
        assert checks and {r.event_log_entry.run_id for r in checks} == {run_id}

    # the state is in the database named by DAGSTER_PG_DB, not in either home folder
    dsn = (
        f"host={os.environ['DAGSTER_PG_HOST']} port={os.environ['DAGSTER_PG_PORT']} "
        f"dbname={dagster_pg} user={os.environ['DAGSTER_PG_USER']} "
        f"password={os.environ['DAGSTER_PG_PASSWORD']}"
    )
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT run_id FROM runs")
        assert cursor.fetchall() == [(run_id,)]
    connection.close()


def dagster_cli(home, *args: str) -> subprocess.CompletedProcess:
    """Run the `dagster` CLI from the repo root with DAGSTER_HOME at `home`."""
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "dagster", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def wait_until(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_the_warehouse_pool_limit_set_by_the_cli_holds_back_a_run_writing_the_warehouse(
    tmp_path, database, dagster_pg
):
    landing, partitioned = land_patients(tmp_path)
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    home = tmp_path / "dagster_home"
    instance_from(DEPLOY / "dagster.yaml", home).dispose()

    # the documented command (deploy/README.md), against the production instance
    done = dagster_cli(home, "instance", "concurrency", "set", POOL, "1")
    assert done.returncode == 0, done.stderr[-2000:]

    with instance_from(DEPLOY / "dagster.yaml", home) as instance:
        storage = instance.event_log_storage
        assert storage.get_concurrency_info(POOL).slot_count == 1
        # someone else holds the only slot
        assert storage.claim_concurrency_slot(POOL, "another-run", "another-step").is_claimed
        (request,) = tick(defs, instance).run_requests
        outcome = {}

        def execute() -> None:
            outcome["result"] = defs.resolve_job_def(INGEST_JOB).execute_in_process(
                partition_key=request.partition_key,
                asset_selection=list(request.asset_selection),
                tags=request.tags,
                instance=instance,
                raise_on_error=False,
            )

        runner = threading.Thread(target=execute)
        runner.start()
        try:
            wait_until(
                lambda: storage.get_concurrency_info(POOL).pending_step_count == 1,
                "a step of the run to wait for the pool",
            )
            assert not instance.get_latest_materialization_event(
                AssetKey(["indici", "rpt", "Patients"])
            )
        finally:
            storage.free_concurrency_slot_for_step("another-run", "another-step")
            runner.join(timeout=240)
        assert outcome["result"].success
        assert instance.get_latest_materialization_event(AssetKey(["indici", "rpt", "Patients"]))
        assert storage.get_concurrency_info(POOL).claimed_slots == []


def test_dagster_definitions_validate_accepts_the_project_on_the_production_instance(
    tmp_path, database, dagster_pg, monkeypatch
):
    landing, partitioned = land_patients(tmp_path)
    settings = make_settings(tmp_path, database, landing, partitioned)
    for name, value in {
        "INDICI_LANDING": settings.landing,
        "INDICI_PARTITIONED": settings.partitioned,
        "INDICI_RULES": settings.rules,
        "INDICI_PG_DSN": database,
        "INDICI_START_DATE": settings.start_date,
    }.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "dagster_home"
    instance_from(DEPLOY / "dagster.yaml", home).dispose()
    done = dagster_cli(home, "definitions", "validate", "-w", "workspace.yaml")
    assert done.returncode == 0, done.stderr[-2000:]
    assert DAGSTER_PASSWORD not in done.stdout + done.stderr
