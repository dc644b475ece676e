"""The reader's session limits from `indici bootstrap`: an idle transaction is ended, a long
statement cancelled, connections counted; flags change them, and `sql/bootstrap.sql` agrees.

Every test bootstraps a database of its own with roles of its own (helpers shared with
`test_least_privilege.py`), and connects as the real reader role bootstrap made.
"""

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest
from psycopg2 import sql

from indici_dagster import cli
from indici_dagster.core.admin.bootstrap import bootstrap_database
from indici_dagster.core.admin.session_limits import (
    DEFAULT_READER_LIMITS,
    SessionLimitError,
    SessionLimits,
    parse_connection_limit,
    parse_duration,
)
from indici_dagster_tests.core.admin.test_least_privilege import (
    SQL_FILE,
    _fresh_database,
    _psql,
    _roles,
    _suffix,
    privileges,
)
from indici_dagster_tests.support.common import query


@dataclass(frozen=True)
class Reader:
    admin: str
    reader: str
    dsn: str


@contextlib.contextmanager
def bootstrapped_reader(admin_dsn: str, limits: SessionLimits) -> Iterator[Reader]:
    """A fresh database bootstrapped with `limits` for its reader; the reader's DSN."""
    suffix = _suffix()
    writer, reader = f"indici_w_{suffix}", f"indici_r_{suffix}"
    with _roles(admin_dsn, writer, reader), _fresh_database(admin_dsn, (writer, reader)) as dsn:
        bootstrap_database(dsn, writer=writer, reader=reader, reader_limits=limits)
        yield Reader(dsn, reader, psycopg2.extensions.make_dsn(dsn, user=reader))


def settings_of(admin: str, role: str) -> tuple[int, list[str]]:
    """The role's connection limit and its all-database settings, sorted."""
    ((limit, config),) = query(
        admin,
        "SELECT r.rolconnlimit, coalesce(s.setconfig, '{}') FROM pg_roles r "
        "LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid AND s.setdatabase = 0 "
        "WHERE r.rolname = %s",
        (role,),
    )
    return limit, sorted(config)


def backend_alive(admin: str, pid: int) -> bool:
    return bool(query(admin, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)))


def test_bootstrap_gives_the_reader_its_limits_and_a_rerun_updates_them(admin_dsn: str):
    with bootstrapped_reader(admin_dsn, DEFAULT_READER_LIMITS) as r:
        assert settings_of(r.admin, r.reader) == (
            20,
            ["idle_in_transaction_session_timeout=2min", "statement_timeout=30min"],
        )
        assert query(
            r.dsn,
            "SELECT current_setting('idle_in_transaction_session_timeout'), "
            "current_setting('statement_timeout')",
        ) == [("2min", "30min")]
        writer = r.reader.replace("indici_r_", "indici_w_")
        same = bootstrap_database(r.admin, writer=writer, reader=r.reader)
        assert (
            f"role {r.reader} sessions: idle_in_transaction_session_timeout 2min, "
            "statement_timeout 30min, connection limit 20 (unchanged)"
        ) in same
        changed = SessionLimits("90s", "45min", 7)
        actions = bootstrap_database(r.admin, writer=writer, reader=r.reader, reader_limits=changed)
        assert (
            f"role {r.reader} sessions: idle_in_transaction_session_timeout 90s, "
            "statement_timeout 45min, connection limit 7 (set now)"
        ) in actions
        assert settings_of(r.admin, r.reader) == (
            7,
            ["idle_in_transaction_session_timeout=90s", "statement_timeout=45min"],
        )
        # the writer and its owner role are left without limits
        assert settings_of(r.admin, writer) == (-1, [])


