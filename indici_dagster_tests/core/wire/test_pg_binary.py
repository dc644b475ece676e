"""The binary COPY encoder: every value Postgres reads back is the value Arrow held."""

import contextlib
import io
import math
from datetime import UTC, date, datetime, time, timedelta
from decimal import Context, Decimal

import psycopg2
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg2 import sql

from indici_dagster.core.wire import pg_binary

AWKWARD_TEXT = [
    "",
    'say "hi", then\nleave',
    "tab\there, back\\slash, semi;colon",
    "Māori: Ngāti Whātua ō Ōrākei",
    "emoji 🩺 and CJK 医院",
    "\r\n",
    "NULL",
    "\\N",
]

COLUMNS: list[tuple[str, pa.DataType, list, str]] = [
    ("flag", pa.bool_(), [True, False, None], "boolean"),
    ("small", pa.int16(), [-(2**15), 2**15 - 1, 0, None], "smallint"),
    ("medium", pa.int32(), [-(2**31), 2**31 - 1, None, 7], "integer"),
    ("big", pa.int64(), [-(2**63), 2**63 - 1, None, -1], "bigint"),
    ("single", pa.float32(), [1.5, -0.0, float("inf"), float("-inf"), float("nan"), None], "real"),
    ("double", pa.float64(), [1e-300, -2.5e300, float("nan"), None, 0.1], "double precision"),
    ("words", pa.string(), [*AWKWARD_TEXT, None], "text"),
    ("long_words", pa.large_string(), ["x" * 100_000, None, "ü"], "text"),
    (
        "day",
        pa.date32(),
        [date(1, 1, 1), date(1999, 12, 31), date(2000, 1, 1), date(9999, 12, 31), None],
        "date",
    ),
    (
        "moment",
        pa.timestamp("us"),
        [datetime(1969, 7, 20, 20, 17, 40, 1), datetime(2000, 1, 1), None, datetime(2262, 4, 11)],
        "timestamp",
    ),
    (
        "instant",
        pa.timestamp("us", tz="UTC"),
        [datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), None],
        "timestamptz",
    ),
    ("clock", pa.time64("us"), [time(0), time(23, 59, 59, 999999), None], "time"),
    (
        "money",
        pa.decimal128(12, 2),
        [Decimal("0.00"), Decimal("-0.01"), Decimal("9999999999.99"), None, Decimal("-1234.5")],
        "numeric(12,2)",
    ),
    ("fraction", pa.decimal128(4, 4), [Decimal("0.0001"), Decimal("-0.9999"), None], "numeric"),
    (
        "whole",
        pa.decimal128(38, 0),
        [Decimal(2**63 - 1), Decimal(-(2**63)), Decimal(0), None],
        "numeric",
    ),
    (
        "huge",
        pa.decimal128(38, 10),
        [Decimal("1234567890123456789012345678.0123456789"), Decimal("-0.0000000001"), None],
        "numeric",
    ),
    ("scale18", pa.decimal128(18, 18), [Decimal("0.123456789012345678"), None], "numeric"),
    ("blob", pa.binary(), [b"", b"\x00\xff", None, b"x" * 300], "bytea"),
    ("large_blob", pa.large_binary(), [b"\x00", None], "bytea"),
    ("fixed_blob", pa.binary(3), [b"abc", None, b"\x00\x00\x00"], "bytea"),
    (
        "wide",
        pa.decimal256(60, 5),
        [Decimal("-1234567890123456789012345678901234567890.12345"), None, Decimal("0.00000")],
        "numeric(60,5)",
    ),
    ("nothing", pa.null(), [None, None], "text"),
    ("all_null", pa.string(), [None, None], "text"),
]


