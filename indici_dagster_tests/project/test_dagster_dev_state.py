"""`dagster dev` from the repo root keeps Dagster's state under ./.indici/dagster across restarts.

With DAGSTER_HOME unset, `dagster dev` (and every other `dagster` command) builds a throwaway
instance home in the current folder but applies the repo-root dagster.yaml. These tests copy that
file into a scratch project folder, record a run through the public `dagster` CLI there, and
find the run, its materialization, its check result and its step logs from a second instance
opened exactly the way `dagster dev` opens one.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

TINY_PROJECT = """
from dagster import AssetCheckResult, Definitions, asset, asset_check


@asset
def tiny(context):
    context.log.info("tiny ran")
    print("tiny wrote to stdout")


@asset_check(asset=tiny)
def tiny_ok():
    return AssetCheckResult(passed=True)


defs = Definitions(assets=[tiny], asset_checks=[tiny_ok])
"""

# `dagster dev` opens its instance with this call (dagster/_cli/dev.py), from the current folder
OPEN_LIKE_DAGSTER_DEV = """
import json
from pathlib import Path

import yaml
from dagster import AssetCheckKey, AssetKey
from dagster._cli.utils import get_possibly_temporary_instance_for_cli

with get_possibly_temporary_instance_for_cli("dagster dev") as instance:
    ref = instance.get_ref()
    dirs = {
        "storage": ref.storage_data.config_yaml,
        "compute_logs": ref.compute_logs_data.config_yaml,
        "artifacts": ref.local_artifact_storage_data.config_yaml,
    }
    materialization = instance.get_latest_materialization_event(AssetKey("tiny"))
    checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [AssetCheckKey(AssetKey("tiny"), "tiny_ok")]
    )
    print(json.dumps({
        "runs": [[run.run_id, run.status.value] for run in instance.get_runs()],
        "materialized_by": materialization.run_id if materialization else None,
        "checks": [str(execution.status) for execution in checks.values()],
        "dirs": {
            name: str(Path(yaml.safe_load(text)["base_dir"]).resolve())
            for name, text in dirs.items()
        },
    }))
"""


def _project(tmp_path: Path, repo_root: Path) -> tuple[Path, dict[str, str]]:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(repo_root / "dagster.yaml", project / "dagster.yaml")
    (project / "tiny_project.py").write_text(TINY_PROJECT)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["PYTHONPATH"] = os.pathsep.join([str(project), env.get("PYTHONPATH", "")])
    return project, env


def _dagster(project: Path, env: dict[str, str], *args: str) -> None:
    dagster = Path(sys.executable).with_name("dagster")
    subprocess.run(
        [str(dagster), *args], cwd=project, env=env, check=True, capture_output=True, timeout=240
    )


def _open_like_dagster_dev(project: Path, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", OPEN_LIKE_DAGSTER_DEV],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_repo_root_dagster_yaml_keeps_every_store_under_dot_indici(repo_root):
    config = yaml.safe_load((repo_root / "dagster.yaml").read_text())

    assert config["storage"] == {"sqlite": {"base_dir": ".indici/dagster"}}
    assert config["compute_logs"]["config"]["base_dir"].startswith(".indici/dagster")
    assert config["local_artifact_storage"]["config"]["base_dir"].startswith(".indici/dagster")
    assert ".indici/" in (repo_root / ".gitignore").read_text().splitlines()


def test_a_run_recorded_by_one_dagster_process_is_found_by_the_next(tmp_path, repo_root):
    project, env = _project(tmp_path, repo_root)

    _dagster(project, env, "asset", "materialize", "-m", "tiny_project", "--select", "tiny")
    seen = _open_like_dagster_dev(project, env)

    state = project / ".indici" / "dagster"
    assert len(seen["runs"]) == 1
    run_id, status = seen["runs"][0]
    assert status == "SUCCESS"
    assert seen["materialized_by"] == run_id
    assert seen["checks"] == ["AssetCheckExecutionRecordStatus.SUCCEEDED"]
    for name, folder in seen["dirs"].items():
        assert Path(folder).is_relative_to(state), name
    assert (state / "history" / "runs" / f"{run_id}.db").is_file()
    assert any((state / "logs" / run_id).rglob("*.out"))
    # the throwaway home `dagster` made is gone; nothing of the run depended on it
    assert not list(project.glob(".tmp_dagster_home_*"))

    # a second run through a new process adds to the same history
    _dagster(project, env, "asset", "materialize", "-m", "tiny_project", "--select", "tiny")
    assert len(_open_like_dagster_dev(project, env)["runs"]) == 2
