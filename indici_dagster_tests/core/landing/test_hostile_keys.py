"""One key never fails a tick or a date: keys that cannot be stored or read get their own
escaped, bounded audit and ledger entry, and every other file is still handed over. Also: local
files are identified by content, and a name clash refuses only the clashing pair."""

import os
import uuid

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indici_dagster.core.escaping import MAX_KEY_BYTES, escape_text, key_problem
from indici_dagster.core.landing import plan as landing_plan
from indici_dagster.core.storage.base import StoredObject
from indici_dagster.core.storage.local_storage import LocalStorage
from indici_dagster.core.storage.s3_storage import parse_s3_url
from indici_dagster.core.warehouse import ledger
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster_tests.pipeline.test_broken_inputs import landed_keys
from indici_dagster_tests.support.common import (
    TIMEZONE,
    build,
    execute_requests,
    make_settings,
    patients,
    query,
    tick,
)

GOOD = "Patients_20261123_020000.parquet"


def landing_rows(database: str) -> list[tuple]:
    return query(
        database,
        "SELECT l.source_key, l.outcome, a.source_file, a.status, a.message "
        "FROM indici_staging.landing_ledger l JOIN indici_staging.auditlog a "
        "ON a.source_key = l.source_key AND a.step = 'landing' ORDER BY l.source_key",
    )


def assert_printable(text: str) -> None:
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text), text
    text.encode("utf-8")  # no undecodable bytes left


def test_hostile_entries_in_a_local_folder_are_audited_and_never_block_the_good_file(
    tmp_path, database, instance, capfd
):
    landing, partitioned = tmp_path / "landing", tmp_path / "partitioned"
    landing.mkdir()
    (landing / GOOD).write_bytes(patients([(1, "A")]))
    outside = tmp_path / "outside.parquet"
    outside.write_bytes(patients([(666, "never read")]))
    os.symlink(outside, landing / "Patients_20261123_030000.parquet")
    os.mkfifo(landing / "Patients_20261123_040000.parquet")
    bad_utf8 = os.fsencode(landing) + b"/Patients_20261123_05\xff\xfe00.parquet"
    with open(bad_utf8, "wb") as handle:
        handle.write(patients([(5, "bad name")]))
    (landing / "Patients_20261123_\x1b[31m060000.parquet").write_bytes(patients([(6, "ansi")]))
    deep = landing.joinpath(*["d" * 200] * 14)  # a path of about 2,800 bytes
    deep.mkdir(parents=True)
    (deep / "Patients_20261123_070000.parquet").write_bytes(patients([(7, "deep")]))
    defs = build(make_settings(tmp_path, database, str(landing), str(partitioned)))

    first = tick(defs, instance)
    assert [r.partition_key for r in first.run_requests] == ["2026-11-23"]
    assert all(r.success for r in execute_requests(defs, instance, first))
    assert query(database, "SELECT patient_id FROM rpt.patients") == [(1,)]
    rows = landing_rows(database)
    assert len(rows) == 5
    problems = sorted(message for *_, message in rows)
    for expected in ["UTF-8", "control characters", "longer than", "symbolic link", "fifo"]:
        assert any(expected in m for m in problems), (expected, problems)
    for key, outcome, source_file, status, message in rows:
        assert (outcome, status) == ("unreadable", "error")
        assert len(key) < 400 and len(source_file) < 400
        for text in (key, source_file, message):
            assert_printable(text)
    log = capfd.readouterr().err
    assert "\x1b[31m" not in log and "\\x1b[31m" in log
    # nothing of the symlink's target, the fifo or the refused names was copied
    copied = sorted(p.name for p in partitioned.rglob("*.parquet"))
    assert copied == [GOOD]

    again = tick(defs, instance, first.cursor)  # recorded once: no second audit, no request
    assert not again.run_requests
    assert len(landing_rows(database)) == 5


def test_s3_keys_with_nul_or_control_characters_are_audited_escaped_and_the_rest_loads(
    tmp_path, database, buckets, instance
):
    landing, partitioned = buckets
    bucket, prefix = parse_s3_url(landing)
    s3 = boto3.client("s3")
    hostile = [
        "Patients_20261123_\x01030000.parquet",
        "tab\tfolder/Patients_20261123_040000.parquet",
        "nul\x00folder/Patients_20261123_050000.parquet",
        "Patients_20261123_\x1b[31m060000.parquet",
    ]
    for key in [GOOD, *hostile]:
        s3.put_object(Bucket=bucket, Key=prefix + key, Body=patients([(1, "A")]))
    defs = build(make_settings(tmp_path, database, landing, partitioned))

    result = tick(defs, instance)
    assert all(r.success for r in execute_requests(defs, instance, result))
    assert query(database, "SELECT _source_file FROM rpt.patients") == [(GOOD,)]
    rows = landing_rows(database)
    assert sorted(r[0] for r in rows) == sorted(escape_text(k) for k in hostile)
    for key, outcome, *_ in rows:
        assert outcome == "unreadable"
        assert_printable(key)


