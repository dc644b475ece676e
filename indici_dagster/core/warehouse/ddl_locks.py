"""How long the pipeline's DDL waits for its table lock: briefly, then again after a pause.

`ALTER TABLE ... ADD COLUMN` needs ACCESS EXCLUSIVE on its table and `CREATE INDEX` SHARE, even
when the column or index is already there. While such a request waits (say for a reader whose open
transaction has read the rpt table), PostgreSQL queues every later request that conflicts with
it behind it: with ACCESS EXCLUSIVE, every reader's plain SELECT. So the pipeline's DDL waits at
most `DDL_LOCK_TIMEOUT_SECONDS`, then gives its place in the queue up (the readers behind it run),
pauses, and asks again; after `DDL_LOCK_ATTEMPTS` tries it raises `DdlLockTimeoutError`, a
transient error that the step's RetryPolicy retries.

Only DDL gets this short timeout. The rest of the transaction keeps `catalog.DEFAULT_LOCK_TIMEOUT`:
the pipeline's row lock in `pipeline_locks`, the COPY, DELETE and upsert (ROW EXCLUSIVE and row
locks) wait for other pipeline work on the same table, which may rightly take minutes, and a
waiting request of theirs queues no reader: a plain SELECT takes ACCESS SHARE, which conflicts with
neither, and a reader may take no row lock (FOR SHARE needs UPDATE) and no lock in staging.

A reader's own session settings cannot change this: the timeout is the pipeline's, set on the
pipeline's connection.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2.errors
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.db_errors import CleanError, ErrorKind

DDL_LOCK_TIMEOUT_SECONDS = 5.0
"""The longest one DDL statement of the pipeline waits for its table lock (its `lock_timeout`),
and so the longest a reader's SELECT queues behind it."""
DDL_LOCK_ATTEMPTS = 6
"""Tries per statement before the step fails (and is retried by its RetryPolicy)."""
DDL_FIRST_PAUSE_SECONDS = 1.0
"""The pause after the first failed try; each later one doubles, up to `DDL_MAX_PAUSE_SECONDS`."""
DDL_MAX_PAUSE_SECONDS = 15.0

_SAVEPOINT = sql.Identifier("indici_ddl")
_CURRENT_LOCK_TIMEOUT = "SELECT pg_catalog.current_setting('lock_timeout')"
_SET_LOCAL_LOCK_TIMEOUT = "SELECT pg_catalog.set_config('lock_timeout', %s, true)"


@dataclass(frozen=True)
class DdlLockPolicy:
    """How one DDL statement waits for its lock: `attempts` tries of at most `timeout_seconds`
    each, with pauses from `first_pause_seconds`, doubling, up to `max_pause_seconds`."""

    timeout_seconds: float = DDL_LOCK_TIMEOUT_SECONDS
    attempts: int = DDL_LOCK_ATTEMPTS
    first_pause_seconds: float = DDL_FIRST_PAUSE_SECONDS
    max_pause_seconds: float = DDL_MAX_PAUSE_SECONDS

    @property
    def lock_timeout(self) -> str:
        """The timeout as `lock_timeout` takes it: `5s`, or whole milliseconds (`300ms`)."""
        milliseconds = max(1, round(self.timeout_seconds * 1000))
        return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"

    def pauses(self) -> list[float]:
        """The pauses between tries, in seconds (one fewer than the tries)."""
        return [
            min(self.first_pause_seconds * 2**n, self.max_pause_seconds)
            for n in range(self.attempts - 1)
        ]

    def longest_wait(self) -> float:
        """The longest one statement can take to get its lock, or to give up, in seconds."""
        return self.attempts * self.timeout_seconds + sum(self.pauses())


DDL_LOCKS = DdlLockPolicy()
"""The policy every DDL statement of the pipeline follows (read when a statement runs)."""


class DdlLockTimeoutError(CleanError):
    """Another session held a lock on a table through every try of the pipeline's DDL on it;
    infrastructure, so the step is retried. The message names the table, never a value."""

    def __init__(self, table: str, policy: DdlLockPolicy) -> None:
        super().__init__(
            f"table {table}: another session holds a lock on it; the pipeline's DDL on it waited "
            f"{policy.lock_timeout} each of {policy.attempts} tries and gave up, letting readers "
            "through between tries (a transient failure: the step is retried)",
            ErrorKind.TRANSIENT,
        )


def run_ddl(
    cursor: Cursor,
    statement: sql.Composable | str,
    params: tuple | dict | None = None,
    *,
    table: str,
    policy: DdlLockPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run one DDL statement on `table` (schema.table, for the message) inside the caller's
    transaction, waiting at most `policy.timeout_seconds` per try for its lock.

    Each try is a savepoint: a try that times out is rolled back alone (the transaction and the
    locks it already holds stay), and its place in the lock queue is given up before the pause.
    The transaction's own `lock_timeout` is the same afterwards as before. Raises
    `DdlLockTimeoutError` when every try timed out; any other error propagates as it was.
    """
    policy = policy or DDL_LOCKS
    cursor.execute(_CURRENT_LOCK_TIMEOUT)
    (previous,) = cursor.fetchone()
    for pause in [*policy.pauses(), None]:
        cursor.execute(sql.SQL("SAVEPOINT {}").format(_SAVEPOINT))
        try:
            cursor.execute(_SET_LOCAL_LOCK_TIMEOUT, (policy.lock_timeout,))
            cursor.execute(statement, params)
        except psycopg2.errors.LockNotAvailable:
            # also undoes the SET LOCAL above; the database's text is not kept
            cursor.execute(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(_SAVEPOINT))
            cursor.execute(sql.SQL("RELEASE SAVEPOINT {}").format(_SAVEPOINT))
        else:
            # a released savepoint keeps its SET LOCAL: put the transaction's own back
            cursor.execute(_SET_LOCAL_LOCK_TIMEOUT, (previous,))
            cursor.execute(sql.SQL("RELEASE SAVEPOINT {}").format(_SAVEPOINT))
            return
        if pause is not None:
            sleep(pause)
    raise DdlLockTimeoutError(table, policy)