def _batch(columns: list[tuple[str, pa.DataType, list, str]]) -> pa.RecordBatch:
    rows = max(len(values) for _, _, values, _ in columns)
    arrays = []
    for _, kind, values, _ in columns:
        padded = (values * (rows // len(values) + 1))[:rows]
        arrays.append(pa.array(padded, kind))
    return pa.RecordBatch.from_arrays(arrays, names=[name for name, *_ in columns])


def _copy_and_read_back(dsn: str, batch: pa.RecordBatch, types: list[str]) -> list[tuple]:
    """COPY the encoded batch into a new table; its rows in order (then everything rolls back)."""
    names = batch.schema.names
    definitions = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t))
        for n, t in zip(names, types, strict=True)
    )
    data = pg_binary.COPY_HEADER + pg_binary.encode_batch(batch).to_pybytes()
    data += pg_binary.COPY_TRAILER
    with contextlib.closing(psycopg2.connect(dsn)) as connection, connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.execute("CREATE SCHEMA scratch")
        cursor.execute(
            sql.SQL("CREATE TABLE scratch.copied (position serial, {})").format(definitions)
        )
        columns = sql.SQL(", ").join(map(sql.Identifier, names))
        cursor.copy_expert(
            sql.SQL("COPY scratch.copied ({}) FROM STDIN (FORMAT binary)").format(columns),
            io.BytesIO(data),
        )
        cursor.execute(sql.SQL("SELECT {} FROM scratch.copied ORDER BY position").format(columns))
        return cursor.fetchall()


def _same(expected: object, actual: object) -> bool:
    if isinstance(actual, memoryview):  # how psycopg2 returns bytea
        actual = actual.tobytes()
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(actual, float) and math.isnan(actual)
    if isinstance(expected, float) and expected == 0:
        return actual == 0 and math.copysign(1, expected) == math.copysign(1, actual)
    return expected == actual and type(expected) is type(actual)


def _assert_round_trip(dsn: str, batch: pa.RecordBatch, types: list[str]) -> None:
    rows = _copy_and_read_back(dsn, batch, types)
    expected = batch.to_pylist()
    assert len(rows) == len(expected)
    for index, (row, wanted) in enumerate(zip(rows, expected, strict=True)):
        for name, actual in zip(batch.schema.names, row, strict=True):
            assert _same(wanted[name], actual), f"row {index}, column {name}"


def test_every_supported_type_and_null_arrives_exactly(database):
    batch = _batch(COLUMNS)
    _assert_round_trip(database, batch, [t for *_, t in COLUMNS])


def test_a_sliced_batch_encodes_only_its_own_rows(database):
    batch = _batch(COLUMNS)
    _assert_round_trip(database, batch.slice(2, 4), [t for *_, t in COLUMNS])


def test_a_batch_without_text_or_nulls_is_one_fixed_width_block(database):
    batch = pa.RecordBatch.from_arrays(
        [pa.array([1, 2, 3], pa.int64()), pa.array([4, 5, 6], pa.int32())], names=["big", "medium"]
    )
    _assert_round_trip(database, batch, ["bigint", "integer"])


def test_a_decimal_wider_than_its_declared_precision_keeps_every_digit(database):
    # Parquet stores the unscaled integer; nothing stops a writer exceeding the precision
    unscaled = pa.array([1234567890, -1234567890, 5, None], pa.int64())
    storage = pa.array(
        [
            None if v is None else v.to_bytes(16, "little", signed=True)
            for v in unscaled.to_pylist()
        ],
        pa.binary(16),
    )
    narrow = pa.Array.from_buffers(pa.decimal128(6, 2), 4, storage.buffers())
    batch = pa.RecordBatch.from_arrays([narrow], names=["amount"])
    rows = _copy_and_read_back(database, batch, ["numeric"])
    assert [r[0] for r in rows] == [
        Decimal("12345678.90"),
        Decimal("-12345678.90"),
        Decimal("0.05"),
        None,
    ]


def test_an_unsupported_type_is_refused_by_name():
    batch = pa.RecordBatch.from_arrays([pa.array([[1]], pa.list_(pa.int64()))], names=["nested"])
    with pytest.raises(pg_binary.UnsupportedBinaryTypeError, match="list"):
        pg_binary.encode_batch(batch)


def test_text_with_a_nul_byte_is_refused_by_postgres_naming_its_row_and_column(database):
    batch = pa.RecordBatch.from_arrays([pa.array(["fine", "bad\x00"])], names=["words"])
    with pytest.raises(psycopg2.DataError) as raised:
        _copy_and_read_back(database, batch, ["text"])
    assert "line 2, column words" in raised.value.diag.context


