"""The limit: ADBC `adbc_ingest` and COPY of a ready CSV into plain tables, then a hand-written
set-based upsert. Each contender returns {"steps": {name: seconds}, ...}."""

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks import project
from benchmarks.constants import (
    BENCH_SCHEMA,
    DELTA_FILE,
    INITIAL_FILE,
    KEY,
    LIMIT_RPT,
    LIMIT_STAGING,
    MAIN_DAYS,
)
from benchmarks.contenders.checks import fingerprint
from benchmarks.files import arrow_batches
from benchmarks.util import Timer, connect, day_window


def limit_tables_sql() -> str:
    from psycopg2 import sql

    columns = [
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(type_name))
        for _, name, type_name in project.rule_columns()
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

    names = [name for _, name, _ in project.rule_columns()]
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
    names = [name for _, name, _ in project.rule_columns()]
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