def override_in_this_database(admin: str, role: str) -> None:
    """What a DBA might have left: settings of the role for this database alone, which win
    over the role's own; one of them (work_mem) is none of bootstrap's business."""
    with contextlib.closing(psycopg2.connect(admin)) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            (database,) = cursor.fetchone()
            for setting, value in (
                ("statement_timeout", "0"),
                ("idle_in_transaction_session_timeout", "0"),
                ("work_mem", "8MB"),
            ):
                cursor.execute(
                    sql.SQL("ALTER ROLE {} IN DATABASE {} SET {} = {}").format(
                        sql.Identifier(role),
                        sql.Identifier(database),
                        sql.Identifier(setting),
                        sql.Literal(value),
                    )
                )


def effective(reader_dsn: str) -> list[tuple]:
    return query(
        reader_dsn,
        "SELECT current_setting('idle_in_transaction_session_timeout'), "
        "current_setting('statement_timeout'), current_setting('work_mem')",
    )


def test_a_setting_of_the_reader_for_this_database_alone_cannot_undo_its_limits(admin_dsn: str):
    with bootstrapped_reader(admin_dsn, DEFAULT_READER_LIMITS) as r:
        override_in_this_database(r.admin, r.reader)
        assert effective(r.dsn) == [("0", "0", "8MB")]
        writer = r.reader.replace("indici_r_", "indici_w_")
        actions = bootstrap_database(r.admin, writer=writer, reader=r.reader)
        assert any(a.startswith(f"role {r.reader} sessions:") and "(set now)" in a for a in actions)
        assert effective(r.dsn) == [("2min", "30min", "8MB")]


