"""The import contracts in `.importlinter` hold: core imports no Dagster, nothing imports upward,
and there are no import cycles in the package, in core or in the benchmark."""

import shutil
import subprocess
import sys
from pathlib import Path

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Run `lint-imports` (no cache written) on the code under `root`, with its `.importlinter`."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        env={"PATH": "", "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
    )


def test_the_import_contracts_hold(repo_root: Path) -> None:
    result = lint_imports(repo_root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " kept, 0 broken." in result.stdout


def test_the_contracts_catch_dagster_in_core_an_upward_import_and_a_cycle(
    repo_root: Path, tmp_path: Path
) -> None:
    for package in ("indici_dagster", "benchmarks"):
        shutil.copytree(repo_root / package, tmp_path / package)
    shutil.copy(repo_root / ".importlinter", tmp_path)
    core = tmp_path / "indici_dagster" / "core"
    with (core / "text.py").open("a") as text:  # the foundation reaching for Dagster
        text.write("\nimport dagster  # noqa: E402\n")
    with (core / "storage" / "base.py").open(
        "a"
    ) as storage:  # the interface importing an implementation
        storage.write("\nfrom indici_dagster.core.storage import local_storage  # noqa: E402\n")
    with (core / "types" / "registry.py").open(
        "a"
    ) as types:  # a building block importing the warehouse
        types.write("\nfrom indici_dagster.core.warehouse import catalog  # noqa: E402\n")
    with (tmp_path / "indici_dagster" / "defs" / "tables" / "checks.py").open(
        "a"
    ) as checks:  # glue importing the top
        checks.write("\nfrom indici_dagster import definitions  # noqa: E402\n")

    result = lint_imports(tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "0 kept, 5 broken" in result.stdout
    report = " ".join(result.stdout.split())
    assert (
        "core imports no Dagster (directly or through the Dagster side of the package) BROKEN"
        in report
    )
    assert (
        "no import cycles among the modules of the package, of core, or of the benchmark BROKEN"
        in report
    )
    assert (
        "core imports downward: entry points, laptop server, admin, landing, warehouse, domains, "
        "foundation BROKEN" in report
    )
    assert "No cycles are allowed in indici_dagster.core.storage." in report
    assert "indici_dagster.core.text -> dagster" in report
    assert "indici_dagster.defs.tables.checks -> indici_dagster.definitions" in report
