"""Settling in the database: each version by its own marks and audit rows, a replaced version
with its successor, and a version changed since it was read left for the next tick."""

from indici_dagster.core.warehouse import ledger, ledger_settle
from indici_dagster.core.warehouse.audit import AuditEntry, Status, Step, write_audit_entries
from indici_dagster.core.warehouse.ledger import LedgerEntry, Outcome
from indici_dagster.core.warehouse.ledger_settle import RunEnd

NAME = "Patients_20261123_020000.parquet"


def entry(etag: str, outcome: Outcome, run_id: str = "A", name: str = NAME) -> LedgerEntry:
    return LedgerEntry(
        f"incoming/{name}", etag, 1, outcome, name, "Patients", "2026-11-23", None, None, run_id
    )


def outcomes(cursor) -> list[tuple]:
    cursor.execute(
        "SELECT file_name, etag, outcome FROM indici_staging.landing_ledger ORDER BY 1, 2"
    )
    return cursor.fetchall()


def test_a_version_whose_newer_version_loaded_is_settled_with_it(warehouse):
    with warehouse.transaction() as cursor:  # first seen earlier: its own transaction
        ledger.record(cursor, [entry("v1", Outcome.RUN_FAILED)])
    with warehouse.transaction() as cursor:
        ledger.record(cursor, [entry("v2", Outcome.DONE, "B")])
        ledger.record(
            cursor, [entry("x1", Outcome.RUN_FAILED, name="Other_20261123_020000.parquet")]
        )
        assert ledger_settle.settle_replaced(cursor) == 1
        assert outcomes(cursor) == [
            ("Other_20261123_020000.parquet", "x1", "run_failed"),
            (NAME, "v1", "done"),
            (NAME, "v2", "done"),
        ]


def test_each_version_of_a_failed_run_is_judged_by_its_own_load(warehouse):
    other = "Patients_20261123_030000.parquet"
    with warehouse.transaction() as cursor:
        ledger.record(cursor, [entry("g", Outcome.IN_RUN), entry("b", Outcome.IN_RUN, name=other)])
        ledger.mark_staged(cursor, "Patients", "2026-11-23", NAME, "A")
        ledger.mark_applied(cursor, "Patients", ["2026-11-23"], "A")
        write_audit_entries(
            cursor, [AuditEntry(Step.STAGING, Status.ERROR, other, "Patients", run_id="A")]
        )
        versions = ledger_settle.unsettled_versions(cursor)
        assert [(v.file_name, v.staging_failed) for v in versions] == [(NAME, False), (other, True)]
        ends = {"A": RunEnd.FAILURE}
        decided = [(v, ledger_settle.decide(v, ends)) for v in versions]
        assert ledger_settle.settle_versions(cursor, decided) == 2
        assert outcomes(cursor) == [(NAME, "g", "done"), (other, "b", "run_failed")]
        (line,) = ledger_settle.attention_lines(decided, ends)
        assert line.startswith("run A (2026-11-23, ended failure): 1 file(s) did not load")
        assert other in line and "its staging load failed" in line


def test_a_version_a_step_marked_since_it_was_read_is_left_for_the_next_tick(warehouse):
    with warehouse.transaction() as cursor:
        ledger.record(cursor, [entry("g", Outcome.IN_RUN)])
        (version,) = ledger_settle.unsettled_versions(cursor)
        ledger.mark_staged(cursor, "Patients", "2026-11-23", NAME, "B")  # a re-run staged it
        decision = ledger_settle.decide(version, {"A": RunEnd.SUCCESS})
        assert decision.outcome is Outcome.RUN_FAILED
        assert ledger_settle.settle_versions(cursor, [(version, decision)]) == 0
        assert outcomes(cursor) == [(NAME, "g", "in_run")]
