"""Files needing attention are exactly the ones that did not load (issue 19 §6), through a real
`DagsterInstance`: a run failing on one bad file settles the others `done`, a re-sent version
settles the one it replaced, and a run Dagster no longer knows is said once, not every tick."""

import pyarrow as pa
import pytest
from dagster import DagsterInstance

from indici_dagster.definitions import INGEST_JOB
from indici_dagster.lib.keys import AUDIT_SUMMARY, PARTITIONED, RAW, rpt_key, staging_key
from indici_dagster_tests.support.common import (
    build,
    execute_requests,
    make_settings,
    parquet_bytes,
    patients,
    put_s3,
    query,
    tick,
)

GOOD = "Patients_20261123_020000.parquet"
BAD = "Patients_20261123_030000.parquet"


def bad_patients() -> bytes:
    """A Patients file whose PatientID does not fit the rule's bigint: fails alone in staging."""
    return parquet_bytes(
        {
            "PatientID": pa.array(["not a number"]),
            "NHINumber": ["ZZZ0009"],
            "FamilyName": ["X"],
        }
    )


def ledger(database: str) -> list[tuple]:
    return query(
        database,
        "SELECT file_name, outcome FROM indici_staging.landing_ledger ORDER BY file_name, "
        "first_seen_at",
    )


@pytest.fixture
def instance(tmp_path):
    """A persisted instance: runs can be deleted from it as retention does."""
    (tmp_path / "dagster").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster")) as dagster_instance:
        yield dagster_instance


def attention(capfd) -> list[str]:
    return [line for line in capfd.readouterr().err.splitlines() if "needs attention" in line]


def test_a_run_failing_on_one_file_needs_attention_for_that_file_alone_until_it_is_resent(
    tmp_path, database, buckets, instance, capfd
):
    landing, partitioned = buckets
    put_s3(landing, GOOD, patients([(1, "A")]))
    put_s3(landing, BAD, bad_patients())
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    requested = tick(defs, instance)
    (run,) = execute_requests(defs, instance, requested)
    assert not run.success  # the rpt step fails so the broken file is seen

    capfd.readouterr()
    assert not tick(defs, instance, requested.cursor).run_requests
    assert ledger(database) == [(GOOD, "done"), (BAD, "run_failed")]
    (line,) = attention(capfd)
    assert run.run_id in line and BAD in line and GOOD not in line
    assert "1 file(s) did not load" in line

    # the vendor re-sends the file under the same key, corrected: it loads, and the version it
    # replaced is settled with it
    put_s3(landing, BAD, patients([(2, "B")]))
    again = tick(defs, instance, requested.cursor)
    assert all(r.success for r in execute_requests(defs, instance, again))
    capfd.readouterr()
    assert not tick(defs, instance, again.cursor).run_requests
    assert ledger(database) == [(GOOD, "done"), (BAD, "done"), (BAD, "done")]
    assert attention(capfd) == []
    assert query(database, "SELECT patient_id FROM rpt.patients ORDER BY 1") == [(1,), (2,)]


def test_a_run_dagster_no_longer_knows_is_settled_from_the_ledger_and_said_once(
    tmp_path, database, buckets, instance, capfd
):
    landing, partitioned = buckets
    put_s3(landing, GOOD, patients([(1, "A")]))
    put_s3(landing, BAD, bad_patients())
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    # a run that staged one file and failed to stage the other, without its rpt step, deleted
    # (as retention does, or it was another instance's) before any tick saw it end
    staged = defs.resolve_job_def(INGEST_JOB).execute_in_process(
        partition_key="2026-11-23",
        asset_selection=[RAW, PARTITIONED, staging_key("Patients")],
        instance=instance,
    )
    assert ledger(database) == [(GOOD, "in_run"), (BAD, "in_run")]
    instance.delete_run(staged.run_id)

    capfd.readouterr()
    first = tick(defs, instance)
    # the staged file gets its rpt step; the other needs attention, said this once
    assert [list(r.asset_selection) for r in first.run_requests] == [
        [rpt_key("Patients"), AUDIT_SUMMARY]
    ]
    assert ledger(database) == [(GOOD, "needs_rpt"), (BAD, "run_failed")]
    (line,) = attention(capfd)
    assert staged.run_id in line and "unknown to Dagster" in line and BAD in line
    for _ in range(2):  # never on every tick
        tick(defs, instance, first.cursor)
        assert attention(capfd) == []
    assert all(r.success for r in execute_requests(defs, instance, first))
    tick(defs, instance, first.cursor)
    assert ledger(database) == [(GOOD, "done"), (BAD, "run_failed")]
    assert attention(capfd) == []
