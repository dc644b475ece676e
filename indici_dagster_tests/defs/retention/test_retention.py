"""Retention, off by default (issue 19 §7), through a real `DagsterInstance`: staging rows of
old files are deleted only once rpt holds them, rpt is untouched and a replayed file gives the
same rpt, old run records are deleted and the landing sensor stays quiet about them, and a
malformed setting is one line naming the variable."""

import dataclasses
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from dagster import DagsterInstance, DagsterRunStatus

from indici_dagster.cli import main
from indici_dagster.core.settings import Settings, SettingsError
from indici_dagster.definitions import INGEST_GROUPS, INGEST_JOB
from indici_dagster.defs.retention import job as retention
from indici_dagster.lib.keys import PARTITIONED, RAW, rpt_key, staging_key
from indici_dagster_tests.support.common import (
    build,
    execute_requests,
    make_settings,
    parquet_bytes,
    patients,
    put_s3,
    query,
    row_counters,
    tick,
)

OLD = "Patients_20261123_020000.parquet"
WAITING = "Patients_20261124_020000.parquet"
RECENT = "Patients_20261206_020000.parquet"
BAD = "Patients_20261123_030000.parquet"
ALL_OF_PATIENTS = [RAW, PARTITIONED, staging_key("Patients"), rpt_key("Patients")]


@pytest.fixture
def instance(tmp_path):
    """A persisted instance, whose runs retention deletes."""
    (tmp_path / "dagster").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster")) as dagster_instance:
        yield dagster_instance


def staged_files(database: str) -> list[tuple]:
    return query(
        database,
        "SELECT _source_file, count(*) FROM indici_staging.patients GROUP BY 1 ORDER BY 1",
    )


def rpt_rows(database: str) -> list[tuple]:
    return query(
        database,
        "SELECT patient_id, family_name, _source_file, _source_ts FROM rpt.patients ORDER BY 1",
    )


def retention_audit(database: str) -> list[tuple]:
    return query(
        database,
        "SELECT dataset, source_file, message FROM indici_staging.auditlog "
        "WHERE step = 'retention' ORDER BY id",
    )


def test_staging_rows_of_old_applied_files_go_rpt_stays_and_a_replay_gives_the_same_rpt(
    tmp_path, database, buckets, instance
):
    landing, partitioned = buckets
    put_s3(landing, OLD, patients([(1, "A"), (2, "B")]))
    put_s3(landing, RECENT, patients([(1, "Z")]))  # newer: patient 1 is Z now
    settings = dataclasses.replace(
        make_settings(tmp_path, database, landing, partitioned), staging_retention_days=7
    )
    defs = build(settings)
    first = tick(defs, instance)
    assert all(r.success for r in execute_requests(defs, instance, first))
    # an old file staged by a run without its rpt step: rpt does not hold it yet
    put_s3(landing, WAITING, patients([(3, "C")]))
    job = defs.resolve_job_def(INGEST_JOB)
    assert job.execute_in_process(
        partition_key="2026-11-24",
        asset_selection=[RAW, PARTITIONED, staging_key("Patients")],
        instance=instance,
    ).success
    waiting = tick(defs, instance, first.cursor)
    assert [r.partition_key for r in waiting.run_requests] == ["2026-11-24"]  # its rpt step
    before = rpt_rows(database)
    assert [(p, n) for p, n, _, _ in before] == [(1, "Z"), (2, "B")]

    pruned = defs.resolve_job_def(retention.RETENTION_JOB).execute_in_process(instance=instance)
    assert pruned.success
    # only the old file rpt holds is gone; the one waiting for rpt and the recent one stay
    assert staged_files(database) == [(WAITING, 1), (RECENT, 1)]
    assert rpt_rows(database) == before
    assert all(kept == counted for kept, counted in row_counters(database).values())
    ((dataset, source_file, message),) = retention_audit(database)
    assert (dataset, source_file) == ("Patients", None)
    assert message.startswith("deleted 2 staging row(s) of 1 file(s)")
    assert "INDICI_STAGING_RETENTION_DAYS=7" in message

    # the waiting file's rpt step still finds its rows
    assert all(r.success for r in execute_requests(defs, instance, waiting))
    after_waiting = rpt_rows(database)
    assert [(p, n) for p, n, _, _ in after_waiting] == [(1, "Z"), (2, "B"), (3, "C")]

    # replaying the pruned file stages it again; rpt is exactly as it was
    replay = job.execute_in_process(
        partition_key="2026-11-23", asset_selection=ALL_OF_PATIENTS, instance=instance
    )
    assert replay.success
    assert rpt_rows(database) == after_waiting
    assert staged_files(database) == [(OLD, 2), (WAITING, 1), (RECENT, 1)]
    # the replayed file is `in_run` until a tick settles it: pruning keeps it till then
    prune = defs.resolve_job_def(retention.RETENTION_JOB)
    assert prune.execute_in_process(instance=instance).success
    assert staged_files(database) == [(OLD, 2), (WAITING, 1), (RECENT, 1)]
    tick(defs, instance, waiting.cursor)  # settles it, and the waiting file rpt now holds
    assert prune.execute_in_process(instance=instance).success
    assert staged_files(database) == [(RECENT, 1)]
    assert rpt_rows(database) == after_waiting


