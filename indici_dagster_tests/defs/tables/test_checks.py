"""The asset checks see what they promise to see, against real staging and rpt tables."""

import io
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import AssetCheckSeverity

from indici_dagster.core.filenames import parse_file_name
from indici_dagster.core.quality.queries import WarehouseQueries
from indici_dagster.core.rules.model import parse_rule
from indici_dagster.core.steps.ingest import FileOutcome, partition_key_of_file
from indici_dagster.defs.tables.checks import (
    COLUMNS_MATCH_RULE,
    COUNTS_RECONCILE,
    KEY_NOT_NULL,
    NHI_VALID,
    PRIMARY_KEY_VALID,
    ROWS_MATCH_FILES,
    evaluate_rpt_checks,
    evaluate_staging_checks,
)
from indici_dagster_tests.support.common import TIMEZONE, parquet_bytes

RULE = parse_rule(
    {
        "dataset": "Patients",
        "primary_key": ["PatientID"],
        "columns": {"PatientID": "bigint", "NHINumber": "text", "FamilyName": "text"},
        "nhi_columns": ["NHINumber"],
    }
)
NAME = "Patients_20261124_020000.parquet"


def load(warehouse, columns: dict) -> list[FileOutcome]:
    landed = parse_file_name(NAME, TIMEZONE)
    result = warehouse.load_file_into_staging(
        RULE,
        landed,
        pq.ParquetFile(io.BytesIO(parquet_bytes(columns))),
        run_id="r",
        source_key=NAME,
        source_etag="e",
    )
    return [FileOutcome(NAME, landed.partition_key, result)]


def upsert(warehouse):
    return warehouse.upsert_window_into_rpt(
        RULE,
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
        run_id="r",
        partition_key_of=lambda file: partition_key_of_file(file, TIMEZONE),
    )


def by_name(results):
    return {r.check_name: r for r in results}


def test_clean_data_passes_every_check(warehouse):
    outcomes = load(
        warehouse,
        {
            "PatientID": pa.array([1, 2], pa.int64()),
            "NHINumber": ["JBX3656", "EPT6335"],  # valid, hand-checked in test_nhi.py
            "FamilyName": ["A", "B"],
        },
    )
    queries = WarehouseQueries(warehouse)
    staging = by_name(evaluate_staging_checks(queries, RULE, outcomes))
    assert {name: r.passed for name, r in staging.items()} == {
        ROWS_MATCH_FILES: True,
        KEY_NOT_NULL: True,
        COLUMNS_MATCH_RULE: True,
        NHI_VALID: True,
    }
    applied = upsert(warehouse)
    rpt = by_name(evaluate_rpt_checks(queries, RULE, applied))
    assert {name: r.passed for name, r in rpt.items()} == {
        COUNTS_RECONCILE: True,
        PRIMARY_KEY_VALID: True,
    }


def test_null_keys_drift_and_bad_nhis_fail_their_checks_with_counts_only(warehouse):
    outcomes = load(
        warehouse,
        {
            "PatientID": pa.array([1, None, 3, None], pa.int64()),
            "NHINumber": ["JBX3657", "ZZZ0016", None, "JBX3656"],  # bad check digit, test NHI
            "Surprise": ["new", "column", "from", "vendor"],  # FamilyName is missing
        },
    )
    results = by_name(evaluate_staging_checks(WarehouseQueries(warehouse), RULE, outcomes))

    null_keys = results[KEY_NOT_NULL]
    assert not null_keys.passed
    assert null_keys.severity == AssetCheckSeverity.ERROR
    assert null_keys.metadata["rows_with_null_key"].value == 2

    drift = results[COLUMNS_MATCH_RULE]
    assert not drift.passed
    assert drift.severity == AssetCheckSeverity.WARN
    assert drift.metadata["columns_not_in_rule"].value == ["surprise"]
    assert drift.metadata["rule_columns_missing_from_files"].value == ["FamilyName"]

    nhi = results[NHI_VALID]
    assert not nhi.passed
    assert nhi.severity == AssetCheckSeverity.WARN
    counts = {k: nhi.metadata[k].value for k in ("invalid", "test", "valid", "missing")}
    assert counts == {"invalid": 1, "test": 1, "valid": 1, "missing": 1}
    text = repr([r.metadata for r in results.values()])
    for value in ("JBX3657", "ZZZ0016", "JBX3656", "vendor"):
        assert value not in text

    # the drift check keeps failing for later files until the rule names the column
    later = by_name(evaluate_staging_checks(WarehouseQueries(warehouse), RULE, []))
    assert not later[COLUMNS_MATCH_RULE].passed


def test_the_key_check_scans_rpt_when_postgres_no_longer_enforces_the_key(
    warehouse, admin_database_dsn
):
    load(warehouse, {"PatientID": pa.array([1, 2], pa.int64()), "FamilyName": ["A", "B"]})
    applied = upsert(warehouse)
    queries = WarehouseQueries(warehouse)
    assert queries.enforced_primary_key("rpt", "patients") == ("patient_id",)
    # someone drops the constraint and writes a duplicate: the check must see it
    import psycopg2

    admin = psycopg2.connect(admin_database_dsn)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("ALTER TABLE rpt.patients DROP CONSTRAINT patients_pkey")
        cursor.execute("INSERT INTO rpt.patients SELECT * FROM rpt.patients WHERE patient_id = 1")
    admin.close()
    assert queries.primary_key_problems(RULE) == (2, 0)
    (result,) = [
        r for r in evaluate_rpt_checks(queries, RULE, applied) if r.check_name == PRIMARY_KEY_VALID
    ]
    assert not result.passed


def test_counts_do_not_reconcile_when_staged_rows_went_missing_before_the_upsert(
    warehouse, admin_database_dsn
):
    load(warehouse, {"PatientID": pa.array([1, 2, 3], pa.int64()), "FamilyName": ["A", "B", "C"]})
    import psycopg2

    admin = psycopg2.connect(admin_database_dsn)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("DELETE FROM indici_staging.patients WHERE patient_id = 2")
    admin.close()
    (result,) = [
        r
        for r in evaluate_rpt_checks(WarehouseQueries(warehouse), RULE, upsert(warehouse))
        if r.check_name == COUNTS_RECONCILE
    ]
    assert not result.passed
    assert result.metadata["unreconciled"].value == {
        NAME: {
            "footer": 3,
            "loaded": 3,
            "staged": 2,
            "inserted_updated_unchanged_rejected": [2, 0, 0, 0],
        }
    }
