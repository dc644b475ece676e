"""Object storage for landed and partitioned files: an S3 prefix or a local folder.

Both implementations offer the same small interface, so the pipeline runs unchanged against
AWS, a moto server or a laptop folder. Keys are always relative to the location's root and use
`/`; nothing can be read or written outside that root.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

from indici_dagster.core.escaping import escape_text

SOURCE_ETAG_METADATA = "source-etag"
"""S3 user metadata on a copy naming the ETag of the object it was copied from."""

READ_BUFFER = 8 * 1024 * 1024


class LocationMissingError(RuntimeError):
    """A landing location (folder or bucket) that does not exist."""


@dataclass(frozen=True)
class StoredObject:
    """One object in a storage location."""

    key: str
    etag: str
    """Content identity: the S3 ETag, or a SHA-256 digest of a local file's content."""
    size: int
    last_modified: datetime
    problem: str | None = None
    """Why this entry can never be read (a symlink, a fifo, an unreadable file, a key that
    cannot be stored); `key` is then escaped and bounded. None for an ordinary object."""


class UnsafeKeyError(ValueError):
    """A key that would resolve outside its storage root."""


class Storage(Protocol):
    """An S3 prefix or a local folder holding files."""

    url: str

    def list_objects(self, prefix: str = "") -> Iterator[StoredObject]:
        """Yield every object whose key starts with `prefix`, in any number."""
        ...

    def require_exists(self) -> None:
        """Raise `LocationMissingError` if the location itself (folder, bucket) is missing."""
        ...

    def key_refusal(self, key: str) -> str | None:
        """Why this location's listing never hands `key` over to be read, or None: the one
        check behind both the listing and a run's versions named in its tags."""
        ...

    def head(self, key: str) -> StoredObject | None:
        """Return the object at `key`, or None if there is none."""
        ...

    def open_for_read(self, key: str, etag: str | None = None) -> BinaryIO:
        """Open `key` as a seekable binary file; with `etag`, fail if the content changed."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write `data` to `key`, replacing what is there (atomically for local folders)."""
        ...

    def copy_object(self, source: StoredObject, target: "Storage", target_key: str) -> bool:
        """Copy `source` byte for byte to `target_key` in `target`.

        Returns False, copying nothing, when the target already holds a copy of exactly this
        source content; True after a copy.
        """
        ...

    def display(self, key: str) -> str:
        """A human-readable location of `key` (no credentials), escaped for printing."""
        ...


def is_hidden(name: str) -> bool:
    """True for a file or folder name with a leading `.`, as writers use for partial uploads
    (`.upload/`, `.name.partial`); `.` and `..` are steps in a path, not names."""
    return name.startswith(".") and name not in (".", "..")


HIDDEN = "it is hidden (a file or folder name starting with '.'), never read"


def normalise_key(key: str) -> str:
    """Return `key` as a clean relative key; raise `UnsafeKeyError` if it climbs out of the root.

    Leading slashes are dropped and `.` segments removed; any `..` segment is refused.
    """
    parts = [p for p in key.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafeKeyError(f"key {escape_text(key)} contains '..'")
    if not parts:
        raise UnsafeKeyError(f"key {escape_text(key)} names no object")
    return "/".join(parts)


def problem_object(key: str, etag: str, size: int, changed: datetime, problem: str) -> StoredObject:
    """An entry that is never read: its key escaped and bounded, so it can be stored."""
    return StoredObject(escape_text(key), etag, size, changed, problem)


class ChangedWhileReadingError(RuntimeError):
    """An object was replaced between being listed and being read."""
