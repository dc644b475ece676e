"""A run reads only its own dates: storage requests follow the date's files, not the history."""

from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import boto3

from indici_dagster.core.ingest import landed_files_for
from indici_dagster.core.storage import LocalStorage, S3Storage, parse_s3_url
from indici_dagster_tests.support import TIMEZONE

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
