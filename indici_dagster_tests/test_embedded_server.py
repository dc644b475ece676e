"""The embedded default: a real server started on first use and shared by later callers."""

import os
import signal
import threading
import time

import psycopg2

from indici_dagster.core.embedded import embedded_dsn


def _stop(data_dir) -> None:
    pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    os.kill(pid, signal.SIGINT)  # fast shutdown
    for _ in range(100):
        if not (data_dir / "postmaster.pid").exists():
            return
        time.sleep(0.1)


def test_the_embedded_server_starts_from_a_threaded_process_and_is_reused(tmp_path):
    data_dir = tmp_path / "pg"
    # a busy thread stands in for the gRPC threads of Dagster's code server
    stop = threading.Event()
    busy = threading.Thread(target=lambda: stop.wait(30), daemon=True)
    busy.start()
    try:
        first = embedded_dsn(data_dir)
        second = embedded_dsn(data_dir)
        assert first == second
        connection = psycopg2.connect(first)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_database()")
                assert cursor.fetchone() == ("indici",)
        finally:
            connection.close()
    finally:
        stop.set()
        _stop(data_dir)
