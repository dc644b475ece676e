"""Parquet written by other engines, and memory bombs, through the real staging load on Postgres.

Each file loads with exactly the values written, or fails alone with an audit row naming the
column and row (never a value), and never stores a value as another one.
"""

import io
import json
import subprocess
import sys
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from indici_dagster.core.db_errors import FileLoadError
from indici_dagster.core.filenames import parse_file_name
from indici_dagster.core.parquet.pg_ranges import DATE_END_DAYS, DATE_MIN_DAYS, TIMESTAMP_MIN_MICROS
from indici_dagster.core.parquet.reader import open_parquet
from indici_dagster.core.rules.model import parse_rule
from indici_dagster_tests.support import foreign_parquet
from indici_dagster_tests.support.common import TIMEZONE, parquet_bytes, patients, query

VISITS = parse_rule({"dataset": "Visits"})
"""A static dataset: every column takes its type from the file."""
FILE = "Visits_20261124_020000.parquet"
NEXT_FILE = "Visits_20261124_030000.parquet"


def load(warehouse, data: bytes, name: str = FILE, rule=VISITS):
    """Load one file's bytes as the staging asset does: opened by `open_parquet`."""
    return warehouse.load_file_into_staging(
        rule,
        parse_file_name(name, TIMEZONE),
        open_parquet(io.BytesIO(data)),
        run_id="r",
        source_key=name,
        source_etag="e",
    )


def staged(database, columns: str, table: str = "visits") -> list[tuple]:
    return query(
        database, f"SELECT {columns} FROM indici_staging.{table} ORDER BY _source_file, _row_number"
    )


def audit(database, name: str = FILE) -> list[tuple]:
    return query(
        database,
        "SELECT status, rows_loaded, message FROM indici_staging.auditlog "
        "WHERE source_file = %s AND step = 'staging' ORDER BY id",
        (name,),
    )


def assert_fails_alone(warehouse, database, data: bytes, column: str, row: int, what: str):
    """The file fails naming column and row; it is audited `error`; the next file loads."""
    with pytest.raises(FileLoadError) as raised:
        load(warehouse, data)
    message = str(raised.value)
    assert f"column {column!r}" in message and f"row {row})" in message and what in message
    assert audit(database) == [("error", 0, message.removeprefix(f"{FILE}: "))]
    load(warehouse, foreign_parquet.spark_file(pa.table({"Code": ["ok"]})), NEXT_FILE)
    assert staged(database, "_source_file") == [(NEXT_FILE,)]


SPARK_TIMES = [
    datetime(9999, 12, 31, 23, 59, 59, 999999),
    datetime(1, 1, 1),
    datetime(2026, 11, 22, 9, 30, 0, 123456),
    None,
]


def test_spark_int96_timestamps_load_exactly_even_outside_the_nanosecond_range(warehouse, database):
    table = pa.table(
        {
            "SeenAt": pa.array(SPARK_TIMES, pa.timestamp("us")),
            "Amount": pa.array(
                [Decimal("12345678901234.5678"), Decimal("-0.0001"), Decimal("0"), None],
                pa.decimal128(20, 4),
            ),
            "Fee": pa.array(
                [Decimal("1234567.89"), Decimal("-1.00"), None, Decimal("0.01")],
                pa.decimal128(9, 2),
            ),
            "Code": ["ZZZ0001", "Ā ū", None, ""],
        }
    )

    load(warehouse, foreign_parquet.spark_file(table))

    assert staged(database, "seen_at, amount, fee, code") == list(
        zip(*[table.column(i).to_pylist() for i in range(4)], strict=True)
    )
    columns = query(
        database,
        "SELECT column_name, data_type, numeric_precision, numeric_scale "
        "FROM information_schema.columns WHERE table_schema = 'indici_staging' "
        "AND table_name = 'visits' AND column_name IN ('seen_at', 'amount', 'fee') "
        "ORDER BY column_name",
    )
    assert columns == [
        ("amount", "numeric", 20, 4),
        ("fee", "numeric", 9, 2),
        ("seen_at", "timestamp without time zone", None, None),
    ]


