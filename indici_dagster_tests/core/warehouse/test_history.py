"""`rpt.<table>_history` holds every version that arrived, and `rpt.<table>_as_of(t)` returns
the table as it stood at t: written with the upsert, late versions placed where they belong,
replays adding nothing, `history: false`, and a rebuild from staging."""

import io
import uuid
from datetime import UTC, datetime, timedelta

import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indici_dagster.core.filenames import parse_file_name
from indici_dagster.core.quality.queries import WarehouseQueries
from indici_dagster.core.rules.model import parse_rule
from indici_dagster.core.steps.ingest import partition_key_of_file
from indici_dagster.core.warehouse.catalog import DEFAULT_LOCK_TIMEOUT
from indici_dagster.core.warehouse.connections import Connections
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster.core.warehouse.history import rebuild_history
from indici_dagster_tests.support.common import TIMEZONE, parquet_bytes, query

WINDOW = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def visits_rule(dataset: str = "Visits", **more) -> object:
    return parse_rule(
        {
            "dataset": dataset,
            "primary_key": ["VisitID"],
            "columns": {"VisitID": "bigint", "Reason": "text"},
            **more,
        }
    )


RULE = visits_rule()


def load(warehouse: Warehouse, name: str, rows: list[tuple], rule=RULE) -> None:
    parquet = pq.ParquetFile(
        io.BytesIO(
            parquet_bytes(
                {
                    "VisitID": pa.array([r[0] for r in rows], pa.int64()),
                    "Reason": pa.array([r[1] for r in rows], pa.string()),
                }
            )
        )
    )
    warehouse.load_file_into_staging(
        rule,
        parse_file_name(name, TIMEZONE),
        parquet,
        run_id="r",
        source_key=name,
        source_etag=uuid.uuid4().hex,
    )


def upsert(warehouse: Warehouse, rule=RULE, window=WINDOW) -> list:
    return warehouse.upsert_window_into_rpt(
        rule,
        *window,
        run_id="r",
        partition_key_of=lambda name: partition_key_of_file(name, TIMEZONE),
    )


def ts(name: str) -> datetime:
    return parse_file_name(name, TIMEZONE).source_ts


def as_of(dsn: str, when: datetime, table: str = "visits") -> set[tuple]:
    return set(query(dsn, f"SELECT * FROM rpt.{table}_as_of(%s)", (when,)))


def current(dsn: str, table: str = "visits") -> set[tuple]:
    return set(query(dsn, f"SELECT visit_id, reason FROM rpt.{table}"))


def versions(dsn: str, table: str = "visits") -> list[tuple]:
    return query(
        dsn,
        f"SELECT visit_id, reason, valid_from, valid_to, _source_file FROM rpt.{table}_history "
        "ORDER BY visit_id, valid_from, _row_number, _source_file",
    )


A, B, C = (
    "Visits_20260301_020000.parquet",
    "Visits_20260302_020000.parquet",
    "Visits_20260303_020000.parquet",
)


def test_every_version_is_kept_and_as_of_returns_the_table_as_it_stood(warehouse, database):
    load(warehouse, A, [(1, "a1"), (2, "b1")])
    upsert(warehouse)
    load(warehouse, B, [(1, "a2"), (3, "c1")])
    upsert(warehouse)

    assert versions(database) == [
        (1, "a1", ts(A), ts(B), A),
        (1, "a2", ts(B), None, B),
        (2, "b1", ts(A), None, A),
        (3, "c1", ts(B), None, B),
    ]
    assert as_of(database, ts(A) - timedelta(microseconds=1)) == set()
    assert as_of(database, ts(A)) == {(1, "a1"), (2, "b1")}
    assert as_of(database, ts(B) - timedelta(seconds=1)) == {(1, "a1"), (2, "b1")}
    assert as_of(database, datetime.now(UTC)) == current(database)
    assert WarehouseQueries(warehouse).data_tables() == ["visits"]  # `visits_past` is history's


def test_a_late_version_goes_into_history_and_rpt_does_not_change(warehouse, database):
    load(warehouse, A, [(1, "a1")])
    load(warehouse, C, [(1, "a3")])
    upsert(warehouse)
    load(warehouse, B, [(1, "a2")])  # older than rpt's row: arrives late
    upsert(warehouse)

    assert current(database) == {(1, "a3")}
    assert versions(database) == [
        (1, "a1", ts(A), ts(B), A),
        (1, "a2", ts(B), ts(C), B),
        (1, "a3", ts(C), None, C),
    ]
    assert as_of(database, ts(B)) == {(1, "a2")}


