"""`indici/audit_summary` in real runs of the ingest job, as the daemon launches them: it runs
after the rpt assets in every sensor-driven run (rpt-only ones too), a late file refreshes its
date's row, a file that failed and then loaded counts once as loaded, and its checks pass on
what it wrote and fail on a summary that no longer matches the audit log."""

import pyarrow as pa
from dagster import AssetCheckSeverity

from indici_dagster.core.landing.plan import DateRequest
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster.definitions import INGEST_GROUPS, INGEST_JOB
from indici_dagster.defs.landing.runs import selection_of
from indici_dagster.defs.tables.audit_summary import (
    FILES_COUNTED,
    TOTALS_RECONCILE,
    evaluate_summary_checks,
)
from indici_dagster.lib.keys import AUDIT_SUMMARY, rpt_key
from indici_dagster_tests.support.common import (
    TIMEZONE,
    build,
    execute_requests,
    make_settings,
    parquet_bytes,
    patients,
    put_s3,
    query,
    tick,
)

DAY = "2026-11-23"
SUMMARY_COLUMNS = (
    "SELECT dataset, files_received, files_loaded, files_empty, files_failed, files_no_rule, "
    "rows_read, rows_loaded, rows_inserted, rows_updated, rows_unchanged, rows_rejected "
    "FROM rpt.indici_audit_daily WHERE partition_key = %s ORDER BY dataset"
)


def _summary(database: str, day: str = DAY) -> list[tuple]:
    return query(database, SUMMARY_COLUMNS, (day,))


def _checks(result) -> dict[str, bool]:
    return {
        e.check_name: e.passed
        for e in result.get_asset_check_evaluations()
        if e.asset_key == AUDIT_SUMMARY
    }


def test_the_summary_joins_every_sensor_run_and_a_late_file_refreshes_its_date(
    tmp_path, database, buckets, instance
):
    landing, partitioned = buckets
    put_s3(landing, "Patients_20261123_020000.parquet", patients([(1, "A"), (2, "B")]))
    put_s3(landing, "Patients_20261123_030000.parquet", parquet_bytes(patients_empty()))
    code = {"EthnicityCode": pa.array([11, 12], pa.int32()), "Description": ["NZ", "AU"]}
    put_s3(landing, "EthnicityCode_20261123_010000.parquet", parquet_bytes(code))
    put_s3(landing, "Visits_20261123_010000.parquet", parquet_bytes({"VisitID": [1]}))
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    assert "audit" in INGEST_GROUPS
    job = defs.resolve_job_def(INGEST_JOB)
    assert AUDIT_SUMMARY in job.asset_layer.executable_asset_keys

    requested = tick(defs, instance)
    assert [AUDIT_SUMMARY in r.asset_selection for r in requested.run_requests] == [True]
    [result] = execute_requests(defs, instance, requested)
    assert result.success
    assert _summary(database) == [
        ("EthnicityCode", 1, 1, 0, 0, 0, 2, 2, 2, 0, 0, 0),
        ("Patients", 2, 1, 1, 0, 0, 2, 2, 2, 0, 0, 0),
        ("Visits", 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0),
    ]
    assert _checks(result) == {FILES_COUNTED: True, TOTALS_RECONCILE: True}

    # a late file of the same date: its run refreshes the date's row, the others stay
    put_s3(landing, "Patients_20261123_090000.parquet", patients([(2, "B2"), (3, "C")]))
    requested = tick(defs, instance, requested.cursor)
    [result] = execute_requests(defs, instance, requested)
    assert result.success
    # the date's run loads its files again: rows are those of each file's newest attempt
    # (020000 now unchanged, 090000 one update and one insert), never added to the first run's
    assert _summary(database)[1] == ("Patients", 3, 2, 1, 0, 0, 4, 4, 1, 1, 2, 0)
    assert _checks(result) == {FILES_COUNTED: True, TOTALS_RECONCILE: True}
    assert query(database, "SELECT count(*) FROM rpt.indici_audit_daily") == [(3,)]


def patients_empty() -> pa.Table:
    """A Patients file with the rule's columns and no rows."""
    from indici_dagster_tests.support.common import patients_table

    return patients_table([])


def test_a_file_that_failed_then_loaded_counts_once_as_loaded(
    tmp_path, database, buckets, instance
):
    landing, partitioned = buckets
    name = "Patients_20261123_020000.parquet"
    put_s3(landing, name, parquet_bytes({"PatientID": ["not a number"]}))
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    requested = tick(defs, instance)
    [failed] = execute_requests(defs, instance, requested)
    assert not failed.success  # rpt fails the run so the broken file is seen

    # a backfill of the date (the summary alone) counts the failure
    job = defs.resolve_job_def(INGEST_JOB)
    backfill = job.execute_in_process(
        partition_key=DAY, asset_selection=[AUDIT_SUMMARY], instance=instance
    )
    assert backfill.success
    assert _summary(database) == [("Patients", 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0)]

    # the vendor re-sends the file, fixed: the same file, once, now loaded
    put_s3(landing, name, patients([(1, "A"), (2, "B"), (3, "C")]))
    requested = tick(defs, instance, requested.cursor)
    [result] = execute_requests(defs, instance, requested)
    assert result.success
    assert _summary(database) == [("Patients", 1, 1, 0, 0, 0, 3, 3, 3, 0, 0, 0)]


def test_rpt_only_runs_the_sensor_requests_include_the_summary():
    request = DateRequest(DAY, {"Patients"}, rpt_only=True)
    assert selection_of(request) == [rpt_key("Patients"), AUDIT_SUMMARY]


def test_the_checks_fail_with_error_severity_when_the_summary_no_longer_matches(
    tmp_path, database, admin_database_dsn, buckets, instance
):
    landing, partitioned = buckets
    put_s3(landing, "Patients_20261123_020000.parquet", patients([(1, "A")]))
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    assert all(r.success for r in execute_requests(defs, instance, tick(defs, instance)))
    warehouse = Warehouse(database, TIMEZONE)
    assert all(r.passed for r in evaluate_summary_checks(warehouse, [DAY]))

    with Warehouse(admin_database_dsn, TIMEZONE).transaction() as cursor:
        cursor.execute("DELETE FROM rpt.indici_audit_daily")
    results = {r.check_name: r for r in evaluate_summary_checks(warehouse, [DAY])}
    assert not results[FILES_COUNTED].passed
    assert not results[TOTALS_RECONCILE].passed
    assert {r.severity for r in results.values()} == {AssetCheckSeverity.ERROR}
    assert results[FILES_COUNTED].metadata["not_counted"].value == {
        f"{DAY} Patients": {"landed": 1, "counted": 0}
    }


def test_a_range_backfill_summarises_each_of_its_dates(tmp_path, database, buckets, instance):
    landing, partitioned = buckets
    put_s3(landing, "Patients_20261123_020000.parquet", patients([(1, "A")]))
    put_s3(landing, "Patients_20261124_020000.parquet", patients([(2, "B"), (3, "C")]))
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    result = defs.resolve_job_def(INGEST_JOB).execute_in_process(
        tags={
            "dagster/asset_partition_range_start": DAY,
            "dagster/asset_partition_range_end": "2026-11-24",
        },
        instance=instance,
    )
    assert result.success
    assert _summary(database) == [("Patients", 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0)]
    assert _summary(database, "2026-11-24") == [("Patients", 1, 1, 0, 0, 0, 2, 2, 2, 0, 0, 0)]
    assert _checks(result) == {FILES_COUNTED: True, TOTALS_RECONCILE: True}