def test_an_idle_reader_in_a_transaction_is_cut_off(admin_dsn: str):
    limits = SessionLimits("1s", "30min", 20)
    with bootstrapped_reader(admin_dsn, limits) as r:
        with contextlib.closing(psycopg2.connect(r.dsn)) as reader:
            with reader.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")  # opens a transaction, left idle
                (pid,) = cursor.fetchone()
            deadline = time.monotonic() + 30
            while backend_alive(r.admin, pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not backend_alive(r.admin, pid), "the idle transaction was not ended"
            with pytest.raises(psycopg2.OperationalError), reader.cursor() as cursor:
                cursor.execute("SELECT 1")
        # outside a transaction, idle is fine
        with contextlib.closing(psycopg2.connect(r.dsn)) as reader:
            reader.autocommit = True
            with reader.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                (pid,) = cursor.fetchone()
                time.sleep(2)
                assert backend_alive(r.admin, pid)


def test_a_readers_long_statement_is_cut_off(admin_dsn: str):
    limits = SessionLimits("2min", "1s", 20)
    with bootstrapped_reader(admin_dsn, limits) as r:
        with contextlib.closing(psycopg2.connect(r.dsn)) as reader, reader.cursor() as cursor:
            started = time.monotonic()
            with pytest.raises(psycopg2.errors.QueryCanceled):
                cursor.execute("SELECT pg_sleep(60)")
            assert time.monotonic() - started < 30


def test_the_readers_connection_limit_is_enforced(admin_dsn: str):
    limits = SessionLimits("2min", "30min", 2)
    with bootstrapped_reader(admin_dsn, limits) as r:
        with contextlib.ExitStack() as open_sessions:
            for _ in range(2):
                open_sessions.enter_context(contextlib.closing(psycopg2.connect(r.dsn)))
            with pytest.raises(psycopg2.OperationalError, match="too many connections for role"):
                psycopg2.connect(r.dsn).close()
        psycopg2.connect(r.dsn).close()  # a slot is free again


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--reader-idle-timeout", "5"),
        ("--reader-idle-timeout", "0s"),
        ("--reader-idle-timeout", "500ms"),
        ("--reader-idle-timeout", "25h"),
        ("--reader-statement-timeout", "1 day"),
        ("--reader-statement-timeout", "2min; DROP ROLE x"),
        ("--reader-connection-limit", "0"),
        ("--reader-connection-limit", "-1"),
        ("--reader-connection-limit", "10001"),
        ("--reader-connection-limit", "ten"),
    ],
)
def test_bad_limit_flags_are_refused_with_one_line_naming_the_flag(
    flag: str, value: str, monkeypatch, capsys
):
    # an unreachable administrator: nothing may even be tried before the flags are checked
    monkeypatch.setenv("INDICI_ADMIN_DSN", "host=127.0.0.1 port=1 dbname=x user=x")
    assert cli.main(["bootstrap", flag, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"indici: {flag}: expected "), err
    assert f" {value}" not in err and f"'{value}'" not in err


def test_limits_are_checked_when_made():
    assert parse_duration(" 2min ", "x") == "2min"
    assert parse_connection_limit("20", "x") == 20
    with pytest.raises(SessionLimitError, match=r"^statement_timeout: expected"):
        SessionLimits("2min", "0", 20)
    with pytest.raises(SessionLimitError, match=r"^connection_limit: expected"):
        SessionLimits("2min", "30min", 0)


def test_the_cli_flags_reach_the_reader(admin_dsn: str, monkeypatch, capsys):
    suffix = _suffix()
    writer, reader = f"indici_w_{suffix}", f"indici_r_{suffix}"
    with _roles(admin_dsn, writer, reader), _fresh_database(admin_dsn, (writer, reader)) as dsn:
        monkeypatch.delenv("INDICI_WRITER_PASSWORD", raising=False)
        monkeypatch.delenv("INDICI_READER_PASSWORD", raising=False)
        argv = ["bootstrap", "--admin-dsn", dsn, "--writer", writer, "--reader", reader]
        limits = ["--reader-idle-timeout", "3min", "--reader-statement-timeout", "1h"]
        assert cli.main([*argv, *limits, "--reader-connection-limit", "5"]) == 0
        assert "connection limit 5 (set now)" in capsys.readouterr().out
        assert settings_of(dsn, reader) == (
            5,
            ["idle_in_transaction_session_timeout=3min", "statement_timeout=1h"],
        )


def test_the_sql_file_sets_the_same_limits_and_refuses_bad_ones(admin_dsn: str):
    psql = _psql()
    if psql is None:
        pytest.skip("no psql to run bootstrap.sql with")
    a, b = _suffix(), _suffix()
    roles = (f"indici_w_{a}", f"indici_r_{a}", f"indici_w_{b}", f"indici_r_{b}")
    variables = {
        "reader_idle_timeout": "45s",
        "reader_statement_timeout": "2h",
        "reader_connection_limit": "3",
    }

    def run_sql(dsn: str, **overrides: str) -> subprocess.CompletedProcess:
        given = {"writer": roles[0], "reader": roles[1], **variables, **overrides}
        options = [part for k, v in given.items() for part in ("-v", f"{k}={v}")]
        return subprocess.run(
            [psql, "--no-psqlrc", "--quiet", *options, "-f", str(SQL_FILE), dsn],
            capture_output=True,
            timeout=60,
            check=False,
        )

    with (
        _roles(admin_dsn, *roles),
        _fresh_database(admin_dsn, roles) as by_sql,
        _fresh_database(admin_dsn, roles) as by_python,
    ):
        assert run_sql(by_sql).returncode == 0
        bootstrap_database(
            by_python,
            writer=roles[2],
            reader=roles[3],
            reader_limits=SessionLimits("45s", "2h", 3),
        )
        assert privileges(by_sql, roles[0], roles[1]) == privileges(by_python, roles[2], roles[3])
        assert settings_of(by_sql, roles[1])[0] == 3
        override_in_this_database(by_sql, roles[1])
        assert run_sql(by_sql).returncode == 0
        reader_dsn = psycopg2.extensions.make_dsn(by_sql, user=roles[1])
        assert effective(reader_dsn) == [("45s", "2h", "8MB")]
        for bad in (
            {"reader_idle_timeout": "0s"},
            {"reader_statement_timeout": "forever"},
            {"reader_connection_limit": "-1"},
        ):
            refused = run_sql(by_sql, **bad)
            assert refused.returncode != 0, bad
            assert b"from 1" in refused.stderr, bad
        assert settings_of(by_sql, roles[1]) == (
            3,
            ["idle_in_transaction_session_timeout=45s", "statement_timeout=2h"],
        )