def test_a_replayed_file_adds_no_version(warehouse, database):
    load(warehouse, A, [(1, "a1")])
    upsert(warehouse)
    load(warehouse, B, [(1, "a2")])
    upsert(warehouse)
    before = versions(database)

    load(warehouse, A, [(1, "a1")])  # sent again
    upsert(warehouse)
    upsert(warehouse)  # and the window applied again

    assert versions(database) == before


def test_a_failed_upsert_leaves_neither_rpt_nor_history_changed(
    warehouse, database, admin_database_dsn
):
    load(warehouse, A, [(1, "a1")])
    upsert(warehouse)
    with psycopg2.connect(admin_database_dsn) as admin, admin.cursor() as cursor:
        cursor.execute("ALTER TABLE rpt.visits ADD CONSTRAINT no_bad CHECK (reason <> 'bad')")
    load(warehouse, B, [(1, "bad")])  # its row would archive a1, then breaks rpt

    results = upsert(warehouse)

    assert [r.source_file for r in results] == [A]  # B failed alone, A changed nothing
    assert current(database) == {(1, "a1")}
    assert versions(database) == [(1, "a1", ts(A), None, A)]
    (message,) = query(
        database,
        "SELECT message FROM indici_staging.auditlog WHERE step = 'rpt' AND source_file = %s",
        (B,),
    )[0]
    assert "nothing applied" in message


def test_history_false_keeps_no_history(warehouse, database):
    rule = visits_rule("Rooms", history=False)
    load(warehouse, "Rooms_20260301_020000.parquet", [(1, "a1")], rule)
    upsert(warehouse, rule)

    assert query(database, "SELECT to_regclass('rpt.rooms_history')") == [(None,)]
    assert query(database, "SELECT to_regprocedure('rpt.rooms_as_of(timestamptz)')") == [(None,)]


def test_history_false_on_an_existing_history_keeps_it_and_says_so(warehouse, database):
    load(warehouse, A, [(1, "a1")])
    upsert(warehouse)
    load(warehouse, B, [(1, "a2")])

    upsert(warehouse, visits_rule(history=False))

    # kept, not dropped, and not kept up to date: rpt's current row shows through, but the
    # version it replaced was not kept
    assert query(database, "SELECT to_regclass('rpt.visits_past') IS NOT NULL") == [(True,)]
    assert versions(database) == [(1, "a2", ts(B), None, B)]
    (message,) = query(
        database,
        "SELECT message FROM indici_staging.auditlog WHERE step = 'rpt' AND source_file = %s",
        (B,),
    )[0]
    assert message == (
        "rule Visits: history: false, but rpt.visits_history exists: kept, not dropped, and no "
        "longer kept up to date (turn history back on and run `indici history rebuild visits`, "
        "or drop it by hand)"
    )


def test_rebuild_from_staging_restores_every_version(warehouse, database):
    rule_off = visits_rule(history=False)
    load(warehouse, A, [(1, "a1"), (2, "b1")], rule_off)
    load(warehouse, C, [(1, "a3")], rule_off)
    upsert(warehouse, rule_off)
    load(warehouse, B, [(1, "a2"), (2, "b2")], rule_off)
    upsert(warehouse, rule_off)

    (message,) = query(
        database,
        "SELECT message FROM indici_staging.auditlog WHERE step = 'rpt' AND source_file = %s",
        (B,),
    )[0]
    assert message is None  # no history, none asked for
    load(warehouse, "Visits_20260304_020000.parquet", [(3, "c1")])
    upsert(warehouse)  # history on again: started now, and says so
    (message,) = query(
        database,
        "SELECT message FROM indici_staging.auditlog WHERE step = 'rpt' AND source_file = %s",
        ("Visits_20260304_020000.parquet",),
    )[0]
    assert message == (
        "rpt.visits_history started with this upsert: the versions loaded before are not in it "
        "yet (run `indici history rebuild visits`)"
    )

    rebuilt = rebuild_history(
        Connections(database, TIMEZONE), RULE, lock_timeout=DEFAULT_LOCK_TIMEOUT
    )

    assert rebuilt.past_versions == 3
    assert versions(database) == [
        (1, "a1", ts(A), ts(B), A),
        (1, "a2", ts(B), ts(C), B),
        (1, "a3", ts(C), None, C),
        (2, "b1", ts(A), ts(B), A),
        (2, "b2", ts(B), None, B),
        (3, "c1", ts("Visits_20260304_020000.parquet"), None, "Visits_20260304_020000.parquet"),
    ]
    again = rebuild_history(Connections(database, TIMEZONE), RULE, DEFAULT_LOCK_TIMEOUT)
    assert again.past_versions == 3
    assert len(versions(database)) == 6


