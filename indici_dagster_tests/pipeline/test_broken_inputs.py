"""Broken inputs: damaged Parquet, odd keys and near-miss names, landed through the sensor.

Every bad file gets an audit row that says what is wrong with it, its good neighbours still
reach rpt, only the run of the date holding a damaged file fails, and nothing is ever written
outside the partitioned root. Then properties over file names and a fuzz of damaged bytes
through the core loader, against PostgreSQL.
"""

import io
import itertools
import re
import resource
import struct
import time
from datetime import date, datetime, timedelta

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indici_dagster.core.db_errors import NOT_RETRIED
from indici_dagster.core.filenames import parse_file_name, try_parse_file_name
from indici_dagster.core.steps.ingest import (
    LandedFile,
    describe_landed_file,
    load_partitions_into_staging,
    partitioned_key,
)
from indici_dagster.core.storage.base import StoredObject, UnsafeKeyError, normalise_key
from indici_dagster.core.storage.local_storage import LocalStorage
from indici_dagster.core.storage.s3_storage import parse_s3_url
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster_tests.support.common import (
    PATIENTS,
    TIMEZONE,
    build,
    execute_requests,
    make_settings,
    patients,
    patients_table,
    query,
    tick,
)


def parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


# --------------------------------------------------------------------------------------------
# Thrift compact protocol: just enough to read, edit and rewrite a Parquet footer

_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _unzigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def read_struct(data: bytes, pos: int = 0) -> tuple[list[list], int]:
    """A struct as [field id, type, value] triples (nested structs and lists likewise)."""
    fields: list[list] = []
    last = 0
    while True:
        header = data[pos]
        pos += 1
        if header == 0:
            return fields, pos
        kind, delta = header & 0x0F, header >> 4
        if delta:
            field_id = last + delta
        else:
            raw, pos = _read_varint(data, pos)
            field_id = _unzigzag(raw)
        last = field_id
        if kind in (_TRUE, _FALSE):
            value: object = kind == _TRUE
        else:
            value, pos = _read_value(data, pos, kind)
        fields.append([field_id, kind, value])


def _read_value(data: bytes, pos: int, kind: int) -> tuple[object, int]:
    if kind == _BYTE:
        return data[pos], pos + 1
    if kind in (_I16, _I32, _I64):
        raw, pos = _read_varint(data, pos)
        return _unzigzag(raw), pos
    if kind == _DOUBLE:
        return bytes(data[pos : pos + 8]), pos + 8
    if kind == _BINARY:
        size, pos = _read_varint(data, pos)
        return bytes(data[pos : pos + size]), pos + size
    if kind in (_LIST, _SET):
        header = data[pos]
        pos += 1
        size, element = header >> 4, header & 0x0F
        if size == 15:
            size, pos = _read_varint(data, pos)
        items = []
        for _ in range(size):
            if element in (_TRUE, _FALSE):
                items.append(data[pos] == _TRUE)
                pos += 1
            else:
                item, pos = _read_value(data, pos, element)
                items.append(item)
        return (element, items), pos
    if kind == _STRUCT:
        return read_struct(data, pos)
    raise ValueError(f"thrift type {kind} is not used by Parquet footers")


def write_struct(fields: list[list]) -> bytes:
    out = bytearray()
    last = 0
    for field_id, kind, value in fields:
        if kind in (_TRUE, _FALSE):
            kind = _TRUE if value else _FALSE
        delta = field_id - last
        if 0 < delta <= 15:
            out.append(delta << 4 | kind)
        else:
            out.append(kind)
            out += _varint(_zigzag(field_id))
        last = field_id
        if kind not in (_TRUE, _FALSE):
            out += _write_value(kind, value)
    out.append(0)
    return bytes(out)


