"""Every allowed column type loads through the one binary COPY path, typed: values arrive as the
staging column's own type, a value that does not fit names its column, type and exact row, and
a file whose column type changed fails rather than being stored as reinterpreted bytes."""

import contextlib
import dataclasses
import io
import json
import uuid
from decimal import Decimal

import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indici_dagster.core.db_errors import CleanError, FileLoadError
from indici_dagster.core.filenames import parse_file_name
from indici_dagster.core.rules.model import parse_rule
from indici_dagster.core.wire import wire_forms
from indici_dagster_tests.support.common import TIMEZONE, parquet_bytes, query

VISITS = parse_rule(
    {
        "dataset": "Visits",
        "primary_key": ["VisitID"],
        "columns": {
            "VisitID": "bigint",
            "Note": "text",
            "VisitGuid": "uuid",
            "Detail": "json",
            "Extra": "jsonb",
            "Quantity": "numeric",
            "Price": "numeric(12,2)",
            "Scan": "bytea",
        },
    }
)
CODES = parse_rule({"dataset": "Codes"})


def load(warehouse, name, table, rule=VISITS):
    return warehouse.load_file_into_staging(
        rule,
        parse_file_name(name, TIMEZONE),
        pq.ParquetFile(io.BytesIO(table if isinstance(table, bytes) else parquet_bytes(table))),
        run_id="r",
        source_key=name,
        source_etag="e",
    )


def rows_of(database, statement):
    """The query's rows, bytea values as bytes (psycopg2 returns them as memoryview)."""
    return [
        tuple(v.tobytes() if isinstance(v, memoryview) else v for v in row)
        for row in query(database, statement)
    ]


def audits(database, name):
    return query(
        database,
        "SELECT status, message FROM indici_staging.auditlog WHERE source_file = %s ORDER BY id",
        (name,),
    )


def visits(rows):
    """A Visits file of `rows` dicts (columns left out are NULL), typed as indici writes it."""
    columns = {
        "VisitID": pa.int64(),
        "Note": pa.string(),
        "VisitGuid": pa.string(),
        "Detail": pa.string(),
        "Extra": pa.string(),
        "Quantity": pa.float64(),
        "Price": pa.float64(),
        "Scan": pa.binary(),
    }
    return pa.table({c: pa.array([r.get(c) for r in rows], t) for c, t in columns.items()})


GUID = "0b7e4c5e-8f5a-4c1e-9d0a-2f3c4b5a6d7e"


def test_uuid_json_jsonb_numeric_and_bytea_arrive_exactly(warehouse, database):
    detail = '{"b": [1, 2.50, "x\\ny"], "a": null, "n": 123456789012345678901234567890}'
    rows = [
        {"VisitID": 1, "VisitGuid": GUID, "Detail": detail, "Extra": detail, "Quantity": 0.1},
        {"VisitID": 2, "VisitGuid": "{0B7E4C5E8F5A4C1E9D0A2F3C4B5A6D7E}", "Quantity": 1e300},
        {"VisitID": 3, "VisitGuid": GUID.replace("-", ""), "Quantity": -2.675, "Price": 2.675},
        {"VisitID": 4, "Detail": '"\\ud800"', "Extra": '"\\u00e9"', "Quantity": float("nan")},
        {"VisitID": 5, "Quantity": 5e-324, "Price": 0.125, "Scan": b"\x00\xff\x00"},
        {"VisitID": 6, "Quantity": float("-inf"), "Price": -0.0},
    ]
    load(warehouse, "Visits_20261124_020000.parquet", visits(rows))

    assert rows_of(
        database,
        "SELECT visit_id, visit_guid::text, detail::text, extra, quantity::text, price::text, "
        "scan FROM indici_staging.visits ORDER BY visit_id",
    ) == [
        (1, GUID, detail, json.loads(detail), "0.1", None, None),
        (2, GUID, None, None, "1" + "0" * 300, None, None),
        (3, GUID, None, None, "-2.675", "2.68", None),  # rounded as Postgres rounds "2.675"
        (4, None, '"\\ud800"', "é", "NaN", None, None),  # json keeps it; jsonb would not
        (5, None, None, None, "0." + "0" * 323 + "5", "0.13", b"\x00\xff\x00"),
        (6, None, None, None, "-Infinity", "0.00", None),
    ]


