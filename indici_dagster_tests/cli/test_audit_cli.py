"""`indici audit FILE`: a header naming every column, every count (`rows_unchanged` too), and
the same answer for a bare name, a path and an S3 URI."""

import pytest

from indici_dagster.cli import main
from indici_dagster.core.warehouse.audit import AuditEntry, Status, Step
from indici_dagster.core.warehouse.facade import Warehouse

NAME = "Patients_20260102_020000.parquet"
HEADER = (
    "logged_at | step | status | partition_key | rows_read | rows_loaded | rows_inserted | "
    "rows_updated | rows_unchanged | rows_rejected | run_id | source_key | message"
)


@pytest.fixture
def audited(database, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INDICI_PG_DSN", database)
    warehouse = Warehouse(database, "UTC")
    warehouse.ensure_catalog()
    warehouse.write_audit(
        [
            AuditEntry(
                Step.RPT,
                Status.SUCCESS,
                NAME,
                dataset="Patients",
                partition_key="2026-01-02",
                run_id="run-1",
                source_key="landing/2026-01-02/" + NAME,
                rows_read=10,
                rows_loaded=10,
                rows_inserted=3,
                rows_updated=2,
                rows_unchanged=5,
                rows_rejected=0,
                message="applied",
            )
        ]
    )


@pytest.mark.parametrize(
    "given",
    [NAME, f"landing/2026-01-02/{NAME}", f"s3://landing-bucket/incoming/{NAME}"],
)
def test_audit_prints_a_header_and_every_count_for_a_name_a_path_or_a_uri(audited, capsys, given):
    assert main(["audit", given]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == HEADER
    values = dict(zip(HEADER.split(" | "), lines[1].split(" | "), strict=True))
    assert {k: values[k] for k in HEADER.split(" | ")[4:10]} == {
        "rows_read": "10",
        "rows_loaded": "10",
        "rows_inserted": "3",
        "rows_updated": "2",
        "rows_unchanged": "5",
        "rows_rejected": "0",
    }
    assert values["source_key"] == f"landing/2026-01-02/{NAME}"


def test_audit_of_a_folder_is_one_line(audited, capsys):
    assert main(["audit", "landing/2026-01-02/"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "names a folder, not a file" in err
