"""A local folder as a storage location: keys are paths relative to it.

Files are identified by content (a SHA-256 digest, computed streaming and cached per process by
path, inode, size, mtime and ctime), so a corrected file is new work even when its size and
modification time were kept. Symlinks, fifos and other special files, unreadable files and
names that cannot be stored are listed as problems, never followed or read.
"""

import errno
import hashlib
import os
import posixpath
import shutil
import stat as stat_kind
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from indici_dagster.core.escaping import escape_text, key_problem
from indici_dagster.core.storage.base import (
    HIDDEN,
    READ_BUFFER,
    ChangedWhileReadingError,
    LocationMissingError,
    Storage,
    StoredObject,
    UnsafeKeyError,
    is_hidden,
    normalise_key,
    problem_object,
)

_DIGESTS: dict[tuple, str] = {}
"""Content digests of local files by (path, device, inode, size, mtime, ctime): within a
process a file is read once, and any change to it (ctime moves on every write) reads it again."""


def _content_digest(fd: int, path: str, status: os.stat_result) -> str:
    identity = (
        path,
        status.st_dev,
        status.st_ino,
        status.st_size,
        status.st_mtime_ns,
        status.st_ctime_ns,
    )
    digest = _DIGESTS.get(identity)
    if digest is None:
        hasher, offset = hashlib.sha256(), 0
        while chunk := os.pread(fd, 1024 * 1024, offset):
            hasher.update(chunk)
            offset += len(chunk)
        digest = f"sha256-{hasher.hexdigest()}"
        if len(_DIGESTS) > 200_000:
            _DIGESTS.clear()
        _DIGESTS[identity] = digest
    return digest