def test_a_float32_into_numeric_loads_as_the_decimal_it_prints_as(warehouse, database):
    rule = parse_rule({"dataset": "Visits", "primary_key": ["VisitID"],
                       "columns": {"VisitID": "bigint", "Quantity": "numeric"}})  # fmt: skip
    table = {"VisitID": [1, 2], "Quantity": pa.array([0.1, 16777216.0], pa.float32())}
    load(warehouse, "Visits_20261124_020000.parquet", table, rule)
    assert query(database, "SELECT quantity::text FROM indici_staging.visits ORDER BY 1") == [
        ("0.1",),
        ("16777216",),
    ]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("Detail", '{"a": 1,}', "not valid JSON"),
        ("Detail", "NaN", "not valid JSON"),
        ("Detail", "[" * 5000 + "]" * 5000, "nested too deeply"),
        ("Extra", '{"a": "\\u0000"}', "\\u0000"),
        ("Extra", '"\\ud800"', "surrogate"),
        ("VisitGuid", "0b7e4c5e-8f5a-4c1e-9d0a-2f3c4b5a6d7", "not a uuid"),
        ("VisitGuid", " " + GUID, "not a uuid"),
    ],
)
def test_a_value_its_type_refuses_names_column_and_exact_row_never_the_value(
    warehouse, database, column, value, reason
):
    name = "Visits_20261124_020000.parquet"
    # values with line breaks before it: the row is the file's data row, not a line count
    rows = [{"VisitID": 1, "Note": "two\nlines\n"}, {"VisitID": 2, "Detail": '"a\\nb"'}]
    rows += [{"VisitID": 3, column: value}]

    with pytest.raises(FileLoadError) as raised:
        load(warehouse, name, visits(rows))

    message = str(raised.value)
    assert f"'{column}'" in message and "row 3" in message and reason in message
    assert value not in message
    ((status, logged),) = audits(database, name)
    assert status == "error" and "row 3" in logged
    assert query(database, "SELECT to_regclass('indici_staging.visits')") == [(None,)]


def test_a_float_that_overflows_its_numeric_column_names_its_row(warehouse, database):
    name = "Visits_20261124_020000.parquet"
    rows = [{"VisitID": 1, "Price": 1.5}, {"VisitID": 2, "Price": 1e12}]
    with pytest.raises(FileLoadError) as raised:
        load(warehouse, name, visits(rows))
    assert "row 2" in str(raised.value) and "price" in str(raised.value).lower()
    assert [a[0] for a in audits(database, name)] == ["error"]


def test_a_static_column_that_turned_from_integer_into_text_fails_the_file(warehouse, database):
    load(warehouse, "Codes_20261123_020000.parquet", {"Code": [4702394839502894426]}, CODES)
    name = "Codes_20261124_020000.parquet"

    with pytest.raises(FileLoadError) as raised:
        load(warehouse, name, {"Code": ["ABC1235Z"]}, CODES)

    message = str(raised.value)
    assert "'Code'" in message and "bigint" in message and "text" in message
    assert "ABC1235Z" not in message
    assert [a[0] for a in audits(database, name)] == ["error"]
    assert query(database, "SELECT code, _source_file FROM indici_staging.codes") == [
        (4702394839502894426, "Codes_20261123_020000.parquet")
    ]


def test_a_drift_column_that_turned_from_text_into_bool_fails_the_file(warehouse, database):
    load(warehouse, "Visits_20261123_020000.parquet", {"VisitID": [1], "Ward": ["A"]})
    name = "Visits_20261124_020000.parquet"

    with pytest.raises(FileLoadError) as raised:
        load(warehouse, name, {"VisitID": [2], "Ward": [True]})

    assert "'Ward'" in str(raised.value) and "boolean" in str(raised.value)
    assert [a[0] for a in audits(database, name)] == ["error"]
    assert query(database, "SELECT visit_id, ward FROM indici_staging.visits") == [(1, "A")]


