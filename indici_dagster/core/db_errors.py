"""Errors from PostgreSQL, Arrow and S3, turned into messages rebuilt from names.

A library's own error text can quote the data it choked on: PostgreSQL's CONTEXT and DETAIL
lines show the start of a value or a duplicated key, Arrow's messages show the value it could
not cast. None of that text leaves the process. Every message made here is built from the
SQLSTATE, its condition name, and the table, column, constraint and row number alone.

Each error is also classified: the file's content (fail that file, never retry), the
infrastructure (retry with backoff), or anything else (fail the step at once).
"""

import re
from collections.abc import Iterable
from enum import StrEnum

import psycopg2
import psycopg2.errorcodes
import pyarrow as pa
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from indici_dagster.core.errors import (
    archived_code,
    describe_storage_error,
    is_permanent_storage_error,
)
from indici_dagster.core.text import printable

NAME_LIMIT = 64
"""Characters of a name from a file (a column name) shown in a message; the rest is cut."""


_CONTENT_CLASSES = ("22", "23", "54")
"""SQLSTATE classes a file's values cause: data exception, integrity constraint violation,
program limit exceeded (a value nested too deep, a row too big, too many columns)."""
_TRANSIENT_CLASSES = ("08", "53", "57P", "58")
"""Connection exception, insufficient resources, operator intervention (server shutting down or
restarting), system error (I/O)."""
_TRANSIENT_STATES = frozenset({"40001", "40P01", "55P03", "57014"})
"""Serialization failure, deadlock, lock not available (lock_timeout), query cancelled."""

_HINTS = {
    "42501": "the database refused the pipeline's role",
    "3F000": "a schema is missing: run `indici bootstrap`",
    "55P03": "a lock was not granted in time",
    "54011": "too many columns",
}
"""What a few conditions mean for the pipeline, added to their message."""

_CONNECTION_PHRASES = (
    "cannot connect to ",
    "connection to server ",
    "could not connect to server",
    "server closed the connection unexpectedly",
    "connection already closed",
    "could not receive data from server",
    "could not send data to server",
    "terminating connection",
    "SSL connection has been closed unexpectedly",
)
"""Starts of the driver's messages about a connection (no SQLSTATE): they name the server,
never data, and are kept. Any other message without a SQLSTATE is replaced by its class."""

_COPY_LINE = r"^COPY {table}, line (\d+)(?:, column ([a-z_][a-z0-9_]*))?"
"""The context line PostgreSQL adds to an error inside COPY. Its row is the COPY's input row,
which is the file's row: every row of the file is sent, in order, one COPY row each."""


class ErrorKind(StrEnum):
    """Who caused an error, and so what happens next."""

    CONTENT = "content"
    """The data: the file (or window) fails, audited; retrying cannot help."""
    TRANSIENT = "transient"
    """The infrastructure (connection, server, throttling, locks): retried with backoff."""
    PERMANENT = "permanent"
    """Configuration, permissions or a bug: the step fails at once, not retried."""


class CleanError(RuntimeError):
    """An error whose message was rebuilt from names; `kind` says what happens next.

    Raised `from None`, so no original library text travels with it, not even as context.
    """

    def __init__(self, message: str, kind: ErrorKind) -> None:
        super().__init__(message)
        self.kind = kind


class NamedOperationalError(psycopg2.OperationalError):
    """An infrastructure failure the pipeline raises itself (a lock not granted in time), its
    message built from names only: described as it is, and retried like a lost connection."""


class FileLoadError(RuntimeError):
    """A file that could not be loaded; the message is safe to log (no values, no secrets)."""


NOT_RETRIED = "content error, not retried"
"""Ends the audit message of a file (or rpt window) that failed on its content."""


def quote_name(name: object, limit: int = NAME_LIMIT) -> str:
    """A name from a file (column, key) quoted for a message: control characters, ANSI escapes
    and newlines escaped, at most `limit` characters of it shown."""
    text = str(name)
    shown = f"'{printable(text[:limit])}'"
    return shown if len(text) <= limit else f"{shown}... ({len(text)} characters)"


def sqlstate_kind(sqlstate: str | None) -> ErrorKind:
    """The kind of a PostgreSQL error by its SQLSTATE (None: the connection broke)."""
    if not sqlstate:
        return ErrorKind.TRANSIENT
    if sqlstate.startswith(_CONTENT_CLASSES):
        return ErrorKind.CONTENT
    if sqlstate in _TRANSIENT_STATES or sqlstate.startswith(_TRANSIENT_CLASSES):
        return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT


