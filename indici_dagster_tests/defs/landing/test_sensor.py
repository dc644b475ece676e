"""What the landing sensor requests, tick by tick, against Postgres and a moto S3 server."""

from datetime import date

import pyarrow as pa
import pytest

from indici_dagster.lib.keys import AUDIT_SUMMARY, PARTITIONED, RAW, rpt_key, staging_key
from indici_dagster_tests.support.common import (
    TEST_RULES,
    build,
    execute_requests,
    make_settings,
    parquet_bytes,
    put_s3,
    query,
    s3_keys,
    tick,
)

VACCINATIONS_RULE = """
- dataset: Vaccinations
  primary_key: [VaccinationID]
  columns:
    VaccinationID: bigint
    VaccineCode: text
"""


def patients(rows: list[tuple[int, str]]) -> bytes:
    return parquet_bytes(
        {
            "PatientID": pa.array([r[0] for r in rows], pa.int64()),
            "FamilyName": [r[1] for r in rows],
            "DateOfBirth": pa.array([date(1980, 1, r[0]) for r in rows], pa.date32()),
        }
    )


def vaccinations(rows: list[tuple[int, str]]) -> bytes:
    return parquet_bytes(
        {
            "VaccinationID": pa.array([r[0] for r in rows], pa.int64()),
            "VaccineCode": [r[1] for r in rows],
        }
    )


def rpt_patients(database: str) -> list[tuple]:
    return query(
        database, "SELECT patient_id, family_name, _source_file FROM rpt.patients ORDER BY 1"
    )


def audit(database: str, name: str) -> list[tuple]:
    return query(
        database,
        "SELECT step, status, message FROM indici_staging.auditlog WHERE source_file = %s ORDER BY id",
        (name,),
    )


def ledger(database: str) -> list[tuple]:
    return query(
        database,
        "SELECT source_key, outcome FROM indici_staging.landing_ledger ORDER BY source_key, first_seen_at",
    )


@pytest.fixture
def s3(tmp_path, database, buckets):
    """(landing, partitioned, definitions) for the test rules."""
    landing, partitioned = buckets
    return landing, partitioned, build(make_settings(tmp_path, database, landing, partitioned))


def test_a_resent_file_with_new_content_is_requested_again_and_its_values_win(
    s3, database, instance
):
    landing, _, defs = s3
    name = "Patients_20261124_020000.parquet"
    put_s3(landing, name, patients([(1, "A1"), (2, "B1")]))
    first = tick(defs, instance)
    assert all(r.success for r in execute_requests(defs, instance, first))
    unchanged = tick(defs, instance, first.cursor)
    assert not unchanged.run_requests

    put_s3(landing, name, patients([(1, "A2"), (2, "B1"), (3, "C1")]))
    resent = tick(defs, instance, unchanged.cursor)
    assert [r.partition_key for r in resent.run_requests] == ["2026-11-24"]
    assert resent.run_requests[0].run_key != first.run_requests[0].run_key
    assert all(r.success for r in execute_requests(defs, instance, resent))
    assert not tick(defs, instance, resent.cursor).run_requests

    assert rpt_patients(database) == [(1, "A2", name), (2, "B1", name), (3, "C1", name)]
    assert query(database, "SELECT count(*) FROM indici_staging.patients") == [(3,)]
    rpt_audit = query(
        database,
        "SELECT rows_inserted, rows_updated FROM indici_staging.auditlog WHERE step = 'rpt' ORDER BY id",
    )
    assert rpt_audit == [(2, 0), (1, 1)]


def test_a_file_that_sorts_before_seen_keys_but_lands_later_is_requested(s3, database, instance):
    landing, _, defs = s3
    put_s3(landing, "Patients_20261125_020000.parquet", patients([(1, "new")]))
    first = tick(defs, instance)
    assert [r.partition_key for r in first.run_requests] == ["2026-11-25"]
    assert all(r.success for r in execute_requests(defs, instance, first))

    put_s3(landing, "Patients_20261123_020000.parquet", patients([(1, "old"), (2, "B")]))
    late = tick(defs, instance, first.cursor)
    assert [r.partition_key for r in late.run_requests] == ["2026-11-23"]
    assert all(r.success for r in execute_requests(defs, instance, late))

    # the late but older file adds its new key and never overwrites the newer row
    assert rpt_patients(database) == [
        (1, "new", "Patients_20261125_020000.parquet"),
        (2, "B", "Patients_20261123_020000.parquet"),
    ]


