"""The embedded PostgreSQL server used when `INDICI_PG_DSN` is unset, safe on a shared machine.

- Every login takes a password (SCRAM): `pg_hba.conf` holds one line, `local all all
  scram-sha-256`; `trust` is never written, not even while the cluster is created (`initdb
  --auth=reject`, then the superuser's SCRAM verifier is set in single-user mode: its clear text
  reaches no server, file or log).
- The server listens on no TCP port, only on a Unix socket in a directory private to the OS user
  running it (mode 0700, checked): next to the data directory, or, when that path is too long
  for a socket, in `$XDG_RUNTIME_DIR` or a fresh 0700 directory of the system's temp dir.
- The pipeline connects as the ordinary writer role that `indici bootstrap` sets up in the
  `indici` database (no superuser, no CREATEDB, append-only audit log), never as the superuser.
- Passwords are random, kept in 0600 passfiles (libpq's pgpass format) in a 0700 directory next
  to the data directory (`<data dir>-auth/`), and never printed or logged: the DSN handed to the
  pipeline names the passfile (`passfile=`), not the password.

The server is started in a short-lived child process: starting it runs `initdb` and `pg_ctl`
under another user, and doing that by forking a multi-threaded process (Dagster's gRPC code
server) can crash the child before it runs. The server outlives the child, so the webserver,
the daemon and every run share it and its data.

API for the CLI: `embedded_dsn` (start if needed; the writer's DSN), `start_server`,
`server_status`, `stop_server`, `check_removable` and `remove_server` (data, passfiles and
socket directory), `role_dsn` (the writer's, reader's or superuser's DSN of a running server)
and `paths_for` (where the data, passfiles and log are). One `EmbeddedServerError` for all.
"""

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from indici_dagster.core.bootstrap import DEFAULT_READER, DEFAULT_WRITER, bootstrap_database
from indici_dagster.core.dsn import connect
from indici_dagster.core.embedded_cluster import (
    PORT,
    SOCKET_DIR_PREFIX,
    SUPERUSER,
    EmbeddedPaths,
    EmbeddedServerError,
    Role,
    ServerStatus,
    configured_socket_dir,
    is_safe,
    prepare_cluster,
    run_program,
)
from indici_dagster.core.private_files import (
    exclusive_lock,
    passfile_line,
    private_dir,
    write_private,
)

DATABASE = "indici"
ROLE_NAMES: dict[str, str] = {
    "writer": DEFAULT_WRITER,
    "reader": DEFAULT_READER,
    "superuser": SUPERUSER,
}
_known: dict[Path, str] = {}


def paths_for(data_dir: str | Path) -> EmbeddedPaths:
    """The paths of the embedded server kept in `data_dir` (resolved)."""
    return EmbeddedPaths(Path(data_dir).expanduser().resolve())


def server_status(data_dir: str | Path) -> ServerStatus:
    """Read `postmaster.pid`: running (a live postgres of this data directory) and its socket."""
    data = paths_for(data_dir).data_dir
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
        import psutil

        alive = any(str(data) in part for part in psutil.Process(pid).cmdline())
    except Exception:  # no pid file, a stale one, or a process gone: not running
        return ServerStatus(False)
    socket_dir = Path(lines[4]) if len(lines) > 4 and lines[4] else None
    return ServerStatus(alive, pid if alive else None, socket_dir if alive else None)


def stop_server(data_dir: str | Path) -> bool:
    """Stop the server of `data_dir` (fast shutdown); False if it was not running."""
    paths = paths_for(data_dir)
    if not server_status(paths.data_dir).running:
        return False
    run_program("pg_ctl", ["-D", str(paths.data_dir), "-w", "-t", "60", "-m", "fast", "stop"])
    return True


def check_removable(data_dir: str | Path) -> EmbeddedPaths:
    """The paths of `data_dir` if `remove_server` may delete it: a PostgreSQL cluster, an empty
    folder or none; otherwise `EmbeddedServerError`."""
    paths = paths_for(data_dir)
    data = paths.data_dir
    if data.exists() and not paths.has_cluster and (not data.is_dir() or any(data.iterdir())):
        raise EmbeddedServerError(
            f"{data} is not a PostgreSQL data folder (no PG_VERSION): not deleting it"
        )
    return paths


