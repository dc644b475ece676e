"""`indici db reset`: delete the embedded server's data, passfiles and socket directory, and
nothing indici did not make.

- The data folder only when it is a PostgreSQL cluster (or empty) whose every file belongs to
  the server's OS user; otherwise one line, and nothing is deleted.
- The passfile folder (`<data>-auth/`) and the socket folders only when each is a 0700 folder of
  the right user and not a symlink, entry by entry and without following links, and only the
  files indici writes there (passfiles, the start lock, the socket record; the server's socket
  and lock). A folder that is not indici's, and any entry it does not recognise, is kept and
  named with the reason.
"""

import contextlib
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from indici_dagster.core.embedded.cluster import EmbeddedPaths, EmbeddedServerError, server_uid
from indici_dagster.core.embedded.private_files import (
    exclusive_lock,
    is_private_dir,
    remove_recognised,
)
from indici_dagster.core.embedded.server import ROLE_NAMES, forget, paths_for, stop_server
from indici_dagster.core.embedded.sockets import SOCKET_RECORD, is_socket_entry, socket_dirs_of


@dataclass(frozen=True)
class Removal:
    """What `remove_server` deleted, and what it kept and why (one phrase each, no content)."""

    deleted: tuple[Path, ...] = ()
    kept: tuple[tuple[Path, str], ...] = ()


_AUTH_FILES = {f"{role}.pgpass" for role in ROLE_NAMES} | {"start.lock", SOCKET_RECORD}
_HALF_WRITTEN = re.compile(r"\.(?P<name>[a-z-]+(?:\.pgpass)?)\.[0-9a-f]{8}")


def _is_auth_entry(name: str, info: os.stat_result) -> bool:
    """A passfile, the start lock or the socket record, or one left half written."""
    half = _HALF_WRITTEN.fullmatch(name)
    return stat.S_ISREG(info.st_mode) and (
        name in _AUTH_FILES or (half is not None and half["name"] in _AUTH_FILES)
    )


def _foreign_entry(data: Path, owner: int) -> Path | None:
    """The first entry of the cluster `data` (links not followed) that `owner` does not own."""
    for folder, folders, files in os.walk(data, followlinks=False):
        for name in (*folders, *files):
            if os.lstat(os.path.join(folder, name)).st_uid != owner:
                return Path(folder) / name
    return None


def check_removable(data_dir: str | Path) -> EmbeddedPaths:
    """The paths of `data_dir` if `remove_server` may delete its data: a PostgreSQL cluster
    whose every file belongs to the server's user, an empty folder of that user, or none;
    otherwise `EmbeddedServerError` (one line, nothing deleted)."""
    paths = paths_for(data_dir)
    data = paths.data_dir
    if not data.exists():
        return paths
    owner = server_uid()
    info = data.lstat()
    if not stat.S_ISDIR(info.st_mode) or (not paths.has_cluster and any(data.iterdir())):
        raise EmbeddedServerError(
            f"{data} is not a PostgreSQL data folder (no PG_VERSION): not deleting it"
        )
    if info.st_uid != owner:
        raise EmbeddedServerError(
            f"{data} belongs to user id {info.st_uid}, not to the server's user id {owner}: "
            "not deleting it"
        )
    foreign = _foreign_entry(data, owner)
    if foreign is not None:
        raise EmbeddedServerError(
            f"{foreign} in the data folder belongs to another user: not deleting {data}"
        )
    return paths


def remove_server(data_dir: str | Path) -> Removal:
    """Stop the server of `data_dir` and delete its data, passfiles and socket directory: the
    next start creates an empty cluster with new passwords. Every row in it is lost.

    Refuses (`EmbeddedServerError`, nothing deleted) a data folder that is not a PostgreSQL
    cluster of the server's user, so a mistyped `INDICI_PG_DIR` never deletes anything else.
    The passfile and socket folders are deleted only when they are 0700 folders of the right
    user and not symlinks, entry by entry (only the files indici writes there); anything else
    is kept and named in `Removal.kept`.
    """
    paths = check_removable(data_dir)
    data = paths.data_dir
    me, owner = os.geteuid(), server_uid()
    socket_dirs = socket_dirs_of(paths)  # read before the data and the record are gone
    lock = (
        exclusive_lock(paths.auth_dir / "start.lock")
        if is_private_dir(paths.auth_dir, me)
        else contextlib.nullcontext()
    )
    deleted: list[Path] = []
    kept: list[tuple[Path, str]] = []
    with lock:  # no start in between
        stop_server(data)
        if data.exists():
            shutil.rmtree(data)  # symlinks inside (tablespaces) are unlinked, never followed
            deleted.append(data)
        for folder, folder_owner, recognise in (
            *((folder, owner, is_socket_entry) for folder in socket_dirs),
            (paths.auth_dir, me, _is_auth_entry),
        ):
            existed = folder.exists() or folder.is_symlink()
            reason = remove_recognised(folder, folder_owner, recognise)
            if reason is not None:
                kept.append((folder, reason))
            elif existed:
                deleted.append(folder)
    forget(data)
    return Removal(tuple(deleted), tuple(kept))
