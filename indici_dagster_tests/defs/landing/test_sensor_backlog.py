"""A large backlog is handed over a capped number of dates per tick, with a small cursor."""

from datetime import date, timedelta

from dagster import DagsterInstance

from indici_dagster.defs.landing.sensor import MAX_RUNS_PER_TICK
from indici_dagster_tests.support.common import (
    build,
    make_settings,
    put_s3,
    query,
    store_requests,
    tick,
)


def test_a_backlog_is_requested_in_capped_ticks_and_never_twice(tmp_path, database, buckets):
    landing, partitioned = buckets
    first_day = date(2026, 6, 1)
    days = MAX_RUNS_PER_TICK * 2 + 7
    for offset in range(days):
        stamp = (first_day + timedelta(days=offset)).strftime("%Y%m%d")
        for hour in ("02", "14"):
            put_s3(
                landing,
                f"Patients_{stamp}_{hour}0000.parquet",
                b"content is not read by the sensor",
            )
    defs = build(make_settings(tmp_path, database, landing, partitioned))

    requested: list[str] = []
    cursors = []
    with DagsterInstance.ephemeral() as instance:
        cursor = None
        for _ in range(4):
            result = tick(defs, instance, cursor)
            cursor = result.cursor
            cursors.append(cursor or "")
            requested += [r.partition_key for r in result.run_requests or []]
            assert len(result.run_requests or []) <= MAX_RUNS_PER_TICK
            assert len(store_requests(defs, instance, result)) == len(result.run_requests or [])

    expected = [(first_day + timedelta(days=d)).isoformat() for d in range(days)]
    assert sorted(requested) == expected  # every date once, none twice
    assert max(len(c.encode()) for c in cursors) < 100 * 1024
    # stored runs wait in Dagster's queue: the sensor itself recorded no hand-over
    assert query(database, "SELECT count(*) FROM indici_staging.landing_ledger") == [(0,)]
