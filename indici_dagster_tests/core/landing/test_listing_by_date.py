"""A run reads only its own dates: storage requests follow the date's files, not the history."""

from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import boto3
import botocore.client

from indici_dagster.core.steps.ingest import (
    CHANGED,
    copy_to_partitioned,
    describe_landed_file,
    landed_files_for,
)
from indici_dagster.core.storage.base import SOURCE_ETAG_METADATA
from indici_dagster.core.storage.local_storage import LocalStorage
from indici_dagster.core.storage.s3_storage import S3Storage, parse_s3_url
from indici_dagster.core.warehouse.ledger import processed_entries
from indici_dagster_tests.support.common import (
    PATIENTS,
    TIMEZONE,
    build,
    execute_requests,
    make_settings,
    patients,
    s3_keys,
    tick,
)

DAY = "2026-11-24"
DATASETS = ("Patients", "InvoiceLines", "Appointments")
FOLDERS = (
    "",
    "sub folder/",
    "a/b/",
    "/",
    "../",
    "Data_archive/",
    "my folder_x/",
    "2026_11/",
    "Patients_old/",
)
"""Where files of the day sit: the root, plain subfolders, odd keys, and folders whose names
hold `_` (also after a dataset-like word)."""


def day_keys() -> list[str]:
    keys = [f"{f}{d}_20261124_0{i}0000.parquet" for f in FOLDERS for d in DATASETS for i in (2, 3)]
    keys.append("Patients_20261124093000.parquet")  # the one-block timestamp form
    return keys


def other_keys(count: int) -> list[str]:
    """`count` objects of other dates (and junk) in the same datasets and folders."""
    keys = []
    day = date(2020, 1, 1)
    while len(keys) < count:
        for dataset in DATASETS:
            keys.append(f"{dataset}_{day:%Y%m%d}_020000.parquet")
            keys.append(f"sub folder/{dataset}_{day:%Y%m%d}_140000.parquet")
        keys.append(f"notes-{day:%Y%m%d}.txt")
        day += timedelta(days=1)
    return keys[:count]


class CountingClient:
    """Counts every S3 request a client sends (a botocore event hook, nothing faked)."""

    def __init__(self) -> None:
        self.client = boto3.client("s3")
        self.calls = 0
        self.client.meta.events.register("before-send.s3.*", self._count)

    def _count(self, **_) -> None:
        self.calls += 1


def upload(url: str, keys: list[str]) -> None:
    bucket, prefix = parse_s3_url(url)
    client = boto3.client("s3")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=prefix + k, Body=b"x"), keys))


def found(storage, partition_keys=(DAY,)) -> list[str]:
    return sorted(f.object.key for f in landed_files_for(storage, partition_keys, TIMEZONE))


def test_a_daily_runs_s3_requests_do_not_grow_when_thousands_of_unrelated_objects_land(buckets):
    landing, _ = buckets
    upload(landing, day_keys())
    counting = CountingClient()
    storage = S3Storage(landing, counting.client)

    assert found(storage) == sorted(day_keys())  # every folder, odd keys included
    before = counting.calls

    upload(landing, other_keys(2_500))
    counting.calls = 0
    assert found(storage) == sorted(day_keys())
    assert counting.calls == before  # not one request more for 2,500 more objects
    # the whole listing it replaces pays per thousand objects
    counting.calls = 0
    assert len(list(storage.list_objects())) == len(day_keys()) + 2_500
    assert counting.calls >= 3


def test_a_backfill_of_several_dates_finds_exactly_what_a_full_listing_finds(buckets):
    landing, _ = buckets
    upload(landing, day_keys() + other_keys(300))
    storage = S3Storage(landing, boto3.client("s3"))
    dates = ["2020-01-03", DAY, "2020-02-01"]
    expected = sorted(
        o.key
        for o in storage.list_objects()
        if (d := o.key.rsplit("/", 1)[-1].split("_")[1][:8] if "_" in o.key else "")
        and f"{d[:4]}-{d[4:6]}-{d[6:]}" in dates
        and o.key.endswith(".parquet")
    )
    assert found(storage, dates) == expected


def test_local_folders_are_searched_by_name_and_find_every_file_of_the_date(tmp_path):
    storage = LocalStorage(tmp_path / "landing")
    for key in [k for k in day_keys() if not k.startswith(("/", "../"))] + other_keys(50):
        storage.put_bytes(key, b"x")
    assert found(storage) == sorted(k for k in day_keys() if not k.startswith(("/", "../")))


def test_a_range_backfill_lists_months_not_each_date(buckets):
    landing, _ = buckets
    upload(landing, day_keys() + other_keys(400))
    counting = CountingClient()
    storage = S3Storage(landing, counting.client)
    found(storage, [DAY])
    one_day = counting.calls
    counting.calls = 0
    november = [f"2026-11-{d:02d}" for d in range(1, 31)]
    assert found(storage, november) == sorted(day_keys())
    assert counting.calls == one_day  # one month prefix per dataset, as for one date