def remove_server(data_dir: str | Path) -> bool:
    """Stop the server of `data_dir` and delete its data, passfiles and socket directory: the
    next start creates an empty cluster with new passwords. Every row in it is lost.

    Refuses (`EmbeddedServerError`, nothing deleted) a non-empty folder that is not a PostgreSQL
    cluster, so a mistyped `INDICI_PG_DIR` never deletes anything else. Returns False when
    there was nothing to delete.
    """
    paths = check_removable(data_dir)
    data = paths.data_dir
    socket_dirs = [paths.socket_dir_beside]
    chosen = configured_socket_dir(paths)
    if chosen is not None and chosen.name.startswith(SOCKET_DIR_PREFIX):
        socket_dirs.append(chosen)  # one of ours outside the project (runtime or temp dir)
    found = [path for path in (data, paths.auth_dir, *socket_dirs) if path.exists()]
    lock = (
        exclusive_lock(paths.auth_dir / "start.lock")
        if paths.auth_dir.is_dir()
        else contextlib.nullcontext()
    )
    with lock:  # no start in between
        stop_server(data)
        for path in found:
            shutil.rmtree(path)
    _known.pop(data, None)
    return bool(found)


def role_dsn(data_dir: str | Path, role: Role = "writer", database: str = DATABASE) -> str:
    """The DSN for `role` on the running server of `data_dir`: socket, user and passfile, never
    a password. Raises `EmbeddedServerError` if the server is not running."""
    paths = paths_for(data_dir)
    status = server_status(paths.data_dir)
    if not status.running or status.socket_dir is None:
        raise EmbeddedServerError(
            f"the embedded PostgreSQL server in {paths.data_dir} is not running"
        )
    return psycopg2.extensions.make_dsn(
        host=str(status.socket_dir),
        port=PORT,
        dbname=database,
        user=ROLE_NAMES[role],
        passfile=str(paths.passfile(role)),
    )


def start_server(data_dir: str | Path) -> str:
    """Start (or find running, and safe) the server kept in `data_dir`; return the writer's DSN.

    Runs in this process; call `embedded_dsn` from anything multi-threaded. A server found
    running in a state this module would not leave it in (another socket directory, another
    `pg_hba.conf`, no passfile: e.g. started by an older version with `trust`) is stopped and
    started again safely, keeping its data.
    """
    paths = paths_for(data_dir)
    paths.data_dir.parent.mkdir(parents=True, exist_ok=True)
    private_dir(paths.auth_dir, os.geteuid())
    with exclusive_lock(paths.auth_dir / "start.lock"):
        status = server_status(paths.data_dir)
        if status.running and is_safe(paths, status):
            started = False
        else:
            if status.running:
                stop_server(paths.data_dir)
            prepare_cluster(paths)
            run_program(
                "pg_ctl",
                ["-D", str(paths.data_dir), "-w", "-t", "60", "-l", str(paths.log_file), "start"],
            )
            started = True
        _set_up_database(paths, rebootstrap=started)
        return role_dsn(paths.data_dir, "writer")


def embedded_dsn(data_dir: str | Path) -> str:
    """The writer's DSN of the embedded server in `data_dir`, starting it first if need be."""
    path = paths_for(data_dir).data_dir
    known = _known.get(path)
    if known and _answers(known):
        return known
    result = subprocess.run(  # noqa: S603 - our own module, run by this interpreter
        [sys.executable, "-m", "indici_dagster.core.embedded", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise EmbeddedServerError(
            f"could not start the embedded PostgreSQL server in {path}: {detail}"
        )
    _known[path] = lines[-1]
    return lines[-1]


def _answers(dsn: str) -> bool:
    try:
        with contextlib.closing(connect(dsn, connect_timeout=3)):
            return True
    except psycopg2.OperationalError:
        return False


def _set_up_database(paths: EmbeddedPaths, *, rebootstrap: bool) -> None:
    """Create the `indici` database and bootstrap its roles (as the superuser), giving the
    writer and the reader a password if they have none on file."""
    missing = [role for role in ("writer", "reader") if not paths.passfile(role).exists()]
    if not rebootstrap and not missing:
        return
    superuser = role_dsn(paths.data_dir, "superuser", "postgres")
    with contextlib.closing(connect(superuser)) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    passwords = {role: secrets.token_urlsafe(32) for role in missing}
    bootstrap_database(
        role_dsn(paths.data_dir, "superuser"),
        writer=DEFAULT_WRITER,
        reader=DEFAULT_READER,
        writer_password=passwords.get("writer"),
        reader_password=passwords.get("reader"),
    )
    for role, password in passwords.items():
        write_private(paths.passfile(role), passfile_line(ROLE_NAMES[role], password))


if __name__ == "__main__":
    print(start_server(Path(sys.argv[1])))  # noqa: T201 - the parent reads the DSN from stdout
