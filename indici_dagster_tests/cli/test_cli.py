"""The `indici` command: dagster dev's configuration, one-line errors, read-only commands that
create nothing, the embedded server by hand, `doctor`, and escaped output."""

import os
import re
import socket
from pathlib import Path

import boto3
import psycopg2.extensions
import pytest

from indici_dagster.cli import main
from indici_dagster.cli.context import load_project_env
from indici_dagster.core.embedded.server import embedded_dsn, paths_for, server_status
from indici_dagster.core.warehouse.audit import AuditEntry, Status, Step
from indici_dagster.core.warehouse.dsn import ConnectionFailedError
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster_tests.support.common import query
from indici_dagster_tests.support.embedded import server_folder

MARKER = "pw7marker"
INDICI_VARIABLES = [name for name in os.environ if name.startswith("INDICI_")]


@pytest.fixture(autouse=True)
def _own_folder(tmp_path, monkeypatch):
    """Each test runs in its own folder with no INDICI_* variables of the caller's."""
    for name in INDICI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _unreachable_dsn() -> str:
    return f"host=127.0.0.1 port={_closed_port()} dbname=nowhere user=indici password={MARKER}"


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip()


def test_the_cli_reads_dot_env_exactly_as_dagster_dev_does(tmp_path, monkeypatch, capsys):
    from dagster._cli.utils import get_possibly_temporary_instance_for_cli

    (tmp_path / ".env").write_text("INDICI_TIMEZONE=UTC\nINDICI_START_DATE=2021-03-04\nEMPTY\n")
    monkeypatch.setenv("INDICI_TIMEZONE", "Pacific/Auckland")  # the shell says otherwise
    monkeypatch.setenv("INDICI_START_DATE", "2020-01-01")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    names = ("INDICI_TIMEZONE", "INDICI_START_DATE", "EMPTY")
    with get_possibly_temporary_instance_for_cli("dagster dev"):
        dagster_sees = {name: os.environ.get(name) for name in names}
    ours = dict(os.environ)
    load_project_env(tmp_path, ours)

    assert {name: ours.get(name) for name in names} == dagster_sees
    assert dagster_sees["INDICI_TIMEZONE"] == "UTC"
    assert main(["doctor"]) == 1  # no landing folder here
    out = capsys.readouterr().out
    assert re.search(r"INDICI_TIMEZONE +UTC\n", out)
    assert "2 variables from" in out


def test_a_bad_argument_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["sample-data", "--days", "\x1b[2Jmany"])

    assert raised.value.code == 2
    line = _one_error_line(capsys)
    assert "--days" in line and "\x1b" not in line


