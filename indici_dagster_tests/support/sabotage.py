"""Sabotage for the fault and concurrency tests: find the pipeline's backends, block, kill them.

Everything here works from a second, superuser connection to the test's database, the way an
operator (or a failing server) would: `pg_stat_activity` to see what the pipeline is doing, the
pipeline's own table lock (a row of `indici_staging.pipeline_locks`) to stall it,
`pg_terminate_backend` to cut it off.
"""

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import psycopg2
import psycopg2.extensions

from indici_dagster.core.warehouse.sql import TAKE_LOCK

SABOTEUR = "indici-tests-saboteur"
"""The application_name of our own connections; every other backend in the test's database is
the pipeline's (not all of its connections set an application_name)."""


def connect_admin(dsn: str) -> psycopg2.extensions.connection:
    """An autocommit connection (a superuser's, for the sabotage)."""
    connection = psycopg2.connect(dsn, application_name=SABOTEUR)
    connection.autocommit = True
    return connection


WAITS = {
    "pipeline lock": "wait_event_type = 'Lock' AND wait_event IN ('transactionid', 'tuple') "
    "AND query ILIKE '%%pipeline_locks%%'",
    "row lock": "wait_event_type = 'Lock' AND wait_event IN ('transactionid', 'tuple')",
    "table lock": "wait_event_type = 'Lock' AND wait_event = 'relation'",
    None: "true",
}
"""What a backend may be required to be waiting for."""


def pipeline_backends(
    admin: psycopg2.extensions.connection, query_like: str = "%", *, waiting_for: str | None = None
) -> list[int]:
    """PIDs of the pipeline's backends in this database running a statement like `query_like`.

    (pg_stat_activity keeps only the first 1 kB of a statement: match on its beginning.)
    """
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name IS DISTINCT FROM %s "
            "AND datname = current_database() AND backend_type = 'client backend' "
            f"AND state = 'active' AND query ILIKE %s AND {WAITS[waiting_for]} "
            "ORDER BY backend_start",
            (SABOTEUR, query_like),
        )
        return [pid for (pid,) in cursor.fetchall()]


def wait_for_backends(
    admin: psycopg2.extensions.connection,
    query_like: str = "%",
    *,
    count: int = 1,
    waiting_for: str | None = None,
    timeout: float = 30.0,
) -> list[int]:
    """Poll until at least `count` pipeline backends run a statement like `query_like`."""
    deadline = time.monotonic() + timeout
    while True:
        pids = pipeline_backends(admin, query_like, waiting_for=waiting_for)
        if len(pids) >= count:
            return pids
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not {count} pipeline backend(s) running {query_like!r} "
                f"(waiting for {waiting_for or 'anything'}) within {timeout} s"
            )
        time.sleep(0.005)


def terminate(admin: psycopg2.extensions.connection, pid: int) -> None:
    """`pg_terminate_backend`, waiting (up to 5 s) until the backend has gone."""
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        assert cursor.fetchone()[0], f"backend {pid} did not go away"


@contextlib.contextmanager
def holding_table_lock(dsn: str, table: str) -> Iterator[psycopg2.extensions.connection]:
    """Hold the pipeline's lock on `table` in a transaction of our own until the block ends.

    Every staging load and rpt upsert of `table` queues behind it. The connection is yielded so
    that the caller can release early (`release_table_lock`) or keep using it.
    """
    holder = psycopg2.connect(dsn, application_name=SABOTEUR)
    try:
        with holder.cursor() as cursor:
            cursor.execute(TAKE_LOCK, {"timeout": "0", "name": table})
        yield holder
    finally:
        with contextlib.suppress(psycopg2.Error):
            release_table_lock(holder, table)
        holder.close()


def release_table_lock(holder: psycopg2.extensions.connection, table: str) -> None:
    """End the transaction holding the pipeline's lock on `table` (every lock it holds)."""
    holder.rollback()


class Assassin(threading.Thread):
    """A thread that waits for the pipeline to run a statement, then terminates its backend once.

    `then` runs right after the kill (e.g. to release a lock so that a retry can go through).
    Anything that goes wrong in the thread is kept in `failure` and re-raised by `verify`.
    """

    def __init__(
        self,
        admin_dsn: str,
        query_like: str = "%",
        *,
        waiting_for: str | None = None,
        then: Callable[[], None] | None = None,
        timeout: float = 30.0,
        action: Callable[[psycopg2.extensions.connection, int], None] | None = None,
    ) -> None:
        super().__init__(daemon=True, name="assassin")
        self._dsn, self._query_like, self._waiting = admin_dsn, query_like, waiting_for
        self._then, self._timeout = then, timeout
        self._action = action or terminate
        self.victim: int | None = None
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            with contextlib.closing(connect_admin(self._dsn)) as admin:
                (self.victim, *_) = wait_for_backends(
                    admin, self._query_like, waiting_for=self._waiting, timeout=self._timeout
                )
                self._action(admin, self.victim)
            if self._then is not None:
                self._then()
        except BaseException as error:  # reported by verify() in the test's thread
            self.failure = error

    def verify(self, timeout: float = 30.0) -> int:
        """Join the thread; re-raise its failure; return the PID it terminated."""
        self.join(timeout)
        assert not self.is_alive(), "the assassin is still waiting"
        if self.failure is not None:
            raise self.failure
        assert self.victim is not None
        return self.victim
