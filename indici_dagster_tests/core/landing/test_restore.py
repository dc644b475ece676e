"""`indici restore`'s core: archived landed and partitioned objects of a date range are
restored (moto records the request in HeadObject's `Restore`), readable ones are reported as
available, and asking again requests nothing new. Bad ranges are refused in one line."""

from datetime import date

import boto3
import pytest

from indici_dagster.core.landing.restore import (
    RestoreInputError,
    RestoreRange,
    check_request,
    parse_range,
    restore_range,
)
from indici_dagster.core.storage.archive import ArchiveState, archive_state, restore_request
from indici_dagster.core.storage.open_storage import open_storage
from indici_dagster.core.storage.s3_storage import parse_s3_url
from indici_dagster_tests.support.common import TIMEZONE, patients

DAY = "2026-01-02"


def _put(url: str, key: str, storage_class: str = "STANDARD") -> None:
    bucket, prefix = parse_s3_url(url)
    body = patients([(1, "A")])
    boto3.client("s3").put_object(
        Bucket=bucket, Key=prefix + key, Body=body, StorageClass=storage_class
    )


def _restore_field(url: str, key: str) -> str | None:
    bucket, prefix = parse_s3_url(url)
    return boto3.client("s3").head_object(Bucket=bucket, Key=prefix + key).get("Restore")


def test_archived_objects_of_the_range_are_restored_once_and_readable_ones_reported(buckets):
    landing, partitioned = buckets
    _put(landing, "Patients_20260102_020000.parquet", "GLACIER")
    _put(landing, "InvoiceLines_20260102_020000.parquet", "DEEP_ARCHIVE")
    _put(landing, "Patients_20260102_030000.parquet")  # never archived
    _put(landing, "Patients_20260103_020000.parquet", "GLACIER")  # outside the range
    _put(
        partitioned, "dataset=Patients/date=2026-01-02/Patients_20260102_020000.parquet", "GLACIER"
    )
    _put(
        partitioned, "dataset=Patients/date=2026-01-03/Patients_20260103_020000.parquet", "GLACIER"
    )
    wanted = RestoreRange(date(2026, 1, 2), date(2026, 1, 2))

    report = restore_range(
        open_storage(landing),
        open_storage(partitioned),
        wanted,
        timezone=TIMEZONE,
        days=7,
        tier="Bulk",
    )

    assert sorted(report.requested) == sorted(
        [
            f"{landing}/Patients_20260102_020000.parquet",
            f"{landing}/InvoiceLines_20260102_020000.parquet",
            f"{partitioned}/dataset=Patients/date=2026-01-02/Patients_20260102_020000.parquet",
        ]
    )
    assert report.available == [f"{landing}/Patients_20260102_030000.parquet"]
    assert report.restoring == []
    assert _restore_field(landing, "Patients_20260102_020000.parquet") is not None
    assert _restore_field(landing, "Patients_20260103_020000.parquet") is None  # not asked
    assert (
        _restore_field(
            partitioned, "dataset=Patients/date=2026-01-03/Patients_20260103_020000.parquet"
        )
        is None
    )

    again = restore_range(
        open_storage(landing),
        open_storage(partitioned),
        wanted,
        timezone=TIMEZONE,
        days=7,
        tier="Bulk",
    )
    assert again.requested == [] and again.restoring == []  # moto restores at once
    assert len(again.available) == 4


def test_a_dataset_limits_the_restore_to_its_files(buckets):
    landing, partitioned = buckets
    _put(landing, "Patients_20260102_020000.parquet", "GLACIER")
    _put(landing, "InvoiceLines_20260102_020000.parquet", "GLACIER")
    wanted = parse_range(DAY, DAY, "InvoiceLines", {"Patients", "InvoiceLines"})
    report = restore_range(
        open_storage(landing),
        open_storage(partitioned),
        wanted,
        timezone=TIMEZONE,
        days=3,
        tier="Standard",
    )
    assert report.requested == [f"{landing}/InvoiceLines_20260102_020000.parquet"]
    assert _restore_field(landing, "Patients_20260102_020000.parquet") is None


def test_archive_state_reads_head_object():
    assert archive_state({"StorageClass": "STANDARD"}) is ArchiveState.AVAILABLE
    assert archive_state({}) is ArchiveState.AVAILABLE
    assert archive_state({"StorageClass": "GLACIER_IR"}) is ArchiveState.AVAILABLE
    assert archive_state({"StorageClass": "GLACIER"}) is ArchiveState.ARCHIVED
    assert archive_state({"StorageClass": "DEEP_ARCHIVE"}) is ArchiveState.ARCHIVED
    restoring = {"StorageClass": "GLACIER", "Restore": 'ongoing-request="true"'}
    assert archive_state(restoring) is ArchiveState.RESTORING
    done = {
        "StorageClass": "DEEP_ARCHIVE",
        "Restore": 'ongoing-request="false", expiry-date="Mon, 14 Dec 2026 00:00:00 GMT"',
    }
    assert archive_state(done) is ArchiveState.RESTORED
    tiered = {"StorageClass": "INTELLIGENT_TIERING", "ArchiveStatus": "ARCHIVE_ACCESS"}
    assert archive_state(tiered) is ArchiveState.ARCHIVED
    assert "Days" not in restore_request(tiered, 7, "Bulk")
    assert restore_request({"StorageClass": "GLACIER"}, 7, "Bulk")["Days"] == 7


@pytest.mark.parametrize(
    ("first", "last", "dataset", "expected"),
    [
        ("2026-1-2", DAY, None, "--from must be a date as YYYY-MM-DD"),
        (DAY, "2026-02-30", None, "--to 2026-02-30 is not a real date"),
        ("2026-01-03", DAY, None, "--from 2026-01-03 is after --to 2026-01-02"),
        ("2024-01-01", DAY, None, "more than 366 days"),
        (DAY, DAY, "Nope", "--dataset names no dataset of the rules"),
    ],
)
def test_bad_ranges_are_refused_in_one_line(first, last, dataset, expected):
    with pytest.raises(RestoreInputError) as raised:
        parse_range(first, last, dataset, {"Patients"})
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)


def test_bad_days_or_tier_are_refused():
    with pytest.raises(RestoreInputError, match="--days"):
        check_request(0, "Standard")
    with pytest.raises(RestoreInputError, match="--tier"):
        check_request(7, "Fast")
