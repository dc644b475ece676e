"""Settings fail closed: every variable checked when the code location loads, one line each."""

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from indici_dagster.core.settings import (
    EMBEDDED,
    VARIABLES,
    Settings,
    SettingsError,
    load_settings,
)

MARKER = "zq7marker"


def _error(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_the_defaults_run_on_a_laptop_with_the_embedded_server():
    settings = Settings.from_env({})

    assert settings.landing == "./data/landing"
    assert settings.pg_dsn is None
    assert settings.uses_embedded_server
    assert settings.max_concurrent == 1


@pytest.mark.parametrize("location", ["INDICI_LANDING", "INDICI_PARTITIONED"])
def test_an_s3_location_without_a_dsn_refuses_to_use_the_embedded_server(location):
    message = _error({location: "s3://indici-landing/incoming"})

    assert "INDICI_PG_DSN" in message
    assert location in message


def test_the_embedded_server_with_s3_only_when_asked_for_by_name():
    settings = Settings.from_env(
        {"INDICI_LANDING": "s3://indici-landing", "INDICI_PG_DSN": EMBEDDED}
    )

    assert settings.uses_embedded_server
    assert not Settings.from_env({"INDICI_PG_DSN": "host=db dbname=x"}).uses_embedded_server


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("INDICI_TIMEZONE", f"Mars/{MARKER}"),
        ("INDICI_TIMEZONE", f"../../etc/{MARKER}"),
        ("INDICI_START_DATE", f"2020/01/01{MARKER}"),
        ("INDICI_START_DATE", "20200101"),
        ("INDICI_START_DATE", "2020-02-30"),
        ("INDICI_LANDING", f"s3://Bad_Bucket_{MARKER}/x"),
        ("INDICI_LANDING", f"s3:/{MARKER}-bucket"),
        ("INDICI_LANDING", f"gs://{MARKER}-bucket"),
        ("INDICI_LANDING", "s3://192.168.1.10/x"),
        ("INDICI_PARTITIONED", f"s3://ab/{MARKER}"),
        ("INDICI_RULES", f"/nowhere/{MARKER}.yaml"),
        ("INDICI_RULES", "dynamodb://x"),
        ("INDICI_RULES", f"s3://bucket/{MARKER}.yaml"),
        ("INDICI_MAX_CONCURRENT", "0"),
        ("INDICI_MAX_CONCURRENT", f"two{MARKER}"),
        ("INDICI_MAX_CONCURRENT", "-3"),
        ("INDICI_PG_DIR", f"s3://bucket/{MARKER}"),
        ("INDICI_PG_DSN", f"host=db password=correct horse {MARKER}"),
        ("INDICI_PG_DSN", f"host=db user='{MARKER}"),
        ("INDICI_TIMEZONE", f"Pacific/Auckland\x1b[31m{MARKER}"),
        ("AWS_DEFAULT_REGION", f"Sydney{MARKER}"),
        ("AWS_REGION", f"ap southeast {MARKER}"),
        ("INDICI_CLOUDWATCH_PREFIX", f"indici{MARKER}"),
        ("INDICI_CLOUDWATCH_PREFIX", f"/indici/{MARKER}/"),
        ("INDICI_CLOUDWATCH_PREFIX", f"/indici {MARKER}"),
    ],
)
def test_a_malformed_value_gives_one_line_naming_the_variable_and_never_the_value(variable, value):
    message = _error({variable: value, "INDICI_PG_DSN": "host=db dbname=x"} | {variable: value})

    assert message.startswith(variable) or f"{variable} " in message
    assert "expected" in message
    assert MARKER not in message
    assert "horse" not in message and "correct" not in message


def test_a_start_date_in_the_future_is_refused():
    tomorrow = (date.today() + timedelta(days=2)).isoformat()

    assert "INDICI_START_DATE is in the future" in _error({"INDICI_START_DATE": tomorrow})


def test_landing_and_partitioned_must_be_separate_locations(tmp_path):
    same = {"INDICI_LANDING": str(tmp_path), "INDICI_PARTITIONED": str(tmp_path / "copy")}

    assert "INDICI_PARTITIONED" in _error(same)
    assert "INDICI_PARTITIONED" in _error(
        {
            "INDICI_LANDING": "s3://bucket-a/in",
            "INDICI_PARTITIONED": "s3://bucket-a/in/",
            "INDICI_PG_DSN": "host=db",
        }
    )
    Settings.from_env(
        {
            "INDICI_LANDING": "s3://bucket-a/in",
            "INDICI_PARTITIONED": "s3://bucket-a/inx",
            "INDICI_PG_DSN": "host=db",
        }
    )


