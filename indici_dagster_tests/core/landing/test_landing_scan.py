"""Sensor ticks look at recent keys per dataset plus a sweeping slice, and miss nothing."""

from datetime import UTC, date, datetime, timedelta

import boto3

from indici_dagster.core.landing.scan import LOOKBACK_DAYS, scan_landing
from indici_dagster.core.storage.s3_storage import S3Storage, parse_s3_url
from indici_dagster_tests.support.common import put_s3

FIRST = date(2026, 10, 1)
DAYS = 30


def name(dataset: str, day: date) -> str:
    return f"{dataset}_{day:%Y%m%d}_020000.parquet"


def keys(objects) -> set[str]:
    return {o.key for o in objects}


def test_later_ticks_look_at_recent_keys_and_a_slice_yet_find_a_late_old_file(buckets):
    landing, _ = buckets
    for offset in range(DAYS):
        for dataset in ("Patients", "Invoices"):
            put_s3(landing, name(dataset, FIRST + timedelta(days=offset)), b"x")
    put_s3(landing, "README.txt", b"not an indici file")
    storage = S3Storage(landing, boto3.client("s3"))
    total = 2 * DAYS + 1

    # the first tick knows nothing yet and still looks at only a slice: a backlog is swept in
    objects, state = scan_landing(storage, None, sweep_keys=5)
    assert len(objects) <= 5 + 1
    seen = keys(objects)
    for _ in range(total // 5 + 1):
        objects, state = scan_landing(storage, state, sweep_keys=5)
        seen |= keys(objects)
    assert len(seen) == total

    objects, state = scan_landing(storage, state, sweep_keys=5)
    recent = {
        name(d, FIRST + timedelta(days=o))
        for d in ("Patients", "Invoices")
        for o in range(DAYS - LOOKBACK_DAYS - 1, DAYS)
    }
    assert recent | {"README.txt"} <= keys(objects)
    assert len(objects) <= len(recent) + 1 + 5  # proportional to what is recent, not to all

    late = name("Patients", FIRST + timedelta(days=3))  # sorts long before the newest key
    put_s3(landing, late.replace("_020000", "_230000"), b"late")
    seen_late = False
    for _ in range(total // 5 + 2):
        objects, state = scan_landing(storage, state, sweep_keys=5)
        seen_late = seen_late or late.replace("_020000", "_230000") in keys(objects)
    assert seen_late
    assert len(str(state)) < 1_000


def test_a_new_dataset_with_a_current_file_is_seen_on_the_next_tick(buckets):
    landing, _ = buckets
    for offset in range(5):
        put_s3(landing, name("Patients", FIRST + timedelta(days=offset)), b"x")
    storage = S3Storage(landing, boto3.client("s3"))
    _, state = scan_landing(storage, None, sweep_keys=1)
    today = datetime.now(UTC).date()
    put_s3(landing, name("Diagnoses", today), b"x")
    objects, _ = scan_landing(storage, state, sweep_keys=1)
    assert name("Diagnoses", today) in keys(objects)
    assert parse_s3_url(landing)[1] == "incoming/"
