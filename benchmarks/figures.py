"""The benchmark's shared figures: which runs succeeded, step sums, rates, the limit, each
contender's process wall time, and the mark for a figure the results file lacks."""

import statistics
from typing import Any, NamedTuple

Summary = dict[str, dict[str, Any]]
LIMITS = ("limit_adbc", "limit_csv_server", "limit_csv_stdin")
MISSING = "\u2013"
"""Shown where the results file lacks a figure (the next full run fills it)."""


def median(values: list[float | None]) -> float | None:
    """Median of the values that are not None; None when there are none."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ok(summary: Summary, name: str) -> dict[str, Any] | None:
    """The contender's medians, or None when it did not run or errored."""
    entry = summary.get(name)
    return entry if entry and "error" not in entry else None


def load_seconds(entry: dict[str, Any]) -> float:
    """Seconds for loading both main files."""
    return entry["steps"]["load_initial"] + entry["steps"]["load_delta"]


def upsert_seconds(entry: dict[str, Any]) -> float:
    """Seconds for upserting both main dates."""
    return entry["steps"]["upsert_initial"] + entry["steps"]["upsert_delta"]


def rate(n_rows: int, seconds: float | None) -> float | None:
    """Rows per second, or None without a time."""
    return n_rows / seconds if seconds else None


def fmt_rate(rows: float, seconds: float | None) -> str:
    """Rows per second with thousands separators, or "-"."""
    return f"{rows / seconds:,.0f}" if seconds else "-"


def limits_of(summary: Summary) -> dict[str, dict[str, Any]]:
    """The limit contenders that succeeded."""
    return {n: entry for n in LIMITS if (entry := ok(summary, n))}


def limit_name(summary: Summary) -> str | None:
    """The limit: the faster of ADBC and server-side COPY at loading both files; client-side COPY
    of the same CSV stands in only where the server may not read files."""
    limits = limits_of(summary)
    candidates = [n for n in limits if n != "limit_csv_stdin"] or list(limits)
    return min(candidates, key=lambda n: load_seconds(limits[n])) if candidates else None


class Limit(NamedTuple):
    """The limit contender and its figures over `n_rows` (all None when no limit ran)."""

    name: str | None
    entry: dict[str, Any] | None
    load: float | None
    upsert: float | None
    end_to_end: float | None
    rate: float | None


def the_limit(summary: Summary, n_rows: int) -> Limit:
    """The fastest limit's medians: load and upsert seconds, their sum, and its load rows/s."""
    name = limit_name(summary)
    entry = limits_of(summary).get(name) if name else None
    load = load_seconds(entry) if entry else None
    upsert = upsert_seconds(entry) if entry else None
    end_to_end = load + upsert if load is not None and upsert is not None else None
    return Limit(name, entry, load, upsert, end_to_end, rate(n_rows, load))


def process_wall(report: dict[str, Any], name: str) -> float | None:
    """Median wall time of the contender's processes, start to exit (older results files kept it
    per run only)."""
    entry = report["summary"].get(name) or {}
    if entry.get("wall_seconds") is not None:
        return entry["wall_seconds"]
    good = [r for r in report.get("runs", {}).get(name, []) if "error" not in r]
    return median([r.get("wall_seconds") for r in good])
