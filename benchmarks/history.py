"""The cost of rpt history: the rpt upsert with and without it, and `_as_of` against `SELECT *`.

The benchmark's two files (1M rows, then a 200k-row delta: 30% updates, 5% keys repeated)
are loaded into staging of two fresh databases, one whose rule says `history: false`; then each
date's window is upserted as the rpt step does, timed. On the history database,
`rpt.bench_events_as_of(now())` and `SELECT * FROM rpt.bench_events` (and `_as_of` between the
two files) are each streamed out by `COPY (...) TO STDOUT` into a null sink, so the figure is the
server producing and sending every row, not Python parsing them. Targets: history adds at most
30 % to the upsert; `_as_of` takes under 2x `SELECT *`. Medians of `--repeats` rounds; the
figures are merged into the results file (`history`), which the table in
docs/performance.md is rendered from. Not part of the test suite:

    .venv/bin/python -m benchmarks.history [--rows 1000000] [--delta-rows 200000] [--repeats 3]
"""

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.cli import HERE
from benchmarks.constants import DELTA_FILE, INITIAL_FILE, MAIN_DAYS, RULE, TABLE, TIMEZONE
from benchmarks.data import chunked, delta_keys, write_parquet
from benchmarks.server import bench_database, postgres_server
from benchmarks.util import connect, day_window, file_ts

UPSERT_BOUND = 1.30
AS_OF_BOUND = 2.0


def _files(folder: Path, rows: int, delta_rows: int) -> None:
    import numpy as np

    group = 1_048_576
    write_parquet(
        folder / INITIAL_FILE, chunked(np.arange(1, rows + 1, dtype=np.int64), group), 1, group
    )
    keys, _ = delta_keys(rows, delta_rows, 2)
    write_parquet(folder / DELTA_FILE, chunked(keys, group), 3, group)


def _load_and_upsert(dsn: str, folder: Path, history: bool) -> float:
    """Load both files into staging (untimed), then upsert each date's window; the upserts'
    seconds."""
    from indici_dagster.core.filenames import parse_file_name
    from indici_dagster.core.parquet.reader import open_parquet
    from indici_dagster.core.rules.model import parse_rule
    from indici_dagster.core.steps.ingest import partition_key_of_file
    from indici_dagster.core.storage.local_storage import LocalStorage
    from indici_dagster.core.warehouse.facade import Warehouse

    rule = parse_rule({**RULE, "history": history})
    warehouse = Warehouse(dsn, TIMEZONE)
    warehouse.ensure_catalog()
    storage = LocalStorage(folder)
    run_id = str(uuid.uuid4())
    for name in (INITIAL_FILE, DELTA_FILE):
        obj = storage.head(name)
        with storage.open_for_read(name, etag=obj.etag) as handle:
            warehouse.load_file_into_staging(
                rule,
                parse_file_name(name, TIMEZONE),
                open_parquet(handle),
                run_id=run_id,
                source_key=name,
                source_etag=obj.etag,
            )
    started = time.perf_counter()
    for day in MAIN_DAYS:
        warehouse.upsert_window_into_rpt(
            rule,
            *day_window(day),
            run_id=run_id,
            partition_key_of=lambda n: partition_key_of_file(n, TIMEZONE),
        )
    return time.perf_counter() - started


def _stream_seconds(dsn: str, query: str) -> float:
    """Seconds to stream a query's rows out with COPY ... TO STDOUT into a null sink."""
    with contextlib.closing(connect(dsn)) as connection, connection.cursor() as cursor:
        with open(os.devnull, "w") as sink:
            started = time.perf_counter()
            cursor.copy_expert(f"COPY ({query}) TO STDOUT", sink)
            return time.perf_counter() - started


def measure(rows: int, delta_rows: int, repeats: int) -> dict[str, Any]:
    """Median seconds: upserts without and with history, `SELECT *`, `_as_of(now())` and
    `_as_of` between the files; and the rows each returns."""
    runs: dict[str, list[float]] = {k: [] for k in ("plain", "history", "select", "as_of", "mid")}
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "files"
        folder.mkdir()
        _files(folder, rows, delta_rows)
        mid = (
            file_ts(INITIAL_FILE) + (file_ts(DELTA_FILE) - file_ts(INITIAL_FILE)) / 2
        ).isoformat()
        queries = {
            "select": f"SELECT * FROM rpt.{TABLE}",
            "as_of": f"SELECT * FROM rpt.{TABLE}_as_of(now())",
            "mid": f"SELECT * FROM rpt.{TABLE}_as_of('{mid}')",
        }
        with postgres_server(Path(work)) as (admin, _):
            for _ in range(repeats):
                for key, history in (("plain", False), ("history", True)):
                    with bench_database(admin) as dsn:
                        runs[key].append(_load_and_upsert(dsn, folder, history))
                        if not history:
                            continue
                        with (
                            contextlib.closing(connect(dsn, autocommit=True)) as c,
                            c.cursor() as cur,
                        ):
                            cur.execute(f"VACUUM ANALYZE rpt.{TABLE}")
                            cur.execute(f"VACUUM ANALYZE rpt.{TABLE}_past")
                            for name, query in queries.items():
                                cur.execute(f"SELECT count(*) FROM ({query}) q")
                                counts[name] = cur.fetchone()[0]
                        for name, query in queries.items():
                            _stream_seconds(dsn, query)  # warm: both read from cache
                            runs[name].append(_stream_seconds(dsn, query))
    medians = {k: statistics.median(v) for k, v in runs.items()}
    return {
        "rows": {"initial": rows, "delta": delta_rows},
        "repeats": repeats,
        "seconds": medians,
        "runs": runs,
        "returned": counts,
        "upsert_ratio": medians["history"] / medians["plain"],
        "as_of_ratio": medians["as_of"] / medians["select"],
        "targets": {"upsert": UPSERT_BOUND, "as_of": AS_OF_BOUND},
    }


def merge(results_file: Path, figures: dict[str, Any]) -> None:
    """Put `figures` into the results file's `history`."""
    report = json.loads(results_file.read_text())
    report["history"] = figures
    results_file.write_text(json.dumps(report, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.history", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--delta-rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "results" / "latest.json"))
    args = parser.parse_args(argv)
    figures = measure(args.rows, args.delta_rows, args.repeats)
    seconds = figures["seconds"]
    print(
        f"rpt upsert: {seconds['plain']:.2f}s without history, {seconds['history']:.2f}s with "
        f"({figures['upsert_ratio']:.2f}x; target <= {UPSERT_BOUND:.2f}x)"
    )
    print(
        f"_as_of(now()): {seconds['as_of']:.2f}s vs SELECT * {seconds['select']:.2f}s "
        f"({figures['as_of_ratio']:.2f}x; target < {AS_OF_BOUND:.0f}x); between the files "
        f"{seconds['mid']:.2f}s; rows {figures['returned']}"
    )
    merge(Path(args.out), figures)
    passed = figures["upsert_ratio"] <= UPSERT_BOUND and figures["as_of_ratio"] < AS_OF_BOUND
    return 0 if passed else 2


if __name__ == "__main__":
    raise SystemExit(main())