@st.composite
def decimal_columns(draw: st.DrawFn) -> tuple[pa.DataType, list]:
    precision = draw(st.integers(1, 38))
    scale = draw(st.integers(0, precision))
    limit = 10**precision - 1
    unscaled = draw(
        st.lists(
            st.one_of(
                st.none(), st.integers(-limit, limit), st.integers(-min(99, limit), min(99, limit))
            ),
            min_size=1,
            max_size=20,
        )
    )
    exact = Context(prec=80)
    values = [None if u is None else Decimal(u).scaleb(-scale, exact) for u in unscaled]
    return pa.decimal128(precision, scale), values


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(column=decimal_columns())
def test_any_decimal_arrives_with_its_value_and_scale(database, column):
    kind, values = column
    batch = pa.RecordBatch.from_arrays([pa.array(values, kind)], names=["amount"])
    rows = _copy_and_read_back(database, batch, [f"numeric({kind.precision},{kind.scale})"])
    for (actual,), wanted in zip(rows, values, strict=True):
        assert actual == wanted
        if wanted is not None:
            assert actual.as_tuple().exponent == wanted.as_tuple().exponent  # display scale


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(
        st.one_of(st.none(), st.text(st.characters(exclude_characters="\x00"))), min_size=1
    ),
    moments=st.lists(
        st.one_of(st.none(), st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31))), min_size=1
    ),
    offsets=st.lists(st.integers(-(2**62), 2**62), min_size=1),
)
def test_any_text_timestamp_and_integer_arrives_exactly(database, texts, moments, offsets):
    rows = max(len(texts), len(moments), len(offsets))
    texts, moments = (texts * rows)[:rows], (moments * rows)[:rows]
    offsets = (offsets * rows)[:rows]
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array(texts, pa.string()),
            pa.array(moments, pa.timestamp("us")),
            pa.array(offsets, pa.int64()),
        ],
        names=["words", "moment", "offset"],
    )
    _assert_round_trip(database, batch, ["text", "timestamp", "bigint"])


def test_numeric_bytes_match_what_postgres_sends_for_the_same_value(database):
    values = ["0", "0.00", "1", "-1", "10000", "0.0001", "123456789.987654321", "-0.5", "1E+5"]
    values += ["100.10", "-0.0000000001", "1234567890123456789012345678.0123456789"]
    with contextlib.closing(psycopg2.connect(database)) as connection:
        cursor = connection.cursor()
        for text in values:
            cursor.execute("SELECT numeric_send(%s::numeric)", (text,))
            (sent,) = cursor.fetchone()
            assert pg_binary.numeric_bytes(Decimal(text)) == bytes(sent), text


def test_the_epoch_offsets_match_postgres():
    assert date(2000, 1, 1) - date(1970, 1, 1) == timedelta(days=pg_binary._POSTGRES_EPOCH_DAYS)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(st.one_of(st.none(), st.floats(), st.floats(width=32)), min_size=1),
    width=st.sampled_from([32, 64]),
)
def test_any_float_arrives_in_numeric_as_the_shortest_decimal_it_prints_as(database, values, width):
    kind = pa.float32() if width == 32 else pa.float64()
    floats = pa.array(values, pa.float64()).cast(kind, safe=False)
    batch = pa.RecordBatch.from_arrays([pg_binary.numeric_from_floats(floats)], names=["amount"])
    rows = _copy_and_read_back(database, batch, ["numeric"])
    for (actual,), value in zip(rows, floats.to_pylist(), strict=True):
        if value is None:
            assert actual is None
            continue
        # what Arrow prints the float as (as Python does for a float64)
        printed = Decimal(
            pa.array([value], kind).cast(pa.string())[0].as_py().replace("inf", "Infinity")
        )
        if printed.is_nan():
            assert actual.is_nan()
            continue
        assert actual == printed
        if printed.is_finite():
            assert actual.as_tuple().exponent == min(0, printed.as_tuple().exponent)
            assert pa.scalar(float(actual), kind).as_py() == value  # reads back as the float
        if width == 64 and printed.is_finite():
            assert printed == Decimal(repr(value))


def test_numeric_bytes_of_nan_and_infinities_arrive_as_themselves(database):
    specials = [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")]
    wire = pa.array([pg_binary.numeric_bytes(v) for v in specials], pa.binary())
    batch = pa.RecordBatch.from_arrays([wire], names=["amount"])
    rows = _copy_and_read_back(database, batch, ["numeric"])
    assert str([r[0] for r in rows]) == str(specials)
    with pytest.raises(ValueError, match="signalling"):
        pg_binary.numeric_bytes(Decimal("sNaN"))
