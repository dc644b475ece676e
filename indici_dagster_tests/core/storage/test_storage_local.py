import os
from pathlib import Path

import pytest

from indici_dagster.core.storage.base import UnsafeKeyError, normalise_key
from indici_dagster.core.storage.local_storage import LocalStorage


def keys(storage: LocalStorage, prefix: str = "") -> list[str]:
    return sorted(o.key for o in storage.list_objects(prefix))


@pytest.fixture
def landing(tmp_path: Path) -> LocalStorage:
    storage = LocalStorage(tmp_path / "landing")
    storage.put_bytes("Patients_20261124_021503.parquet", b"p")
    storage.put_bytes("2026/11/Appointments_20261124_021503.parquet", b"a")
    storage.put_bytes("2026/11/Patients_20261125_021503.parquet", b"pp")
    (storage.root / ".Patients_20261126_021503.parquet.partial").write_bytes(b"partial")
    (storage.root / ".staging").mkdir()
    (storage.root / ".staging" / "Invoices_20261124_021503.parquet").write_bytes(b"i")
    return storage


def test_list_objects_is_recursive_with_slash_keys_and_skips_hidden_files(landing):
    assert keys(landing) == [
        "2026/11/Appointments_20261124_021503.parquet",
        "2026/11/Patients_20261125_021503.parquet",
        "Patients_20261124_021503.parquet",
    ]


def test_list_objects_filters_by_folder_and_name_prefix(landing):
    assert keys(landing, "2026/") == [
        "2026/11/Appointments_20261124_021503.parquet",
        "2026/11/Patients_20261125_021503.parquet",
    ]
    assert keys(landing, "2026/11/Pat") == ["2026/11/Patients_20261125_021503.parquet"]
    assert keys(landing, "Pat") == ["Patients_20261124_021503.parquet"]
    assert keys(landing, "missing/") == []


def test_list_objects_of_missing_root_is_empty(tmp_path):
    assert keys(LocalStorage(tmp_path / "nowhere")) == []


def test_put_bytes_then_head_describes_the_object(tmp_path):
    storage = LocalStorage(tmp_path)
    storage.put_bytes("/a/b/file.parquet", b"hello")
    head = storage.head("a/b/file.parquet")
    assert head is not None
    assert (head.key, head.size) == ("a/b/file.parquet", 5)
    assert (tmp_path / "a" / "b" / "file.parquet").read_bytes() == b"hello"
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["file.parquet"]
    assert storage.head("a/b/other.parquet") is None
    assert storage.head("a/b") is None


def test_copy_object_copies_once_per_source_content(tmp_path):
    source = LocalStorage(tmp_path / "source")
    target = LocalStorage(tmp_path / "target")
    source.put_bytes("Patients_20261124_021503.parquet", b"v1")

    obj = source.head("Patients_20261124_021503.parquet")
    assert source.copy_object(obj, target, "2026-11-24/Patients.parquet") is True
    assert target.head("2026-11-24/Patients.parquet").etag == obj.etag
    assert source.copy_object(obj, target, "2026-11-24/Patients.parquet") is False

    source.put_bytes("Patients_20261124_021503.parquet", b"version 2")
    changed = source.head("Patients_20261124_021503.parquet")
    assert source.copy_object(changed, target, "2026-11-24/Patients.parquet") is True
    assert (target.root / "2026-11-24" / "Patients.parquet").read_bytes() == b"version 2"
    assert keys(target) == ["2026-11-24/Patients.parquet"]


@pytest.mark.parametrize(
    ("key", "expected"),
    [("/a/b.parquet", "a/b.parquet"), ("//a/./b.parquet", "a/b.parquet"), ("a\\b", "a/b")],
)
def test_normalise_key_drops_leading_slashes_and_dot_segments(key, expected):
    assert normalise_key(key) == expected


@pytest.mark.parametrize("key", ["../x", "a/../../x", "a/..", "..\\x", "", "/", "./"])
def test_normalise_key_refuses_dot_dot_and_empty_keys(key):
    with pytest.raises(UnsafeKeyError):
        normalise_key(key)


def test_writing_outside_the_root_raises_and_creates_nothing(tmp_path):
    storage = LocalStorage(tmp_path / "root")
    for key in ["../escape", "/../escape", "a/../../escape"]:
        with pytest.raises(UnsafeKeyError):
            storage.put_bytes(key, b"x")
        with pytest.raises(UnsafeKeyError):
            storage.head(key)
    assert list(tmp_path.iterdir()) == []


def test_symlink_out_of_the_root_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    storage = LocalStorage(tmp_path / "root")
    storage.root.mkdir()
    os.symlink(outside, storage.root / "link")
    with pytest.raises(UnsafeKeyError):
        storage.put_bytes("link/escape", b"x")
    assert list(outside.iterdir()) == []