def test_a_rule_type_changed_after_the_table_was_made_fails_rather_than_reinterpreting(
    warehouse, database
):
    load(warehouse, "Visits_20261123_020000.parquet", visits([{"VisitID": 1, "Price": 1.0}]))
    changed = parse_rule({**VISITS.to_dict(), "columns": {"VisitID": "bigint", "Price": "text"}})
    name = "Visits_20261124_020000.parquet"
    with pytest.raises(FileLoadError, match=r"'Price'.*numeric\(12,2\).*text"):
        load(warehouse, name, {"VisitID": [2], "Price": ["12.5"]}, changed)
    assert query(database, "SELECT count(*) FROM indici_staging.visits") == [(1,)]


def test_a_lossless_widening_and_an_all_null_column_load_into_the_existing_type(
    warehouse, database
):
    load(warehouse, "Codes_20261123_020000.parquet", {"Code": [1], "Rank": [2]}, CODES)
    narrower = {"Code": pa.array([2**31 - 1], pa.int32()), "Rank": pa.nulls(1)}
    load(warehouse, "Codes_20261124_020000.parquet", narrower, CODES)

    assert query(
        database,
        "SELECT code, rank, pg_typeof(code)::text FROM indici_staging.codes ORDER BY _source_ts",
    ) == [(1, 2, "bigint"), (2**31 - 1, None, "bigint")]


def test_a_narrowing_into_an_existing_column_fails_the_file(warehouse, database):
    load(warehouse, "Codes_20261123_020000.parquet", {"Code": pa.array([1], pa.int16())}, CODES)
    with pytest.raises(FileLoadError, match=r"'Code'.*smallint.*bigint"):
        load(warehouse, "Codes_20261124_020000.parquet", {"Code": [1]}, CODES)


def test_binary_and_fixed_size_binary_load_as_bytea_in_a_static_dataset(warehouse, database):
    table = {
        "Code": pa.array([b"\x00A", None], pa.binary()),
        "Digest": pa.array([bytes(range(16)), b"\xff" * 16], pa.binary(16)),
        "Label": pa.array(["x", "y"]),
    }
    load(warehouse, "Codes_20261124_020000.parquet", table, CODES)
    assert rows_of(
        database,
        "SELECT code, digest, label, pg_typeof(code)::text, pg_typeof(digest)::text "
        "FROM indici_staging.codes ORDER BY _row_number",
    ) == [
        (b"\x00A", bytes(range(16)), "x", "bytea", "bytea"),
        (None, b"\xff" * 16, "y", "bytea", "bytea"),
    ]


def test_fixed_length_byte_array_decimals_load_as_numeric(warehouse, database):
    # as Spark and parquet-mr write decimals: FIXED_LEN_BYTE_ARRAY with a DECIMAL annotation
    values = [Decimal("12345678901234567890.12"), Decimal("-0.01"), None]
    table = pa.table({"Amount": pa.array(values, pa.decimal128(22, 2))})
    sink = io.BytesIO()
    pq.write_table(table, sink, use_dictionary=False)
    data = sink.getvalue()
    physical = pq.ParquetFile(io.BytesIO(data)).schema.column(0).physical_type
    assert physical == "FIXED_LEN_BYTE_ARRAY"

    load(warehouse, "Codes_20261124_020000.parquet", data, CODES)

    assert query(
        database,
        "SELECT amount, format_type(atttypid, atttypmod) FROM indici_staging.codes "
        "JOIN pg_attribute ON attrelid = 'indici_staging.codes'::regclass "
        "AND attname = 'amount' ORDER BY _row_number",
    ) == [(v, "numeric(22,2)") for v in values]