def test_an_int96_timestamp_before_postgres_first_day_fails_its_file_naming_column_and_row(
    warehouse, database
):
    first_day = TIMESTAMP_MIN_MICROS + 86_400_000_000  # Julian day 1: Postgres's second day
    # the day before Julian day 0 is written as INT96 day 2**32 - 1 (11.7 million AD), which
    # microseconds cannot hold: read at microseconds it would wrap to 63,400 AD
    micros = pa.array([0, first_day, TIMESTAMP_MIN_MICROS - 1], pa.int64())
    table = pa.table({"SeenAt": micros.cast(pa.timestamp("us"))})

    assert_fails_alone(
        warehouse, database, foreign_parquet.spark_file(table), "SeenAt", 3, "timestamp range"
    )


def test_nanosecond_timestamps_keep_every_microsecond_and_drop_only_the_nanoseconds(
    warehouse, database
):
    nanos = [1_700_000_000_123_456_789, -1, 9_223_372_036_854_775_807, None]
    table = pa.table({"SeenAt": pa.array(nanos, pa.timestamp("ns"))})

    load(warehouse, foreign_parquet.nanosecond_file(table))

    assert staged(database, "seen_at") == [
        (datetime(2023, 11, 14, 22, 13, 20, 123456),),
        (datetime(1970, 1, 1),),  # truncated toward zero
        (datetime(2262, 4, 11, 23, 47, 16, 854775),),
        (None,),
    ]


@pytest.mark.parametrize("unit", ["ms", "us"])
def test_parquet_mr_millisecond_and_microsecond_timestamps_load_exactly(warehouse, database, unit):
    values = [datetime(1900, 1, 1, 0, 0, 0, 1000), datetime(9999, 12, 31, 23, 59, 59, 999000)]
    table = pa.table(
        {
            "SeenAt": pa.array(values, pa.timestamp(unit)),
            "Born": pa.array([date(1, 1, 1), date(9999, 12, 31)], pa.date32()),
        }
    )

    load(warehouse, foreign_parquet.parquet_mr_file(table, timestamp_unit=unit))

    assert staged(database, "seen_at, born") == list(
        zip(values, [date(1, 1, 1), date(9999, 12, 31)], strict=True)
    )


@pytest.mark.parametrize("unit", ["s", "ms"])
def test_a_timestamp_whose_microseconds_overflow_fails_its_file_instead_of_wrapping(
    warehouse, database, unit
):
    overflowing = {"s": 10**13, "ms": 2**62}[unit]  # Parquet itself keeps seconds as ms
    counts = pa.array([0, 1, overflowing], pa.int64())
    table = pa.table({"SeenAt": counts.cast(pa.timestamp(unit))})

    assert_fails_alone(warehouse, database, parquet_bytes(table), "SeenAt", 3, "timestamp")


@pytest.mark.parametrize("days", [DATE_END_DAYS, DATE_MIN_DAYS - 1, 2**31 - 1, -(2**31)], ids=str)
def test_a_date_outside_postgres_range_fails_its_file_naming_column_and_row(
    warehouse, database, days
):
    table = pa.table({"Born": pa.array([0, DATE_END_DAYS - 1, DATE_MIN_DAYS, days], pa.date32())})

    assert_fails_alone(
        warehouse, database, foreign_parquet.spark_file(table), "Born", 4, "date range"
    )


def test_date64_values_load_as_their_dates(warehouse, database):
    days = [date(1, 1, 1), date(2026, 11, 24), None]
    table = pa.table({"Born": pa.array(days, pa.date64())})

    load(warehouse, parquet_bytes(table))  # only Arrow's own schema keeps date64

    assert staged(database, "born") == [(d,) for d in days]


ENCODED = pa.table(
    {
        "VisitID": pa.array([3, -(2**63), 2**63 - 1, None, 7] * 400, pa.int64()),
        "Code": pa.array(["ZZZ0001", "ZZZ0001-extra", "", None, "ā" * 300] * 400),
    }
)