def _write_value(kind: int, value) -> bytes:
    if kind == _BYTE:
        return bytes([value])
    if kind in (_I16, _I32, _I64):
        return _varint(_zigzag(value))
    if kind == _DOUBLE:
        return value
    if kind == _BINARY:
        return _varint(len(value)) + value
    if kind in (_LIST, _SET):
        element, items = value
        if len(items) < 15:
            head = bytes([len(items) << 4 | element])
        else:
            head = bytes([0xF0 | element]) + _varint(len(items))
        return head + b"".join(
            bytes([_TRUE if item else _FALSE])
            if element in (_TRUE, _FALSE)
            else _write_value(element, item)
            for item in items
        )
    if kind == _STRUCT:
        return write_struct(value)
    raise ValueError(f"thrift type {kind} is not used by Parquet footers")


def _field(fields: list[list], field_id: int) -> list:
    return next(f for f in fields if f[0] == field_id)


HUGE_ROWS = 2_000_000_000
HUGE_BYTES = 2**31


def with_footer_claims(data: bytes, *, rows: int, sizes: int | None = None) -> bytes:
    """The file with its footer rewritten to claim `rows` rows (and column chunks of `sizes`
    bytes); the data pages stay as they are, so the object is far shorter than claimed."""
    length = struct.unpack("<I", data[-8:-4])[0]
    footer, end = read_struct(data[-8 - length : -8])
    assert end == length and write_struct(footer) == data[-8 - length : -8]  # codec round-trips
    _field(footer, 3)[2] = rows  # FileMetaData.num_rows
    for row_group in _field(footer, 4)[2][1]:
        _field(row_group, 3)[2] = rows  # RowGroup.num_rows
        if sizes is not None:
            _field(row_group, 2)[2] = sizes  # total_byte_size
        for chunk in _field(row_group, 1)[2][1]:
            meta = _field(chunk, 3)[2]  # ColumnChunk.meta_data
            _field(meta, 5)[2] = rows  # num_values
            if sizes is not None:
                _field(meta, 6)[2] = sizes  # total_uncompressed_size
                _field(meta, 7)[2] = sizes  # total_compressed_size
    rewritten = write_struct(footer)
    return data[: -8 - length] + rewritten + struct.pack("<I", len(rewritten)) + b"PAR1"


def with_column_values(data: bytes, column: int, values: int) -> bytes:
    """The file with one column chunk's footer entry claiming `values` values."""
    length = struct.unpack("<I", data[-8:-4])[0]
    footer, _ = read_struct(data[-8 - length : -8])
    for row_group in _field(footer, 4)[2][1]:
        _field(_field(row_group, 1)[2][1][column], 3)[2][4][2] = values  # meta_data.num_values
    rewritten = write_struct(footer)
    return data[: -8 - length] + rewritten + struct.pack("<I", len(rewritten)) + b"PAR1"


def with_footer_length(data: bytes, length: int) -> bytes:
    """The file with the footer-length field claiming `length` bytes."""
    return data[:-8] + struct.pack("<I", length) + b"PAR1"


# --------------------------------------------------------------------------------------------
# landed through the sensor into moto S3

GOOD = "Patients_20261124_020000.parquet"
DAMAGED = {
    # file name -> (what it is, what its audit message must say)
    "Patients_20261124_030000.parquet": ("truncated", "not a readable Parquet file"),
    "Patients_20261124_040000.parquet": ("not Parquet", "not a readable Parquet file"),
    "Patients_20261124_050000.parquet": ("zero bytes", "not a readable Parquet file"),
    "Patients_20261124_060000.parquet": ("zero columns", "no columns"),
    "Patients_20261124_070000.parquet": ("footer claims 2 GB", "over the limit of"),
    "Patients_20261124_080000.parquet": ("footer length claims 2 GB", "not a readable Parquet"),
}
ODD_KEYS = {
    # key under the landing prefix -> its file name
    "sub folder/Patients_20261123_020000.parquet": "Patients_20261123_020000.parquet",
    "Māori pūrongo/Patients_20261123_030000.parquet": "Patients_20261123_030000.parquet",
    "../Patients_20261123_040000.parquet": "Patients_20261123_040000.parquet",
    "/Patients_20261123_050000.parquet": "Patients_20261123_050000.parquet",
    "./a/../Patients_20261123_060000.parquet": "Patients_20261123_060000.parquet",
}
NEAR_MISSES = [
    "Patients_2026112_020000.parquet",
    "Patients_20261124_020000.parquet.tmp",
    "Patients-20261124_020000.parquet",
    "Patients_20261124_0200000.parquet",
    "Patients_20261124_020000.PARQUET",
    "Patients 20261124_020000.parquet",
    "Pätients_20261124_020000.parquet",
    "Patients_20261131_020000.parquet",
    "_20261124_020000.parquet",
]