def test_a_rule_bytea_column_takes_binary_and_text_keeps_its_bytes(warehouse, database):
    rows = [{"VisitID": 1, "Scan": b"\x89PNG\r\n"}, {"VisitID": 2}]
    load(warehouse, "Visits_20261124_020000.parquet", visits(rows))
    table = {"VisitID": [3], "Scan": ["Kōrero"]}
    load(warehouse, "Visits_20261125_020000.parquet", table)
    assert rows_of(database, "SELECT scan FROM indici_staging.visits ORDER BY visit_id") == [
        (b"\x89PNG\r\n",),
        (None,),
        ("Kōrero".encode(),),
    ]


def test_a_column_type_no_parquet_value_can_take_is_refused_by_type_not_row(warehouse, database):
    name = "Visits_20261124_020000.parquet"
    with pytest.raises(FileLoadError, match=r"'Scan'.*date32.*bytea"):
        load(warehouse, name, {"VisitID": [1], "Scan": pa.array([0], pa.date32())})
    assert [a[0] for a in audits(database, name)] == ["error"]


def test_random_uuids_arrive_as_themselves(warehouse, database):
    guids = [uuid.uuid4() for _ in range(300)]
    texts = [str(g).upper() if i % 2 else str(g) for i, g in enumerate(guids)]
    load(warehouse, "Visits_20261124_020000.parquet",
         {"VisitID": list(range(300)), "VisitGuid": texts})  # fmt: skip
    staged = query(database, "SELECT visit_guid FROM indici_staging.visits ORDER BY visit_id")
    assert [uuid.UUID(g) for (g,) in staged] == guids


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_characters="\x00")),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=8,
).map(json.dumps)
_JSON_ISH = st.text(alphabet='{}[]":,0123456789.eE+- \\/ubfnrtal\t\nd8', max_size=14)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.one_of(_JSON_VALUES, _JSON_ISH))
def test_json_is_accepted_exactly_when_postgres_accepts_it(database, text):
    with contextlib.closing(psycopg2.connect(database)) as connection:
        cursor = connection.cursor()
        for type_name, convert in (
            ("json", wire_forms.json_text),
            ("jsonb", wire_forms.jsonb_bytes),
        ):
            try:
                cursor.execute(f"SELECT %s::{type_name}", (text,))
                postgres = True
            except psycopg2.DataError:
                postgres = False
            connection.rollback()
            try:
                convert(pa.array([text]))
                ours = True
            except wire_forms.BadValueError:
                ours = False
            assert ours == postgres, type_name


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.one_of(
        st.uuids().map(str),
        st.uuids().map(lambda u: "{" + u.hex.upper() + "}"),
        st.text(alphabet="0123456789abcdefABCDEF-{} g", min_size=30, max_size=40),
    )
)
def test_uuid_text_is_accepted_exactly_when_postgres_accepts_it_and_keeps_its_value(database, text):
    with contextlib.closing(psycopg2.connect(database)) as connection:
        cursor = connection.cursor()
        try:
            cursor.execute("SELECT %s::uuid::text", (text,))
            postgres = cursor.fetchone()[0]
        except psycopg2.DataError:
            postgres = None
    try:
        ours = str(uuid.UUID(bytes=wire_forms.uuid_bytes(pa.array([text]))[0].as_py()))
    except wire_forms.BadValueError:
        ours = None
    assert ours == postgres


