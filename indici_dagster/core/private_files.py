"""Files and directories only their owner may read: for passwords and server sockets.

Pure file-system helpers, no database: a 0700 directory that is checked (not a symlink, not
another user's), a 0600 file written atomically, a passfile line, an exclusive lock, and the
SCRAM-SHA-256 verifier PostgreSQL stores for a password.
"""

import base64
import contextlib
import fcntl
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path


class PrivateFileError(RuntimeError):
    """A path meant to be private is not (another user's, a symlink, not a directory)."""


@contextlib.contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` (created 0600) for the block: one process at a time."""
    descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
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
