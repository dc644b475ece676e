"""Every failure of the `indici` command as one line built from names, and an exit code.

Database and library error text can quote values (a DSN's password, a row's CONTEXT or
DETAIL): messages here are rebuilt from exception types, SQLSTATEs, host, port, database and
user names, never from that text.
"""

import argparse
import sys
from typing import NoReturn

import psycopg2
import psycopg2.extensions

from indici_dagster.core.embedded_admin import EmbeddedServerError
from indici_dagster.core.rules import RuleError
from indici_dagster.core.settings import PG_DSN, SettingsError
from indici_dagster.core.text import printable


class CliError(RuntimeError):
    """A failure the command explains itself; `str()` is one safe line."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, with a bad argument reported on one line (no usage block) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        """Print `indici: <what is wrong> (see --help)` and exit 2."""
        print(f"{self.prog}: {printable(message)} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def where(dsn: str) -> str:
    """`host H port P database D user U` of a DSN: names only, never the DSN or a password."""
    try:
        parts = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.Error:
        return f"the database named by {PG_DSN} (not a valid DSN)"
    names = (("host", "host"), ("port", "port"), ("database", "dbname"), ("user", "user"))
    described = [f"{label} {printable(parts[key])}" for label, key in names if parts.get(key)]
    return ", ".join(described) or "the default local database"


_CONNECT_REASONS = (
    ("connection refused", "connection refused (is the server running?)"),
    ("timeout expired", "timed out"),
    ("could not translate host name", "unknown host name"),
    ("no password supplied", "no password supplied (put it in a PGPASSFILE, not in the DSN)"),
    ("password authentication failed", "password authentication failed"),
    ("no pg_hba.conf entry", "the server does not accept this host or user"),
    ("does not exist", "the database or role does not exist"),
    ("no such file or directory", "no server listening on that socket"),
    ("ssl", "SSL negotiation failed"),
)


def connection_failure(dsn: str, error: psycopg2.Error) -> CliError:
    """`cannot connect to <where>: <reason>`, the reason picked from a fixed list."""
    text = str(error).lower()
    reason = next((said for key, said in _CONNECT_REASONS if key in text), "connection failed")
    return CliError(f"cannot connect to the warehouse ({where(dsn)}): {reason}")


def connect(dsn: str) -> psycopg2.extensions.connection:
    """A connection to `dsn`, or a `CliError` naming where and why (5 s to answer)."""
    try:
        return psycopg2.connect(dsn, connect_timeout=5)
    except psycopg2.Error as error:
        raise connection_failure(dsn, error) from error


def _aws_message(error: BaseException) -> str | None:
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if isinstance(error, NoRegionError):
        return "no AWS region: set AWS_DEFAULT_REGION (or AWS_REGION)"
    if isinstance(error, EndpointConnectionError):
        return f"cannot reach AWS at {printable(str(error.kwargs.get('endpoint_url', '?')))}"
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "unknown")
        return f"AWS refused {error.operation_name}: {printable(str(code))}"
    return None


def one_line(error: BaseException) -> tuple[str, int]:
    """The line to print for `error` and the exit code; unknown errors name only their type."""
    if isinstance(error, CliError):
        return str(error), error.exit_code
    if isinstance(error, SettingsError):
        return str(error), 2
    if isinstance(error, RuleError):
        aws = _aws_message(error.__cause__) if error.__cause__ is not None else None
        if aws is not None:
            return f"cannot read the rules: {aws}", 1
        return f"invalid rules: {printable(str(error))}", 2
    if isinstance(error, EmbeddedServerError):
        return printable(str(error)), 1
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(error, psycopg2.Error):
        code = error.pgcode or "none"
        return f"database error {type(error).__name__} (SQLSTATE {code})", 1
    aws = _aws_message(error)
    if aws is not None:
        return aws, 1
    if isinstance(error, OSError) and error.strerror:
        name = f": {printable(str(error.filename))}" if error.filename else ""
        return f"{error.strerror}{name}", 1
    return f"unexpected {type(error).__name__} (run again with --debug to see where)", 1
