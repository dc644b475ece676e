"""The report: the Markdown written beside the results, and the performance table of the docs.

python -m benchmarks.report                    # the full report of results/latest.json
python -m benchmarks.report --readme           # the performance table from it
python -m benchmarks.report --readme --write   # ... written into docs/performance.md
python -m benchmarks.report --readme --check   # exit 1 if docs/performance.md's table differs
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.figures import MISSING, fmt_rate, process_wall
from benchmarks.readme import performance_table, splice

HERE = Path(__file__).resolve().parent
LATEST = HERE / "results" / "latest.json"
README = HERE.parent / "docs" / "performance.md"  # the page holding the table


def contender_table(report: dict[str, Any]) -> list[str]:
    """One line per contender: its median step seconds, timed total, process wall, peak RSS."""
    lines = [
        "| contender | runs | steps (median seconds) | timed total s | process wall s "
        "| peak RSS MB |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name, entry in report["summary"].items():
        if "error" in entry:
            lines.append(f"| {name} | 0 | **error** {entry['error']} | | | |")
            continue
        steps = ", ".join(f"{k} {v:.2f}" for k, v in entry["steps"].items())
        wall = process_wall(report, name)
        lines.append(
            f"| {name} | {entry['runs']} | {steps} | {entry['total']:.2f} | "
            f"{MISSING if wall is None else f'{wall:.2f}'} | {entry['peak_rss_mb']:.0f} |"
        )
    lines.append(
        "\nProcess wall: the contender's whole process, start to exit (interpreter start, imports "
        "and, for the pipeline and the limits, the md5 check after the timed part included)."
    )
    return lines


def render(report: dict[str, Any]) -> str:
    """The human-readable report (also written as Markdown)."""
    lines = []
    config = report["config"]
    lines.append(
        f"# indici-dagster load benchmark — {report['started_at']}\n\n"
        f"{config['rows']:,} + {config['delta_rows']:,} rows "
        f"({report['files']['columns']} columns), repeats {config['repeats']}, "
        f"server {report['server']['server_version']} ({report['server']['kind']}), "
        f"{report['machine']['cpus']} CPUs, Python {report['machine']['python']}\n"
    )
    code = report["product_code"]
    if code["before"] != code["after"]:
        lines.append(
            "**Warning: the project's code changed during this run "
            f"({code['before']} -> {code['after']}); the runs measured different versions.**\n"
        )
    else:
        lines.append(f"Project code fingerprint {code['before']} (sha256 of indici_dagster/).\n")
    lines.append("| contender | rows | seconds | rows/s | x limit | peak RSS MB | note |")
    lines.append("|---|---:|---:|---:|---:|---:|---|")
    for entry in report["analysis"]["table"]:
        lines.append(
            "| {contender} | {rows:,} | {seconds} | {rate} | {ratio} | {rss} | {note} |".format(
                contender=entry["contender"],
                rows=entry["rows"],
                seconds=f"{entry['seconds']:.2f}" if entry["seconds"] else "-",
                rate=f"{entry['rows_per_s']:,.0f}" if entry["rows_per_s"] else "-",
                ratio=f"{entry['x_limit']:.2f}" if entry["x_limit"] else "-",
                rss=f"{entry['peak_rss_mb']:.0f}" if entry["peak_rss_mb"] else "-",
                note=entry["note"],
            )
        )
    lines.append("\n## Targets\n")
    for entry in report["analysis"]["targets"]:
        lines.append(f"- **{entry['status']}** {entry['target']}: {entry['detail']}")
    check = report["verification"]
    problems = "; ".join(check.get("mismatches") or [])
    lines.append(
        f"- **{check['status']}** same work everywhere: pipeline staging and rpt hold exactly "
        "the limit's rows (md5 over all columns); Dagster and backfill runs leave the same "
        "counts" + (f": {problems}" if problems else "")
    )
    lines.append("\n## Per contender: median step seconds, process wall time, peak RSS\n")
    lines.extend(contender_table(report))
    analysis = report["analysis"]
    if "dagster_step_seconds" in analysis:
        lines.append("")
        lines.append(f"- dagster step seconds (per run): {analysis['dagster_step_seconds']}")
    if "backfill" in analysis:
        b = analysis["backfill"]
        lines.append(f"\n## Backfill: {b['days']} daily files, {b['rows']:,} rows\n")
        for name, seconds in b["seconds"].items():
            lines.append(f"- {name}: {seconds:.2f}s ({fmt_rate(b['rows'], seconds)} rows/s)")
        for kind in ("direct", "dagster"):
            if f"{kind}_ratio" in b:
                lines.append(
                    f"- {kind}: range of daily files takes {b[kind + '_ratio']:.2f}x "
                    "the time of one file with the same rows"
                )
    if "sensor" in analysis:
        s = analysis["sensor"]
        lines.append(
            f"\n## Sensor: {s['objects']:,} objects in a moto S3 bucket\n\n"
            f"- first tick (nothing seen yet, {s['first_tick_runs']} runs requested; median of "
            f"{report['config']['repeats']} cold ticks): "
            f"{s['first_tick_s']:.2f}s\n"
            f"- {s['ticks_to_drain'] - 1} more ticks to hand everything over: "
            f"{s['drain_ticks_s']:.2f}s\n"
            f"- steady tick (everything seen): {s['steady_tick_s']:.2f}s, of which listing the "
            f"bucket alone takes about {s.get('list_only_s', 0):.2f}s\n"
            f"- cursor: {s['cursor_bytes']} bytes ({s['cursor']}); ledger rows {s['ledger_rows']:,}"
            f"; peak RSS {s['peak_rss_mb']:.0f} MB"
        )
    skipped = report.get("skipped") or {}
    if skipped:
        lines.append("\n## Skipped\n")
        lines.extend(f"- {name}: {why}" for name, why in skipped.items())
    lines.append(
        "\n## Data\n\n"
        f"- files: {report['files']['sizes_mb']} MB; row groups of "
        f"{report['files']['row_group_rows']:,} rows; delta mix {report['files']['delta_mix']}\n"
        f"- preparation seconds (not measured): {report['files']['seconds']}\n"
        f"- server: {report['server']}"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the report or the performance table from a results file; --write/--check the page."""
    parser = argparse.ArgumentParser(description="Render benchmark results.")
    parser.add_argument("--results", default=str(LATEST), help="results JSON (default: latest)")
    parser.add_argument("--readme", action="store_true", help="the performance table of the docs")
    parser.add_argument("--write", action="store_true", help="write it into the page")
    parser.add_argument("--check", action="store_true", help="exit 1 if the page differs")
    args = parser.parse_args(argv)
    report = json.loads(Path(args.results).read_text())
    if not args.readme:
        print(render(report), end="")
        return 0
    table = performance_table(report)
    if not (args.write or args.check):
        print(table, end="")
        return 0
    current = README.read_text()
    wanted = splice(current, table)
    if args.check:
        if wanted != current:
            print(f"{README.name}: the performance table differs from {args.results}")
            return 1
        return 0
    README.write_text(wanted)
    print(f"{README}: performance table written from {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
