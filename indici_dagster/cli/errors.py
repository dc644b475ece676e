"""Every failure of the `indici` command as one line built from names, and an exit code.

Database and library error text can quote values (a DSN's password, a row's CONTEXT or
DETAIL): messages here are rebuilt from exception types, SQLSTATEs, host, port, database and
user names, never from that text. A DSN is described by `core.dsn.describe_dsn` only.
"""

import argparse
import sys
from typing import NoReturn

import psycopg2

from indici_dagster.core.embedded.server import EmbeddedServerError
from indici_dagster.core.rules.model import RuleError
from indici_dagster.core.rules.store import RulesUnavailableError
from indici_dagster.core.settings import SettingsError
from indici_dagster.core.text import printable
from indici_dagster.core.warehouse.dsn import ConnectionFailedError


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
        underlying = error.__cause__ or error.__context__  # kept even when raised `from None`
        aws = _aws_message(underlying) if underlying is not None else None
        if aws is not None:
            return f"cannot read the rules: {aws}", 1
        if isinstance(error, RulesUnavailableError):
            return printable(str(error)), 1
        return f"invalid rules: {printable(str(error))}", 2
    if isinstance(error, EmbeddedServerError):
        return printable(str(error)), 1
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(error, ConnectionFailedError):  # built from host, port, database, user only
        return str(error), 1
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
