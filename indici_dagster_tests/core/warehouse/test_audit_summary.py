"""The daily audit summary's counting, on a real PostgreSQL: each file once by its newest outcome,
rows from its newest attempt; re-summarising a date replaces its rows; the recount the checks
use agrees with it, and catches a summary that no longer matches the audit log."""

import datetime as dt

import psycopg2.extensions
import pytest
from psycopg2 import sql

from indici_dagster.core.quality.audit_reconcile import reconcile
from indici_dagster.core.warehouse import audit_summary, ledger
from indici_dagster.core.warehouse.audit import AuditEntry, Status, Step
from indici_dagster.core.warehouse.catalog import LockTimeoutError
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster.core.warehouse.ledger import LedgerEntry, Outcome
from indici_dagster.core.warehouse.owner_ddl import OwnerFunctionsMissingError
from indici_dagster_tests.support.common import query
from indici_dagster_tests.support.sabotage import holding_table_lock

DAY, OTHER_DAY = "2026-11-23", "2026-11-24"


def _audit(step, status, name, dataset="Patients", day=DAY, **counts) -> AuditEntry:
    return AuditEntry(step, status, name, dataset, day, run_id="r1", **counts)


def _loaded(name, rows, inserted, updated=0, unchanged=0, dataset="Patients", day=DAY):
    return [
        _audit(Step.PARTITIONED, Status.SUCCESS, name, dataset, day),
        _audit(Step.STAGING, Status.SUCCESS, name, dataset, day, rows_read=rows, rows_loaded=rows),
        _audit(
            Step.RPT,
            Status.SUCCESS,
            name,
            dataset,
            day,
            rows_read=rows,
            rows_loaded=inserted + updated,
            rows_inserted=inserted,
            rows_updated=updated,
            rows_unchanged=unchanged,
            rows_rejected=rows - inserted - updated - unchanged,
        ),
    ]


def _landed(warehouse: Warehouse, *files: tuple[str, str, str, Outcome]) -> None:
    with warehouse.transaction() as cursor:
        ledger.record(
            cursor,
            [
                LedgerEntry(f"in/{name}", f"etag-{name}", 1, outcome, name, dataset, day)
                for name, dataset, day, outcome in files
            ],
        )


def _rows(warehouse: Warehouse, day: str = DAY) -> dict[str, tuple]:
    with warehouse.connection() as connection, connection.cursor() as cursor:
        return {r.dataset: r for r in audit_summary.stored_summary(cursor, [day])}


def _populate(warehouse: Warehouse) -> None:
    """One date: a loaded file, an empty one, one that failed then loaded, one that loaded then
    failed, one without a rule, one copied but not yet loaded, one only in the ledger, and a
    static file; another date with one loaded file."""
    entries = _loaded("Patients_20261123_010000.parquet", 5, 3, 1, 1)
    entries.append(
        _audit(
            Step.STAGING,
            Status.EMPTY,
            "Patients_20261123_020000.parquet",
            rows_read=0,
            rows_loaded=0,
        )
    )
    retried = "Patients_20261123_030000.parquet"
    entries += [
        _audit(Step.STAGING, Status.ERROR, retried, rows_read=7, rows_loaded=0),
        *_loaded(retried, 4, 4),
    ]
    broke = "Patients_20261123_040000.parquet"
    entries += [
        *_loaded(broke, 9, 9),
        _audit(Step.STAGING, Status.SUCCESS, broke, rows_read=6, rows_loaded=6),
        _audit(Step.RPT, Status.ERROR, broke, rows_loaded=0, message="rpt upsert failed"),
    ]
    # loaded once, then staged again by a later run whose rpt step has not run yet: not yet
    # loaded, with the new attempt's rows and none of the earlier rpt counts
    restaged = "Patients_20261123_080000.parquet"
    entries += [
        *_loaded(restaged, 3, 3),
        _audit(Step.STAGING, Status.SUCCESS, restaged, rows_read=3, rows_loaded=3),
    ]
    entries += [
        _audit(Step.PARTITIONED, Status.SUCCESS, "Visits_20261123_010000.parquet", "Visits"),
        _audit(Step.PARTITIONED, Status.NO_RULE, "Visits_20261123_010000.parquet", "Visits"),
        _audit(Step.PARTITIONED, Status.SUCCESS, "Patients_20261123_050000.parquet"),
        _audit(Step.LANDING, Status.ERROR, "junk.parquet", None),
    ]
    code = "EthnicityCode_20261123_010000.parquet"
    entries += [
        _audit(Step.STAGING, Status.STATIC, code, "EthnicityCode", rows_read=2, rows_loaded=2),
        _audit(
            Step.RPT,
            Status.STATIC,
            code,
            "EthnicityCode",
            rows_read=2,
            rows_loaded=2,
            rows_inserted=2,
            rows_updated=0,
            rows_unchanged=0,
            rows_rejected=0,
        ),
    ]
    entries += _loaded("Patients_20261124_010000.parquet", 1, 1, day=OTHER_DAY)
    for entry in entries:  # one row at a time: the ids give the order of attempts
        warehouse.write_audit([entry])
    _landed(
        warehouse,
        ("Patients_20261123_010000.parquet", "Patients", DAY, Outcome.DONE),
        ("Patients_20261123_040000.parquet", "Patients", DAY, Outcome.RUN_FAILED),
        ("Patients_20261123_060000.parquet", "Patients", DAY, Outcome.IN_RUN),
        ("Visits_20261123_010000.parquet", "Visits", DAY, Outcome.NO_RULE),
    )


