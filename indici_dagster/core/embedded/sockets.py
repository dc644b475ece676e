"""Where the embedded server's Unix socket lives: one 0700 folder of the server's OS user per
data directory, reused at every start and deleted only when `indici db reset` finds it is
indici's own.

- Next to the data directory (`<data dir>-socket/`) when that path is short enough for a socket.
- Otherwise in `$XDG_RUNTIME_DIR` (private to the user) under a name derived from the data
  directory, or in the system's temp folder under a random name that is recorded in the
  passfile folder (`<data dir>-auth/socket-dir`, 0600) and reused while it is still a 0700
  folder of the server's user and not a symlink. A random name cannot be taken in advance by
  another local user; the record keeps it from being a new folder at every start.
"""

import hashlib
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Protocol

from indici_dagster.core.embedded.private_files import (
    is_private_dir,
    private_dir,
    remove_recognised,
    write_private,
)


class EmbeddedPaths(Protocol):
    """The folders of one embedded server (`embedded_cluster.EmbeddedPaths`), as used here."""

    @property
    def data_dir(self) -> Path: ...

    @property
    def auth_dir(self) -> Path: ...

    @property
    def socket_dir_beside(self) -> Path: ...


PORT = 5432
SOCKET_NAME = f".s.PGSQL.{PORT}"
SOCKET_DIR_PREFIX = "indici-pg-"
"""The name of a socket directory chosen outside the project (runtime or temp directory)."""
SOCKET_RECORD = "socket-dir"
"""In the passfile folder: the temp-folder socket directory chosen for this data directory."""


def socket_fits(directory: Path) -> bool:
    """Whether a Unix socket in `directory` fits the bytes a socket path may hold (107 on Linux,
    103 on macOS, less the terminating NUL)."""
    limit = 103 if sys.platform == "darwin" else 107
    return len(os.fsencode(directory / SOCKET_NAME)) <= limit


def is_socket_entry(name: str, info: os.stat_result) -> bool:
    """Whether an entry of a socket directory is one the server makes: its socket or lock file."""
    if name == SOCKET_NAME:
        return stat.S_ISSOCK(info.st_mode)
    return name == f"{SOCKET_NAME}.lock" and stat.S_ISREG(info.st_mode)


def _runtime_socket_dir(paths: EmbeddedPaths) -> Path | None:
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if not runtime or not Path(runtime).is_absolute():
        return None
    digest = hashlib.sha256(str(paths.data_dir).encode()).hexdigest()[:12]
    return Path(runtime) / f"{SOCKET_DIR_PREFIX}{digest}"


def recorded_socket_dir(paths: EmbeddedPaths) -> Path | None:
    """The temp-folder socket directory recorded for this data directory, if any."""
    try:
        text = (paths.auth_dir / SOCKET_RECORD).read_text().strip()
    except OSError:
        return None
    recorded = Path(text)
    if not recorded.is_absolute() or not recorded.name.startswith(SOCKET_DIR_PREFIX):
        return None
    return recorded


def configured_socket_dir(paths: EmbeddedPaths) -> Path | None:
    """The socket directory the last start chose (read back from `indici.conf`), if any."""
    try:
        lines = (paths.data_dir / "indici.conf").read_text().splitlines()
    except OSError:
        return None
    prefix = "unix_socket_directories = '"
    for line in lines:
        if line.startswith(prefix) and line.endswith("'"):
            return Path(line[len(prefix) : -1].replace("''", "'"))
    return None


def choose_socket_dir(paths: EmbeddedPaths, owner: int) -> Path:
    """A 0700 directory of `owner` (the server's user), short enough to hold the socket: the
    same one at every start of this data directory."""
    beside = paths.socket_dir_beside
    if socket_fits(beside):
        return private_dir(beside, owner)
    runtime = _runtime_socket_dir(paths)
    if runtime is not None and owner == os.geteuid() and socket_fits(runtime):
        try:
            info = runtime.parent.stat()
        except OSError:
            info = None
        if info is not None and info.st_uid == owner and not info.st_mode & 0o077:
            return private_dir(runtime, owner)
    recorded = recorded_socket_dir(paths)
    if recorded is not None and is_private_dir(recorded, owner) and socket_fits(recorded):
        return recorded
    fresh = Path(tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX))  # 0700, a name nobody can guess
    if owner != os.geteuid():
        os.chown(fresh, owner, -1)
    write_private(paths.auth_dir / SOCKET_RECORD, f"{fresh}\n")
    return private_dir(fresh, owner)


def socket_dirs_of(paths: EmbeddedPaths) -> list[Path]:
    """Every socket directory this data directory may have used: next to it, in the runtime
    directory, the recorded temp folder, and the one `indici.conf` names (if indici's name)."""
    found = [paths.socket_dir_beside]
    for candidate in (
        _runtime_socket_dir(paths),
        recorded_socket_dir(paths),
        configured_socket_dir(paths),
    ):
        if candidate is not None and candidate.name.startswith(SOCKET_DIR_PREFIX):
            found.append(candidate)
    return list(dict.fromkeys(found))


def clean_previous_socket_dir(paths: EmbeddedPaths, chosen: Path, owner: int) -> None:
    """With the server stopped: delete the socket directory the last start used, if it is not
    `chosen` and is indici's own (0700, `owner`'s, only socket files); anything else stays."""
    previous = configured_socket_dir(paths)
    if previous is None or previous == chosen:
        return
    if previous == paths.socket_dir_beside or previous.name.startswith(SOCKET_DIR_PREFIX):
        remove_recognised(previous, owner, is_socket_entry)  # kept when not ours: left alone
