"""A reader's open transaction cannot stall the pipeline's DDL, nor the other readers behind it.

The drift `ALTER TABLE rpt.<table> ADD COLUMN` needs ACCESS EXCLUSIVE; a reader's open transaction
that read the table holds ACCESS SHARE, and while the ALTER waits every other reader's SELECT
queues behind it. The pipeline's DDL waits at most `DDL_LOCK_TIMEOUT_SECONDS` per try, lets the
queue go between tries, and gives up after `DDL_LOCK_ATTEMPTS` with one line (a transient error
the step's RetryPolicy retries). Real roles from `bootstrap_database`, a real server.
"""

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pyarrow as pa
import pytest
from dagster import DagsterEventType, DagsterInstance

from indici_dagster.core.admin.bootstrap import bootstrap_database
from indici_dagster.core.db_errors import CleanError, ErrorKind, classify
from indici_dagster.core.rules.model import parse_rule
from indici_dagster.core.steps.ingest import partition_key_of_file
from indici_dagster.core.warehouse import ddl_locks
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster.lib.step_failures import fail_fast_on_permanent_errors
from indici_dagster_tests.core.admin.test_least_privilege import _fresh_database, _roles, _suffix
from indici_dagster_tests.core.warehouse.test_staging_load import load
from indici_dagster_tests.support.common import (
    TIMEZONE,
    build,
    execute_requests,
    make_settings,
    parquet_bytes,
    put_s3,
    query,
    tick,
)
from indici_dagster_tests.support.sabotage import SABOTEUR, connect_admin, pipeline_backends

CODES = parse_rule({"dataset": "EthnicityCode"})
"""A static dataset: its first file's columns make the table; a later column is drift, added to
staging and then to rpt by ALTER TABLE."""
DAY_1 = "EthnicityCode_20261124_010000.parquet"
DAY_2 = "EthnicityCode_20261125_010000.parquet"
EVERYTHING = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
SHORT = ddl_locks.DdlLockPolicy(
    timeout_seconds=0.3, attempts=3, first_pause_seconds=0.1, max_pause_seconds=0.2
)
"""A policy that gives up quickly, for the tests that wait for it to give up."""


def day_1() -> dict:
    return {"EthnicityCode": pa.array([11, 12], pa.int32()), "Description": ["NZ", "Maori"]}


def day_2() -> dict:
    return {**day_1(), "Category": ["a", "b"]}  # the drift column


@dataclass(frozen=True)
class Roles:
    admin: str
    writer: str
    reader: str


@pytest.fixture
def roles(admin_dsn: str) -> Iterator[Roles]:
    """A database bootstrapped with the shipped defaults: the writer's and the reader's DSNs."""
    suffix = _suffix()
    writer, reader = f"indici_w_{suffix}", f"indici_r_{suffix}"
    with _roles(admin_dsn, writer, reader), _fresh_database(admin_dsn, (writer, reader)) as dsn:
        bootstrap_database(dsn, writer=writer, reader=reader)
        yield Roles(
            dsn,
            psycopg2.extensions.make_dsn(dsn, user=writer),
            psycopg2.extensions.make_dsn(dsn, user=reader),
        )


def upsert(warehouse: Warehouse) -> list:
    return warehouse.upsert_window_into_rpt(
        CODES,
        *EVERYTHING,
        run_id="r",
        partition_key_of=lambda name: partition_key_of_file(name, TIMEZONE),
    )


@contextlib.contextmanager
def reader_holding_rpt(reader_dsn: str, table: str) -> Iterator[psycopg2.extensions.connection]:
    """A reader whose open transaction has read `rpt.<table>` (ACCESS SHARE until it ends), with
    its own timeouts switched off, as any reader may do for its own session."""
    holder = psycopg2.connect(reader_dsn, application_name=SABOTEUR)
    try:
        with holder.cursor() as cursor:
            cursor.execute("SET idle_in_transaction_session_timeout = 0")
            cursor.execute("SET statement_timeout = 0")
            cursor.execute(f"SELECT count(*) FROM rpt.{table}")
        yield holder
    finally:
        with contextlib.suppress(psycopg2.Error):
            holder.rollback()
        holder.close()