def test_a_malformed_setting_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setenv("INDICI_PG_DSN", f"host=db password=correct horse {MARKER}")

    assert main(["audit", "x.parquet"]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("indici: INDICI_PG_DSN is not valid")
    assert MARKER not in line and "horse" not in line


@pytest.mark.parametrize("command", [["audit", "x.parquet"], ["recount"]])
def test_an_unreachable_database_is_one_line_naming_host_and_port_never_the_password(
    command, monkeypatch, capsys
):
    dsn = _unreachable_dsn()
    monkeypatch.setenv("INDICI_PG_DSN", dsn)

    assert main(command) == 1
    line = _one_error_line(capsys)
    port = psycopg2.extensions.parse_dsn(dsn)["port"]
    assert f"host=127.0.0.1 port={port} database=nowhere user=indici" in line
    assert "connection refused" in line
    assert MARKER not in line


def test_debug_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("INDICI_PG_DSN", _unreachable_dsn())

    with pytest.raises(ConnectionFailedError, match="cannot connect"):
        main(["--debug", "audit", "x.parquet"])


def test_missing_aws_credentials_are_one_line(tmp_path, monkeypatch, capsys):
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-2")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # no credentials cached by earlier tests

    assert main(["rules", "validate", "dynamodb://indici-rules"]) == 1
    assert "no AWS credentials" in _one_error_line(capsys)


def test_a_missing_table_is_one_line(database, monkeypatch, capsys):
    Warehouse(database, "UTC").ensure_catalog()
    monkeypatch.setenv("INDICI_PG_DSN", database)

    assert main(["recount", "no_such_table"]) == 1
    assert "no table no_such_table in indici_staging or rpt" in _one_error_line(capsys)


@pytest.mark.parametrize("command", [["audit", "x.parquet"], ["recount"]])
def test_read_only_commands_never_create_an_embedded_server(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INDICI_PG_DIR", str(tmp_path / "pg"))

    assert main(command) == 1
    line = _one_error_line(capsys)
    assert f"no database: the embedded server's folder {tmp_path / 'pg'}" in line
    assert not (tmp_path / "pg").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_audit_of_a_database_never_loaded_says_so_and_creates_nothing(
    database, monkeypatch, capsys
):
    monkeypatch.setenv("INDICI_PG_DSN", database)

    assert main(["audit", "x.parquet"]) == 1
    assert "no audit log in" in _one_error_line(capsys)
    assert query(database, "SELECT to_regnamespace('indici_staging')") == [(None,)]


def test_audit_prints_file_names_and_messages_with_controls_escaped(database, monkeypatch, capsys):
    warehouse = Warehouse(database, "UTC")
    warehouse.ensure_catalog()
    name = "Pat\x1b[2Jients\n_20261124_021503.parquet"
    warehouse.write_audit(
        [
            AuditEntry(
                Step.STAGING,
                Status.ERROR,
                name,
                dataset="Patients",
                message="column \x1b]8;;evil\x07Name\r\n failed",
            )
        ]
    )
    monkeypatch.setenv("INDICI_PG_DSN", database)

    assert main(["audit", name]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert out.count("\n") == 2  # the header and the one row
    assert "column \\x1b]8;;evil\\x07Name\\r\\n failed" in out


def test_db_status_stop_psql_and_reset_manage_the_embedded_server(monkeypatch, capfd):
    with server_folder("pg") as data_dir:
        _manage_the_embedded_server(data_dir, monkeypatch, capfd)


def _manage_the_embedded_server(data_dir: Path, monkeypatch, capfd) -> None:
    paths = paths_for(data_dir)
    monkeypatch.setenv("INDICI_PG_DIR", str(data_dir))
    for name in ("PGPASSWORD", "PGPASSFILE", "PGUSER"):
        monkeypatch.delenv(name, raising=False)
    assert main(["db", "status"]) == 0
    assert "no embedded server" in capfd.readouterr().out

    embedded_dsn(data_dir)
    socket_dir = server_status(data_dir).socket_dir
    try:
        assert main(["db", "status"]) == 0
        assert f"running: pid {server_status(data_dir).pid}, socket {socket_dir}" in (
            capfd.readouterr().out
        )
        # psql logs in as the pipeline's writer, with the password from its passfile
        assert main(["db", "psql", "--", "-tAc", "SELECT current_user, current_database()"]) == 0
        assert capfd.readouterr().out.strip() == "indici_writer|indici"
        assert main(["db", "psql", "--role", "reader", "--", "-tAc", "SELECT current_user"]) == 0
        assert capfd.readouterr().out.strip() == "indici_reader"
    finally:
        assert main(["db", "stop"]) == 0
    assert "stopped the embedded server" in capfd.readouterr().out
    assert paths.has_cluster and not server_status(data_dir).running
    assert main(["db", "status"]) == 0
    assert "stopped: data kept in" in capfd.readouterr().out

    assert main(["db", "reset"]) == 1  # no terminal to confirm on
    assert "--yes" in capfd.readouterr().err
    assert (data_dir / "PG_VERSION").exists()
    assert main(["db", "reset", "--yes"]) == 0
    # data, passfiles and socket directory are gone: the next start has new passwords
    assert not data_dir.exists() and not paths.auth_dir.exists() and not socket_dir.exists()


def test_db_reset_never_deletes_a_folder_that_is_not_a_postgres_cluster(
    tmp_path, monkeypatch, capsys
):
    precious = tmp_path / "documents"
    precious.mkdir()
    (precious / "thesis.txt").write_text("keep me")
    monkeypatch.setenv("INDICI_PG_DIR", str(precious))

    assert main(["db", "reset", "--yes"]) == 1
    assert "not a PostgreSQL data folder" in _one_error_line(capsys)
    assert (precious / "thesis.txt").read_text() == "keep me"


def test_doctor_passes_when_everything_is_in_place(database, tmp_path, monkeypatch, capsys):
    (tmp_path / "landing").mkdir()
    (tmp_path / "partitioned").mkdir()
    monkeypatch.setenv("INDICI_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("INDICI_PARTITIONED", str(tmp_path / "partitioned"))
    monkeypatch.setenv("INDICI_PG_DSN", database)

    assert main(["doctor"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert all(line.startswith("ok ") for line in lines[:-1]), lines
    assert any(line.split()[1] == "warehouse" and "connected to" in line for line in lines)


def test_doctor_reports_a_missing_bucket_folder_and_database_one_line_each(
    buckets, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("INDICI_LANDING", "s3://no-such-bucket-for-doctor/incoming")
    monkeypatch.setenv("INDICI_PARTITIONED", str(tmp_path / "missing"))
    monkeypatch.setenv("INDICI_PG_DSN", _unreachable_dsn())

    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    lines = {
        line.split()[1]: line
        for line in out.splitlines()
        if line.startswith(("ok", "warn", "FAIL"))
    }
    assert (
        lines["landing"].startswith("FAIL")
        and "no-such-bucket-for-doctor does not exist: create it with indici infra apply"
        in lines["landing"]
    )
    assert lines["partitioned"].startswith("warn") and "does not exist yet" in lines["partitioned"]
    assert lines["warehouse"].startswith("FAIL") and "connection refused" in lines["warehouse"]
    assert MARKER not in out


def test_doctor_names_a_malformed_variable_and_skips_the_rest(monkeypatch, capsys):
    monkeypatch.setenv("INDICI_MAX_CONCURRENT", "0")

    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  INDICI_MAX_CONCURRENT" in out
    assert "skipped: fix the settings above first" in out
    assert not Path(".indici").exists()


def test_doctor_refuses_a_malformed_cloudwatch_prefix_and_shows_a_good_one(monkeypatch, capsys):
    monkeypatch.setenv("INDICI_CLOUDWATCH_PREFIX", f"/indici/{MARKER}/")

    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  INDICI_CLOUDWATCH_PREFIX" in out and "expected a CloudWatch" in out
    assert MARKER not in out

    monkeypatch.setenv("INDICI_CLOUDWATCH_PREFIX", "/indici")
    main(["doctor"])
    # the item column is as wide as the longest variable name: compare words, not spaces
    assert ["ok", "INDICI_CLOUDWATCH_PREFIX", "/indici"] in [
        line.split() for line in capsys.readouterr().out.splitlines()
    ]
    monkeypatch.delenv("INDICI_CLOUDWATCH_PREFIX")
    main(["doctor"])
    assert "unset (no CloudWatch outcome events)" in capsys.readouterr().out


def test_psql_starts_with_a_clean_environment(tmp_path, monkeypatch, capfd):
    # a PSQLRC planted in the environment (or, before, in .env) ran a shell command
    ran = tmp_path / "ran"
    psqlrc = tmp_path / "psqlrc"
    psqlrc.write_text(f"\\! touch {ran}\n")
    monkeypatch.setenv("PSQLRC", str(psqlrc))
    for name in ("PGPASSWORD", "PGPASSFILE", "PGUSER"):
        monkeypatch.delenv(name, raising=False)
    with server_folder("pg") as data_dir:
        monkeypatch.setenv("INDICI_PG_DIR", str(data_dir))
        embedded_dsn(data_dir)
        monkeypatch.setenv("PGOPTIONS", "-c search_path=nowhere")  # psql must not see it
        assert main(["db", "psql", "--", "-tAc", "SHOW search_path"]) == 0
        assert capfd.readouterr().out.strip() == '"$user", public'
    assert sorted(path.name for path in tmp_path.iterdir()) == ["psqlrc"]


def test_doctor_describes_each_unset_variable_by_what_it_means(tmp_path, monkeypatch, capsys):
    # every unset variable without a plain default was shown as "default (the shipped rules.yaml)"
    for name in ("INDICI_RULES", "INDICI_ALERT_SNS_TOPIC", "INDICI_UI_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("INDICI_RULES_SNAPSHOT_DIR", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))

    main(["doctor"])
    shown = {
        line.split()[1]: line.split(None, 2)[2]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith(("ok", "warn", "FAIL"))
    }
    assert shown["INDICI_RULES"] == "default (the shipped rules.yaml)"
    assert shown["INDICI_ALERT_SNS_TOPIC"] == "unset (no alerts sent)"
    assert shown["INDICI_UI_URL"] == "unset (alerts carry no link)"
    assert (
        shown["INDICI_RULES_SNAPSHOT_DIR"] == f"default ({tmp_path / 'home' / 'indici' / 'rules'})"
    )
