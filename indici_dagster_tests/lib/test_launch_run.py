"""GraphQL `launchRun` on a running `dagster-webserver` cannot move data through run config.

The webserver runs as a subprocess on 127.0.0.1 with a free port, against a temporary
DAGSTER_HOME and the project's workspace.yaml, with the environment pointing at a temporary
landing folder and the test database: the code location and the run worker load the settings
from that environment exactly as a deployment does. No daemon runs, so the sensor launches
nothing; the runs start at once (DefaultRunCoordinator).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.instance.ref import InstanceRef
from dagster._serdes import serialize_value
from dagster_graphql import DagsterGraphQLClient

from indici_dagster.definitions import INGEST_JOB
from indici_dagster_tests.lib.test_run_config import DATE, FILE, MARKER, other_database  # noqa: F401
from indici_dagster_tests.support.common import TEST_RULES, TIMEZONE, patients, query

INSTANCE_YAML = """
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
"""

STARTUP_SECONDS = 180
RUN_SECONDS = 180


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _graphql(port: int, text: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": text}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _wait_for_code_location(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dagster-webserver exited: {log.read_text()[-2000:]}")
        try:
            answer = _graphql(
                port, "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"
            )
            if answer.get("data", {}).get("repositoriesOrError", {}).get("nodes"):
                return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"the code location did not load in {STARTUP_SECONDS} s: {log.read_text()[-2000:]}")


@pytest.fixture
def webserver(tmp_path: Path, database: str, repo_root: Path) -> Iterator[tuple[int, Path]]:
    """(port, DAGSTER_HOME) of a webserver serving the project for a temporary deployment."""
    home, landing = tmp_path / "dagster_home", tmp_path / "landing"
    home.mkdir()
    landing.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    (landing / FILE).write_bytes(patients([(1, "A1"), (2, "B1")]))
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INDICI_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        INDICI_LANDING=str(landing),
        INDICI_PARTITIONED=str(tmp_path / "partitioned"),
        INDICI_RULES=str(rules),
        INDICI_PG_DSN=database,
        INDICI_TIMEZONE=TIMEZONE,
        INDICI_START_DATE="2026-01-01",
    )
    port = _free_port()
    log = tmp_path / "webserver.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("dagster-webserver")),
                *("-h", "127.0.0.1", "-p", str(port)),
                *("-w", str(repo_root / "workspace.yaml")),
            ],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its code server and run workers share its process group
        )
    try:
        _wait_for_code_location(port, process, log)
        yield port, home
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """Stop the webserver and every process it started (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _launch(port: int, home: Path, run_config: dict) -> tuple[DagsterRunStatus, str]:
    """Launch a run of the ingest job through GraphQL; its final status and event log."""
    client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=30)
    run_id = client.submit_job_execution(
        INGEST_JOB, run_config=run_config, tags={"dagster/partition": DATE}
    )
    deadline = time.monotonic() + RUN_SECONDS
    status = client.get_run_status(run_id)
    while status not in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE):
        if time.monotonic() > deadline:
            pytest.fail(f"run still {status} after {RUN_SECONDS} s")
        time.sleep(1)
        status = client.get_run_status(run_id)
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        log = "\n".join(serialize_value(entry) for entry in instance.all_logs(run_id))
    return status, log


def _schemas(dsn: str) -> list[tuple]:
    return query(dsn, "SELECT nspname FROM pg_namespace WHERE nspname IN ('indici_staging', 'rpt')")


@pytest.mark.timeout(600)
def test_launch_run_cannot_redirect_files_or_rows_and_a_partial_config_keeps_the_dsn(
    webserver,
    tmp_path,
    database,
    other_database,  # noqa: F811 (the imported fixture)
):
    port, home = webserver
    elsewhere = tmp_path / f"elsewhere-{MARKER}"

    status, log = _launch(
        port, home, {"resources": {"warehouse": {"config": {"dsn": other_database}}}}
    )
    assert status == DagsterRunStatus.FAILURE
    assert "run config sets warehouse.dsn (INDICI_PG_DSN)" in log
    assert MARKER not in log
    assert _schemas(other_database) == []

    target = {"partitioned": {"config": {"location": str(elsewhere)}}}
    status, log = _launch(port, home, {"resources": target})
    assert status == DagsterRunStatus.FAILURE
    assert "run config sets partitioned.location (INDICI_PARTITIONED)" in log
    assert MARKER not in log
    assert not elsewhere.exists()
    assert not (tmp_path / "partitioned").exists()
    assert _schemas(database) == []  # nothing written anywhere

    # only a limit, equal to the deployment's: the run loads into the configured database
    status, log = _launch(
        port, home, {"resources": {"warehouse": {"config": {"max_new_columns": 50}}}}
    )
    assert status == DagsterRunStatus.SUCCESS
    assert query(database, "SELECT patient_id FROM rpt.patients ORDER BY 1") == [(1,), (2,)]