def waiting_alters(admin: psycopg2.extensions.connection) -> list[tuple[int, datetime]]:
    """(pid, query_start) of each of the pipeline's ALTER TABLE statements waiting for a table
    lock: a new query_start is a new try, a new pid a new step attempt."""
    # the ALTER runs inside the owner's function add_data_column (directly, before bootstrap)
    pids = [
        pid
        for like in ("ALTER TABLE%", "%add_data_column%")
        for pid in pipeline_backends(admin, like, waiting_for="table lock")
    ]
    if not pids:
        return []
    with admin.cursor() as cursor:
        cursor.execute("SELECT pid, query_start FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,))
        return cursor.fetchall()


def timed_select(reader: psycopg2.extensions.connection, table: str) -> float:
    """Seconds one plain SELECT of a reader took (a lock wait past the bound fails the test)."""
    started = time.monotonic()
    with reader.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM rpt.{table}")
    return time.monotonic() - started


class TryWatcher(threading.Thread):
    """Polls, until stopped, for the pipeline's ALTER TABLE waiting on a table lock: `tries` holds
    each (pid, query_start) seen; a new query_start is a new try, a new pid a new step attempt."""

    def __init__(self, admin_dsn: str) -> None:
        super().__init__(daemon=True, name="try-watcher")
        self._dsn = admin_dsn
        self._halt = threading.Event()
        self.tries: set[tuple[int, datetime]] = set()

    def run(self) -> None:
        with contextlib.closing(connect_admin(self._dsn)) as admin:
            while not self._halt.is_set():
                self.tries.update(waiting_alters(admin))
                time.sleep(0.005)

    def starts(self) -> int:
        return len({start for _, start in set(self.tries)})

    def pids(self) -> int:
        return len({pid for pid, _ in set(self.tries)})

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def wait_until(condition, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_waiting_drift_alter_never_queues_other_readers_past_its_lock_timeout(roles: Roles):
    warehouse = Warehouse(roles.writer, TIMEZONE)
    warehouse.ensure_catalog()
    load(warehouse, DAY_1, day_1(), CODES)
    upsert(warehouse)
    load(warehouse, DAY_2, day_2(), CODES)  # staging takes the new column: no reader there
    policy = ddl_locks.DDL_LOCKS  # the shipped one
    bound = policy.timeout_seconds + 3
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(upsert(warehouse))
        except BaseException as error:  # reported in the test's thread
            outcome.append(error)

    durations: list[float] = []
    watcher = TryWatcher(roles.admin)
    with (
        reader_holding_rpt(roles.reader, CODES.table) as holder,
        contextlib.closing(psycopg2.connect(roles.reader, application_name=SABOTEUR)) as other,
    ):
        other.autocommit = True
        with other.cursor() as cursor:  # so that the old behaviour fails here, not in 10 min
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", (f"{bound}s",))
        watcher.start()
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        assert wait_until(lambda: watcher.starts() >= 1), "the ALTER never asked for its lock"
        # the other reader reads all along, through two tries and the pause between them
        deadline = time.monotonic() + 4 * bound
        while watcher.starts() < 2 and time.monotonic() < deadline:
            try:
                durations.append(timed_select(other, CODES.table))
            except psycopg2.errors.LockNotAvailable:
                durations.append(float("inf"))  # queued past the bound behind the ALTER
                break
        durations.append(timed_select_or_inf(other, CODES.table))  # during the second try
        assert worker.is_alive(), "the upsert went through a lock the reader still holds"
        holder.rollback()  # the reader lets go: the next try goes through
        worker.join(60)
    watcher.stop()
    assert not worker.is_alive()
    assert max(durations) < bound, durations
    assert watcher.starts() >= 2, "the ALTER was not tried again"
    assert watcher.pids() == 1  # tried again inside the same transaction
    assert not isinstance(outcome[0], BaseException), outcome
    assert query(
        roles.reader, "SELECT ethnicity_code, category FROM rpt.ethnicity_code ORDER BY 1"
    ) == [(11, "a"), (12, "b")]


def timed_select_or_inf(reader: psycopg2.extensions.connection, table: str) -> float:
    try:
        return timed_select(reader, table)
    except psycopg2.errors.LockNotAvailable:
        return float("inf")


def test_a_reader_that_never_lets_go_fails_the_upsert_with_one_line_and_changes_nothing(
    roles: Roles, monkeypatch
):
    monkeypatch.setattr(ddl_locks, "DDL_LOCKS", SHORT)
    # the transaction's own lock_timeout is not what ends the wait (20 s: the old behaviour fails
    # in 20 s instead of 10 min)
    warehouse = Warehouse(roles.writer, TIMEZONE, lock_timeout="20s")
    warehouse.ensure_catalog()
    load(warehouse, DAY_1, day_1(), CODES)
    upsert(warehouse)
    load(warehouse, DAY_2, day_2(), CODES)
    with reader_holding_rpt(roles.reader, CODES.table):
        with pytest.raises(ddl_locks.DdlLockTimeoutError) as raised:
            upsert(warehouse)
        # the failed upsert left nothing behind that a reader would queue on
        with contextlib.closing(psycopg2.connect(roles.reader)) as other, other.cursor() as cur:
            cur.execute("SET lock_timeout = '1s'")
            cur.execute("SELECT count(*) FROM rpt.ethnicity_code")
            assert cur.fetchone() == (2,)
    error = raised.value
    assert str(error) == (
        "table rpt.ethnicity_code: another session holds a lock on it; the pipeline's DDL on it "
        "waited 300ms each of 3 tries and gave up, letting readers through between tries "
        "(a transient failure: the step is retried)"
    )
    assert error.__cause__ is None and error.__context__ is None
    assert classify(error) is ErrorKind.TRANSIENT
    # the step wrapper hands it to the RetryPolicy as it is: not a Failure, the same one line
    with pytest.raises(CleanError) as wrapped:
        _raise_through_step(error)
    assert wrapped.value.kind is ErrorKind.TRANSIENT and str(wrapped.value) == str(error)
    # nothing of the window was applied
    columns = query(
        roles.admin,
        "SELECT attname FROM pg_attribute WHERE attrelid = 'rpt.ethnicity_code'::regclass "
        "AND attnum > 0 AND NOT attisdropped",
    )
    assert ("category",) not in columns
    assert len(upsert(warehouse)) == 2  # and with the reader gone it goes through


def _raise_through_step(error: BaseException) -> None:
    """Raise `error` from inside an asset body wrapped as every warehouse step is."""

    @fail_fast_on_permanent_errors
    def body() -> None:
        raise error

    body()


def test_the_step_is_retried_by_its_retry_policy_and_loads_once_the_reader_lets_go(
    tmp_path, roles: Roles, buckets, monkeypatch
):
    monkeypatch.setattr(ddl_locks, "DDL_LOCKS", SHORT)
    landing, partitioned = buckets
    defs = build(make_settings(tmp_path, roles.writer, landing, partitioned))
    put_s3(landing, DAY_1, parquet_bytes(day_1()))
    with DagsterInstance.ephemeral() as instance:
        assert all(r.success for r in execute_requests(defs, instance, tick(defs, instance)))
        put_s3(landing, DAY_2, parquet_bytes(day_2()))
        attempts: set[int] = set()

        with reader_holding_rpt(roles.reader, "ethnicity_code") as holder:

            def let_go_after_a_step_retry() -> None:
                # each step attempt has a connection (a backend) of its own: a second pid
                # waiting on the ALTER is Dagster's retry of the step
                with contextlib.closing(connect_admin(roles.admin)) as admin:
                    deadline = time.monotonic() + 60
                    while len(attempts) < 2 and time.monotonic() < deadline:
                        attempts.update(pid for pid, _ in waiting_alters(admin))
                        time.sleep(0.01)
                holder.rollback()

            watcher = threading.Thread(target=let_go_after_a_step_retry, daemon=True)
            watcher.start()
            results = execute_requests(defs, instance, tick(defs, instance))
            watcher.join(60)
        assert [r.success for r in results] == [True]
        retried = [
            e
            for e in instance.all_logs(results[0].run_id)
            if e.dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_UP_FOR_RETRY
        ]
    assert len(attempts) >= 2
    assert retried
    # Dagster's RetryRequestedFromPolicy, caused by the one line
    error = retried[0].dagster_event.event_specific_data.error
    assert error.cause is not None
    assert error.cause.message.startswith(
        "indici_dagster.core.db_errors.CleanError: table rpt.ethnicity_code: another session "
        "holds a lock on it;"
    )
    assert error.cause.message.count("\n") <= 1
    assert query(
        roles.reader, "SELECT count(*) FROM rpt.ethnicity_code WHERE category IS NOT NULL"
    ) == [(2,)]


def test_the_shipped_policy_lets_a_forgotten_reader_transaction_end_before_the_step_gives_up():
    from indici_dagster.core.admin.session_limits import DEFAULT_READER_LIMITS
    from indici_dagster.lib.step_failures import TRANSIENT_RETRY

    policy = ddl_locks.DDL_LOCKS
    assert policy.lock_timeout == "5s" and policy.attempts == 6
    assert policy.pauses() == [1.0, 2.0, 4.0, 8.0, 15.0]
    step_attempts = TRANSIENT_RETRY.max_retries + 1
    idle = DEFAULT_READER_LIMITS.idle_in_transaction_timeout
    assert idle == "2min"
    # every step attempt spends the whole policy before its retry: the reader's idle
    # transaction (role default) is ended well inside the step's span of tries
    assert 120 < step_attempts * policy.longest_wait() / 1.5