def damaged_files() -> dict[str, bytes]:
    valid = patients([(7, "G1"), (8, "H1"), (9, "I1")])
    no_columns = io.BytesIO()
    pq.write_table(pa.table({}), no_columns)
    contents = [
        valid[: len(valid) // 2],
        b"id,name\n1,not parquet at all\n" * 20,
        b"",
        no_columns.getvalue(),
        with_footer_claims(valid, rows=HUGE_ROWS, sizes=HUGE_BYTES),
        with_footer_length(valid, HUGE_BYTES - 1),
    ]
    return dict(zip(DAMAGED, contents, strict=True))


def all_keys(s3, bucket: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def test_damaged_files_odd_keys_and_near_miss_names_each_get_their_audit_and_good_files_load(
    tmp_path, database, buckets, moto_endpoint, instance
):
    landing, partitioned = buckets
    landing_bucket, landing_prefix = parse_s3_url(landing)
    partitioned_bucket, partitioned_prefix = parse_s3_url(partitioned)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)

    def land(key: str, data: bytes) -> None:
        s3.put_object(Bucket=landing_bucket, Key=landing_prefix + key, Body=data)

    land(GOOD, patients([(1, "A1"), (2, "B1")]))
    for name, data in damaged_files().items():
        land(name, data)
    for number, key in enumerate(ODD_KEYS, start=3):
        land(key, patients([(number, f"odd-{number}")]))
    for name in NEAR_MISSES:
        land(name, patients([(99, "never")]))
    landed = all_keys(s3, landing_bucket)
    arrow_peak, rss_peak = pa.default_memory_pool().max_memory(), _peak_rss()

    defs = build(make_settings(tmp_path, database, landing, partitioned))
    result = tick(defs, instance)
    assert [r.partition_key for r in result.run_requests] == ["2026-11-23", "2026-11-24"]
    odd_day, damaged_day = execute_requests(defs, instance, result)

    # only the run of the date holding damaged files fails
    assert odd_day.success
    assert not damaged_day.success
    assert query(
        database, "SELECT patient_id, family_name, _source_file FROM rpt.patients ORDER BY 1"
    ) == [
        (1, "A1", GOOD),
        (2, "B1", GOOD),
        *[(n, f"odd-{n}", name) for n, name in enumerate(ODD_KEYS.values(), start=3)],
    ]
    assert query(
        database, "SELECT DISTINCT _source_file FROM indici_staging.patients ORDER BY 1"
    ) == sorted([(GOOD,), *[(name,) for name in ODD_KEYS.values()]])

    audit = query(
        database,
        "SELECT source_file, source_key, step, status, rows_loaded, message "
        "FROM indici_staging.auditlog ORDER BY id",
    )
    for name, (what, expected) in DAMAGED.items():
        rows = [a for a in audit if a[0] == name and a[2] == "staging"]
        assert [(a[3], a[4]) for a in rows] == [("error", 0)], what
        message = rows[0][5]
        assert expected in message, (what, message)
        # a damaged file is a content failure: said so, as every other content failure is
        assert f"(this file failed: {NOT_RETRIED}" in message, (what, message)
        assert len(message) < 400, (what, message)
        assert "Traceback" not in message
    for key, name in ODD_KEYS.items():
        steps = [(a[2], a[3]) for a in audit if a[0] == name]
        assert steps == [("partitioned", "success"), ("staging", "success"), ("rpt", "success")], (
            key
        )
        # audited under the key it landed with, relative to the landing prefix
        assert {a[1] for a in audit if a[0] == name and a[2] == "partitioned"} == {key}
    for name in NEAR_MISSES:
        rows = [a for a in audit if a[1] == name]
        assert [(a[2], a[3]) for a in rows] == [("landing", "error")], name
        assert "not processed, left in landing" in rows[0][5], name
    assert len([a for a in audit if a[2] == "landing"]) == len(NEAR_MISSES)

    # nothing written outside the partitioned root, nothing changed in landing
    assert all_keys(s3, landing_bucket) == landed
    assert all_keys(s3, partitioned_bucket) == sorted(
        [f"{partitioned_prefix}dataset=Patients/date=2026-11-24/{n}" for n in [GOOD, *DAMAGED]]
        + [f"{partitioned_prefix}dataset=Patients/date=2026-11-23/{n}" for n in ODD_KEYS.values()]
    )
    # a footer claiming gigabytes was refused without allocating them
    assert pa.default_memory_pool().max_memory() - arrow_peak < 256 * 2**20
    assert _peak_rss() - rss_peak < 256 * 2**20


def _peak_rss() -> int:
    """The process's peak resident set size so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_in_local_folders_odd_names_and_damaged_files_never_write_outside_the_roots(
    tmp_path, database, instance
):
    landing, partitioned = tmp_path / "landing", tmp_path / "partitioned"
    files = {
        "Patients_20261123_020000.parquet": patients([(1, "A1")]),
        "sub folder/Patients_20261123_030000.parquet": patients([(2, "B1")]),
        "Māori/Patients_20261123_040000.parquet": patients([(3, "C1")]),
        "Patients_20261123_050000.parquet": b"not parquet",
        "Patients_2026112_020000.parquet": patients([(9, "never")]),
        ".Patients_20261123_060000.parquet": patients([(9, "partial upload")]),
    }
    for key, data in files.items():
        (landing / key).parent.mkdir(parents=True, exist_ok=True)
        (landing / key).write_bytes(data)
    settings = make_settings(tmp_path, database, str(landing), str(partitioned))
    before = {p for p in tmp_path.rglob("*") if p.is_file()}

    defs = build(settings)
    result = tick(defs, instance)
    (outcome,) = execute_requests(defs, instance, result)

    assert not outcome.success  # the damaged file fails its date, after its neighbours loaded
    assert query(database, "SELECT patient_id FROM rpt.patients ORDER BY 1") == [(1,), (2,), (3,)]
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    assert written, "nothing was copied"
    assert all(
        p.is_relative_to(partitioned / "dataset=Patients" / "date=2026-11-23") for p in written
    )
    assert sorted(p.name for p in written if not p.name.startswith(".")) == [
        "Patients_20261123_020000.parquet",
        "Patients_20261123_030000.parquet",
        "Patients_20261123_040000.parquet",
        "Patients_20261123_050000.parquet",
    ]
    assert {str(p.relative_to(landing)) for p in landing.rglob("*") if p.is_file()} == set(files)


def test_two_landed_files_with_one_name_in_different_folders_lose_nothing_silently(
    tmp_path, database
):
    from indici_dagster.core.steps.ingest import copy_to_partitioned, landed_files_for

    landing, partitioned = (
        LocalStorage(tmp_path / "landing"),
        LocalStorage(tmp_path / "partitioned"),
    )
    name = "Patients_20261123_020000.parquet"
    landing.put_bytes(f"a/{name}", patients([(1, "A1"), (2, "B1")]))
    landing.put_bytes(f"b/{name}", patients([(3, "C1"), (4, "D1")]))
    warehouse = Warehouse(database, TIMEZONE)
    warehouse.ensure_catalog()

    files = landed_files_for(landing, ["2026-11-23"], TIMEZONE)
    report = copy_to_partitioned(landing, partitioned, files, {"Patients": PATIENTS}, run_id="r")
    outcomes = load_partitions_into_staging(
        partitioned, warehouse, PATIENTS, ["2026-11-23"], run_id="r"
    )

    assert len(files) == 2
    staged = (
        query(database, "SELECT patient_id FROM indici_staging.patients ORDER BY 1")
        if query(database, "SELECT to_regclass('indici_staging.patients') IS NOT NULL")[0][0]
        else []
    )
    clash_reported = (
        bool(report.clashes)
        or any(e.status == "error" for e in report.entries)
        or any(o.error for o in outcomes)
    )
    assert staged == [(1,), (2,), (3,), (4,)] or clash_reported


# --------------------------------------------------------------------------------------------
# a footer that promises more rows than the pages hold


def load_one(tmp_path, database, name: str, data: bytes):
    """Load one file through the core, as the staging asset does; its outcome and the store."""
    storage = LocalStorage(tmp_path / "partitioned")
    landed = parse_file_name(name, TIMEZONE)
    storage.put_bytes(partitioned_key("Patients", landed.partition_key, name), data)
    warehouse = Warehouse(database, TIMEZONE)
    warehouse.ensure_catalog()
    outcomes = load_partitions_into_staging(
        storage, warehouse, PATIENTS, [landed.partition_key], run_id="r"
    )
    return outcomes, warehouse


SHORT_FILES = {
    "a column chunk claims no values": lambda valid: with_column_values(valid, 2, 0),
    "the footer claims 2e9 rows": lambda valid: with_footer_claims(valid, rows=HUGE_ROWS),
}


@pytest.mark.parametrize("damage", list(SHORT_FILES))
def test_a_file_whose_pages_hold_fewer_rows_than_its_footer_says_is_an_error(
    tmp_path, database, damage
):
    name = "Patients_20261124_020000.parquet"
    data = SHORT_FILES[damage](patients([(1, "A1"), (2, "B1"), (3, "C1")]))

    ((outcome,), _) = load_one(tmp_path, database, name, data)

    assert outcome.error is not None, outcome.result
    # nothing of the file: not even the table its load would have created
    assert query(database, "SELECT to_regclass('indici_staging.patients')") == [(None,)]
    assert query(
        database,
        "SELECT status FROM indici_staging.auditlog WHERE source_file = %s AND step = 'staging'",
        (name,),
    ) == [("error",)]


@pytest.mark.parametrize("damage", list(SHORT_FILES))
def test_the_rows_loaded_check_fails_for_a_file_that_loaded_fewer_rows_than_its_footer(
    tmp_path, database, damage
):
    from indici_dagster.core.quality.queries import WarehouseQueries
    from indici_dagster.defs.tables.checks import ROWS_MATCH_FILES, evaluate_staging_checks

    data = SHORT_FILES[damage](patients([(1, "A1"), (2, "B1"), (3, "C1")]))
    outcomes, warehouse = load_one(tmp_path, database, "Patients_20261124_020000.parquet", data)

    results = evaluate_staging_checks(WarehouseQueries(warehouse), PATIENTS, outcomes)

    (rows_match,) = [r for r in results if r.check_name == ROWS_MATCH_FILES]
    assert not rows_match.passed


# --------------------------------------------------------------------------------------------
# properties of file names and keys

_DATASETS = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,15}", fullmatch=True)
_STAMPS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59))
_SEGMENTS = st.sampled_from(
    ["", ".", "..", "...", "a", "sub folder", "Māori", "..a", "a..", "dataset=X"]
)
_NOISE = st.sampled_from([*"/\\._- 0123456789aZāé\x00\n", "..", "/../", ".parquet", "%2F"])


@st.composite
def landed_keys(draw) -> str:
    """A valid name, often mutated, under a folder path of ordinary and hostile segments."""
    stamp = draw(_STAMPS)
    separator = draw(st.sampled_from(["", "_"]))
    name = f"{draw(_DATASETS)}_{stamp:%Y%m%d}{separator}{stamp:%H%M%S}.parquet"
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(name)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        noise = draw(_NOISE)
        if action == "insert":
            name = name[:position] + noise + name[position:]
        elif action == "delete":
            name = name[:position] + name[position + 1 :]
        else:
            name = name[:position] + noise + name[position + 1 :]
    folders = draw(st.lists(_SEGMENTS, max_size=4))
    joiner = draw(st.sampled_from(["/", "\\"]))
    return joiner.join([*folders, name])


@settings(max_examples=250, deadline=None, derandomize=True, database=None)
@given(key=landed_keys())
def test_an_accepted_name_always_maps_to_a_clean_partitioned_key_under_its_dataset_and_date(key):
    landed = try_parse_file_name(key, TIMEZONE)
    if landed is None:
        return
    name = landed.file_name
    assert "/" not in name and "\\" not in name and name not in (".", "..")
    assert name.endswith(".parquet") and name.startswith(f"{landed.dataset}_")
    digits = name[len(landed.dataset) + 1 : -len(".parquet")].replace("_", "")
    assert landed.partition_key == f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}"
    target = partitioned_key(landed.dataset, landed.partition_key, name)
    assert target == f"dataset={landed.dataset}/date={landed.partition_key}/{name}"
    assert normalise_key(target) == target  # nothing to clean: no empty, `.` or `..` segment
    stored = StoredObject(key, "etag", 1, datetime(2026, 1, 1))
    assert LandedFile(stored, landed).partitioned_key == target


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(segments=st.lists(_SEGMENTS, min_size=1, max_size=6), joiner=st.sampled_from(["/", "\\"]))
def test_normalise_key_refuses_every_dot_dot_segment_and_cleans_everything_else(segments, joiner):
    key = joiner.join(segments)
    if ".." in segments:
        with pytest.raises(UnsafeKeyError):
            normalise_key(key)
        return
    if all(s in ("", ".") for s in segments):
        with pytest.raises(UnsafeKeyError):
            normalise_key(key)
        return
    clean = normalise_key(key)
    assert clean == "/".join(s for s in segments if s not in ("", "."))
    assert not clean.startswith("/") and "\\" not in clean


# --------------------------------------------------------------------------------------------
# fuzz: damaged bytes through the core loader

_VALID = parquet(patients_table([(i, f"N{i}") for i in range(1, 41)]))
_VALID_ROWS = 40
_names = itertools.count()


@st.composite
def damaged(draw) -> bytes:
    """The valid file with a few bytes flipped and/or cut short (damage aimed at the footer
    half the time: that is where a flipped byte changes what the reader believes)."""
    data = bytearray(_VALID)
    footer_start = len(data) - 8 - struct.unpack("<I", data[-8:-4])[0]
    for _ in range(draw(st.integers(0, 6))):
        lower = draw(st.sampled_from([0, footer_start]))
        position = draw(st.integers(lower, len(data) - 1))
        data[position] ^= draw(st.integers(1, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@pytest.mark.timeout(120)
@settings(
    max_examples=80,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=damaged())
def test_damaged_bytes_are_reported_never_raised_and_load_all_rows_or_none(
    tmp_path, database, data
):
    # one database and folder for every example; each example loads a file of its own name
    dsn, storage = database, LocalStorage(tmp_path / "partitioned")
    warehouse = Warehouse(dsn, TIMEZONE)
    warehouse.ensure_catalog()
    day = date(2026, 1, 1) + timedelta(days=next(_names))  # a date, and so a name, of its own
    name = f"Patients_{day:%Y%m%d}_020000.parquet"
    landed = parse_file_name(name, TIMEZONE)
    key = partitioned_key("Patients", landed.partition_key, name)
    storage.put_bytes(key, data)
    started = time.monotonic()

    report = describe_landed_file(storage, LandedFile(storage.head(key), landed))
    (outcome,) = load_partitions_into_staging(
        storage, warehouse, PATIENTS, [landed.partition_key], run_id="fuzz"
    )

    assert time.monotonic() - started < 10
    assert (report.summary is None) == (report.error is not None)
    staged = (
        query(dsn, "SELECT count(*) FROM indici_staging.patients WHERE _source_file = %s", (name,))[
            0
        ][0]
        if _staging_exists(dsn)
        else 0
    )
    statuses = query(
        dsn,
        "SELECT status, rows_loaded FROM indici_staging.auditlog WHERE source_file = %s "
        "AND step = 'staging'",
        (name,),
    )
    if outcome.error is not None:
        assert staged == 0
        assert statuses == [("error", 0)]
        assert outcome.error and "Traceback" not in outcome.error
    else:
        result = outcome.result
        assert staged == result.rows_loaded
        assert statuses == [(str(result.status), result.rows_loaded)]
        # (that these are as many rows as the footer says is not true yet: see
        # test_a_file_whose_pages_hold_fewer_rows_than_its_footer_says_is_an_error)


def _staging_exists(dsn: str) -> bool:
    return query(dsn, "SELECT to_regclass('indici_staging.patients') IS NOT NULL")[0][0]


# --------------------------------------------------------------------------------------------
# fuzz: hostile column names and values through the core loader

_MARKER = "ZQXMARKERQZ"
_HOSTILE_CHARACTERS = st.sampled_from(
    [*"aZ _-.é€ā\"'\\%;", "\x00", "\x07", "\x1b", "\x1b[31m", "\n", "\r", "\t", "\x7f", "\u202e"]
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u202e]")


@st.composite
def hostile_names(draw) -> str:
    parts = draw(st.lists(_HOSTILE_CHARACTERS, min_size=1, max_size=12))
    prefix = draw(st.sampled_from(["", "Col", "Extra", "X"]))  # mostly a usable identifier
    return prefix + "".join(parts) * draw(st.sampled_from([1, 1, 1, 40]))  # or very long


@st.composite
def hostile_values(draw) -> str:
    noise = "".join(draw(st.lists(_HOSTILE_CHARACTERS, max_size=8)))
    return draw(st.sampled_from([f"{_MARKER}{noise}", f"{noise}{_MARKER}", _MARKER]))


@pytest.mark.timeout(180)
@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    names=st.lists(hostile_names(), min_size=1, max_size=4),
    values=st.lists(hostile_values(), min_size=1, max_size=5),
    as_key=st.booleans(),
)
def test_hostile_column_names_and_values_load_or_fail_with_messages_that_quote_neither(
    tmp_path, database, names, values, as_key
):
    storage = LocalStorage(tmp_path / "partitioned")
    warehouse = Warehouse(database, TIMEZONE)
    warehouse.ensure_catalog()
    day = date(2026, 1, 1) + timedelta(days=next(_names))
    name = f"Patients_{day:%Y%m%d}_020000.parquet"
    landed = parse_file_name(name, TIMEZONE)
    rows = len(values)
    columns = {
        # a value where a number belongs (a cast error), or the key as it should be
        "PatientID": values if as_key else pa.array(range(rows), pa.int64()),
        "FamilyName": values,
    }
    columns.update({column: values for column in names})
    try:
        data = parquet(pa.table(columns))
    except (pa.ArrowException, ValueError):
        return  # Arrow refuses such a table itself (e.g. duplicate names)
    storage.put_bytes(partitioned_key("Patients", landed.partition_key, name), data)

    (outcome,) = load_partitions_into_staging(
        storage, warehouse, PATIENTS, [landed.partition_key], run_id="fuzz"
    )

    messages = [
        m
        for (m,) in query(
            database, "SELECT message FROM indici_staging.auditlog WHERE source_file = %s", (name,)
        )
        if m
    ]
    if outcome.error is not None:
        messages.append(outcome.error)
    elif outcome.result.message:
        messages.append(outcome.result.message)
    for message in messages:
        assert _MARKER not in message, message
        assert not _CONTROL.search(message), message
        assert len(message) < 6_000, len(message)