def sensor_day_keys() -> list[str]:
    """The day's keys, in every folder, of a dataset with a rule (Patients) and one without
    (Appointments), each file name once (a name landed twice is refused, not copied)."""
    return [
        f"{folder}{dataset}_20261124_{n:02d}{m:02d}00.parquet"
        for n, folder in enumerate(FOLDERS)
        for m, dataset in enumerate(("Patients", "Appointments"))
    ]


def test_a_sensor_requested_daily_run_lists_nothing_and_still_copies_every_file(
    tmp_path, database, buckets, instance, monkeypatch
):
    landing, partitioned = buckets
    bucket, prefix = parse_s3_url(landing)
    client = boto3.client("s3")
    for n, key in enumerate(sensor_day_keys()):
        client.put_object(Bucket=bucket, Key=prefix + key, Body=patients([(n, f"N{n}")]))
    upload(landing, other_keys(500))  # dated before the first partition: never requested
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    result = tick(defs, instance)
    assert [r.partition_key for r in result.run_requests] == [DAY]
    request = result.run_requests[0]

    operations: list[tuple[str, str | None]] = []
    make_api_call = botocore.client.BaseClient._make_api_call

    def counting(self, operation_name, api_params):
        operations.append((operation_name, api_params.get("Bucket")))
        return make_api_call(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    assert all(r.success for r in execute_requests(defs, instance, result))
    monkeypatch.undo()
    assert operations  # the counter sees the run's requests
    # raw and partitioned list nothing in the landing bucket (staging lists the date's
    # folder of the partitioned copy: that is the date's files only)
    assert ("HeadObject", bucket) in operations
    assert not [o for o, b in operations if o.startswith("List") and b == bucket]
    expected = sorted(
        f"dataset={k.split('/')[-1].split('_')[0]}/date={DAY}/{k.split('/')[-1]}"
        for k in sensor_day_keys()
    )
    copies = sorted(k for k in s3_keys(partitioned) if k.startswith("dataset="))
    assert copies == expected

    # a run without the tags (a backfill from the UI) lists and finds the same files
    storage = S3Storage(landing, boto3.client("s3"))
    tagged = landed_files_for(storage, [DAY], TIMEZONE, request.tags)
    assert [f.object.key for f in tagged] == [
        f.object.key for f in landed_files_for(storage, [DAY], TIMEZONE)
    ]
    assert sorted(f.object.key for f in tagged) == sorted(sensor_day_keys())
    # tags for another date than the run's are not taken for it: that run lists
    assert landed_files_for(storage, ["2020-01-01"], TIMEZONE, request.tags)


def test_a_version_replaced_after_the_request_is_not_read_or_copied_as_the_requested_one(
    tmp_path, database, buckets, instance
):
    landing, partitioned = buckets
    bucket, prefix = parse_s3_url(landing)
    client = boto3.client("s3")
    key = "Patients_20261124_020000.parquet"
    client.put_object(Bucket=bucket, Key=prefix + key, Body=patients([(1, "A1")]))
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    request = tick(defs, instance).run_requests[0]
    client.put_object(Bucket=bucket, Key=prefix + key, Body=patients([(1, "A2"), (2, "B2")]))

    source, target = S3Storage(landing, client), S3Storage(partitioned, client)
    files = landed_files_for(source, [DAY], TIMEZONE, request.tags)
    assert [f.object.key for f in files] == [key]
    assert describe_landed_file(source, files[0]).error == CHANGED
    report = copy_to_partitioned(source, target, files, {"Patients": PATIENTS}, run_id="r")
    assert report.copied == 0 and len(report.failed) == 1 and CHANGED in report.failed[0]
    assert [e.status.value for e in report.entries] == ["error"]
    assert not [k for k in s3_keys(partitioned) if k.endswith(key)]  # nothing under either version
    ledger = processed_entries(
        [(f.object, f.name) for f in files],
        refused=set(),
        failed={e.source_key for e in report.entries},
        datasets_with_rules={"Patients"},
        run_id="r",
        run_key=None,
    )
    assert ledger == []  # the old version is not recorded as processed
    # the new version, listed, is copied under its own ETag
    listed = landed_files_for(source, [DAY], TIMEZONE)
    assert listed[0].object.etag != files[0].object.etag
    assert copy_to_partitioned(source, target, listed, {}, run_id="r").copied == 1
    copied = client.head_object(
        Bucket=parse_s3_url(partitioned)[0],
        Key=parse_s3_url(partitioned)[1] + listed[0].partitioned_key,
    )
    assert copied["Metadata"][SOURCE_ETAG_METADATA] == listed[0].object.etag
