"""`indici status`: one date's summary per dataset, as the summary asset counts it, and every
file needing attention; yesterday in the deployment's time zone by default."""

import os

import pytest

from indici_dagster.cli import main
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


@pytest.fixture(autouse=True)
def _own_folder(tmp_path, monkeypatch):
    """Each test runs in its own folder with no INDICI_* variables of the caller's."""
    for name in [n for n in os.environ if n.startswith("INDICI_")]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_status_prints_the_summary_and_each_file_needing_attention(
    tmp_path, database, buckets, instance, monkeypatch, capsys
):
    landing, partitioned = buckets
    put_s3(landing, "Patients_20261123_020000.parquet", patients([(1, "A"), (2, "B")]))
    put_s3(landing, "Patients_20261123_030000.parquet", parquet_bytes({"PatientID": ["x"]}))
    put_s3(landing, "Visits_20261123_010000.parquet", parquet_bytes({"VisitID": [1]}))
    settings_dir = tmp_path / "settings"
    settings_dir.mkdir()
    defs = build(make_settings(settings_dir, database, landing, partitioned))
    requested = tick(defs, instance)
    execute_requests(defs, instance, requested)  # fails: one file cannot load
    tick(defs, instance, requested.cursor)  # the next tick settles the ledger
    monkeypatch.setenv("INDICI_PG_DSN", database)
    monkeypatch.setenv("INDICI_TIMEZONE", TIMEZONE)

    assert main(["status", "--date", DAY]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"files dated {DAY} (as asked)")
    header = lines[1].split()
    assert header[:7] == ["dataset", "received", "loaded", "empty", "failed", "no_rule", "not_yet"]
    patients_line = next(line for line in lines if line.startswith("Patients "))
    # received 2, loaded 1, failed 1; rows read 2 + 1
    assert patients_line.split()[1:7] == ["2", "1", "0", "1", "0", "0"]
    visits_line = next(line for line in lines if line.startswith("Visits "))
    assert visits_line.split()[1:7] == ["1", "0", "0", "0", "1", "0"]
    failed = next(line for line in lines if "Patients_20261123_030000.parquet" in line)
    assert failed.strip().startswith("FAILED |") and "ledger run_failed" in failed
    assert "cannot be converted to bigint" in failed  # the newest audit message
    waiting = next(line for line in lines if "Visits_20261123_010000.parquet" in line)
    assert waiting.strip().startswith("NO RULE |") and "ledger no_rule" in waiting
    # the loaded file needs attention exactly when the ledger has not settled it done (today a
    # failed run leaves every file of its date run_failed)
    [(outcome,)] = query(
        database,
        "SELECT outcome FROM indici_staging.landing_ledger WHERE file_name = %s",
        ("Patients_20261123_020000.parquet",),
    )
    loaded = [line for line in lines if "Patients_20261123_020000.parquet" in line]
    expected = (
        []
        if outcome == "done"
        else [
            f"  loaded | Patients_20261123_020000.parquet | ledger {outcome} | latest rpt success | "
        ]
    )
    assert loaded == expected
    assert f"{2 + len(loaded)} file(s) need attention:" in out
    # a dataset expected daily that sent nothing is named too (the summary has no row for it)
    silent = next(line for line in lines if line.startswith(f"no file dated {DAY} from"))
    assert "Appointments" in silent and "Patients" not in silent and "EthnicityCode" not in silent


def test_silent_datasets_are_the_daily_ones_without_a_file():
    import dataclasses

    from indici_dagster.cli.status import silent_datasets
    from indici_dagster.core.rules.model import parse_rules
    from indici_dagster.core.warehouse.audit_summary import DailySummary

    rules = parse_rules(
        [
            {"dataset": "A", "primary_key": ["Id"], "columns": {"Id": "bigint"}},
            {"dataset": "B", "primary_key": ["Id"], "columns": {"Id": "bigint"}},
            {"dataset": "C", "primary_key": ["Id"], "columns": {"Id": "bigint"}},
            {"dataset": "Code"},
        ]
    )
    rules["C"] = dataclasses.replace(rules["C"], max_file_age_hours=0)
    fields = {f.name: 0 for f in dataclasses.fields(DailySummary)}
    row = DailySummary(**{**fields, "dataset": "A", "partition_key": DAY})
    assert silent_datasets(rules, [row]) == ["B"]


def test_status_defaults_to_yesterday_in_the_time_zone_and_names_the_newest_date(
    tmp_path, database, buckets, instance, monkeypatch, capsys
):
    landing, partitioned = buckets
    put_s3(landing, "Patients_20261123_020000.parquet", patients([(1, "A")]))
    settings_dir = tmp_path / "settings"
    settings_dir.mkdir()
    defs = build(make_settings(settings_dir, database, landing, partitioned))
    requested = tick(defs, instance)
    assert all(r.success for r in execute_requests(defs, instance, requested))
    tick(defs, instance, requested.cursor)  # the next tick settles the ledger: done
    monkeypatch.setenv("INDICI_PG_DSN", database)
    monkeypatch.setenv("INDICI_TIMEZONE", TIMEZONE)

    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"(yesterday in {TIMEZONE})" in out.splitlines()[0]
    assert f"the newest date with files is {DAY}" in out

    assert main(["status", "--date", DAY]) == 0
    assert "nothing needs attention" in capsys.readouterr().out


def test_status_refuses_a_malformed_date_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("INDICI_PG_DSN", "host=127.0.0.1 port=1 dbname=x user=y")
    assert main(["status", "--date", "23/11/2026"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--date 23/11/2026 is not a date" in err
