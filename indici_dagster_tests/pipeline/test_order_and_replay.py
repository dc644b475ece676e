"""rpt does not depend on the order files arrive or run in, and replays change nothing."""

import contextlib
import io
import random
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import DagsterInstance
from psycopg2 import sql

from indici_dagster.core.filenames import parse_file_name
from indici_dagster.core.rules.model import parse_rule
from indici_dagster.core.steps.ingest import partition_key_of_file
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster.definitions import INGEST_JOB
from indici_dagster_tests.conftest import WRITER_ROLE
from indici_dagster_tests.support.common import (
    TIMEZONE,
    build,
    create_writer_database,
    execute_requests,
    make_settings,
    parquet_bytes,
    put_s3,
    query,
    row_counters,
    tick,
)

NZ = ZoneInfo(TIMEZONE)
PATIENTS = parse_rule(
    {
        "dataset": "Patients",
        "primary_key": ["PatientID"],
        "columns": {"PatientID": "bigint", "FamilyName": "text"},
    }
)
RPT_CHECKSUM = (
    "SELECT md5(string_agg(concat_ws('|', patient_id, family_name, _source_file, "
    "extract(epoch FROM _source_ts), _row_number), ',' ORDER BY patient_id)) FROM rpt.patients"
)
STAGING_DUPLICATES = (
    "SELECT count(*) - count(DISTINCT (_source_file, _row_number)) FROM indici_staging.patients"
)


def patients(rows: list[tuple[int | None, str]]) -> bytes:
    return parquet_bytes(
        {
            "PatientID": pa.array([r[0] for r in rows], pa.int64()),
            "FamilyName": [r[1] for r in rows],
        }
    )


# deltas over three days: updates, keys repeated inside a file, two files on one day, files
# sharing a timestamp (ties go to the row number, then the file name), a NULL key
DELIVERIES = [
    ("Patients_20261122_020000.parquet", [(1, "a1"), (2, "b1"), (3, "c1"), (None, "x")]),
    ("Patients_20261123_020000.parquet", [(2, "b2"), (4, "d1"), (4, "d2")]),
    ("Patients_20261123_180000.parquet", [(1, "a2"), (3, "c2")]),
    ("Patients_20261124_020000.parquet", [(3, "c3"), (5, "e1")]),
    ("Patients_20261124020000.parquet", [(5, "e2"), (3, "c4")]),
]
RESENT = ("Patients_20261123_180000.parquet", [(1, "a2-fixed"), (6, "f1")])


def land_deliveries(landing: str) -> None:
    """Put every file of `DELIVERIES` in the landing bucket."""
    for name, rows in DELIVERIES:
        put_s3(landing, name, patients(rows))


def run_range_backfill(defs, instance: DagsterInstance, **options):
    """One single-run backfill of 2026-11-22 to 2026-11-24, as the UI launches it."""
    return defs.resolve_job_def(INGEST_JOB).execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2026-11-22",
            "dagster/asset_partition_range_end": "2026-11-24",
        },
        **options,
    )


@contextlib.contextmanager
def fresh_database(admin_dsn: str):
    name = f"indici_order_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cursor:
        create_writer_database(cursor, name, WRITER_ROLE)
    try:
        yield psycopg2.extensions.make_dsn(admin_dsn, dbname=name, user=WRITER_ROLE)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


def apply(warehouse: Warehouse, name: str, rows: list) -> None:
    """Load one file and apply its date to rpt, as one sensor-driven run would."""
    landed = parse_file_name(name, TIMEZONE)
    warehouse.load_file_into_staging(
        PATIENTS,
        landed,
        pq.ParquetFile(io.BytesIO(patients(rows))),
        run_id="r",
        source_key=name,
        source_etag=str(hash(tuple(rows))),
    )
    day = datetime.combine(landed.source_ts.date(), datetime.min.time(), NZ)
    warehouse.upsert_window_into_rpt(
        PATIENTS,
        day,
        day + timedelta(days=1),
        run_id="r",
        partition_key_of=lambda file: partition_key_of_file(file, TIMEZONE),
    )


def final_state(admin_dsn: str, order: list[int], resend_after: int) -> tuple[str, list]:
    with fresh_database(admin_dsn) as dsn:
        warehouse = Warehouse(dsn, TIMEZONE)
        warehouse.ensure_catalog()
        for position, index in enumerate(order):
            apply(warehouse, *DELIVERIES[index])
            if position == resend_after:
                apply(warehouse, *RESENT)
        if resend_after >= len(order):
            apply(warehouse, *RESENT)
        rows = query(dsn, "SELECT patient_id, family_name FROM rpt.patients ORDER BY 1")
        counters = row_counters(dsn)
        assert all(kept == actual for kept, actual in counters.values()), counters
        return query(dsn, RPT_CHECKSUM)[0][0], rows