@pytest.mark.parametrize(
    "options",
    [
        {"use_dictionary": True, "data_page_version": "1.0"},
        {"use_dictionary": False, "column_encoding": {"Note": "DELTA_LENGTH_BYTE_ARRAY"}},
        {
            "use_dictionary": False,
            "column_encoding": {"Note": "DELTA_BYTE_ARRAY"},
            "data_page_version": "2.0",
        },
    ],
)
def test_impala_style_binary_strings_load_as_bytea_or_as_the_rules_text(
    warehouse, database, options
):
    # Impala writes strings as BYTE_ARRAY without the UTF8 annotation
    names = [b"Ng\xc4\x81ti", b"", None, b'Smith, "Jo"\n'] * 50
    table = pa.table(
        {"VisitID": pa.array(range(200), pa.int64()), "Note": pa.array(names, pa.binary())}
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    data = sink.getvalue()
    assert pq.ParquetFile(io.BytesIO(data)).schema.column(1).logical_type.type == "NONE"

    load(warehouse, "Codes_20261124_020000.parquet", data, CODES)
    load(warehouse, "Visits_20261124_020000.parquet", data)

    assert [
        r[0]
        for r in rows_of(database, "SELECT note FROM indici_staging.codes ORDER BY _row_number")
    ] == names
    texts = query(database, "SELECT note FROM indici_staging.visits ORDER BY _row_number")
    assert [t for (t,) in texts] == [None if n is None else n.decode() for n in names]


def test_fixed_size_binary_loads_into_a_rule_text_column_only_as_valid_utf8(warehouse, database):
    good = {"VisitID": [1, 2], "Note": pa.array([b"ab", b"\xc4\x81"], pa.binary(2))}
    load(warehouse, "Visits_20261123_020000.parquet", good)
    assert query(database, "SELECT note FROM indici_staging.visits ORDER BY visit_id") == [
        ("ab",),
        ("ā",),
    ]
    bad = {"VisitID": [3, 4], "Note": pa.array([b"ok", b"\xff\xfe"], pa.binary(2))}
    with pytest.raises(FileLoadError, match=r"'Note'.*row 2"):
        load(warehouse, "Visits_20261124_020000.parquet", bad)


def test_an_rpt_column_narrowed_by_hand_fails_the_upsert_naming_both_types(
    warehouse, database, admin_database_dsn
):
    # without history: its view depends on rpt's columns, so none can be altered by hand at all
    rule = dataclasses.replace(VISITS, history=False)
    load(warehouse, "Visits_20261123_020000.parquet", visits([{"VisitID": 1, "Note": "a"}]))
    warehouse.upsert_window_into_rpt(
        rule, *_day(2026, 11, 23), run_id="r", partition_key_of=lambda _: "2026-11-23"
    )
    with contextlib.closing(psycopg2.connect(admin_database_dsn)) as admin, admin.cursor() as cur:
        cur.execute("ALTER TABLE rpt.visits ALTER COLUMN visit_id TYPE integer")
        admin.commit()
    load(warehouse, "Visits_20261124_020000.parquet", visits([{"VisitID": 2**40, "Note": "b"}]))

    with pytest.raises(CleanError, match=r"'visit_id'.*integer.*bigint"):
        warehouse.upsert_window_into_rpt(
            rule, *_day(2026, 11, 24), run_id="r", partition_key_of=lambda _: "2026-11-24"
        )
    assert query(database, "SELECT visit_id FROM rpt.visits") == [(1,)]


def _day(year, month, day):
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    start = datetime(year, month, day, tzinfo=ZoneInfo(TIMEZONE))
    return start, start + timedelta(days=1)


def test_a_keyed_rule_with_a_json_column_updates_rpt_when_the_json_changes(warehouse, database):
    def upsert(day):
        (result,) = warehouse.upsert_window_into_rpt(
            VISITS, *_day(2026, 11, day), run_id="r", partition_key_of=lambda _: None
        )
        return result.rows_inserted, result.rows_updated

    load(
        warehouse, "Visits_20261123_020000.parquet", visits([{"VisitID": 1, "Detail": '{"a": 1}'}])
    )
    assert upsert(23) == (1, 0)
    load(
        warehouse, "Visits_20261124_020000.parquet", visits([{"VisitID": 1, "Detail": '{"a": 2}'}])
    )
    assert upsert(24) == (0, 1)
    assert upsert(24) == (0, 0)  # a replay: json compared by its text, nothing changed
    assert query(database, "SELECT detail::text FROM rpt.visits") == [('{"a": 2}',)]
