"""From the runs to the numbers: medians per contender, and the rows/s table with ratios to the
limit (the targets are in `benchmarks.targets`)."""

import argparse
from typing import Any

from benchmarks.figures import (
    Summary,
    limits_of,
    load_seconds,
    median,
    ok,
    rate,
    the_limit,
    upsert_seconds,
)

Runs = dict[str, list[dict[str, Any]]]


def summarize(runs: Runs) -> Summary:
    """Median of each step (and of total, process wall time, peak RSS) per contender, over its
    successful runs."""
    summary: Summary = {}
    for name, results in runs.items():
        good = [r for r in results if "error" not in r]
        if not good:
            summary[name] = {"error": results[-1].get("error") if results else "not run"}
            continue
        steps = sorted({s for r in good for s in r["steps"]})
        summary[name] = {
            "runs": len(good),
            "steps": {s: median([r["steps"].get(s) for r in good]) for s in steps},
            "total": median([sum(r["steps"].values()) for r in good]),
            "wall_seconds": median([r.get("wall_seconds") for r in good]),
            "peak_rss_mb": median([r["peak_rss_mb"] for r in good]),
        }
    return summary


def analyze(summary: Summary, runs: Runs, info: dict[str, Any], args: argparse.Namespace) -> dict:
    """Rows/s, ratios to the limit and the targets, from the medians."""
    from benchmarks.targets import evaluate

    table = table_rows(summary, runs, info)
    out: dict[str, Any] = {"table": table, "targets": []}
    out.update(evaluate(summary, runs, info, args))
    return out


def table_rows(summary: Summary, runs: Runs, info: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per measure: rows, seconds, rows/s, ratio to its reference, peak RSS, note."""
    rows = info["rows"]
    main_rows = rows["initial"] + rows["delta"]
    table: list[dict[str, Any]] = []

    def row(
        label: str,
        n_rows: int,
        seconds: float | None,
        rss: float | None,
        reference: float | None,
        note: str = "",
    ) -> None:
        """One table line; `reference` is the rows/s its ratio is taken against."""
        own = rate(n_rows, seconds)
        table.append(
            {
                "contender": label,
                "rows": n_rows,
                "seconds": seconds,
                "rows_per_s": own,
                "x_limit": own / reference if own and reference else None,
                "peak_rss_mb": rss,
                "note": note,
            }
        )

    limits = limits_of(summary)
    name_of_limit, limit, _, limit_upsert, limit_e2e, limit_rate = the_limit(summary, main_rows)
    for name, entry in limits.items():
        note = "decode included" if name == "limit_adbc" else "CSV made beforehand"
        note += " = THE LIMIT" if name == name_of_limit else ""
        row(
            f"{name} (load)", main_rows, load_seconds(entry), entry["peak_rss_mb"], limit_rate, note
        )
    pipeline, dagster = ok(summary, "pipeline"), ok(summary, "dagster")
    by_partition = ok(summary, "pipeline_by_partition")
    if pipeline:
        row(
            "pipeline staging load",
            main_rows,
            load_seconds(pipeline),
            pipeline["peak_rss_mb"],
            limit_rate,
            "Warehouse.load_file_into_staging, decode included",
        )
    if limit:
        row(
            "hand-written upsert",
            main_rows,
            limit_upsert,
            None,
            rate(main_rows, limit_upsert),
            f"measured in {name_of_limit}",
        )
    if pipeline:
        row(
            "pipeline rpt upsert",
            main_rows,
            upsert_seconds(pipeline),
            None,
            rate(main_rows, limit_upsert),
            "Warehouse.upsert_window_into_rpt; x = vs hand-written",
        )
    if limit:
        row(
            "limit end to end",
            main_rows,
            limit_e2e,
            None,
            rate(main_rows, limit_e2e),
            "limit load + hand-written upsert",
        )
    if pipeline:
        row(
            "pipeline end to end",
            main_rows,
            pipeline["total"],
            pipeline["peak_rss_mb"],
            rate(main_rows, limit_e2e),
            "x = vs limit end to end; loads first, then upserts, as the limit",
        )
    if by_partition:
        row(
            "pipeline end to end, file by file",
            main_rows,
            by_partition["total"],
            by_partition["peak_rss_mb"],
            rate(main_rows, limit_e2e),
            "load and upsert one date, then the next, as dlt and Dagster run",
        )
    if dagster:
        row(
            "dagster, 2 partition runs",
            main_rows,
            dagster["total"],
            dagster["peak_rss_mb"],
            rate(main_rows, limit_e2e),
            "raw+partitioned+staging+rpt+checks; x = vs limit e2e",
        )
    pandas_entry = ok(summary, "pandas_to_sql")
    if pandas_entry:
        n = next(r["rows"] for r in runs["pandas_to_sql"] if "error" not in r)
        row(
            f"pandas.to_sql, slice of {n:,}",
            n,
            pandas_entry["total"],
            pandas_entry["peak_rss_mb"],
            limit_rate,
            "read + to_pandas + to_sql; x = vs limit load",
        )
    dlt_entries = {
        name: entry
        for name, entry in (
            ("dlt", ok(summary, "dlt")),
            ("dlt_parquet", ok(summary, "dlt_parquet")),
        )
        if entry
    }
    for name, entry in dlt_entries.items():
        row(
            "dlt, merge, " + ("Parquet via ADBC" if name == "dlt_parquet" else "default format"),
            main_rows,
            entry["total"],
            entry["peak_rss_mb"],
            rate(main_rows, limit_e2e),
            "x = vs limit end to end",
        )
    small, big = ok(summary, "rss_small"), ok(summary, "rss_big")
    if small:
        row(
            "pipeline staging, initial file alone",
            rows["initial"],
            small["total"],
            small["peak_rss_mb"],
            None,
            "RSS probe",
        )
    if big:
        row(
            "pipeline staging, big file alone",
            rows["big"],
            big["total"],
            big["peak_rss_mb"],
            None,
            "RSS probe",
        )

    return table