def test_each_file_counts_once_by_its_newest_outcome_with_rows_of_its_newest_attempt(
    warehouse: Warehouse,
):
    _populate(warehouse)
    written = warehouse.replace_audit_summary([DAY])
    assert [(str(r.partition_key), r.dataset) for r in written] == [
        (DAY, "EthnicityCode"),
        (DAY, "Patients"),
        (DAY, "Visits"),
    ]
    rows = _rows(warehouse)
    patients = rows["Patients"]
    # 01 loaded, 02 empty, 03 failed then loaded, 04 loaded then failed, 05 copied only,
    # 06 only in the ledger, 08 staged again: received 7, loaded 2, empty 1, failed 1, 3 not
    # yet loaded
    assert (
        patients.files_received,
        patients.files_loaded,
        patients.files_empty,
        patients.files_failed,
        patients.files_no_rule,
        patients.files_pending,
    ) == (7, 2, 1, 1, 0, 3)
    # rows: 01 (5 read, 3+1+1), 03's second attempt (4, 4 inserted), 04's newest staging (6)
    # with no rpt counts (its rpt attempt failed), never its earlier 9; 08's new staging (3)
    # without the rpt counts of its earlier attempt
    assert (patients.rows_read, patients.rows_loaded) == (5 + 4 + 6 + 3, 5 + 4 + 6 + 3)
    assert (
        patients.rows_inserted,
        patients.rows_updated,
        patients.rows_unchanged,
        patients.rows_rejected,
    ) == (3 + 4, 1, 1, 0)
    visits, codes = rows["Visits"], rows["EthnicityCode"]
    assert (visits.files_received, visits.files_no_rule, visits.rows_read) == (1, 1, 0)
    assert (codes.files_received, codes.files_loaded, codes.rows_inserted) == (1, 1, 2)
    # the other date is not touched by summarising this one
    assert _rows(warehouse, OTHER_DAY) == {}


def test_re_summarising_a_date_replaces_its_rows_and_leaves_other_dates(
    warehouse: Warehouse, database: str
):
    _populate(warehouse)
    warehouse.replace_audit_summary([DAY, OTHER_DAY])
    before = query(
        database,
        "SELECT summarised_at FROM rpt.indici_audit_daily WHERE dataset = %s "
        "AND partition_key = %s",
        ("Patients", OTHER_DAY),
    )
    late = "Patients_20261123_070000.parquet"
    for entry in _loaded(late, 2, 2):
        warehouse.write_audit([entry])
    warehouse.replace_audit_summary([DAY])
    assert query(
        database,
        "SELECT partition_key::text, count(*) FROM rpt.indici_audit_daily GROUP BY 1 ORDER BY 1",
    ) == [(DAY, 3), (OTHER_DAY, 1)]
    patients = _rows(warehouse)["Patients"]
    assert (patients.files_received, patients.files_loaded) == (8, 3)
    after = query(
        database,
        "SELECT summarised_at FROM rpt.indici_audit_daily WHERE dataset = %s "
        "AND partition_key = %s",
        ("Patients", OTHER_DAY),
    )
    assert before == after  # the other date's row was not rewritten