def test_old_runs_are_deleted_and_the_sensor_stays_quiet_about_them(
    tmp_path, database, buckets, instance, capfd, monkeypatch
):
    landing, partitioned = buckets
    put_s3(landing, OLD, patients([(1, "A")]))
    put_s3(landing, BAD, parquet_bytes({"PatientID": pa.array(["x"]), "NHINumber": ["Z"]}))
    settings = dataclasses.replace(
        make_settings(tmp_path, database, landing, partitioned), run_retention_days=30
    )
    defs = build(settings)
    requested = tick(defs, instance)
    (failed,) = execute_requests(defs, instance, requested)
    assert not failed.success
    assert not tick(defs, instance, requested.cursor).run_requests
    ledger = query(
        database, "SELECT file_name, outcome FROM indici_staging.landing_ledger ORDER BY 1"
    )
    assert ledger == [(OLD, "done"), (BAD, "run_failed")]
    assert "needs attention" in capfd.readouterr().err  # said while its run is known

    # 31 days later, as far as the cutoff goes
    monkeypatch.setattr(retention, "cutoff_for", lambda days: datetime.now(UTC))
    pruned = defs.resolve_job_def(retention.RETENTION_JOB).execute_in_process(instance=instance)
    assert pruned.success
    assert instance.get_run_by_id(failed.run_id) is None
    assert instance.get_run_by_id(pruned.run_id) is not None
    ((_, _, message),) = retention_audit(database)
    assert message.startswith("deleted 1 Dagster run record(s)")

    capfd.readouterr()
    for _ in range(3):
        assert not tick(defs, instance, requested.cursor).run_requests
    said = capfd.readouterr().err
    assert "needs attention" not in said and "unknown" not in said
    assert (
        query(database, "SELECT file_name, outcome FROM indici_staging.landing_ledger ORDER BY 1")
        == ledger
    )


def test_only_ended_runs_older_than_the_cutoff_are_deleted(instance):
    def make(status: DagsterRunStatus):
        return instance.create_run_for_job(job_def=_noop_job(), status=status)

    old_done, old_running = make(DagsterRunStatus.SUCCESS), make(DagsterRunStatus.STARTED)
    cutoff = datetime.now(UTC) + timedelta(seconds=1)
    assert retention.delete_old_runs(instance, cutoff, keep="nothing") == 1
    assert instance.get_run_by_id(old_done.run_id) is None
    assert instance.get_run_by_id(old_running.run_id) is not None
    assert retention.delete_old_runs(instance, datetime.now(UTC) - timedelta(days=1), "x") == 0


def _noop_job():
    from dagster import job, op

    @op
    def nothing() -> None:
        pass

    @job
    def noop() -> None:
        nothing()

    return noop


def test_retention_is_off_unless_set_and_its_job_is_never_part_of_the_ingest_runs(
    tmp_path, database, buckets
):
    landing, partitioned = buckets
    settings = make_settings(tmp_path, database, landing, partitioned)
    off = build(settings)
    assert not list(off.schedules or [])
    assert retention.RETENTION_JOB not in {j.name for j in off.resolve_all_job_defs()}
    on = build(dataclasses.replace(settings, run_retention_days=90))
    (schedule,) = on.schedules
    assert schedule.name == retention.RETENTION_SCHEDULE
    assert schedule.job_name == retention.RETENTION_JOB
    assert schedule.execution_timezone == settings.timezone
    ingest = on.resolve_job_def(INGEST_JOB)
    assert "prune_staging" not in {n.name for n in ingest.nodes}
    assert not any(n.name.startswith("prune") for n in ingest.graph.node_dict.values())
    assert set(INGEST_GROUPS) == {"raw", "partitioned", "staging", "rpt", "audit"}


@pytest.mark.parametrize("value", ["0", "-1", "seven", "1.5", "7d"])
@pytest.mark.parametrize("name", ["INDICI_STAGING_RETENTION_DAYS", "INDICI_RUN_RETENTION_DAYS"])
def test_a_malformed_retention_value_is_one_line_naming_the_variable(
    name, value, monkeypatch, capsys
):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({name: value})
    assert str(raised.value) == f"{name} is not valid: expected a whole number of days, 1 or more"
    monkeypatch.setenv(name, value)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  {name}" in out and value not in out.split(name, 1)[1].splitlines()[0]


def test_retention_settings_are_unset_by_default_and_read_when_set():
    assert Settings.from_env({}).staging_retention_days is None
    assert Settings.from_env({}).run_retention_days is None
    read = Settings.from_env(
        {"INDICI_STAGING_RETENTION_DAYS": "30", "INDICI_RUN_RETENTION_DAYS": " 90 "}
    )
    assert (read.staging_retention_days, read.run_retention_days) == (30, 90)
