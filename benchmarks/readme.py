"""docs/performance.md's performance table, rendered from a results file (never typed by hand).

`python -m benchmarks.report --readme --write` puts it between the START and END markers in
docs/performance.md; indici_dagster_tests/benchmarks/test_benchmark_report.py checks that the
page holds exactly it.
"""

from typing import Any

from benchmarks.figures import MISSING, process_wall

START = "<!-- performance:start -->"
END = "<!-- performance:end -->"
LIMIT_NAMES = {
    "limit_adbc": "ADBC binary COPY",
    "limit_csv_server": "server-side COPY of a ready CSV",
    "limit_csv_stdin": "client-side COPY of a ready CSV",
}
FOOTNOTE = f"{MISSING} in a result: not in the latest results file; the next full run fills it."


class MissingFigureError(LookupError):
    """A figure the row needs is not in the results file."""


def splice(readme: str, table: str) -> str:
    """`readme` with everything between the performance markers replaced by `table`."""
    if readme.count(START) != 1 or readme.count(END) != 1:
        raise ValueError(f"the page needs exactly one {START} and one {END}")
    head, rest = readme.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{table}{END}{tail}"


def short(rows: int) -> str:
    """1000000 -> 1M, 200000 -> 200k; other sizes with separators."""
    if rows >= 1_000_000 and rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows >= 1_000 and rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return f"{rows:,}"


def performance_table(report: dict[str, Any]) -> str:
    """The table: measure, result, target; a missing figure shows as an en dash, with a note."""
    figures = Figures(report)
    lines = ["| measure | result | target |", "|---|---|---|"]
    missing = False
    for measure, result, target in figures.rows():
        try:
            text = result()
        except (MissingFigureError, KeyError, TypeError, ZeroDivisionError):
            text, missing = MISSING, True
        if MISSING in text:
            missing = True
        lines.append(f"| {measure} | {text} | {target} |")
    if missing:
        lines += ["", FOOTNOTE]
    return "\n".join(lines) + "\n"