def test_a_date_without_files_keeps_no_row(warehouse: Warehouse, database: str):
    _populate(warehouse)
    warehouse.replace_audit_summary(["2026-11-20", DAY])
    assert query(database, "SELECT DISTINCT partition_key FROM rpt.indici_audit_daily") == [
        (dt.date(2026, 11, 23),)
    ]


def test_the_recount_agrees_with_the_summary_and_catches_a_stale_or_altered_one(
    warehouse: Warehouse, admin_database_dsn: str
):
    _populate(warehouse)
    warehouse.replace_audit_summary([DAY])
    found = reconcile(*warehouse.audit_summary_sources([DAY]))
    assert not found.missing_files and not found.mismatched

    # a file landed and loaded after the summary was written: both checks see it
    late = "Visits_20261123_090000.parquet"
    _landed(warehouse, (late, "Visits", DAY, Outcome.DONE))
    for entry in _loaded(late, 3, 3, dataset="Visits"):
        warehouse.write_audit([entry])
    found = reconcile(*warehouse.audit_summary_sources([DAY]))
    assert found.missing_files == {f"{DAY} Visits": {"landed": 2, "counted": 1}}
    assert found.mismatched[f"{DAY} Visits"]["files_received"] == [1, 2]
    assert found.mismatched[f"{DAY} Visits"]["rows_inserted"] == [0, 3]

    warehouse.replace_audit_summary([DAY])
    found = reconcile(*warehouse.audit_summary_sources([DAY]))
    assert not found.missing_files and not found.mismatched

    # a count changed by hand no longer reconciles
    with_admin = Warehouse(admin_database_dsn, "Pacific/Auckland")
    with with_admin.transaction() as cursor:
        cursor.execute(
            "UPDATE rpt.indici_audit_daily SET rows_updated = rows_updated + 1 "
            "WHERE dataset = 'Patients'"
        )
    found = reconcile(*warehouse.audit_summary_sources([DAY]))
    assert found.mismatched == {f"{DAY} Patients": {"rows_updated": [2, 1]}}


def test_file_states_name_every_file_needing_attention_with_its_ledger_outcome(
    warehouse: Warehouse,
):
    _populate(warehouse)
    with warehouse.connection() as connection, connection.cursor() as cursor:
        states = audit_summary.file_states(cursor, [DAY])
    attention = {(s.file_name, s.outcome, s.ledger_outcome) for s in states if s.needs_attention}
    assert attention == {
        ("Patients_20261123_040000.parquet", "failed", "run_failed"),
        ("Patients_20261123_050000.parquet", "pending", None),
        ("Patients_20261123_060000.parquet", "pending", "in_run"),
        ("Patients_20261123_080000.parquet", "pending", None),
        ("Visits_20261123_010000.parquet", "no_rule", "no_rule"),
    }


def test_a_database_bootstrapped_before_the_summary_existed_says_to_run_bootstrap(
    database: str, admin_database_dsn: str
):
    # the schemas and tables belong to another role (as after `indici bootstrap`), and the
    # summary's table is missing: the writer may not create it, and says what to run
    Warehouse(admin_database_dsn, "Pacific/Auckland").ensure_catalog()
    with Warehouse(admin_database_dsn, "Pacific/Auckland").transaction() as cursor:
        cursor.execute("DROP TABLE rpt.indici_audit_daily")
        writer = psycopg2.extensions.parse_dsn(database)["user"]
        cursor.execute(
            sql.SQL("GRANT USAGE ON SCHEMA indici_staging, rpt TO {}").format(
                sql.Identifier(writer)
            )
        )
    with pytest.raises(OwnerFunctionsMissingError, match="run `indici bootstrap`") as raised:
        Warehouse(database, "Pacific/Auckland").ensure_catalog()
    assert "table rpt.indici_audit_daily is missing" in str(raised.value)


def test_summaries_of_the_same_date_take_turns(database: str, warehouse: Warehouse):
    _populate(warehouse)
    impatient = Warehouse(database, "Pacific/Auckland", lock_timeout="200ms")
    with holding_table_lock(database, "indici_audit_daily"):
        with pytest.raises(LockTimeoutError, match="indici_audit_daily"):
            impatient.replace_audit_summary([DAY])
    assert len(impatient.replace_audit_summary([DAY])) == 3
