"""The S3 implementation of `Storage`: an `s3://bucket/prefix`, through a boto3 client.

Reads are ranged GETs of one object version (its ETag), copies are server-side and conditional
on the source's ETag, so a version replaced after it was listed is never taken for it.
"""

import io
import posixpath
from collections.abc import Iterator
from datetime import datetime
from typing import Any, BinaryIO

from indici_dagster.core.errors import INFRA_APPLY, ArchivedObjectError, storage_error_code
from indici_dagster.core.escaping import escape_text, key_problem
from indici_dagster.core.storage.archive import ArchiveState, archive_state
from indici_dagster.core.storage.base import (
    HIDDEN,
    READ_BUFFER,
    SOURCE_ETAG_METADATA,
    ChangedWhileReadingError,
    LocationMissingError,
    Storage,
    StoredObject,
    UnsafeKeyError,
    is_hidden,
    normalise_key,
    problem_object,
)


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

    def require_exists(self) -> None:
        try:  # a listing (not HeadBucket): what a prefix-confined ListBucket policy allows
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except self.client.exceptions.ClientError as error:
            if storage_error_code(error) in ("404", "NoSuchBucket", "NotFound"):
                raise LocationMissingError(
                    f"landing bucket {self.bucket} does not exist: create it with {INFRA_APPLY}"
                ) from None
            raise

    def key_refusal(self, key: str) -> str | None:
        """Why the listing never hands `key` over: a folder marker, a key that cannot be stored
        or printed raw (`key_problem`), or a hidden segment. Other keys are opaque: `..` and a
        leading `/` are part of an S3 key, read back exactly as listed."""
        if not key or key.endswith("/"):
            return "it names a folder, not an object"
        if (problem := key_problem(key)) is not None:
            return problem
        return HIDDEN if any(is_hidden(part) for part in key.split("/")) else None

    def _listed(self, item: dict) -> StoredObject | None:
        key = item["Key"][len(self.prefix) :]
        if not key or key.endswith("/"):
            return None  # a folder marker, not an object
        problem = self.key_refusal(key)
        if problem is not None:
            etag = item["ETag"].strip('"')
            return problem_object(key, etag, item["Size"], item["LastModified"], problem)
        return self._describe(key, item["ETag"], item["Size"], item["LastModified"])

    def list_objects(
        self, prefix: str = "", start_after: str | None = None
    ) -> Iterator[StoredObject]:
        """Yield every object under the prefix (paginated `list_objects_v2`), in key order.

        With `start_after`, only keys sorting after it (relative to the location's prefix).
        Keys that cannot be handed over come with their `problem`.
        """
        paginator = self.client.get_paginator("list_objects_v2")
        arguments = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
        if start_after:
            arguments["StartAfter"] = self.prefix + start_after
        for page in paginator.paginate(**arguments):
            for item in page.get("Contents", []):
                if (listed := self._listed(item)) is not None:
                    yield listed

    def list_name_prefixes(self, under: str = "") -> tuple[list[str], list[StoredObject]]:
        """Key prefixes under `under` up to and including the next `_` (one per dataset and
        folder), and the objects with no `_` after `under` (one `Delimiter` listing: S3 skips
        the keys in between)."""
        prefixes: list[str] = []
        loose: list[StoredObject] = []
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + under, Delimiter="_")
        for page in pages:
            prefixes += [p["Prefix"][len(self.prefix) :] for p in page.get("CommonPrefixes", [])]
            loose += [o for o in map(self._listed, page.get("Contents", [])) if o is not None]
        return prefixes, loose

    def list_folders(
        self, under: str, start_after: str | None = None, stop_at: str | None = None
    ) -> list[str]:
        """Folder prefixes (ending in `/`) directly under `under`, in key order, from after
        `start_after` and stopping at the first entry that sorts at or after `stop_at`."""
        paginator = self.client.get_paginator("list_objects_v2")
        arguments = {"Bucket": self.bucket, "Prefix": self.prefix + under, "Delimiter": "/"}
        if start_after:
            arguments["StartAfter"] = self.prefix + start_after
        folders: list[str] = []
        for page in paginator.paginate(**arguments, PaginationConfig={"PageSize": 100}):
            entries = [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            entries += [o["Key"] for o in page.get("Contents", [])]
            for entry in sorted(entries):
                if stop_at is not None and entry >= self.prefix + stop_at:
                    return folders
                if entry.endswith("/"):
                    folders.append(entry[len(self.prefix) :])
        return folders

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

    def head_response(self, key: str) -> dict | None:
        """The raw HeadObject response for `key` (storage class, restore state), or None."""
        return self._head_object(key)

    def open_for_read(self, key: str, etag: str | None = None) -> BinaryIO:
        """Open one version for ranged reads; an archived object not restored raises
        `ArchivedObjectError` before any read."""
        response = self._head_object(key)
        if response is None:
            raise FileNotFoundError(self.display(key))
        if archive_state(response) in (ArchiveState.ARCHIVED, ArchiveState.RESTORING):
            raise ArchivedObjectError("InvalidObjectState")
        head = self._describe(
            key, response["ETag"], response["ContentLength"], response["LastModified"]
        )
        if etag is not None and head.etag != etag:
            raise ChangedWhileReadingError(f"{self.display(key)} changed since it was listed")
        raw = _S3RangeReader(self.client, self.bucket, self._key(key), head.size, head.etag)
        return io.BufferedReader(raw, buffer_size=READ_BUFFER)  # type: ignore[return-value]

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
        from indici_dagster.core.storage.local_storage import LocalStorage

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
        return escape_text(f"s3://{self.bucket}/{self.prefix}{key}")


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