class Figures:
    """Read-only access to one results file, raising `MissingFigureError` for absent figures."""

    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report
        self.summary = report.get("summary", {})
        self.analysis = report.get("analysis", {})
        rows = report.get("files", {}).get("rows", {})
        self.rows_initial, self.rows_delta = rows.get("initial", 0), rows.get("delta", 0)
        self.rows_big = rows.get("big", 0)

    def entry(self, name: str) -> dict[str, Any]:
        entry = self.summary.get(name)
        if not entry or "error" in entry:
            raise MissingFigureError(name)
        return entry

    def line(self, prefix: str) -> dict[str, Any]:
        for line in self.analysis.get("table", []):
            if line["contender"].startswith(prefix):
                return line
        raise MissingFigureError(prefix)

    def status(self, prefix: str, bound: str = "") -> str:
        for target in self.analysis.get("targets", []):
            if target["target"].startswith(prefix):
                if target["status"] == "SKIP":
                    return "SKIP"
                return f"**{target['status']}**" + (f" ({bound})" if bound else "")
        return MISSING

    def wall(self, name: str) -> str:
        seconds = process_wall(self.report, name)
        return MISSING if seconds is None else f"{seconds:.2f} s"

    def rss(self, name: str) -> str:
        return f"{self.entry(name)['peak_rss_mb']:,.0f} MB"

    def rows(self) -> list[tuple[str, Any, str]]:
        """(measure, a function giving the result text, target) per table row."""
        sensor = self.analysis.get("sensor", {})
        backfill = self.analysis.get("backfill", {})
        pandas_rows = self.report.get("config", {}).get("pandas_rows", 0)
        return [
            (
                "staging load (Parquet decode included)",
                self.staging,
                self.status("staging load", "≥ 0.8x"),
            ),
            ("rpt upsert", self.upsert, self.status("rpt upsert")),
            (
                "rpt upsert with history (`python -m benchmarks.history`)",
                self.history_upsert,
                self.history_status("upsert_ratio", "≤ 1.3x without"),
            ),
            (
                "`rpt.<table>_as_of(now())` vs `SELECT *`",
                self.history_as_of,
                self.history_status("as_of_ratio", "< 2x"),
            ),
            (
                "end to end (both loads, then both upserts)",
                self.end_to_end,
                self.status("end to end >= 0.75x", "≥ 0.75x"),
            ),
            (
                "vs dlt `merge`, Parquet via ADBC",
                lambda: self.dlt("dlt_parquet", best=True),
                self.status("end to end >= 1.2x", "≥ 1.2x faster"),
            ),
            (
                "vs dlt `merge`, default format",
                lambda: self.dlt("dlt", best=False),
                self.status("end to end >= 3x", "≥ 3x"),
            ),
            (f"`pandas.to_sql` ({short(pandas_rows)}-row slice)", self.pandas, MISSING),
            (
                f"peak RSS, {short(self.rows_initial)} vs {short(self.rows_big)}-row file",
                self.rss_flat,
                self.status("peak RSS flat", "≤ 15%, ≤ 400 MB"),
            ),
            (
                "Dagster overhead per partition run",
                self.dagster,
                self.status("Dagster overhead", "≤ 3 s"),
            ),
            (
                f"{backfill.get('days', MISSING)}-day backfill (one run) vs same rows as one file",
                self.backfill,
                MISSING,
            ),
            (
                f"sensor tick, {sensor.get('objects', 0):,} objects",
                lambda: (
                    f"first {sensor['first_tick_s']:.2f} s, steady {sensor['steady_tick_s']:.2f} s"
                ),
                MISSING,
            ),
            (
                "same work as the limit (md5 of staging and rpt)",
                self.same_work,
                self.verification_status(),
            ),
        ]

    def staging(self) -> str:
        pipeline, limit = self.line("pipeline staging load"), self.analysis["limit"]
        name = limit["contender"]
        others = [
            f"{LIMIT_NAMES[other]} {self.line(other + ' ')['rows_per_s']:,.0f}"
            for other in ("limit_adbc", "limit_csv_server")
            if other != name and other in self.summary and "error" not in self.summary[other]
        ]
        return (
            f"{pipeline['rows_per_s']:,.0f} rows/s = {pipeline['x_limit']:.2f}x the limit "
            f"({LIMIT_NAMES[name]}, {limit['rows_per_s']:,.0f} rows/s"
            + "".join(f"; {other}" for other in others)
            + f"); peak RSS {self.rss('pipeline')} vs {self.rss(name)}"
        )

    def upsert(self) -> str:
        own, theirs = self.line("pipeline rpt upsert"), self.line("hand-written upsert")
        return (
            f"{own['seconds']:.2f} s vs {theirs['seconds']:.2f} s hand-written "
            f"({own['seconds'] / theirs['seconds']:.2f}x the time)"
        )

    def history(self) -> dict[str, Any]:
        """`python -m benchmarks.history`'s figures (the results file's `history`)."""
        figures = self.report.get("history")
        if not figures:
            raise MissingFigureError("history")
        return figures

    def _history_sizes(self) -> str:
        rows = self.history()["rows"]
        if (rows["initial"], rows["delta"]) == (1_000_000, 200_000):
            return ""
        size = f"{short(rows['initial'])} + {short(rows['delta'])}"
        return f" [targets are for 1M + 200k; this run {size}]"

    def history_upsert(self) -> str:
        history = self.history()
        seconds = history["seconds"]
        return (
            f"{seconds['history']:.2f} s vs {seconds['plain']:.2f} s with `history: false` "
            f"({history['upsert_ratio']:.2f}x), both loads' windows" + self._history_sizes()
        )

    def history_as_of(self) -> str:
        history = self.history()
        seconds, rows = history["seconds"], history["returned"]
        return (
            f"{seconds['as_of']:.2f} s vs {seconds['select']:.2f} s "
            f"({history['as_of_ratio']:.2f}x) "
            f"for {rows['select']:,} rows, streamed by COPY; between the two files "
            f"{seconds['mid']:.2f} s for {rows['mid']:,}" + self._history_sizes()
        )

    def history_status(self, ratio: str, bound: str) -> str:
        history = self.report.get("history")
        if not history:
            return MISSING
        limit = history["targets"]["upsert" if ratio == "upsert_ratio" else "as_of"]
        passed = history[ratio] <= limit if ratio == "upsert_ratio" else history[ratio] < limit
        return f"**{'PASS' if passed else 'FAIL'}** ({bound})"

    def end_to_end(self) -> str:
        own, limit = self.line("pipeline end to end"), self.line("limit end to end")
        return (
            f"{own['seconds']:.2f} s vs {limit['seconds']:.2f} s = {own['x_limit']:.2f}x the limit"
        )

    def dlt(self, name: str, best: bool) -> str:
        dlt, first = self.entry(name), self.entry("pipeline_by_partition")
        loads_first = self.entry("pipeline")
        speed, speed_loads_first = (
            dlt["total"] / first["total"],
            dlt["total"] / loads_first["total"],
        )
        if best:
            text = (
                f"file by file, as dlt runs: {first['total']:.2f} s vs {dlt['total']:.2f} s = "
                f"{speed:.2f}x faster; loads first: {loads_first['total']:.2f} s = "
                f"{speed_loads_first:.2f}x"
            )
        else:
            text = (
                f"{first['total']:.2f} s vs {dlt['total']:.2f} s = {speed:.2f}x faster "
                f"(loads first {speed_loads_first:.2f}x)"
            )
        text += (
            f"; whole process {self.wall('pipeline_by_partition')} vs {self.wall(name)}, "
            f"peak RSS {self.rss('pipeline_by_partition')} vs {self.rss(name)}"
        )
        return text + (" (dlt: no inserted/updated counts, no stale-row guard)" if best else "")

    def pandas(self) -> str:
        line = self.line("pandas.to_sql")
        return f"{line['rows_per_s']:,.0f} rows/s = {line['x_limit']:.2f}x the limit"

    def rss_flat(self) -> str:
        low, high = self.entry("rss_small")["peak_rss_mb"], self.entry("rss_big")["peak_rss_mb"]
        return f"{low:.0f} MB vs {high:.0f} MB ({high / low - 1:+.0%})"

    def dagster(self) -> str:
        overhead = self.analysis["dagster_overhead"]
        return (
            f"{overhead['initial']:+.2f} s ({short(self.rows_initial)} file), "
            f"{overhead['delta']:+.2f} s ({short(self.rows_delta)} file) against the same load "
            "and upsert without Dagster, in the same order (`pipeline_by_partition`); the "
            "staging step also runs its asset checks"
        )

    def backfill(self) -> str:
        seconds = self.analysis["backfill"]["seconds"]
        return (
            f"{seconds['backfill_dagster_range']:.2f} s vs "
            f"{seconds['backfill_dagster_one_file']:.2f} s; direct "
            f"{seconds['backfill_direct_range']:.2f} s vs "
            f"{seconds['backfill_direct_one_file']:.2f} s"
        )

    def same_work(self) -> str:
        check = self.report["verification"]
        if check["status"] == "PASS":
            return "identical"
        if check["status"] == "SKIP":
            raise MissingFigureError("verification")
        return "differs: " + "; ".join(check["mismatches"])

    def verification_status(self) -> str:
        status = self.report.get("verification", {}).get("status")
        return f"**{status}**" if status in ("PASS", "FAIL") else MISSING
