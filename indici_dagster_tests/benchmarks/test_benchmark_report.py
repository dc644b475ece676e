"""docs/performance.md's table is rendered from the benchmark's latest results, not typed."""

import copy
import json
from pathlib import Path

import pytest

from benchmarks.figures import MISSING
from benchmarks.readme import END, FOOTNOTE, START, performance_table, splice
from benchmarks.report import render


@pytest.fixture
def latest(repo_root: Path) -> dict:
    return json.loads((repo_root / "benchmarks" / "results" / "latest.json").read_text())


def readme_table(repo_root: Path) -> str:
    text = (repo_root / "docs" / "performance.md").read_text()
    assert text.count(START) == 1 and text.count(END) == 1
    return text.split(START, 1)[1].split(END, 1)[0].removeprefix("\n")


def test_docs_performance_table_matches_what_the_report_renders_from_latest_json(
    repo_root: Path, latest: dict
) -> None:
    assert readme_table(repo_root) == performance_table(latest)


def test_a_changed_figure_in_the_results_changes_the_table(repo_root: Path, latest: dict) -> None:
    changed = copy.deepcopy(latest)
    line = next(x for x in changed["analysis"]["table"] if x["contender"].startswith("pipeline st"))
    line["rows_per_s"] += 1_000
    assert readme_table(repo_root) != performance_table(changed)


def test_the_table_gives_process_wall_time_and_peak_rss_next_to_dlts(latest: dict) -> None:
    table = performance_table(latest)
    dlt_line = next(line for line in table.splitlines() if "Parquet via ADBC" in line)
    assert "whole process" in dlt_line and "peak RSS" in dlt_line
    assert f"{latest['summary']['dlt_parquet']['peak_rss_mb']:,.0f} MB" in dlt_line


def test_a_figure_missing_from_the_results_shows_a_dash_and_says_the_next_run_fills_it(
    latest: dict,
) -> None:
    partial = copy.deepcopy(latest)
    del partial["summary"]["dlt"]
    for run in partial["runs"]["dlt_parquet"]:
        run.pop("wall_seconds")
    partial["summary"]["dlt_parquet"].pop("wall_seconds", None)
    table = performance_table(partial)
    lines = table.splitlines()
    default_dlt = next(line for line in lines if "default format" in line)
    assert default_dlt.split(" | ")[1] == MISSING
    best_dlt = next(line for line in lines if "Parquet via ADBC" in line)
    assert f"vs {MISSING}, peak RSS" in best_dlt
    assert lines[-1] == FOOTNOTE
    assert FOOTNOTE not in performance_table(latest)


def test_the_full_report_lists_step_times_process_wall_and_peak_rss_per_contender(
    latest: dict,
) -> None:
    report = render(latest)
    assert "| contender | runs | steps (median seconds) | timed total s | process wall s" in report
    pipeline_line = next(line for line in report.splitlines() if line.startswith("| pipeline |"))
    cells = [cell.strip() for cell in pipeline_line.strip("|").split("|")]
    assert cells[2].startswith("load_delta") and float(cells[4]) > float(cells[3])


def test_splice_refuses_a_readme_without_both_markers() -> None:
    with pytest.raises(ValueError, match="performance:start"):
        splice("# no markers here\n", "| a |\n")
