"""Helpers for the deployment tests: the shipped files, and a Postgres database for Dagster's own
state reached the way production reaches it (host and port from DAGSTER_PG_*)."""

import contextlib
import shutil
import socket
import socketserver
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest
import yaml
from dagster import DagsterInstance
from psycopg2 import sql

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DAGSTER_ROLE = "indici_dagster_state"
DAGSTER_PASSWORD = "dagster-state-Pa55-" + uuid.uuid4().hex
"""A password no shipped file, command or log may ever contain."""


def load_yaml(path: Path) -> dict:
    """A YAML file of the repository, parsed."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def instance_from(yaml_file: Path, home: Path) -> DagsterInstance:
    """A Dagster instance whose DAGSTER_HOME is `home`, holding `yaml_file` as its dagster.yaml."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(yaml_file, home / "dagster.yaml")
    return DagsterInstance.from_config(str(home))


class _Pipe(socketserver.BaseRequestHandler):
    """Forward one TCP connection to the server's Unix socket, both ways."""

    def handle(self) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(self.server.unix_path)  # type: ignore[attr-defined]
        with upstream:
            back = threading.Thread(target=_copy, args=(upstream, self.request), daemon=True)
            back.start()
            _copy(self.request, upstream)
            back.join()


def _copy(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            target.sendall(chunk)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def tcp_address(dsn: str) -> Iterator[tuple[str, int]]:
    """Host and port that reach the server of `dsn` over TCP (a loopback forwarder when the
    server listens on a Unix socket only, as the embedded test server does)."""
    params = psycopg2.extensions.parse_dsn(dsn)
    host, port = params.get("host") or "", int(params.get("port") or 5432)
    if host and not host.startswith("/"):
        yield host, port
        return
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Pipe)
    server.daemon_threads = True
    server.unix_path = str(Path(host or "/tmp") / f".s.PGSQL.{port}")  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _admin(dsn: str) -> psycopg2.extensions.connection:
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    return connection


def dagster_pg_database(admin_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database for Dagster's storage, owned by a role of its own, and the DAGSTER_PG_*
    variables pointing at it over TCP (the body of a fixture). Yields the database name."""
    name = f"dagster_state_{uuid.uuid4().hex[:10]}"
    with contextlib.closing(_admin(admin_dsn)) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DAGSTER_ROLE,))
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(DAGSTER_ROLE)))
        cursor.execute(
            sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(DAGSTER_ROLE)),
            (DAGSTER_PASSWORD,),
        )
        cursor.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(DAGSTER_ROLE)
            )
        )
    with tcp_address(admin_dsn) as (host, port):
        for key, value in {
            "DAGSTER_PG_HOST": host,
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_DB": name,
            "DAGSTER_PG_USER": DAGSTER_ROLE,
            "DAGSTER_PG_PASSWORD": DAGSTER_PASSWORD,
        }.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("PGSSLMODE", raising=False)
        yield name
    with contextlib.closing(_admin(admin_dsn)) as admin, admin.cursor() as cursor:
        cursor.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
