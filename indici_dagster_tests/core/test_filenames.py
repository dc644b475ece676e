import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indici_dagster.core.filenames import (
    LandedFileName,
    UnrecognisedFileNameError,
    parse_file_name,
    try_parse_file_name,
)

ZONE = "Pacific/Auckland"


@pytest.mark.parametrize(
    "name",
    [
        "AppointmentMedications_20261124_021503.parquet",
        "AppointmentMedications_20261124021503.parquet",
    ],
)
def test_both_name_forms_give_dataset_timestamp_and_partition(name):
    parsed = parse_file_name(name, ZONE)
    assert parsed.file_name == name
    assert parsed.dataset == "AppointmentMedications"
    assert parsed.source_ts == datetime(2026, 11, 24, 2, 15, 3, tzinfo=ZoneInfo(ZONE))
    assert parsed.partition_key == "2026-11-24"


def test_timestamp_is_wall_clock_in_the_zone_with_daylight_saving():
    summer = parse_file_name("Patients_20261124021503.parquet", ZONE).source_ts
    winter = parse_file_name("Patients_20260615_021503.parquet", ZONE).source_ts
    assert summer.utcoffset() == timedelta(hours=13)  # NZDT
    assert winter.utcoffset() == timedelta(hours=12)  # NZST


def test_partition_key_is_the_local_date_not_the_utc_date():
    parsed = parse_file_name("Patients_20261124_021503.parquet", ZONE)
    assert parsed.source_ts.astimezone(ZoneInfo("UTC")).date().isoformat() == "2026-11-23"
    assert parsed.partition_key == "2026-11-24"


@pytest.mark.parametrize(
    "key",
    [
        "landing/2026/11/Patients_20261124_021503.parquet",
        "/landing/Patients_20261124_021503.parquet",
        "landing\\Patients_20261124_021503.parquet",
    ],
)
def test_key_with_folders_uses_only_the_base_name(key):
    parsed = parse_file_name(key, ZONE)
    assert parsed.file_name == "Patients_20261124_021503.parquet"
    assert parsed.dataset == "Patients"


def test_folder_that_looks_like_a_file_name_is_ignored():
    with pytest.raises(UnrecognisedFileNameError):
        parse_file_name("Patients_20261124_021503.parquet/notes.txt", ZONE)


@pytest.mark.parametrize(
    "name",
    [
        "Patients_20261124_021503.csv",
        "Patients_20261124_021503.parquet.tmp",
        "Patients_20261124_021503.PARQUET",  # the documented extension is lower-case only
        "Patients_20261124_021503",
        "Patients_20261124.parquet",
        "Patients_20261124_0215031.parquet",
        "Patients_20261124_02150.parquet",
        "Patients_2026112_021503.parquet",
        "Patients20261124_021503.parquet",
        "Patients_20261124__021503.parquet",
        "2Patients_20261124_021503.parquet",
        "_20261124_021503.parquet",
        "Appointment_Medications_20261124_021503.parquet",
        "Patients_\u0662\u0660\u0662\u0666\u0661\u0661\u0662\u0664_021503.parquet",
        "Patients_20261124_\uff10\uff12\uff11\uff15\uff10\uff13.parquet",
        "Pätients_20261124_021503.parquet",
        "Patients_20261124_021503.parquet\n",
        "Patients_20261124_021503.parquet ",
        " Patients_20261124_021503.parquet",
        "Patients _20261124_021503.parquet",
        "Patients_20261124 021503.parquet",
        "",
        "landing/",
    ],
)
def test_near_miss_names_are_rejected(name):
    with pytest.raises(UnrecognisedFileNameError):
        parse_file_name(name, ZONE)
    assert try_parse_file_name(name, ZONE) is None


@pytest.mark.parametrize(
    "name",
    [
        "Patients_20261332_021503.parquet",
        "Patients_20260229_021503.parquet",
        "Patients_20261124_246000.parquet",
        "Patients_20261124_025960.parquet",
        "Patients_00001124_021503.parquet",
    ],
)
def test_impossible_timestamp_is_rejected_with_reason(name):
    with pytest.raises(UnrecognisedFileNameError, match="impossible timestamp"):
        parse_file_name(name, ZONE)


@given(
    dataset=st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,30}", fullmatch=True),
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59)
    ),
    compact=st.booleans(),
)
def test_formatted_name_parses_back_to_dataset_and_wall_clock_time(dataset, moment, compact):
    moment = moment.replace(microsecond=0)
    stamp = moment.strftime("%Y%m%d%H%M%S" if compact else "%Y%m%d_%H%M%S")
    parsed = parse_file_name(f"{dataset}_{stamp}.parquet", ZONE)
    assert parsed.dataset == dataset
    assert parsed.source_ts.replace(tzinfo=None) == moment
    assert parsed.source_ts.tzinfo == ZoneInfo(ZONE)
    assert parsed.partition_key == moment.date().isoformat()


_DATASET = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_KEYS = st.one_of(
    st.text(),
    st.builds(
        "".join,
        st.lists(
            st.one_of(
                st.text(max_size=5),
                st.sampled_from(["/", "..", "\\", "_", ".parquet", "Patients"]),
                st.from_regex(r"[0-9]{6,8}", fullmatch=True),
            ),
            max_size=8,
        ),
    ),
    st.from_regex(r"[A-Za-z][A-Za-z0-9]*_[0-9]{8}_?[0-9]{6}\.parquet", fullmatch=True),
)


@given(key=_KEYS)
def test_try_parse_never_raises_and_only_returns_safe_names(key):
    parsed = try_parse_file_name(key, ZONE)
    if parsed is not None:
        assert isinstance(parsed, LandedFileName)
        assert _DATASET.fullmatch(parsed.dataset)
        assert "/" not in parsed.file_name
        assert ".." not in parsed.file_name