def classify(error: BaseException) -> ErrorKind:
    """What kind of error this is: a file's content, the infrastructure, or anything else."""
    if isinstance(error, CleanError):
        return error.kind
    if archived_code(error) is not None:
        return ErrorKind.CONTENT  # an archived file: that file fails until it is restored
    if isinstance(error, psycopg2.Error):
        if error.pgcode:
            return sqlstate_kind(error.pgcode)
        # no SQLSTATE: the driver lost or never had its connection
        if isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError):
            return ErrorKind.TRANSIENT
        return ErrorKind.PERMANENT
    if isinstance(error, ClientError):
        return ErrorKind.PERMANENT if is_permanent_storage_error(error) else ErrorKind.TRANSIENT
    if isinstance(error, NoCredentialsError):
        return ErrorKind.PERMANENT
    if isinstance(error, BotoCoreError | ConnectionError | TimeoutError):
        return ErrorKind.TRANSIENT  # an endpoint unreachable, a read timed out
    if isinstance(error, pa.ArrowException | OSError | ValueError | MemoryError):
        return ErrorKind.CONTENT  # Arrow decoding a file: the same bytes fail the same way
    return ErrorKind.PERMANENT  # anything else is a fault no retry is known to fix


def condition_name(sqlstate: str) -> str:
    """`54001` as `statement too complex`; `database error` for a code psycopg2 cannot name."""
    name = psycopg2.errorcodes.lookup(sqlstate) if re.fullmatch(r"[0-9A-Z]{5}", sqlstate) else None
    return name.lower().replace("_", " ") if name else "database error"


def copy_row(context: str | None, table: str | None) -> tuple[int, str | None] | None:
    """(row, column or None) of a COPY error, from the CONTEXT line PostgreSQL names the
    staging `table` in; None if the error has no such line.

    Only the first such line counts: it is the COPY's own; text after it may quote a value.
    """
    if not context or not table:
        return None
    match = re.search(_COPY_LINE.format(table=re.escape(table)), context, flags=re.MULTILINE)
    return (int(match.group(1)), match.group(2)) if match else None


def describe_database_error(
    error: psycopg2.Error,
    *,
    copy_table: str | None = None,
    columns: Iterable[tuple[str, str | None]] = (),
) -> str:
    """One line for a PostgreSQL error, built from names only: the condition and SQLSTATE, the
    table, column and constraint the server names, and for an error inside a COPY into
    `copy_table` its row (and the file's own name for the column, from `columns`:
    (staging column, file column) pairs).

    The row is the COPY's line, which is the file's data row in binary COPY (one line a row,
    whatever newlines the values hold).
    """
    if isinstance(error, NamedOperationalError):
        return str(error)
    code = error.pgcode
    if not code:
        first = (str(error).strip().splitlines() or [""])[0]
        known = first.startswith(_CONNECTION_PHRASES) and len(first) <= 300
        return first if known else f"the database connection failed ({type(error).__name__})"
    diag = error.diag
    hint = f": {_HINTS[code]}" if code in _HINTS else ""
    parts = [f"{condition_name(code)} (SQLSTATE {code}){hint}"]
    column = diag.column_name
    where = copy_row(diag.context, copy_table)
    if where is not None:
        line, copy_column = where
        column = column or copy_column
        parts.append(f"row {line}")
    if column:
        shown = dict(columns).get(column) or column
        parts.append(f"column {quote_name(shown)}")
    if diag.table_name:
        table = f"{diag.schema_name}.{diag.table_name}" if diag.schema_name else diag.table_name
        parts.append(f"table {quote_name(table)}")
    if diag.constraint_name:
        parts.append(f"constraint {quote_name(diag.constraint_name)}")
    return ", ".join(parts)


_SAFE_ARROW_PHRASES = (
    "Parquet magic bytes not found",
    "Parquet file size is 0 bytes",
    "Couldn't deserialize thrift",
    "Unexpected end of stream",
    "Invalid UTF8 payload",
    "invalid utf8",
    "out of bounds",
    "Column chunk",
    "Unsupported encoding",
    "Corrupt",
)
"""Phrases of Arrow's messages that name a kind of damage, never a value: kept in messages."""


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0][:300]


def describe_library_error(error: BaseException) -> str:
    """One line for an Arrow, OS or other library error: its class and, where Arrow's message
    holds one of a few known phrases naming a kind of damage, that phrase; never its text."""
    if isinstance(error, psycopg2.Error):
        return describe_database_error(error)
    if isinstance(error, CleanError):
        return str(error)
    if (code := archived_code(error)) is not None:
        return f"archived in S3 ({code})"
    if isinstance(error, ClientError):
        return describe_storage_error(error)
    if isinstance(error, BotoCoreError):  # botocore's fixed templates: endpoints, never data
        return f"{type(error).__name__}: {_first_line(error)}"
    text = str(error).lower()
    phrase = next((p for p in _SAFE_ARROW_PHRASES if p.lower() in text), None)
    return f"{type(error).__name__}: {phrase}" if phrase else type(error).__name__
