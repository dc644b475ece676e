"""Files and directories only their owner may read: for passwords and server sockets.

Pure file-system helpers, no database: a 0700 directory that is checked (not a symlink, not
another user's), a 0600 file written atomically, a passfile line, an exclusive lock, the
SCRAM-SHA-256 verifier PostgreSQL stores for a password, removal of a folder that deletes only
the entries it recognises (never through a symlink), and which folder another OS user cannot
enter.
"""

import base64
import contextlib
import fcntl
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from indici_dagster.core.text import printable


class PrivateFileError(RuntimeError):
    """A path meant to be private is not (another user's, a symlink, not a directory)."""


@contextlib.contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` (created 0600) for the block: one process at a time."""
    descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def private_dir(path: Path, owner: int) -> Path:
    """Make `path` a directory of `owner` with mode 0700, or refuse one that is not: a symlink,
    a file, or a directory of another user."""
    if not path.exists() and not path.is_symlink():
        path.mkdir(mode=0o700)
        if owner != os.geteuid():
            os.chown(path, owner, -1)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != owner:
        raise PrivateFileError(f"{path} is not a directory of user id {owner}; refusing it")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write `path` (0600) atomically: it never exists with another mode or half written."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for an ASCII `password` (RFC 5802/7677):
    what `ALTER ROLE ... PASSWORD` may be given instead of the clear text."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("ascii"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    encode = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{encode(salt).decode()}"
        f"${encode(stored_key).decode()}:{encode(server_key).decode()}"
    )


def passfile_line(user: str, password: str) -> str:
    """A libpq passfile line giving `user` its password on any host, port and database."""
    # token_urlsafe passwords hold no ':' or '\\', which pgpass would need escaped
    return f"*:*:*:{user}:{password}\n"


def is_private_dir(path: Path, owner: int) -> bool:
    """Whether `path` itself (never a symlink's target) is a directory of `owner`, mode 0700."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode) and info.st_uid == owner and stat.S_IMODE(info.st_mode) == 0o700
    )


def why_not_private(path: Path, owner: int) -> str:
    """Why `path` is not a 0700 directory of `owner` (one phrase, no content of the folder)."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return "it is a symbolic link, and indici never deletes through one"
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a folder"
    if info.st_uid != owner:
        return f"it belongs to user id {info.st_uid}, not to user id {owner}"
    return f"its mode is {stat.S_IMODE(info.st_mode):04o}, and the folders indici makes are 0700"


Recognise = Callable[[str, os.stat_result], bool]


def remove_recognised(folder: Path, owner: int, recognise: Recognise) -> str | None:
    """Delete the entries of `folder` that `recognise` accepts and `owner` owns, then `folder`.

    `folder` must be a 0700 directory of `owner` and not a symlink; it is opened without
    following links and its entries are removed relative to that descriptor, so no path is ever
    resolved through a link. Returns None when `folder` is gone (or was never there), else why
    it was kept (a foreign folder is left untouched; a folder holding foreign entries keeps
    them, and only them).
    """
    if not folder.exists() and not folder.is_symlink():
        return None
    if not is_private_dir(folder, owner):
        return why_not_private(folder, owner)
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        if os.fstat(descriptor).st_uid != owner:  # replaced since the check
            return f"it belongs to user id {os.fstat(descriptor).st_uid}, not to user id {owner}"
        foreign = []
        for name in sorted(os.listdir(descriptor)):
            info = os.lstat(name, dir_fd=descriptor)
            ours = info.st_uid == owner and not stat.S_ISDIR(info.st_mode)
            if ours and not stat.S_ISLNK(info.st_mode) and recognise(name, info):
                os.unlink(name, dir_fd=descriptor)
            else:
                foreign.append(name)
    finally:
        os.close(descriptor)
    if foreign:
        return (
            f"it holds {len(foreign)} entr{'y' if len(foreign) == 1 else 'ies'} indici did not "
            f"create ({printable(foreign[0], limit=60)}{', ...' if len(foreign) > 1 else ''})"
        )
    os.rmdir(folder)
    return None


def first_unreachable(paths: Iterable[Path], uid: int, gid: int) -> Path | None:
    """The first of `paths` that the OS user `uid` (group `gid`, no other groups) may not
    search (a folder) or execute (a program), as the kernel decides it (modes and ACLs), or None.

    Checked in a forked child that takes that user's identity, so nothing is changed here;
    call it from a single-threaded process (the embedded server's starter is one).
    """
    wanted = [os.fsencode(path) for path in paths]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the user, test, report, exit without cleanup
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            blocked = next((path for path in wanted if not os.access(path, os.X_OK)), b"")
            os.write(write_end, blocked)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        blocked = answer.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise PrivateFileError(f"could not check which folders user id {uid} can enter")
    return Path(os.fsdecode(blocked)) if blocked else None


def with_ancestors(path: Path) -> list[Path]:
    """`path` and every folder above it, from `/` down (each must be searchable to reach it)."""
    return [*reversed(path.parents), path]