def test_valid_values_of_every_kind_are_accepted(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("[]\n")
    settings = Settings.from_env(
        {
            "INDICI_LANDING": "s3://kpa-valentia",
            "INDICI_PARTITIONED": "s3://kpa.indici-partitioned/indici/",
            "INDICI_RULES": str(rules),
            "INDICI_PG_DSN": "postgresql://indici_writer@db.internal:5432/analytics",
            "INDICI_TIMEZONE": "UTC",
            "INDICI_START_DATE": "2024-02-29",
            "INDICI_MAX_CONCURRENT": "4",
            "AWS_REGION": "ap-southeast-2",
            "INDICI_CLOUDWATCH_PREFIX": "/indici/prod",
        }
    )

    assert settings.max_concurrent == 4
    assert settings.cloudwatch_prefix == "/indici/prod"
    assert Settings.from_env({}).cloudwatch_prefix is None
    assert settings.aws_region == "ap-southeast-2"
    assert Settings.from_env({"INDICI_RULES": "dynamodb://indici-rules"}).rules == (
        "dynamodb://indici-rules"
    )


def test_aws_region_alone_reaches_boto3_as_aws_default_region():
    import boto3

    environ = {"AWS_REGION": "ap-southeast-2"}
    load_settings(environ)

    assert environ["AWS_DEFAULT_REGION"] == "ap-southeast-2"
    saved = {name: os.environ.get(name) for name in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    try:
        os.environ.pop("AWS_DEFAULT_REGION", None)
        os.environ["AWS_REGION"] = "eu-west-3"
        load_settings()
        assert boto3.session.Session().region_name == "eu-west-3"
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


def test_two_different_regions_are_refused():
    message = _error({"AWS_REGION": "ap-southeast-2", "AWS_DEFAULT_REGION": "us-east-1"})

    assert "AWS_DEFAULT_REGION" in message and "AWS_REGION" in message


def test_every_variable_is_one_row_with_its_expected_form():
    names = [variable.name for variable in VARIABLES]

    assert len(names) == len(set(names))
    assert all(variable.expected for variable in VARIABLES)
    assert {variable.field for variable in VARIABLES} <= set(Settings.__dataclass_fields__)


def _validate(tmp_path: Path, repo_root: Path, **env: str) -> subprocess.CompletedProcess:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "workspace.yaml").write_text((repo_root / "workspace.yaml").read_text())
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("INDICI_")}
    environ |= {
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(repo_root),
        "INDICI_PG_DIR": str(tmp_path / "pg"),
        **env,
    }
    dagster = Path(sys.executable).with_name("dagster")
    return subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=project,
        env=environ,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_the_code_location_refuses_to_load_with_s3_landing_and_no_dsn(tmp_path, repo_root):
    done = _validate(tmp_path, repo_root, INDICI_LANDING="s3://indici-landing/incoming")
    output = done.stdout + done.stderr

    assert done.returncode != 0
    assert "SettingsError: INDICI_PG_DSN is unset but INDICI_LANDING is an S3 bucket" in output
    # no server started, nothing written: no data folder, nothing in the project folder
    assert not (tmp_path / "pg").exists()
    assert sorted(p.name for p in (tmp_path / "project").iterdir()) == ["workspace.yaml"]


def test_the_code_location_loads_on_the_laptop_defaults(tmp_path, repo_root):
    done = _validate(tmp_path, repo_root)

    assert done.returncode == 0, done.stdout + done.stderr
    assert not (tmp_path / "pg").exists()  # nothing is started while loading


def test_the_warehouse_resource_takes_embedded_by_name():
    from indici_dagster.lib.resources import WarehouseResource
    from indici_dagster_tests.support.embedded import server_folder

    with server_folder("pg") as data_dir:  # one the server's user may enter, also as root
        resource = WarehouseResource(dsn=EMBEDDED, embedded_dir=str(data_dir), timezone="UTC")
        warehouse = resource.get_warehouse()
        with warehouse.connection() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            assert cursor.fetchone() == ("indici",)
        assert (data_dir / "PG_VERSION").is_file()


def test_the_settings_know_which_variables_the_environment_set():
    settings = Settings.from_env({"INDICI_PG_DSN": " host=db dbname=x ", "INDICI_TIMEZONE": ""})

    assert settings.pg_dsn == "host=db dbname=x"
    assert settings.from_environment == frozenset({"INDICI_PG_DSN"})
    assert Settings().from_environment == frozenset()
