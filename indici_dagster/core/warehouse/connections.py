"""Connections to the warehouse, and the one policy that decides when they are reused.

The policy, in full:
- `connection()` opens a connection for one unit of work (catalog DDL, audit rows, one rpt
  window, a read-only query) and closes it afterwards. These are few per step, and each does
  enough work that connecting costs little beside it.
- `load_session()` serves one file's staging-load transaction. Inside `reusing_connections()`,
  consecutive loads on the same thread share one connection: opening one costs about as much as
  a small daily file takes to load. It is never shared between threads, and is closed when the
  block ends or after any error in a load (a failed load leaves no session state behind).
  Outside the block, each load's connection is closed after it.

Every connection is in the pipeline's time zone and sends text as UTF-8; commit is the caller's.
"""

import contextlib
import threading
from collections.abc import Iterator

import psycopg2.extensions

from indici_dagster.core.warehouse import sql as statements
from indici_dagster.core.warehouse.dsn import connect

APPLICATION_NAME = "indici-dagster"

Connection = psycopg2.extensions.connection


class Connections:
    """Opens the warehouse's connections and keeps the load session of each thread."""

    def __init__(self, dsn: str, timezone: str) -> None:
        self._dsn = dsn
        self._timezone = timezone
        self._sessions = threading.local()

    def connect(self) -> Connection:
        """A new connection in the pipeline's time zone; the caller closes it."""
        # binary COPY sends text as UTF-8 bytes, whatever PGCLIENTENCODING says; a failure
        # names only host, port, database and user (`ConnectionFailedError`)
        connection = connect(self._dsn, application_name=APPLICATION_NAME, client_encoding="UTF8")
        with connection.cursor() as cursor:
            cursor.execute(statements.SET_TIME_ZONE, (self._timezone,))
        connection.commit()
        return connection

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection of its own for one unit of work, closed afterwards."""
        connection = self.connect()
        try:
            yield connection
        finally:
            connection.close()

    @contextlib.contextmanager
    def reusing_connections(self) -> Iterator[None]:
        """Within this block, consecutive staging loads on this thread share one connection,
        closed when the block ends or after any error."""
        self._sessions.reuse = True
        try:
            yield
        finally:
            self._sessions.reuse = False
            self._close_load_session()

    @contextlib.contextmanager
    def load_session(self) -> Iterator[Connection]:
        """A connection for one file's load transaction (kept for the next load when reusing)."""
        if getattr(self._sessions, "load", None) is None:
            self._sessions.load = self.connect()
        connection = self._sessions.load
        try:
            yield connection
        except BaseException:
            self._close_load_session()
            raise
        if connection.closed or not getattr(self._sessions, "reuse", False):
            self._close_load_session()

    def _close_load_session(self) -> None:
        connection, self._sessions.load = getattr(self._sessions, "load", None), None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()
