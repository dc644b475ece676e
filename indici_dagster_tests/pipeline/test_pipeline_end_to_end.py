"""The whole pipeline through the sensor, against Postgres and a moto S3 server."""

from datetime import datetime
from decimal import Decimal

import pyarrow as pa
from dagster import AssetKey, DagsterEventType

from indici_dagster_tests.support.common import (
    build,
    execute_requests,
    make_settings,
    parquet_bytes,
    patients,
    put_s3,
    query,
    s3_keys,
    tick,
)


def ethnicity(rows: list[tuple[int, str]]) -> bytes:
    return parquet_bytes(
        {
            "EthnicityCode": pa.array([r[0] for r in rows], pa.int32()),
            "Description": [r[1] for r in rows],
        }
    )


def test_sensor_driven_runs_give_exact_rpt_staging_partitioned_and_audit(
    tmp_path, database, buckets, instance
):
    landing, partitioned = buckets
    put_s3(landing, "Patients_20261123_020000.parquet", patients([(1, "A1"), (2, "B1"), (3, "C1")]))
    put_s3(landing, "Patients_20261124_020000.parquet", patients([(2, "B2"), (4, "D1"), (4, "D2")]))
    put_s3(landing, "Patients_20261124_150000.parquet", patients([(1, "A2")]))
    lines = {
        "InvoiceID": pa.array([10, 10], pa.int64()),
        "LineNumber": pa.array([1, 2], pa.int32()),
        "Amount": pa.array([Decimal("5.00"), Decimal("7.50")], pa.decimal128(12, 2)),
    }
    put_s3(landing, "InvoiceLines_20261124013000.parquet", parquet_bytes(lines))
    empty = pa.table(lines).slice(0, 0)
    put_s3(landing, "InvoiceLines_20261124_030000.parquet", parquet_bytes(empty))
    put_s3(
        landing,
        "EthnicityCode_20261123_010000.parquet",
        ethnicity([(11, "NZ European"), (21, "Māori")]),
    )
    put_s3(
        landing,
        "EthnicityCode_20261124_010000.parquet",
        ethnicity([(11, "NZ European"), (21, "Māori"), (31, "Samoan")]),
    )
    put_s3(landing, "Mystery_20261124_020000.parquet", patients([(9, "X")]))
    put_s3(landing, "Patients_2026112.parquet", b"not even parquet")

    defs = build(make_settings(tmp_path, database, landing, partitioned))
    first = tick(defs, instance)
    assert [r.partition_key for r in first.run_requests] == ["2026-11-23", "2026-11-24"]
    # newer date first: the outcome must not depend on execution order
    results = execute_requests(defs, instance, first, order=[1, 0])
    assert all(r.success for r in results)

    put_s3(landing, "Patients_20261123_230000.parquet", patients([(2, "B-late"), (5, "E1")]))
    second = tick(defs, instance, first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["2026-11-23"]
    assert all(r.success for r in execute_requests(defs, instance, second))
    third = tick(defs, instance, second.cursor)
    assert not third.run_requests
    evaluations = [
        entry.dagster_event.event_specific_data
        for run in instance.get_runs()
        for entry in instance.all_logs(run.run_id)
        if entry.dagster_event
        and entry.dagster_event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
    ]
    failed = [(e.asset_key.to_user_string(), e.check_name) for e in evaluations if not e.passed]
    # only the raw layer's WARN check notices the empty file; everything else reconciles
    assert failed == [("indici/raw", "files_readable_and_not_empty")]
    assert {e.check_name for e in evaluations} >= {
        "rows_loaded_match_files",
        "primary_key_not_null",
        "columns_match_rule",
        "primary_key_unique_and_not_null",
        "row_counts_reconcile",
    }

    assert query(
        database,
        "SELECT patient_id, family_name, _source_file, _row_number FROM rpt.patients ORDER BY 1",
    ) == [
        (1, "A2", "Patients_20261124_150000.parquet", 1),
        (2, "B2", "Patients_20261124_020000.parquet", 1),
        (3, "C1", "Patients_20261123_020000.parquet", 3),
        (4, "D2", "Patients_20261124_020000.parquet", 3),
        (5, "E1", "Patients_20261123_230000.parquet", 2),
    ]
    assert query(
        database, "SELECT invoice_id, line_number, amount FROM rpt.invoice_lines ORDER BY 2"
    ) == [
        (10, 1, Decimal("5.00")),
        (10, 2, Decimal("7.50")),
    ]
    assert query(
        database, "SELECT ethnicity_code, description FROM rpt.ethnicity_code ORDER BY 1"
    ) == [(11, "NZ European"), (21, "Māori"), (31, "Samoan")]
    assert query(
        database, "SELECT _source_file, count(*) FROM indici_staging.patients GROUP BY 1 ORDER BY 1"
    ) == [
        ("Patients_20261123_020000.parquet", 3),
        ("Patients_20261123_230000.parquet", 2),
        ("Patients_20261124_020000.parquet", 3),
        ("Patients_20261124_150000.parquet", 1),
    ]
    # the embedded timestamp is NZ local time, whatever the server's zone
    assert query(
        database,
        "SELECT DISTINCT _source_ts AT TIME ZONE 'UTC' FROM indici_staging.patients WHERE _source_file = 'Patients_20261124_150000.parquet'",
    ) == [(datetime(2026, 11, 24, 2, 0),)]
    assert s3_keys(partitioned) == sorted(
        [
            "dataset=EthnicityCode/date=2026-11-23/EthnicityCode_20261123_010000.parquet",
            "dataset=EthnicityCode/date=2026-11-24/EthnicityCode_20261124_010000.parquet",
            "dataset=InvoiceLines/date=2026-11-24/InvoiceLines_20261124013000.parquet",
            "dataset=InvoiceLines/date=2026-11-24/InvoiceLines_20261124_030000.parquet",
            "dataset=Mystery/date=2026-11-24/Mystery_20261124_020000.parquet",
            "dataset=Patients/date=2026-11-23/Patients_20261123_020000.parquet",
            "dataset=Patients/date=2026-11-23/Patients_20261123_230000.parquet",
            "dataset=Patients/date=2026-11-24/Patients_20261124_020000.parquet",
            "dataset=Patients/date=2026-11-24/Patients_20261124_150000.parquet",
        ]
    )
    assert "Patients_2026112.parquet" in s3_keys(landing)  # left where it is

    audit = query(
        database,
        "SELECT source_file, step, status, rows_read, rows_loaded, rows_inserted, rows_updated "
        "FROM indici_staging.auditlog ORDER BY id",
    )

    def rows_for(name: str, step: str) -> list[tuple]:
        return [a[2:] for a in audit if a[0] == name and a[1] == step]

    assert rows_for("Patients_2026112.parquet", "landing") == [("error", None, None, None, None)]
    assert rows_for("Mystery_20261124_020000.parquet", "partitioned") == [
        ("success", None, None, None, None),
        ("no_rule", None, None, None, None),
    ]
    assert rows_for("Mystery_20261124_020000.parquet", "staging") == []
    assert rows_for("InvoiceLines_20261124_030000.parquet", "staging") == [
        ("empty", 0, 0, None, None)
    ]
    assert rows_for("EthnicityCode_20261124_010000.parquet", "staging") == [
        ("static", 3, 3, None, None)
    ]
    assert rows_for("Patients_20261124_020000.parquet", "staging") == [
        ("success", 3, 3, None, None)
    ]
    assert rows_for("Patients_20261124_020000.parquet", "rpt") == [("success", 3, 2, 2, 0)]
    assert rows_for("Patients_20261124_150000.parquet", "rpt") == [("success", 1, 1, 1, 0)]
    # 2026-11-23 ran twice: first only key 3 was new; the re-run changed nothing but added key 5
    assert rows_for("Patients_20261123_020000.parquet", "rpt") == [
        ("success", 3, 1, 1, 0),
        ("success", 3, 0, 0, 0),
    ]
    assert rows_for("Patients_20261123_230000.parquet", "rpt") == [("success", 2, 1, 1, 0)]

    # the UI's row counts: the whole table as of each step's commit, and the partition's rows
    def latest_metadata(key: str) -> dict:
        event = instance.get_latest_materialization_event(AssetKey.from_user_string(key))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    rpt_metadata = latest_metadata("indici/rpt/Patients")
    assert rpt_metadata["dagster/row_count"] == 5
    assert rpt_metadata["dagster/table_name"] == "rpt.patients"
    staging_metadata = latest_metadata("indici/staging/Patients")
    assert staging_metadata["dagster/row_count"] == 9
    assert staging_metadata["dagster/partition_row_count"] == 5  # the re-run 2026-11-23


def test_a_broken_file_fails_the_run_but_its_good_neighbours_reach_rpt(
    tmp_path, database, buckets, instance
):
    landing, partitioned = buckets
    put_s3(landing, "Patients_20261124_020000.parquet", patients([(1, "A1"), (2, "B1")]))
    put_s3(landing, "Patients_20261124_030000.parquet", b"PAR1 this is not really parquet")
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    result = tick(defs, instance)
    (outcome,) = execute_requests(defs, instance, result)

    assert not outcome.success
    assert query(database, "SELECT patient_id FROM rpt.patients ORDER BY 1") == [(1,), (2,)]
    errors = query(
        database,
        "SELECT step, message FROM indici_staging.auditlog WHERE source_file = 'Patients_20261124_030000.parquet' AND status = 'error'",
    )
    assert [e[0] for e in errors] == ["staging"]
    assert "Parquet" in errors[0][1]
    assert query(
        database,
        "SELECT count(*) FROM indici_staging.patients WHERE _source_file = 'Patients_20261124_030000.parquet'",
    ) == [(0,)]
