"""Every file the contenders read: main, big and backfill Parquet files and the limit's CSVs."""

import argparse
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import project
from benchmarks.constants import (
    BACKFILL_LAST_DAY,
    BACKFILL_ONE_FILE,
    BIG_FILE,
    DATASET,
    DELTA_FILE,
    INITIAL_FILE,
)
from benchmarks.data import chunked, delta_keys, generate_chunk, write_parquet
from benchmarks.util import Timer, file_ts


def add_metadata(
    batch, names: list[str], file_name: str, source_ts: datetime, run_id: str, first_row: int
):
    """The batch with rule (snake_case) names plus the metadata columns the staging tables hold."""
    import numpy as np
    import pyarrow as pa

    n = batch.num_rows
    arrays = [
        *batch.columns,
        pa.repeat(pa.scalar(file_name, pa.string()), n),
        pa.repeat(pa.scalar(source_ts, pa.timestamp("us", tz="UTC")), n),
        pa.array(np.arange(first_row, first_row + n, dtype=np.int64)),
        pa.repeat(pa.scalar(run_id, pa.string()), n),
    ]
    return pa.RecordBatch.from_arrays(
        arrays, names=[*names, "_source_file", "_source_ts", "_row_number", "_run_id"]
    )


def arrow_batches(path: Path, file_name: str, run_id: str, batch_rows: int = 65_536) -> Iterator:
    """The file's record batches (decoded here) with metadata columns, named as in the tables."""
    import pyarrow.parquet as pq

    names = [name for _, name, _ in project.rule_columns()]
    sources = [source for source, _, _ in project.rule_columns()]
    parquet_file = pq.ParquetFile(path)
    row = 1
    for batch in parquet_file.iter_batches(batch_size=batch_rows, columns=sources):
        yield add_metadata(batch, names, file_name, file_ts(file_name), run_id, row)
        row += batch.num_rows


def write_limit_csv(parquet: Path, file_name: str, target: Path) -> None:
    """The pre-made CSV the COPY contenders read (columns as in the limit staging table)."""
    import pyarrow.csv as pa_csv

    writer = None
    try:
        for batch in arrow_batches(parquet, file_name, "bench-csv"):
            if writer is None:
                options = pa_csv.WriteOptions(include_header=False)
                writer = pa_csv.CSVWriter(target, batch.schema, write_options=options)
            writer.write_batch(batch)
    finally:
        if writer is not None:
            writer.close()


def prepare_files(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Generate every file the contenders read; returns their paths and what went into them."""
    import numpy as np
    import pyarrow.parquet as pq

    files = work / "files"
    for sub in ("main", "big", "backfill", "backfill_one", "csv"):
        (files / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)
    os.chmod(files, 0o755)
    os.chmod(files / "csv", 0o755)  # the server reads these itself (server-side COPY)
    info: dict[str, Any] = {"row_group_rows": args.row_group_rows}
    timer = Timer()
    group = args.row_group_rows
    with timer.step("generate_main"):
        initial_keys = np.arange(1, args.rows + 1, dtype=np.int64)
        write_parquet(files / "main" / INITIAL_FILE, chunked(initial_keys, group), 1, group)
        keys, mix = delta_keys(args.rows, args.delta_rows, 2)
        write_parquet(files / "main" / DELTA_FILE, chunked(keys, group), 3, group)
        info["delta_mix"] = mix
    if args.big_rows:
        with timer.step("generate_big"):
            big_keys = np.arange(1, args.big_rows + 1, dtype=np.int64)
            write_parquet(files / "big" / BIG_FILE, chunked(big_keys, group), 4, group)
    with timer.step("generate_backfill"):
        backfill_rows = 0
        writer = None
        first_day = BACKFILL_LAST_DAY - timedelta(days=args.backfill_days - 1)
        next_key = 1
        rng = np.random.default_rng(5)
        for index in range(args.backfill_days):
            day = first_day + timedelta(days=index)
            n_update = round(args.backfill_rows_per_day * 0.3) if next_key > 1 else 0
            n_new = args.backfill_rows_per_day - n_update
            updates = rng.integers(1, next_key, n_update) if n_update else np.zeros(0, np.int64)
            keys = np.concatenate([np.arange(next_key, next_key + n_new), updates]).astype(np.int64)
            next_key += n_new
            table = generate_chunk(np.random.default_rng(1000 + index), keys)
            name = f"{DATASET}_{day:%Y%m%d}_030000.parquet"
            pq.write_table(table, files / "backfill" / name, compression="snappy")
            if writer is None:
                writer = pq.ParquetWriter(
                    files / "backfill_one" / BACKFILL_ONE_FILE, table.schema, compression="snappy"
                )
            writer.write_table(table, row_group_size=group)
            backfill_rows += table.num_rows
        if writer is not None:
            writer.close()
        info["backfill"] = {
            "days": args.backfill_days,
            "first_day": first_day.isoformat(),
            "last_day": BACKFILL_LAST_DAY.isoformat(),
            "rows": backfill_rows,
        }
    with timer.step("write_limit_csv"):
        for name in (INITIAL_FILE, DELTA_FILE):
            csv_path = files / "csv" / (name + ".csv")
            write_limit_csv(files / "main" / name, name, csv_path)
            os.chmod(csv_path, 0o644)
    info["rows"] = {
        "initial": pq.ParquetFile(files / "main" / INITIAL_FILE).metadata.num_rows,
        "delta": pq.ParquetFile(files / "main" / DELTA_FILE).metadata.num_rows,
        "big": args.big_rows,
    }
    info["sizes_mb"] = {
        p.name: round(p.stat().st_size / 1e6, 2)
        for p in [
            files / "main" / INITIAL_FILE,
            files / "main" / DELTA_FILE,
            *(files / "csv").iterdir(),
            *([files / "big" / BIG_FILE] if args.big_rows else []),
            *([files / "backfill_one" / BACKFILL_ONE_FILE] if args.backfill_days else []),
        ]
    }
    info["columns"] = len(pq.ParquetFile(files / "main" / INITIAL_FILE).schema_arrow)
    info["seconds"] = {k: round(v, 2) for k, v in timer.steps.items()}
    return info
