"""The run tags carrying a sensor request's object versions: exact, bounded, fail closed."""

import json
from types import SimpleNamespace

import pytest
from dagster._utils.tags import is_valid_tag_key

from indici_dagster.core.db_errors import ErrorKind, classify, describe_library_error
from indici_dagster.core.escaping import escape_text
from indici_dagster.core.landing.run_objects import (
    MAX_PARTS,
    OBJECTS_TAG,
    PART_BYTES,
    ObjectsTagError,
    decode_objects_tags,
    encode_objects_tags,
)
from indici_dagster.core.steps.ingest import landed_files_for
from indici_dagster.core.storage.base import UnsafeKeyError
from indici_dagster.core.storage.local_storage import LocalStorage
from indici_dagster.core.storage.open_storage import open_storage
from indici_dagster_tests.support.common import (
    TIMEZONE,
    build,
    execute_requests,
    make_settings,
    patients,
    put_s3,
    query,
    tick,
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


DAY = "2026-11-24"
LEGIT = "Patients_20261124_020000.parquet"


def _tags_naming(storage, *keys: str) -> dict[str, str]:
    """The tags a request would carry for `keys`, each with the ETag the storage has for it
    (a crafted tag can name a real version exactly)."""
    versions = []
    for key in keys:
        try:
            found = storage.head(key)
        except UnsafeKeyError:
            found = None
        versions.append((key, found.etag if found else "etag", found.size if found else 1))
    return encode_objects_tags(DAY, versions)


def _local_landing(tmp_path):
    landing = tmp_path / "landing"
    files = {
        LEGIT: patients([(1, "A")]),
        ".upload/Patients_20261124_030000.parquet": patients([(2, "partial upload")]),
        "Patients_20261125_020000.parquet": patients([(3, "another date")]),
        "Patients_2026112_020000.parquet": patients([(4, "invalid name")]),
    }
    for key, data in files.items():
        (landing / key).parent.mkdir(parents=True, exist_ok=True)
        (landing / key).write_bytes(data)
    outside = tmp_path / "outside" / "Patients_20261124_040000.parquet"
    outside.parent.mkdir()
    outside.write_bytes(patients([(5, "outside the landing folder")]))
    return LocalStorage(landing)


CRAFTED_LOCAL = {
    ".upload/Patients_20261124_030000.parquet": "hidden",
    "../outside/Patients_20261124_040000.parquet": "not a plain path inside the landing folder",
    "/./Patients_20261124_020000.parquet": "not a plain path inside the landing folder",
    "Patients_20261125_020000.parquet": "dated 2026-11-25, not 2026-11-24",
    "Patients_2026112_020000.parquet": "does not match",
}


@pytest.mark.parametrize("crafted", CRAFTED_LOCAL)
def test_a_tag_naming_a_key_the_local_listing_refuses_fails_the_step_naming_it(tmp_path, crafted):
    storage = _local_landing(tmp_path)
    tags = _tags_naming(storage, LEGIT, crafted)
    with pytest.raises(ObjectsTagError) as raised:
        landed_files_for(storage, [DAY], TIMEZONE, tags)
    message = str(raised.value)
    assert "\n" not in message and escape_text(crafted) in message
    assert CRAFTED_LOCAL[crafted] in message
    assert classify(raised.value) is ErrorKind.PERMANENT  # not retried, and said in one line
    assert describe_library_error(raised.value) == message
    # the listing itself never hands it over either: the same check on both paths
    listed = landed_files_for(storage, [DAY], TIMEZONE)
    assert [f.object.key for f in listed] == [LEGIT]


def test_a_tag_naming_only_keys_the_listing_takes_reads_exactly_those(tmp_path):
    storage = _local_landing(tmp_path)
    (storage.root / "sub folder").mkdir()
    (storage.root / "sub folder" / "Patients_20261124_050000.parquet").write_bytes(b"x")
    tags = _tags_naming(storage, LEGIT, "sub folder/Patients_20261124_050000.parquet")
    files = landed_files_for(storage, [DAY], TIMEZONE, tags)
    assert [f.object.key for f in files] == [LEGIT, "sub folder/Patients_20261124_050000.parquet"]


CRAFTED_S3 = {
    ".upload/Patients_20261124_030000.parquet": "hidden",
    "in/.partial/Patients_20261124_040000.parquet": "hidden",
    "Patients_20261124_\x1b[31m050000.parquet": "control characters",
    "Patients_20261125_020000.parquet": "dated 2026-11-25, not 2026-11-24",
    "notes.parquet": "does not match",
    "folder/": "names a folder",
}


def test_a_tag_naming_a_key_the_s3_listing_refuses_fails_and_odd_keys_it_takes_still_load(
    buckets,
):
    landing, _ = buckets
    for key in [LEGIT, "../Patients_20261124_060000.parquet", *CRAFTED_S3]:
        put_s3(landing, key, patients([(1, "A")]))
    storage = open_storage(landing)
    for crafted, reason in CRAFTED_S3.items():
        with pytest.raises(ObjectsTagError) as raised:
            landed_files_for(storage, [DAY], TIMEZONE, _tags_naming(storage, LEGIT, crafted))
        message = str(raised.value)
        assert "\n" not in message and escape_text(crafted) in message and reason in message
        assert "\x1b" not in message
    # what the S3 listing takes (an opaque `..` key included) still passes from the tags
    legit = [LEGIT, "../Patients_20261124_060000.parquet"]
    files = landed_files_for(storage, [DAY], TIMEZONE, _tags_naming(storage, *legit))
    assert sorted(f.object.key for f in files) == sorted(legit)
    listed = {o.key: o.problem for o in storage.list_objects()}
    assert listed[".upload/Patients_20261124_030000.parquet"] is not None  # audited, never read
    assert sorted(f.object.key for f in landed_files_for(storage, [DAY], TIMEZONE)) == sorted(legit)


def test_a_run_whose_tag_names_a_hidden_file_fails_clearly_and_loads_nothing(tmp_path, database):
    from dagster import DagsterInstance

    storage = _local_landing(tmp_path)
    partitioned = tmp_path / "partitioned"
    defs = build(make_settings(tmp_path, database, str(storage.root), str(partitioned)))
    with DagsterInstance.ephemeral() as instance:
        result = tick(defs, instance)
        (request,) = [r for r in result.run_requests if r.partition_key == DAY]
        crafted = ".upload/Patients_20261124_030000.parquet"
        forged = request.with_replaced_attrs(
            tags={**request.tags, **_tags_naming(storage, LEGIT, crafted)}
        )
        (outcome,) = execute_requests(defs, instance, SimpleNamespace(run_requests=[forged]))
    assert not outcome.success
    failures = [e for e in outcome.all_events if e.is_step_failure]
    assert failures
    message = failures[0].step_failure_data.error.message
    assert escape_text(crafted) in message and "hidden" in message
    assert "partial upload" not in message
    assert not list(partitioned.rglob("*.parquet"))  # nothing copied, nothing loaded
    assert query(
        database, "SELECT count(*) FROM indici_staging.auditlog WHERE step <> 'landing'"
    ) == [(0,)]