def test_a_dataset_without_a_rule_waits_and_loads_once_a_rule_exists(
    tmp_path, database, buckets, instance, capfd
):
    landing, partitioned = buckets
    name = "Vaccinations_20261124_020000.parquet"
    put_s3(landing, name, vaccinations([(7, "MMR"), (8, "FLU")]))
    defs = build(make_settings(tmp_path, database, landing, partitioned))

    first = tick(defs, instance)
    (request,) = first.run_requests
    assert set(request.asset_selection) == {RAW, PARTITIONED, AUDIT_SUMMARY}
    assert all(r.success for r in execute_requests(defs, instance, first))
    assert s3_keys(partitioned) == [f"dataset=Vaccinations/date=2026-11-24/{name}"]
    assert [(step, status) for step, status, _ in audit(database, name)] == [
        ("partitioned", "success"),
        ("partitioned", "no_rule"),
    ]
    capfd.readouterr()
    for _ in range(2):  # reported tick after tick, and never requested again
        assert not tick(defs, instance).run_requests
        assert "dataset Vaccinations has no rule" in capfd.readouterr().err
        assert ledger(database) == [(name, "no_rule")]

    with_rule = build(
        make_settings(tmp_path, database, landing, partitioned, TEST_RULES + VACCINATIONS_RULE)
    )
    now = tick(with_rule, instance)
    (request,) = now.run_requests
    assert request.partition_key == "2026-11-24"
    assert staging_key("Vaccinations") in request.asset_selection
    assert rpt_key("Vaccinations") in request.asset_selection
    assert all(r.success for r in execute_requests(with_rule, instance, now))

    assert query(
        database, "SELECT vaccination_id, vaccine_code FROM rpt.vaccinations ORDER BY 1"
    ) == [
        (7, "MMR"),
        (8, "FLU"),
    ]
    assert ledger(database) == [(name, "in_run")]  # recorded by the run itself
    assert not tick(with_rule, instance).run_requests
    assert ledger(database) == [(name, "done")]  # settled once Dagster reported the run


def test_a_request_selects_raw_partitioned_and_the_tables_of_datasets_with_rules(s3, instance):
    landing, _, defs = s3
    put_s3(landing, "Patients_20261124_020000.parquet", patients([(1, "A")]))
    lines = {"InvoiceID": [1], "LineNumber": pa.array([1], pa.int32()), "Amount": [5.0]}
    put_s3(landing, "InvoiceLines_20261124013000.parquet", parquet_bytes(lines))
    put_s3(landing, "Mystery_20261124_020000.parquet", patients([(9, "X")]))
    put_s3(landing, "EthnicityCode_20261123_010000.parquet", parquet_bytes({"Code": [1]}))
    put_s3(landing, "Mystery_20261122_020000.parquet", patients([(9, "X")]))

    result = tick(defs, instance)

    selections = {r.partition_key: set(r.asset_selection) for r in result.run_requests}
    assert selections == {
        "2026-11-22": {RAW, PARTITIONED, AUDIT_SUMMARY},
        "2026-11-23": {
            RAW,
            PARTITIONED,
            staging_key("EthnicityCode"),
            rpt_key("EthnicityCode"),
            AUDIT_SUMMARY,
        },
        "2026-11-24": {
            RAW,
            PARTITIONED,
            AUDIT_SUMMARY,
            staging_key("Patients"),
            rpt_key("Patients"),
            staging_key("InvoiceLines"),
            rpt_key("InvoiceLines"),
        },
    }


def test_a_file_dated_before_the_start_date_is_audited_and_never_requested(s3, database, instance):
    landing, partitioned, defs = s3
    name = "Patients_20251231_235959.parquet"
    put_s3(landing, name, patients([(1, "A")]))

    first = tick(defs, instance)
    again = tick(defs, instance, first.cursor)

    assert not first.run_requests
    assert not again.run_requests
    ((step, status, message),) = audit(database, name)  # audited once, not every tick
    assert (step, status) == ("landing", "error")
    assert "2025-12-31" in message and "2026-01-01" in message
    assert ledger(database) == [(name, "out_of_range")]
    assert s3_keys(partitioned) == []
    assert s3_keys(landing) == [name]


def test_executing_a_request_twice_leaves_rpt_identical_and_staging_without_duplicates(
    s3, database, instance
):
    landing, _, defs = s3
    put_s3(landing, "Patients_20261124_020000.parquet", patients([(1, "A1"), (2, "B1"), (1, "A2")]))
    put_s3(landing, "Patients_20261124_150000.parquet", patients([(2, "B2"), (3, "C1")]))
    result = tick(defs, instance)
    rpt_rows = "SELECT t::text FROM rpt.patients t ORDER BY 1"
    staged_rows = (
        "SELECT _source_file, _row_number, patient_id, family_name, date_of_birth, _source_ts "
        "FROM indici_staging.patients ORDER BY 1, 2"
    )

    assert all(r.success for r in execute_requests(defs, instance, result))
    rpt_once, staged_once = query(database, rpt_rows), query(database, staged_rows)
    assert all(r.success for r in execute_requests(defs, instance, result))

    assert query(database, rpt_rows) == rpt_once  # _loaded_at included: not even touched
    assert query(database, staged_rows) == staged_once
    assert len(staged_once) == 5
    assert rpt_patients(database) == [
        (1, "A2", "Patients_20261124_020000.parquet"),
        (2, "B2", "Patients_20261124_150000.parquet"),
        (3, "C1", "Patients_20261124_150000.parquet"),
    ]
    replay = query(
        database,
        "SELECT rows_inserted, rows_updated, rows_unchanged FROM indici_staging.auditlog "
        "WHERE step = 'rpt' ORDER BY id OFFSET 2",
    )
    assert replay == [(0, 0, 3), (0, 0, 2)]