def test_any_order_of_arrival_gives_the_in_order_rpt(database, admin_dsn):
    # the resent file replaces its first version, so it arrives after it
    in_order = list(range(len(DELIVERIES)))
    expected = final_state(admin_dsn, in_order, resend_after=len(in_order))
    assert expected[1] == [
        (1, "a2-fixed"),
        (2, "b2"),
        (3, "c4"),  # same timestamp as c3's file: row 2 beats row 1
        (4, "d2"),
        (5, "e1"),  # same timestamp, same row number: the later file name wins
        (6, "f1"),
    ]
    shuffler = random.Random(20261124)
    for _ in range(6):
        order = shuffler.sample(in_order, len(in_order))
        resend_after = max(order.index(2), shuffler.randrange(len(order) + 1))
        assert final_state(admin_dsn, order, resend_after) == expected, (order, resend_after)


def test_replays_and_a_range_backfill_leave_rpt_identical_and_staging_without_duplicates(
    tmp_path, database, buckets
):
    landing, partitioned = buckets
    land_deliveries(landing)
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    with DagsterInstance.ephemeral() as instance:
        requests = tick(defs, instance)
        assert all(r.success for r in execute_requests(defs, instance, requests))
        day_by_day = query(database, RPT_CHECKSUM)

        # the same runs again, then one run over the whole range (single-run backfill policy)
        assert all(r.success for r in execute_requests(defs, instance, requests))
        assert query(database, RPT_CHECKSUM) == day_by_day
        result = run_range_backfill(
            defs,
            instance,
            asset_selection=[
                k for k in requests.run_requests[0].asset_selection if "raw" not in k.path
            ],
        )
        assert result.success
    assert query(database, RPT_CHECKSUM) == day_by_day
    assert query(database, STAGING_DUPLICATES) == [(0,)]
    counters = row_counters(database)
    assert all(kept == actual for kept, actual in counters.values()), counters


def test_a_range_backfill_on_an_empty_warehouse_equals_day_by_day(
    tmp_path, database, admin_dsn, buckets
):
    landing, partitioned = buckets
    land_deliveries(landing)
    with DagsterInstance.ephemeral() as instance:
        defs = build(make_settings(tmp_path, database, landing, partitioned))
        assert all(r.success for r in execute_requests(defs, instance, tick(defs, instance)))
    day_by_day = query(database, RPT_CHECKSUM)

    with fresh_database(admin_dsn) as other, DagsterInstance.ephemeral() as instance:
        defs = build(make_settings(tmp_path, other, landing, partitioned))
        result = run_range_backfill(defs, instance)
        assert result.success
        assert query(other, RPT_CHECKSUM) == day_by_day
        # one upsert for the whole range: one rpt audit row per file, all from one run
        runs = query(
            other,
            "SELECT count(DISTINCT run_id), count(*) FROM indici_staging.auditlog WHERE step = 'rpt'",
        )
        assert runs == [(1, len(DELIVERIES))]


def test_each_date_of_a_range_backfill_shows_only_its_own_files(tmp_path, database, buckets):
    landing, partitioned = buckets
    land_deliveries(landing)
    with DagsterInstance.ephemeral() as instance:
        defs = build(make_settings(tmp_path, database, landing, partitioned))
        result = run_range_backfill(defs, instance)
        assert result.success
        expected = {
            day: sorted(n for n, _ in DELIVERIES if partition_key_of_file(n, TIMEZONE) == day)
            for day in ("2026-11-22", "2026-11-23", "2026-11-24")
        }
        shown: dict[str, dict[str, list[str]]] = {}
        for event in result.get_asset_materialization_events():
            materialization = event.step_materialization_data.materialization
            metadata = materialization.metadata
            layer = materialization.asset_key.path[1]  # indici/<layer>[/<dataset>]
            if layer == "raw":
                names = [r.data["file"] for r in metadata["files"].records]
            elif layer == "staging":
                names = list(metadata["files_loaded"].data)
            elif layer == "rpt":
                names = list(metadata["files"].data)
            else:
                continue
            shown.setdefault(layer, {})[materialization.partition] = sorted(names)
        assert shown == {"raw": expected, "staging": expected, "rpt": expected}
