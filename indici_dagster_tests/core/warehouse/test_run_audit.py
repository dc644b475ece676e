"""A failed run's audit row is written once per run id, however often it is recorded."""

import pytest

from indici_dagster.core.alerts.failed_runs import audit_entry, failed_run
from indici_dagster.core.warehouse.audit import AuditEntry, Status, Step
from indici_dagster_tests.support.common import query


def test_a_failed_run_is_audited_once_with_names_and_classes_only(warehouse, database):
    run = failed_run(
        "run-1",
        "indici_ingest_job",
        {"dagster/partition": "2026-11-24"},
        ["indici__staging__Patients", "indici__staging__Patients"],
        ["Failure", "DataError"],
    )
    assert warehouse.record_failed_run(audit_entry(run)) is True
    assert warehouse.record_failed_run(audit_entry(run)) is False

    rows = query(
        database,
        "SELECT step, status, run_id, partition_key, source_file, message "
        "FROM indici_staging.auditlog",
    )
    assert rows == [
        (
            "run",
            "error",
            "run-1",
            "2026-11-24",
            None,
            "run failed: job indici_ingest_job; failed steps: indici__staging__Patients; "
            "errors: Failure, DataError",
        )
    ]


def test_only_a_run_row_can_be_recorded_as_a_failed_run(warehouse):
    with pytest.raises(ValueError):
        warehouse.record_failed_run(AuditEntry(Step.STAGING, Status.ERROR, "f", run_id="r"))