def test_new_columns_reach_history_and_as_of(warehouse, database):
    load(warehouse, A, [(1, "a1")])
    upsert(warehouse)
    wider = parse_rule(
        {
            "dataset": "Visits",
            "primary_key": ["VisitID"],
            "columns": {"VisitID": "bigint", "Reason": "text", "Room": "text"},
        }
    )
    parquet = pq.ParquetFile(
        io.BytesIO(
            parquet_bytes(
                {
                    "VisitID": pa.array([1], pa.int64()),
                    "Reason": pa.array(["a2"], pa.string()),
                    "Room": pa.array(["r2"], pa.string()),
                }
            )
        )
    )
    warehouse.load_file_into_staging(
        wider, parse_file_name(B, TIMEZONE), parquet, run_id="r", source_key=B, source_etag="e"
    )
    upsert(warehouse, wider)

    assert as_of(database, ts(A)) == {(1, "a1", None)}
    assert as_of(database, ts(B)) == {(1, "a2", "r2")}


# ------------------------------------------------------------------------- the property test

STAMPS = [datetime(2026, 3, day, 2, 0, 0) for day in (1, 2, 3, 4)]
FILES = [
    f"{{dataset}}_{stamp:%Y%m%d}{sep}{stamp:%H%M%S}.parquet"
    for stamp in STAMPS
    for sep in ("_", "")
]
"""Two names a timestamp (`_` between date and time or not): files that share a timestamp."""

file_contents = st.lists(
    st.tuples(st.integers(1, 4), st.text("abc", min_size=1, max_size=2)), min_size=0, max_size=5
)
deliveries = st.lists(
    st.tuples(st.sampled_from(range(len(FILES))), file_contents, st.booleans()),
    min_size=1,
    max_size=8,
)


def reference(sent: dict[str, list[tuple]], stamp: datetime) -> set[tuple]:
    """rpt as it stood at `stamp`: apply only the files with a timestamp up to it, the newest
    version of each key winning (timestamp, then row number, then file name)."""
    newest: dict[int, tuple] = {}
    for name, rows in sent.items():
        file_ts = ts(name)
        if file_ts > stamp:
            continue
        for number, (key, value) in enumerate(rows, start=1):
            version = (file_ts, number, name)
            if key not in newest or version > newest[key][0]:
                newest[key] = (version, value)
    return {(key, value) for key, (_, value) in newest.items()}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(deliveries=deliveries)
def test_as_of_equals_applying_only_the_files_up_to_then(warehouse, database, deliveries):
    dataset = f"P{uuid.uuid4().hex[:10]}"
    rule = visits_rule(dataset)
    table = rule.table
    sent: dict[str, list[tuple]] = {}
    for index, rows, whole_window in deliveries:
        name = FILES[index].format(dataset=dataset)
        if name in sent:
            rows = sent[name]  # a replay: the same file sent again
        load(warehouse, name, rows, rule)
        sent[name] = rows
        stamp = ts(name)
        window = WINDOW if whole_window else (stamp, stamp + timedelta(microseconds=1))
        upsert(warehouse, rule, window)

    stamps = sorted({ts(name) for name in sent})
    if not any(sent.values()):  # only empty files: no table, so no history yet
        assert query(database, f"SELECT to_regclass('rpt.{table}')") == [(None,)]
        return
    for stamp in [stamps[0] - timedelta(seconds=1), *stamps]:
        for at in (stamp, stamp + timedelta(hours=1)):
            assert as_of(database, at, table) == reference(sent, at), at
    assert as_of(database, datetime.now(UTC), table) == current(database, table)
    keys = query(
        database,
        f"SELECT count(*), count(DISTINCT (visit_id, valid_from, _source_file)), "
        f"count(*) FILTER (WHERE valid_to IS NULL) FROM rpt.{table}_history",
    )[0]
    assert keys[0] == keys[1]  # no version twice
    assert keys[2] == len(current(database, table))  # one open version per key, rpt's


@pytest.mark.parametrize("dataset", ["Visits"])
def test_the_history_names_are_reserved_for_the_dataset(dataset):
    from indici_dagster.core.rules.model import RuleError, parse_rules

    with pytest.raises(RuleError, match="visits_history"):
        parse_rules(
            [
                {"dataset": dataset, "primary_key": ["A"], "columns": {"A": "bigint"}},
                {"dataset": "VisitsHistory", "table": "visits_history"},
            ]
        )
