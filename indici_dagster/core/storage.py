"""Object storage for landed and partitioned files: an S3 prefix or a local folder.

Both implementations offer the same small interface, so the pipeline runs unchanged against
AWS, a moto server or a laptop folder. Keys are always relative to the location's root and use
`/`; nothing can be read or written outside that root.
"""

import io
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

SOURCE_ETAG_METADATA = "source-etag"
"""S3 user metadata on a copy naming the ETag of the object it was copied from."""

_READ_BUFFER = 8 * 1024 * 1024


@dataclass(frozen=True)
class StoredObject:
    """One object in a storage location."""

    key: str
    etag: str
    """Content identity: the S3 ETag, or size and modification time for a local file."""
    size: int
    last_modified: datetime


class UnsafeKeyError(ValueError):
    """A key that would resolve outside its storage root."""


class Storage(Protocol):
    """An S3 prefix or a local folder holding files."""

    url: str

    def list_objects(self, prefix: str = "") -> Iterator[StoredObject]:
        """Yield every object whose key starts with `prefix`, in any number."""
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
        """A human-readable location of `key` (no credentials)."""
        ...


def normalise_key(key: str) -> str:
    """Return `key` as a clean relative key; raise `UnsafeKeyError` if it climbs out of the root.

    Leading slashes are dropped and `.` segments removed; any `..` segment is refused.
    """
    parts = [p for p in key.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafeKeyError(f"key {key!r} contains '..'")
    if not parts:
        raise UnsafeKeyError(f"key {key!r} names no object")
    return "/".join(parts)


class LocalStorage:
    """A local folder; keys are paths relative to it."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / normalise_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise UnsafeKeyError(f"key {key!r} resolves outside {self.root}")
        return path

    @staticmethod
    def _describe(key: str, stat: os.stat_result) -> StoredObject:
        # ctime moves on rename, so a file moved in with an old mtime still counts as new
        changed = max(stat.st_mtime_ns, stat.st_ctime_ns)
        return StoredObject(
            key=key,
            etag=f"{stat.st_size:x}-{stat.st_mtime_ns:x}",
            size=stat.st_size,
            last_modified=datetime.fromtimestamp(changed / 1e9, tz=UTC),
        )

    def list_objects(self, prefix: str = "") -> Iterator[StoredObject]:
        """Yield every regular file under the root whose key starts with `prefix`.

        Hidden files and folders (a leading `.`), as writers use for partial uploads, are skipped.
        """
        if not self.root.is_dir():
            return
        start = self.root
        directory = posixpath.dirname(prefix.lstrip("/"))
        if directory:
            start = self._path(directory)
            if not start.is_dir():
                return
        for folder, dirs, files in os.walk(start):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                path = Path(folder) / name
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix.lstrip("/")):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                if path.is_file():
                    yield self._describe(key, stat)

    def head(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        return self._describe(normalise_key(key), stat) if path.is_file() else None

    def open_for_read(self, key: str, etag: str | None = None) -> BinaryIO:
        handle = self._path(key).open("rb")
        if etag is not None and self._describe(key, os.fstat(handle.fileno())).etag != etag:
            handle.close()
            raise ChangedWhileReadingError(f"{self.display(key)} changed since it was listed")
        return handle

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".", delete=False) as temp:
            temp.write(data)
        os.replace(temp.name, path)

    def copy_object(self, source: StoredObject, target: "Storage", target_key: str) -> bool:
        if isinstance(target, LocalStorage):
            existing = target.head(target_key)
            if existing is not None and existing.etag == source.etag:
                return False
            path = target._path(target_key)
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".", delete=False) as temp:
                pass
            shutil.copy2(self._path(source.key), temp.name)  # keeps mtime, so the etag matches
            os.replace(temp.name, path)
            return True
        with self.open_for_read(source.key) as handle:
            return target.put_copy(handle, source, target_key)

    def display(self, key: str) -> str:
        return str(self.root / normalise_key(key))


class ChangedWhileReadingError(RuntimeError):
    """An object was replaced between being listed and being read."""


class S3Storage:
    """An S3 bucket and prefix, reached through a boto3 S3 client."""

    def __init__(self, url: str, client: Any) -> None:
        bucket, prefix = parse_s3_url(url)
        self.url = url
        self.bucket = bucket
        self.prefix = prefix
        self.client = client

    def _key(self, key: str) -> str:
        # S3 keys are opaque: a listed key is read back exactly as listed, `..` and all
        if not key:
            raise UnsafeKeyError("empty key")
        return self.prefix + key

    def _write_key(self, key: str) -> str:
        # written keys are always clean and stay under the prefix
        return self.prefix + normalise_key(key)

    def _describe(self, key: str, etag: str, size: int, last_modified: datetime) -> StoredObject:
        return StoredObject(key=key, etag=etag.strip('"'), size=size, last_modified=last_modified)

    def list_objects(
        self, prefix: str = "", start_after: str | None = None
    ) -> Iterator[StoredObject]:
        """Yield every object under the prefix (paginated `list_objects_v2`), in key order.

        With `start_after`, only keys sorting after it (relative to the location's prefix).
        """
        paginator = self.client.get_paginator("list_objects_v2")
        arguments = {"Bucket": self.bucket, "Prefix": self.prefix + prefix.lstrip("/")}
        if start_after:
            arguments["StartAfter"] = self.prefix + start_after
        for page in paginator.paginate(**arguments):
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix) :]
                if not key or key.endswith("/"):
                    continue
                yield self._describe(key, item["ETag"], item["Size"], item["LastModified"])

    def list_name_prefixes(self) -> tuple[list[str], list[StoredObject]]:
        """Key prefixes up to and including the first `_` (one per dataset), and the objects
        whose key has no `_` at all (one `Delimiter` listing: S3 skips the keys in between)."""
        prefixes: list[str] = []
        loose: list[StoredObject] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix, Delimiter="_"):
            prefixes += [p["Prefix"][len(self.prefix) :] for p in page.get("CommonPrefixes", [])]
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix) :]
                if key and not key.endswith("/"):
                    loose.append(
                        self._describe(key, item["ETag"], item["Size"], item["LastModified"])
                    )
        return prefixes, loose

    def _head_object(self, key: str) -> dict | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def head(self, key: str) -> StoredObject | None:
        response = self._head_object(key)
        if response is None:
            return None
        return self._describe(
            key, response["ETag"], response["ContentLength"], response["LastModified"]
        )

    def _source_etag(self, key: str) -> str | None:
        response = self._head_object(key)
        return None if response is None else response.get("Metadata", {}).get(SOURCE_ETAG_METADATA)

    def open_for_read(self, key: str, etag: str | None = None) -> BinaryIO:
        head = self.head(key)
        if head is None:
            raise FileNotFoundError(self.display(key))
        if etag is not None and head.etag != etag:
            raise ChangedWhileReadingError(f"{self.display(key)} changed since it was listed")
        raw = _S3RangeReader(self.client, self.bucket, self._key(key), head.size, head.etag)
        return io.BufferedReader(raw, buffer_size=_READ_BUFFER)  # type: ignore[return-value]

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._write_key(key), Body=data)

    def put_copy(self, handle: BinaryIO, source: StoredObject, target_key: str) -> bool:
        """Upload the content of `handle` (a copy of `source`) unless an identical copy exists."""
        if self._source_etag(target_key) == source.etag:
            return False
        self.client.upload_fileobj(
            handle,
            self.bucket,
            self._write_key(target_key),
            ExtraArgs={"Metadata": {SOURCE_ETAG_METADATA: source.etag}},
        )
        return True

    def copy_object(self, source: StoredObject, target: "Storage", target_key: str) -> bool:
        if isinstance(target, S3Storage):
            if target._source_etag(target_key) == source.etag:
                return False
            # managed copy: server-side, multipart above 8 MiB, so objects over 5 GB work too
            target.client.copy(
                {"Bucket": self.bucket, "Key": self._key(source.key)},
                target.bucket,
                target._write_key(target_key),
                ExtraArgs={
                    "Metadata": {SOURCE_ETAG_METADATA: source.etag},
                    "MetadataDirective": "REPLACE",
                    "CopySourceIfMatch": f'"{source.etag}"',
                },
                SourceClient=self.client,
            )
            return True
        if isinstance(target, LocalStorage):
            existing = target.head(target_key)
            if existing is not None and existing.size == source.size:
                marker = target._path(target_key).with_name(f".{base(target_key)}.etag")
                if marker.exists() and marker.read_text() == source.etag:
                    return False
            with self.open_for_read(source.key, etag=source.etag) as handle:
                target.put_bytes(target_key, handle.read())
            marker = target._path(target_key).with_name(f".{base(target_key)}.etag")
            marker.write_text(source.etag)
            return True
        raise TypeError(f"cannot copy to {type(target).__name__}")

    def display(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


def base(key: str) -> str:
    """The last segment of a key."""
    return posixpath.basename(key)


class _S3RangeReader(io.RawIOBase):
    """A seekable read-only view of one S3 object version, fetched with ranged GETs."""

    def __init__(self, client: Any, bucket: str, key: str, size: int, etag: str) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._size, self._etag, self._position = size, etag, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base_position = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}
        self._position = max(0, base_position[whence] + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        if self._position >= self._size or len(buffer) == 0:
            return 0
        end = min(self._size, self._position + len(buffer)) - 1
        response = self._client.get_object(
            Bucket=self._bucket,
            Key=self._key,
            Range=f"bytes={self._position}-{end}",
            IfMatch=f'"{self._etag}"',
        )
        data = response["Body"].read()
        view = memoryview(buffer)
        view[: len(data)] = data
        self._position += len(data)
        return len(data)


def parse_s3_url(url: str) -> tuple[str, str]:
    """Split `s3://bucket/prefix` into the bucket and a prefix that is empty or ends in `/`."""
    if not url.startswith("s3://"):
        raise ValueError(f"{url!r} is not an s3:// URL")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"{url!r} names no bucket")
    prefix = prefix.strip("/")
    return bucket, (prefix + "/" if prefix else "")


def open_storage(location: str, s3_client: Any = None) -> Storage:
    """Return the storage for `s3://bucket/prefix` or a local folder path."""
    if location.startswith("s3://"):
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3")
        return S3Storage(location, s3_client)
    return LocalStorage(location)
