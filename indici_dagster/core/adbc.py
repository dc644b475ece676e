"""Binary COPY through the ADBC PostgreSQL driver, behind a psycopg2-style cursor.

The staging load runs its lock, DDL, delete, COPY and audit insert on one ADBC connection so they
share one transaction. Statements are still composed with `psycopg2.sql` (identifiers quoted by
libpq) and rendered through a psycopg2 connection; `%s` / `%(name)s` placeholders become `$n`.
"""

import re
from collections.abc import Mapping, Sequence
from typing import Any

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc_dbapi
import pyarrow as pa
from psycopg2 import sql
from psycopg2.extensions import connection as PsycopgConnection  # noqa: N812

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s")

Connection = adbc_dbapi.Connection
AdbcError = adbc_driver_manager.Error
AdbcDataError = adbc_driver_manager.DataError


def connect(dsn: str) -> adbc_dbapi.Connection:
    """An ADBC connection (autocommit off) to the same database as `dsn`."""
    return adbc_dbapi.connect(dsn)


def _positional(query: str, params: Any) -> tuple[str, tuple]:
    """Rewrite psycopg2 placeholders as `$1..$n` and order the parameters to match."""
    names: list[str | None] = []

    def number(match: re.Match) -> str:
        names.append(match.group(1))
        return f"${len(names)}"

    text = _PLACEHOLDER.sub(number, query)
    if params is None:
        return text, ()
    if isinstance(params, Mapping):
        return text, tuple(params[name] for name in names)  # type: ignore[index]
    return text, tuple(params)


class AdbcCursor:
    """Enough of a psycopg2 cursor for the staging load, over an ADBC cursor."""

    def __init__(self, connection: adbc_dbapi.Connection, quoting: PsycopgConnection) -> None:
        self._cursor = connection.cursor()
        self._quoting = quoting

    def _render(self, query: sql.Composable | str) -> str:
        return query.as_string(self._quoting) if isinstance(query, sql.Composable) else query

    def execute(self, query: sql.Composable | str, params: Any = None) -> None:
        """Run one statement (one only: ADBC prepares it)."""
        text, values = _positional(self._render(query), params)
        self._cursor.execute(text, parameters=values or None)

    def executemany(self, query: sql.Composable | str, seq: Sequence[Any]) -> None:
        """Run one statement once per parameter set."""
        for params in seq:
            self.execute(query, params)

    def fetchall(self) -> list[tuple]:
        """Rows of the last statement."""
        return self._cursor.fetchall()

    def fetchone(self) -> tuple | None:
        """The next row of the last statement."""
        return self._cursor.fetchone()

    def copy_batches(self, schema: str, table: str, batches: pa.RecordBatchReader) -> int:
        """Binary COPY every batch into `schema.table` (columns matched by name)."""
        return self._cursor.adbc_ingest(table, batches, mode="append", db_schema_name=schema)

    def close(self) -> None:
        """Release the ADBC cursor."""
        self._cursor.close()


def diagnostic(error: AdbcError, field: bytes) -> str | None:
    """One libpq diagnostic field (e.g. `PG_DIAG_CONTEXT`) of an ADBC error, if present."""
    for key, value in getattr(error, "details", None) or []:
        if key == field:
            return value.decode("utf-8", "replace")
    return None