def _open_regular(path: Path) -> tuple[int, os.stat_result]:
    """Open a regular file without following a symlink at its last segment."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    status = os.fstat(fd)
    if not stat_kind.S_ISREG(status.st_mode):
        os.close(fd)
        raise IsADirectoryError(errno.EISDIR, "not a regular file", str(path))
    return fd, status


def _kind_of(status: os.stat_result) -> str:
    if stat_kind.S_ISFIFO(status.st_mode):
        return "a named pipe (fifo)"
    if stat_kind.S_ISSOCK(status.st_mode):
        return "a socket"
    return "a device or other special file"


class LocalStorage:
    """A local folder; keys are paths relative to it. Symlinks and special files are listed as
    problems and never followed or read."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / normalise_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise UnsafeKeyError(f"key {escape_text(key)} resolves outside {self.root}")
        return path

    def _unresolved(self, key: str) -> Path:
        """The path of `key` with its folders resolved (inside the root) and its last segment
        not: a symlink there is opened as itself, never followed."""
        clean = normalise_key(key)
        folder = self._path(posixpath.dirname(clean)) if "/" in clean else self.root
        return folder / posixpath.basename(clean)

    def require_exists(self) -> None:
        if not self.root.is_dir():
            raise LocationMissingError(f"landing folder {escape_text(str(self.root))} is missing")

    def key_refusal(self, key: str) -> str | None:
        """Why the listing never hands `key` over: a key that cannot be stored or printed raw
        (`key_problem`), one that is not a plain path inside the folder (empty, `.` or `..`
        segments, a leading `/`), or a hidden file or folder (never listed: partial uploads)."""
        if (problem := key_problem(key)) is not None:
            return problem
        parts = key.split("/")
        if any(part in ("", ".", "..") for part in parts):
            return "its key is not a plain path inside the landing folder"
        return HIDDEN if any(is_hidden(part) for part in parts) else None

    def _describe_file(self, key: str, path: Path) -> StoredObject:
        fd, status = _open_regular(path)
        try:
            etag = _content_digest(fd, str(path), status)
        finally:
            os.close(fd)
        return self._object(key, etag, status)

    @staticmethod
    def _object(key: str, etag: str, status: os.stat_result) -> StoredObject:
        changed = max(status.st_mtime_ns, status.st_ctime_ns)
        return StoredObject(key, etag, status.st_size, datetime.fromtimestamp(changed / 1e9, UTC))

    def _entry(self, key: str, path: Path, status: os.stat_result) -> StoredObject:
        """A listed entry: a regular file with its digest, or a problem (never followed)."""
        marker = f"unread-{status.st_size:x}-{status.st_mtime_ns:x}-{status.st_ino:x}"
        changed = datetime.fromtimestamp(status.st_mtime_ns / 1e9, UTC)
        problem = self.key_refusal(key)
        if problem is None and stat_kind.S_ISLNK(status.st_mode):
            problem = "it is a symbolic link (never followed)"
        elif problem is None and not stat_kind.S_ISREG(status.st_mode):
            problem = f"it is {_kind_of(status)}, not a regular file"
        if problem is None:
            try:
                return self._describe_file(key, path)
            except OSError as error:
                problem = f"it cannot be read ({errno.errorcode.get(error.errno, 'error')})"
        return problem_object(key, marker, status.st_size, changed, problem)

    def list_objects(
        self, prefix: str = "", accept: Callable[[str], bool] | None = None
    ) -> Iterator[StoredObject]:
        """Yield every entry under the root whose key starts with `prefix` (and whose base name
        `accept` takes, when given): regular files, and symlinks, special files and unreadable
        entries marked with their `problem`.

        Hidden files and folders (a leading `.`), as writers use for partial uploads, are skipped.
        """
        if not self.root.is_dir():
            return
        prefix = prefix.lstrip("/")
        yield from self._walk(self.root, prefix, accept)

    def _walk(
        self, folder: Path, prefix: str, accept: Callable[[str], bool] | None
    ) -> Iterator[StoredObject]:
        relative = "" if folder == self.root else folder.relative_to(self.root).as_posix() + "/"
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as error:
            status = folder.lstat()
            reason = errno.errorcode.get(error.errno, "error")
            changed = datetime.fromtimestamp(status.st_mtime_ns / 1e9, UTC)
            marker = f"unread-folder-{status.st_ino:x}"
            yield problem_object(
                relative, marker, 0, changed, f"the folder cannot be read ({reason})"
            )
            return
        for entry in entries:
            if is_hidden(entry.name):  # skipped, as `key_refusal` refuses them
                continue
            key = relative + entry.name
            if entry.is_dir(follow_symlinks=False):
                if (key + "/").startswith(prefix) or prefix.startswith(key + "/"):
                    yield from self._walk(Path(entry.path), prefix, accept)
                continue
            if not key.startswith(prefix) or (accept is not None and not accept(entry.name)):
                continue
            try:
                status = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield self._entry(key, Path(entry.path), status)

    def head(self, key: str) -> StoredObject | None:
        path = self._unresolved(key)
        try:
            return self._describe_file(normalise_key(key), path)
        except (FileNotFoundError, IsADirectoryError):
            return None
        except OSError as error:
            if error.errno == errno.ELOOP:  # a symlink: never followed
                return None
            raise

    def open_for_read(self, key: str, etag: str | None = None) -> BinaryIO:
        fd, status = _open_regular(self._unresolved(key))
        if etag is not None and _content_digest(fd, str(self._unresolved(key)), status) != etag:
            os.close(fd)
            raise ChangedWhileReadingError(f"{self.display(key)} changed since it was listed")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")

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
            with (
                self.open_for_read(source.key, etag=source.etag) as handle,
                tempfile.NamedTemporaryFile(dir=path.parent, prefix=".", delete=False) as temp,
            ):
                shutil.copyfileobj(handle, temp, READ_BUFFER)
            os.replace(temp.name, path)
            return True
        with self.open_for_read(source.key, etag=source.etag) as handle:
            return target.put_copy(handle, source, target_key)

    def display(self, key: str) -> str:
        return escape_text(str(self.root / key.lstrip("/")))