@pytest.mark.parametrize("page_version", ["1.0", "2.0"])
@pytest.mark.parametrize(
    "encodings",
    [
        None,
        {"VisitID": "PLAIN", "Code": "PLAIN"},
        {"VisitID": "DELTA_BINARY_PACKED", "Code": "DELTA_LENGTH_BYTE_ARRAY"},
        {"VisitID": "DELTA_BINARY_PACKED", "Code": "DELTA_BYTE_ARRAY"},
    ],
    ids=["dictionary", "plain", "delta-length", "delta-byte-array"],
)
def test_dictionary_delta_and_page_v2_encodings_load_exactly(
    warehouse, database, encodings, page_version
):
    load(warehouse, foreign_parquet.encoded_file(ENCODED, encodings, page_version=page_version))

    expected = list(zip(*[ENCODED.column(i).to_pylist() for i in range(2)], strict=True))
    assert staged(database, "visit_id, code") == expected


def test_impala_binary_strings_load_as_text_where_the_rule_says_text(warehouse, database):
    rule = parse_rule(
        {
            "dataset": "Visits",
            "primary_key": ["VisitID"],
            "columns": {"VisitID": "bigint", "Code": "text"},
        }
    )
    table = pa.table(
        {
            "VisitID": pa.array([1, 2, 3], pa.int64()),
            "Code": pa.array([b"ZZZ0001", "Ā".encode(), None]),
        }
    )

    load(warehouse, foreign_parquet.impala_file(table), rule=rule)

    assert staged(database, "visit_id, code") == [(1, "ZZZ0001"), (2, "Ā"), (3, None)]


def test_impala_binary_and_fixed_size_binary_columns_of_a_static_dataset_load_as_bytea(
    warehouse, database
):
    table = pa.table(
        {
            "Blob": pa.array([b"\x00\xff", b"", None], pa.binary()),
            "Digest": pa.array([b"abcd", b"\x00\x00\x00\x01", None], pa.binary(4)),
        }
    )

    load(warehouse, foreign_parquet.impala_file(table))

    rows = staged(database, "blob, digest")
    assert [tuple(None if v is None else bytes(v) for v in row) for row in rows] == [
        (b"\x00\xff", b"abcd"),
        (b"", b"\x00\x00\x00\x01"),
        (None, None),
    ]


MEMORY_LIMIT_MIB = 2560
"""The address space each file is loaded in: a good load reserves about 1.7 GiB of it (thread
stacks, allocator arenas), a reader that decodes a bomb's batch whole needs a further 2 GiB."""
PEAK_RSS_MIB = 512
"""Resident memory a load stays under, bomb or not (measured: about 300 MiB; a whole-batch
reader reached 1.1 GiB on these bombs before the limit stopped it)."""


def probe(database, path, limit_mib: int = MEMORY_LIMIT_MIB) -> dict:
    """Load `path` in a process of its own, limited to `limit_mib` of address space."""
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "indici_dagster_tests.support.memory_probe",
            database,
            str(path),
            str(limit_mib),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("bomb", "exceeded"),
    [
        (foreign_parquet.dictionary_bomb, "the file decodes to over 256.0 MiB"),
        (foreign_parquet.compressed_page_bomb, "the file's pages decompress to 1,536.0 MiB"),
    ],
    ids=["dictionary", "compressed-page"],
)
def test_a_memory_bomb_fails_alone_under_a_memory_limit_and_good_files_still_load(
    database, tmp_path, bomb, exceeded
):
    bomb_file = tmp_path / "Patients_20261124_020000.parquet"
    bomb_file.write_bytes(bomb())
    good_file = tmp_path / "Patients_20261124_030000.parquet"
    good_file.write_bytes(patients([(i, f"Family{i:06d}") for i in range(1, 200_001)]))

    failed = probe(database, bomb_file)
    loaded = probe(database, good_file)

    assert exceeded in failed["error"] and "nothing of this file was loaded" in failed["error"]
    assert "AAAA" not in failed["error"]
    assert failed["peak_rss_mib"] < PEAK_RSS_MIB and loaded["peak_rss_mib"] < PEAK_RSS_MIB
    assert query(
        database,
        "SELECT source_file, status, rows_loaded FROM indici_staging.auditlog ORDER BY id",
    ) == [(bomb_file.name, "error", 0), (good_file.name, "success", 200_000)]
    assert loaded["rows"] == 200_000
    assert query(database, "SELECT count(*) FROM indici_staging.patients")[0][0] == 200_000
