"""The object versions a sensor-launched run was requested for, carried in the run's tags.

A daily run then reads exactly the versions the sensor handed over, with no listing at all.
The tags are small on purpose: a Dagster run tag is a row of the run storage's `run_tags` table,
indexed on its value (in PostgreSQL a B-tree entry holds at most ~2.7 KB), so the versions are
split into parts of at most `PART_BYTES` each, and a request whose versions would exceed
`MAX_PARTS` parts carries none (its run lists the date's keys, as a backfill does).

    indici/objects      {"date": "2026-11-24", "parts": 2, "files": 30}
    indici/objects.0    [["Patients_20261124_020000.parquet", "<etag>", 123], ...]
    indici/objects.1    [...]

Keys are JSON strings: every key round-trips exactly, nothing is escaped by hand.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from indici_dagster.core.db_errors import CleanError, ErrorKind
from indici_dagster.core.storage.base import StoredObject

OBJECTS_TAG = "indici/objects"
PART_BYTES = 2_000
"""Most UTF-8 bytes in one part's value (an S3 key is at most 1,024 bytes, so any one version
fits a part)."""
MAX_PARTS = 32
"""Most parts a request carries (64 KB); beyond it the run lists its date's keys instead."""
UNKNOWN_TIME = datetime.fromtimestamp(0, UTC)
"""`last_modified` of a version read from the tags (not carried: nothing downstream reads it)."""


class ObjectsTagError(CleanError):
    """Tags claiming to carry a run's object versions that cannot be read back whole, or that
    name a key the landing listing never hands over: the step fails at once, with this line."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ErrorKind.PERMANENT)


@dataclass(frozen=True)
class RequestedObjects:
    """The object versions a run was requested for, all of one partition date."""

    partition_key: str
    objects: list[StoredObject]


def encode_objects_tags(
    partition_key: str, versions: Iterable[tuple[str, str, int | None]]
) -> dict[str, str]:
    """Tags carrying `versions` (key, ETag, size) of one date; `{}` when they would not fit
    in `MAX_PARTS` parts of `PART_BYTES` (the run then lists, as without the tags)."""
    parts: list[list[list[object]]] = [[]]
    used = 2  # the brackets of a part's list
    count = 0
    for key, etag, size in sorted(versions):
        item = [key, etag, size]
        try:
            length = len(_dump(item).encode()) + 1  # and its comma
        except UnicodeEncodeError:  # a local name that is not UTF-8: such a run lists
            return {}
        if length + 2 > PART_BYTES:
            return {}
        if used + length > PART_BYTES and parts[-1]:
            parts.append([])
            used = 2
        parts[-1].append(item)
        used += length
        count += 1
    if len(parts) > MAX_PARTS or count == 0:
        return {}
    header = {"date": partition_key, "parts": len(parts), "files": count}
    tags = {OBJECTS_TAG: _dump(header)}
    tags.update({f"{OBJECTS_TAG}.{n}": _dump(part) for n, part in enumerate(parts)})
    return tags


def decode_objects_tags(tags: Mapping[str, str]) -> RequestedObjects | None:
    """The versions a run's tags carry, or None when they carry none (the run lists).

    Raises `ObjectsTagError` naming the tag when the tags are present but incomplete or
    malformed: a run never silently reads fewer files than it was requested for.
    """
    header_text = tags.get(OBJECTS_TAG)
    if header_text is None:
        return None
    try:
        header = json.loads(header_text)
        partition_key, parts, files = header["date"], header["parts"], header["files"]
        if not (isinstance(partition_key, str) and _is_count(parts) and _is_count(files)):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ObjectsTagError(f"run tag {OBJECTS_TAG} is malformed") from None
    objects = []
    for n in range(parts):
        name = f"{OBJECTS_TAG}.{n}"
        if name not in tags:
            raise ObjectsTagError(f"run tag {name} is missing")
        try:
            part = json.loads(tags[name])
            for key, etag, size in part:
                if not (isinstance(key, str) and isinstance(etag, str)):
                    raise TypeError
                if size is not None and not _is_count(size):
                    raise TypeError
                objects.append(StoredObject(key, etag, size or 0, UNKNOWN_TIME))
        except (ValueError, TypeError):
            raise ObjectsTagError(f"run tag {name} is malformed") from None
    if len(objects) != files:
        raise ObjectsTagError(f"run tags {OBJECTS_TAG}.* hold {len(objects)} files, not {files}")
    return RequestedObjects(partition_key, objects)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
