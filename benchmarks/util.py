"""Small helpers every part of the benchmark shares: peak RSS, step timer, day windows, connect."""

import contextlib
import resource
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta

from benchmarks.constants import TIMEZONE


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB.

    Linux: VmHWM of this process's own address space. (`ru_maxrss` survives fork and exec, so a
    subprocess of a big parent would report the parent's peak.)
    """
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage / 1024 if sys.platform != "darwin" else usage / (1024 * 1024)


class Timer:
    """Collects named step durations."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.steps[name] = self.steps.get(name, 0.0) + time.perf_counter() - start


def zone():
    from zoneinfo import ZoneInfo

    return ZoneInfo(TIMEZONE)


def day_window(first: date, last: date | None = None) -> tuple[datetime, datetime]:
    """[start of `first`, start of the day after `last`) in the pipeline's zone."""
    last = last or first
    start = datetime(first.year, first.month, first.day, tzinfo=zone())
    after = last + timedelta(days=1)
    return start, datetime(after.year, after.month, after.day, tzinfo=zone())


def file_ts(file_name: str) -> datetime:
    """The timestamp embedded in a bench file name, aware in the pipeline's zone."""
    stamp = file_name.rsplit("_", 2)
    naive = datetime.strptime(stamp[-2] + stamp[-1][:6], "%Y%m%d%H%M%S")
    return naive.replace(tzinfo=zone())


def connect(dsn: str, autocommit: bool = False):
    import psycopg2

    connection = psycopg2.connect(dsn, application_name="indici-bench")
    connection.autocommit = autocommit
    return connection
