"""The run tags carrying a sensor request's object versions: exact, bounded, fail closed."""

import json

import pytest
from dagster._utils.tags import is_valid_tag_key

from indici_dagster.core.run_objects import (
    MAX_PARTS,
    OBJECTS_TAG,
    PART_BYTES,
    ObjectsTagError,
    decode_objects_tags,
    encode_objects_tags,
)

HOSTILE_KEYS = [
    "Patients_20261124_020000.parquet",
    'sub "folder"/Patients_20261124_030000.parquet',
    "a\\b/Patients_20261124_040000.parquet",
    "../Patients_20261124_050000.parquet",
    "/Patients_20261124_060000.parquet",
    "Māori ✓ folder/Patients_20261124_070000.parquet",
    "x,y],[z/Patients_20261124_080000.parquet",
    "%2F%00\\u0000/Patients_20261124_090000.parquet",
    "",
]


def test_every_key_etag_and_size_round_trip_exactly_through_the_tags():
    versions = [(k, f'etag-{n}"-2', n * 10) for n, k in enumerate(HOSTILE_KEYS)]
    tags = encode_objects_tags("2026-11-24", versions)
    decoded = decode_objects_tags(tags)
    assert decoded is not None and decoded.partition_key == "2026-11-24"
    assert sorted((o.key, o.etag, o.size) for o in decoded.objects) == sorted(versions)
    assert all(len(value.encode()) <= PART_BYTES for value in tags.values())


def test_many_versions_are_split_into_bounded_parts_and_all_come_back():
    versions = [(f"Dataset{n:04d}_20261124_020000.parquet", "e" * 32, n) for n in range(300)]
    tags = encode_objects_tags("2026-11-24", versions)
    assert len(tags) > 2 and all(len(v.encode()) <= PART_BYTES for v in tags.values())
    assert all(is_valid_tag_key(k) for k in tags)  # no Dagster warning for any request
    assert json.loads(tags[OBJECTS_TAG])["files"] == 300
    assert sorted((o.key, o.etag, o.size) for o in decode_objects_tags(tags).objects) == versions


def test_versions_beyond_the_bound_are_not_carried_and_the_run_lists():
    too_many = [(f"D_20261124_{n:06d}.parquet", "e" * 32, 1) for n in range(MAX_PARTS * 40)]
    assert encode_objects_tags("2026-11-24", too_many) == {}
    assert decode_objects_tags({"indici/trigger": "landing"}) is None


def test_a_missing_or_damaged_part_fails_closed_naming_the_tag():
    versions = [(f"Dataset{n:04d}_20261124_020000.parquet", "e" * 32, n) for n in range(100)]
    tags = encode_objects_tags("2026-11-24", versions)
    missing = {k: v for k, v in tags.items() if k != f"{OBJECTS_TAG}.1"}
    with pytest.raises(ObjectsTagError, match=f"{OBJECTS_TAG}.1 is missing"):
        decode_objects_tags(missing)
    with pytest.raises(ObjectsTagError, match=f"{OBJECTS_TAG}.0 is malformed"):
        decode_objects_tags({**tags, f"{OBJECTS_TAG}.0": '[["k", 5, 1]]'})
    with pytest.raises(ObjectsTagError, match="hold"):
        decode_objects_tags({**tags, f"{OBJECTS_TAG}.0": '[["k", "e", 1]]'})
    with pytest.raises(ObjectsTagError, match="malformed"):
        decode_objects_tags({OBJECTS_TAG: "{"})