def test_a_local_file_corrected_with_the_same_size_and_mtime_is_new_work(
    tmp_path, database, instance
):
    landing, partitioned = tmp_path / "landing", tmp_path / "partitioned"
    landing.mkdir()
    path = landing / GOOD
    path.write_bytes(patients([(1, "AAAA")]))
    stamp = path.stat()
    defs = build(make_settings(tmp_path, database, str(landing), str(partitioned)))
    first = tick(defs, instance)
    assert all(r.success for r in execute_requests(defs, instance, first))

    corrected = patients([(1, "BBBB")])
    assert len(corrected) == stamp.st_size
    path.write_bytes(corrected)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # as `cp -p` / `rsync -t` leave it
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stamp.st_size, stamp.st_mtime_ns)

    second = tick(defs, instance, first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["2026-11-23"]
    assert all(r.success for r in execute_requests(defs, instance, second))
    assert query(database, "SELECT family_name FROM rpt.patients") == [("BBBB",)]


def test_a_name_clash_refuses_only_the_pair_and_the_dates_other_files_reach_rpt_in_that_run(
    tmp_path, database, instance
):
    landing, partitioned = tmp_path / "landing", tmp_path / "partitioned"
    storage = LocalStorage(landing)
    storage.put_bytes(GOOD, patients([(1, "A")]))
    storage.put_bytes("a/Patients_20261123_030000.parquet", patients([(3, "C")]))
    storage.put_bytes("b/Patients_20261123_030000.parquet", patients([(4, "D")]))
    defs = build(make_settings(tmp_path, database, str(landing), str(partitioned)))

    result = tick(defs, instance)
    (run,) = execute_requests(defs, instance, result)

    assert run.success  # the pair is refused; nothing else of the date is held back
    assert query(database, "SELECT patient_id FROM rpt.patients") == [(1,)]
    (clash_check,) = [
        e.asset_check_evaluation_data
        for e in run.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.check_name == "no_file_name_clashes"
    ]
    assert not clash_check.passed
    assert query(
        database,
        "SELECT source_key, status FROM indici_staging.auditlog WHERE step = 'partitioned' "
        "AND source_file = 'Patients_20261123_030000.parquet' ORDER BY 1",
    ) == [
        ("a/Patients_20261123_030000.parquet", "error"),
        ("b/Patients_20261123_030000.parquet", "error"),
    ]
    assert query(
        database,
        "SELECT source_key, outcome FROM indici_staging.landing_ledger ORDER BY 1",
    ) == [
        (GOOD, "in_run"),
        ("a/Patients_20261123_030000.parquet", "name_clash"),
        ("b/Patients_20261123_030000.parquet", "name_clash"),
    ]

    # once one of the pair is removed, the other goes through
    os.remove(landing / "b" / "Patients_20261123_030000.parquet")
    later = tick(defs, instance, result.cursor)
    assert [r.partition_key for r in later.run_requests] == ["2026-11-23"]
    assert all(r.success for r in execute_requests(defs, instance, later))
    assert query(database, "SELECT patient_id FROM rpt.patients ORDER BY 1") == [(1,), (3,)]


# --------------------------------------------------------------------------------------------
# properties: any key text is escaped, bounded and storable

_ALPHABET = "aZ_/.-\\ 0123456789ā\x00\x1b\n\r\x7f\x85\u2028\udcff\udc80\U0001f600"
"""Ordinary key characters, controls, line breaks, undecodable bytes (surrogates), an emoji."""
_HOSTILE = st.text(
    alphabet=st.sampled_from(list(_ALPHABET)),
    max_size=60,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(text=_HOSTILE, repeat=st.integers(1, 80))
def test_escaped_text_is_printable_bounded_deterministic_and_keeps_distinct_keys_apart(
    text, repeat
):
    long = text * repeat
    shown = escape_text(long)
    assert_printable(shown)
    assert len(shown) <= 300 + 80
    assert shown == escape_text(long)
    if escape_text(long + "x") == shown:
        raise AssertionError("two keys escape alike")
    if key_problem(long) is None:
        assert len(long.encode()) <= MAX_KEY_BYTES and "\x00" not in long


@pytest.mark.timeout(120)
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    names=st.lists(
        st.tuples(_HOSTILE, st.sampled_from(["", "Patients_20261123_020000.parquet"])),
        min_size=1,
        max_size=8,
    )
)
def test_any_listed_keys_are_planned_and_recorded_without_one_failing_the_rest(database, names):
    warehouse = Warehouse(database, TIMEZONE)
    warehouse.ensure_catalog()
    objects = []
    for noise, name in names:
        key = (noise + "/" + name) * (1 + len(noise) % 3 * 20)
        problem = key_problem(key)
        etag = uuid.uuid4().hex
        objects.append(
            StoredObject(escape_text(key), etag, 1, None, problem)  # type: ignore[arg-type]
            if problem
            else StoredObject(key, etag, 1, None)  # type: ignore[arg-type]
        )
    plan = landing_plan.plan_landing(
        objects,
        [],
        {"Patients"},
        timezone=TIMEZONE,
        first_partition="2026-01-01",
        last_partition="2026-12-31",
    )
    planned = plan.rejected + [e for r in plan.requests for e in r.entries]
    assert len(planned) + len(plan.not_yet) == len(objects)
    with warehouse.connection() as connection, connection.cursor() as cursor:
        ledger.record(cursor, planned)
        unseen = ledger.find_unseen(cursor, objects)
        connection.rollback()
    assert {o.etag for o in unseen} <= {o.etag for o in objects}


_NAME_NOISE = st.sampled_from(["\x00", "\x1b[2J", "\n", "\udcff", "\u2028", "é", "/", "x" * 300])


@st.composite
def hostile_landed_keys(draw) -> str:
    """The existing fuzzed names (`landed_keys`), with hostile text spliced in or appended."""
    key = draw(landed_keys())
    for _ in range(draw(st.integers(0, 2))):
        position = draw(st.integers(0, len(key)))
        key = key[:position] + draw(_NAME_NOISE) + key[position:]
    return key * draw(st.sampled_from([1, 1, 1, 5]))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(keys=st.lists(hostile_landed_keys(), min_size=1, max_size=6, unique=True))
def test_every_listed_key_is_requested_refused_or_deferred_exactly_once_and_never_raw(keys):
    objects = []
    for number, key in enumerate(keys):
        problem = key_problem(key)
        escaped = escape_text(key) if problem else key
        objects.append(StoredObject(escaped, f"e{number}", 1, None, problem))  # type: ignore[arg-type]
    plan = landing_plan.plan_landing(
        objects,
        [],
        {"Patients"},
        timezone=TIMEZONE,
        first_partition="2000-01-01",
        last_partition="2099-12-31",
    )
    requested = [e for r in plan.requests for e in r.entries]
    decided = [e.etag for e in requested + plan.rejected] + [o.etag for o in plan.not_yet]
    assert sorted(decided) == sorted(o.etag for o in objects)
    for entry in requested:
        assert key_problem(entry.source_key) is None
    for entry in plan.rejected:
        for text in (entry.source_key, entry.file_name or "", entry.message or ""):
            assert_printable(text)
            assert len(text) < 1_200


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(names=st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=5))
def test_any_file_names_in_a_local_folder_list_without_raising(tmp_path, names):
    root = tmp_path / uuid.uuid4().hex
    root.mkdir()
    made = 0
    for raw in names:
        name = raw.replace(b"/", b"_").replace(b"\x00", b"0")
        if name in (b".", b"..") or name.startswith(b"."):
            continue
        path = os.fsencode(root) + b"/" + name
        if not os.path.exists(path):
            with open(path, "wb") as handle:
                handle.write(raw)
            made += 1
    listed = list(LocalStorage(root).list_objects())
    assert len(listed) == made
    for obj in listed:
        assert_printable(obj.key)
        assert obj.problem is not None or obj.etag.startswith("sha256-")


def test_hidden_s3_keys_are_audited_never_read_and_the_rest_loads(
    tmp_path, database, buckets, instance
):
    landing, partitioned = buckets
    bucket, prefix = parse_s3_url(landing)
    s3 = boto3.client("s3")
    hidden = [
        ".upload/Patients_20261123_030000.parquet",  # a partial upload's folder
        "sub/.Patients_20261123_040000.parquet",
    ]
    s3.put_object(Bucket=bucket, Key=prefix + GOOD, Body=patients([(1, "A")]))
    for key in hidden:
        s3.put_object(Bucket=bucket, Key=prefix + key, Body=patients([(9, "never read")]))
    defs = build(make_settings(tmp_path, database, landing, partitioned))

    result = tick(defs, instance)
    assert all(r.success for r in execute_requests(defs, instance, result))
    assert query(database, "SELECT patient_id FROM rpt.patients") == [(1,)]
    rows = landing_rows(database)
    assert sorted(r[0] for r in rows) == sorted(hidden)
    for _key, outcome, _file, status, message in rows:
        assert (outcome, status) == ("unreadable", "error") and "hidden" in message
