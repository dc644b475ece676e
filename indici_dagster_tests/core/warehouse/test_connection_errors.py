"""Connection errors name only host, port, database and user: never a piece of the DSN's text.

Hostile passwords (spaces, quotes, `=`, `@`, `/`, unicode, URL-encoding) in key=value and URL
DSNs, well-formed and malformed, against a closed port on loopback: no word of the password is
in the exception's text, its repr, any chained exception, or what the `indici` command prints.
"""

import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import psycopg2
import pytest

from indici_dagster.core.admin.bootstrap import BootstrapError, bootstrap_database
from indici_dagster.core.warehouse.dsn import ConnectionFailedError, connect, describe_dsn
from indici_dagster.core.warehouse.facade import Warehouse

CLOSED = "host=127.0.0.1 port=9 connect_timeout=3"
"""Nothing listens on port 9 of loopback: a connection is refused at once."""

PASSWORDS = (
    "correct horsezz batteryzz",
    "quo'te\\\"dquoteyy",
    "key=valuexx=more",
    "Pāua-Kūmara ōtautahi",
    "pct%20enc%41oded",
    "at@signqq/slashqq",
    "semi;colonww #hashww",
)


def _words(password: str) -> list[str]:
    """The password and every run of 4+ letters or digits in it (and its URL-encoded form)."""
    return [password, urllib.parse.quote(password), *re.findall(r"\w{4,}", password)]


def _dsns(password: str) -> list[str]:
    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    return [
        f"{CLOSED} user=someone dbname=db password='{quoted}'",  # well-formed key=value
        f"{CLOSED} user=someone dbname=db password={password}",  # unquoted: malformed for most
        f"postgresql://someone:{urllib.parse.quote(password, safe='')}@127.0.0.1:9/db"
        "?connect_timeout=3",  # well-formed URL
        f"postgresql://someone:{password}@127.0.0.1:9/db?connect_timeout=3",  # raw: malformed
    ]


def _chain(error: BaseException | None) -> str:
    texts = []
    while error is not None:
        texts += [str(error), repr(error), str(getattr(error, "args", ""))]
        error = error.__cause__ or error.__context__
    return "\n".join(texts)


def _assert_clean(text: str, password: str) -> None:
    for word in _words(password):
        assert word not in text, f"{word!r} leaked"


@pytest.mark.parametrize("password", PASSWORDS)
def test_connection_errors_hold_no_word_of_the_password(password: str):
    for dsn in _dsns(password):
        _assert_clean(describe_dsn(dsn), password)
        with pytest.raises(ConnectionFailedError) as raised:
            connect(dsn)
        text = _chain(raised.value)
        _assert_clean(text, password)
        assert raised.value.__cause__ is None and raised.value.__context__ is None
        assert text.startswith(
            (
                "cannot connect to host=127.0.0.1 port=9 database=db user=someone: ",
                "cannot connect: INDICI_PG_DSN is not a valid libpq DSN or URL",
            )
        ), text
        with pytest.raises(psycopg2.OperationalError) as raised:
            with Warehouse(dsn, "UTC").connection():
                pass
        _assert_clean(_chain(raised.value), password)
        with pytest.raises(BootstrapError) as raised:
            bootstrap_database(dsn)
        _assert_clean(_chain(raised.value), password)


def test_a_malformed_dsn_is_named_invalid_without_any_fragment():
    dsn = "host=db user=writer password=correct horse battery"
    assert describe_dsn(dsn) == "INDICI_PG_DSN is not a valid libpq DSN or URL"
    with pytest.raises(ConnectionFailedError) as raised:
        connect(dsn)
    assert str(raised.value) == "cannot connect: INDICI_PG_DSN is not a valid libpq DSN or URL"


def test_a_refused_connection_names_host_port_database_and_user_only():
    dsn = "postgresql://writer:s3cr%C3%A9t@127.0.0.1:9/analytics?connect_timeout=3"
    assert describe_dsn(dsn) == "host=127.0.0.1 port=9 database=analytics user=writer"
    with pytest.raises(ConnectionFailedError) as raised:
        connect(dsn)
    assert str(raised.value) == (
        "cannot connect to host=127.0.0.1 port=9 database=analytics user=writer: connection refused"
    )


@pytest.mark.parametrize("password", [PASSWORDS[0], PASSWORDS[5]])
def test_the_indici_command_prints_no_word_of_the_password(
    password: str, tmp_path: Path, repo_root: Path
):
    root = repo_root
    for dsn in _dsns(password):
        for argv in (["audit", "Patients_20261124_020000.parquet"], ["bootstrap"]):
            env = {
                **os.environ,
                "PYTHONPATH": str(root),
                "INDICI_PG_DSN": dsn,
                "INDICI_ADMIN_DSN": dsn,
                "INDICI_PG_DIR": str(tmp_path / "pg"),
            }
            result = subprocess.run(
                [sys.executable, "-m", "indici_dagster.cli", *argv],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
                timeout=120,
                check=False,
            )
            assert result.returncode != 0
            _assert_clean(result.stdout + result.stderr, password)
