"""`indici restore`: what it requested and what is already available, on stdout; bad input as
one line and exit code 2."""

import boto3
import pytest

from indici_dagster.cli import main
from indici_dagster.core.storage.s3_storage import parse_s3_url
from indici_dagster_tests.support.common import TEST_RULES, patients, put_s3


@pytest.fixture
def settings_env(tmp_path, monkeypatch, buckets):
    landing, partitioned = buckets
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INDICI_LANDING", landing)
    monkeypatch.setenv("INDICI_PARTITIONED", partitioned)
    monkeypatch.setenv("INDICI_RULES", str(rules))
    monkeypatch.setenv("INDICI_TIMEZONE", "Pacific/Auckland")
    # never connected to: restoring needs S3 only (a closed port on loopback)
    monkeypatch.setenv("INDICI_PG_DSN", "host=127.0.0.1 port=9 dbname=none user=none")
    return landing, partitioned


def test_restore_reports_requested_and_available_files_and_is_idempotent(settings_env, capsys):
    landing, _ = settings_env
    bucket, prefix = parse_s3_url(landing)
    boto3.client("s3").put_object(
        Bucket=bucket,
        Key=prefix + "Patients_20260102_020000.parquet",
        Body=patients([(1, "A")]),
        StorageClass="DEEP_ARCHIVE",
    )
    put_s3(landing, "Patients_20260102_030000.parquet", patients([(2, "B")]))

    assert main(["restore", "--from", "2026-01-02", "--to", "2026-01-02", "--tier", "Bulk"]) == 0
    out = capsys.readouterr().out
    assert f"requested | {landing}/Patients_20260102_020000.parquet" in out
    assert f"available | {landing}/Patients_20260102_030000.parquet" in out
    assert "requested 1 restore(s) (Bulk, readable for 7 days), 0 already being restored, " in out
    head = boto3.client("s3").head_object(
        Bucket=bucket, Key=prefix + "Patients_20260102_020000.parquet"
    )
    assert head.get("Restore")

    assert main(["restore", "--from", "2026-01-02", "--to", "2026-01-02"]) == 0
    assert "requested 0 restore(s)" in capsys.readouterr().out


def _exit_code(arguments: list[str]) -> int:
    try:
        return main(arguments)
    except SystemExit as stopped:  # argparse's own refusals (a tier it does not offer)
        return int(stopped.code)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--from", "02/01/2026", "--to", "2026-01-02"], "--from must be a date as YYYY-MM-DD"),
        (["--from", "2026-01-03", "--to", "2026-01-02"], "is after --to"),
        (["--from", "2026-01-02", "--to", "2026-01-02", "--dataset", "Nope"], "--dataset"),
        (["--from", "2026-01-02", "--to", "2026-01-02", "--days", "0"], "--days"),
        (["--from", "2026-01-02", "--to", "2026-01-02", "--tier", "Fast"], "--tier"),
    ],
)
def test_bad_input_is_one_line(settings_env, capsys, arguments, expected):
    assert _exit_code(["restore", *arguments]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
