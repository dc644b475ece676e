"""A daily run's raw and partitioned steps at 100,000 landed objects, against a nearly empty bucket.

Times the storage work of `indici/raw` (find the date's files, read their footers) and
`indici/partitioned` (find them again, copy them) through the core functions those steps call,
in a moto S3 bucket filled by `benchmarks.moto_bucket` with a year of other dates' objects, and
counts the S3 requests, for both ways a run finds its files: a sensor-launched run reads the
versions from its `indici/objects` tags (no listing), a backfill lists per date. Target: the
sensor-launched run at 100,000 objects within 2 s of the same run on a nearly empty bucket.
Not part of the test suite:

    .venv/bin/python -m benchmarks.daily_run [--objects 100000] [--repeats 5]
"""

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.constants import MAIN_DAYS, TIMEZONE
from benchmarks.moto_bucket import moto_bucket
from indici_dagster.core.landing.run_objects import encode_objects_tags
from indici_dagster.core.steps.ingest import (
    copy_to_partitioned,
    describe_landed_file,
    landed_files_for,
)
from indici_dagster.core.storage.s3_storage import S3Storage

DATASETS = [f"Dataset{n:02d}" for n in range(12)]
NEARLY_EMPTY = 100
TARGET_SECONDS = 2.0


def _parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"ID": pa.array(range(100), pa.int64())}), sink)
    return sink.getvalue()


def daily_run(objects: int, repeats: int) -> dict[str, dict]:
    """Median seconds and S3 requests of one date's raw + partitioned storage work, with
    `objects` other objects landed (a year of other dates), by path: `sensor` (the versions
    from the run's tags) and `backfill` (listed per date)."""
    day = MAIN_DAYS[-1] + timedelta(days=1)  # a date none of the other objects has
    with tempfile.TemporaryDirectory() as work, moto_bucket(objects, Path(work)) as bucket:
        os.environ.update(bucket["env"])
        client = boto3.client("s3")
        requests = [0]
        client.meta.events.register(
            "before-send.s3.*", lambda **_: requests.__setitem__(0, requests[0] + 1)
        )
        landing = S3Storage(bucket["landing"], client)
        content = _parquet()
        for dataset in DATASETS:
            for hour in (2, 14):
                landing.put_bytes(f"{dataset}_{day:%Y%m%d}_{hour:02d}0000.parquet", content)
        # what the sensor hands over: the date's versions (found by its tick, not timed here)
        listed = landed_files_for(landing, [day.isoformat()], TIMEZONE)
        sensor_tags = encode_objects_tags(
            day.isoformat(), [(f.object.key, f.object.etag, f.object.size) for f in listed]
        )
        if not sensor_tags:
            raise RuntimeError("the date's versions do not fit the run tags")
        results = {}
        for path, tags in (("sensor", sensor_tags), ("backfill", {})):
            seconds, counted = [], []
            for round_number in range(repeats):
                target = S3Storage(f"s3://partitioned/{objects}-{path}{round_number}", client)
                requests[0] = 0
                started = time.perf_counter()
                # indici/raw, then indici/partitioned: each finds the date's files itself
                files = landed_files_for(landing, [day.isoformat()], TIMEZONE, tags)
                reports = [describe_landed_file(landing, f) for f in files]
                files = landed_files_for(landing, [day.isoformat()], TIMEZONE, tags)
                report = copy_to_partitioned(landing, target, files, {}, run_id="bench")
                seconds.append(time.perf_counter() - started)
                counted.append(requests[0])
                if (
                    len(files) != 2 * len(DATASETS)
                    or report.failed
                    or any(r.error for r in reports)
                ):
                    raise RuntimeError("the date's files were not all found, read and copied")
            results[path] = {
                "objects": bucket["objects"] + 2 * len(DATASETS),
                "seconds": statistics.median(seconds),
                "requests": statistics.median(counted),
            }
        return results


def main() -> int:
    """Run both sizes and print the comparison; exit 2 when the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    small = daily_run(NEARLY_EMPTY, args.repeats)
    large = daily_run(args.objects, args.repeats)
    lines = [
        "| run | landed objects | raw + partitioned storage work (median) | S3 requests |",
        "|---|---|---|---|",
    ]
    for path, label in (("sensor", "sensor-launched (tags)"), ("backfill", "backfill (listing)")):
        for sized in (small, large):
            row = sized[path]
            lines.append(
                f"| {label} | {row['objects']:,} | {row['seconds']:.2f} s | {row['requests']:.0f} |"
            )
    differences = {p: large[p]["seconds"] - small[p]["seconds"] for p in ("sensor", "backfill")}
    verdict = "PASS" if differences["sensor"] <= TARGET_SECONDS else "FAIL"
    sys.stdout.write(
        "\n".join(lines) + f"\n\nsensor-launched difference {differences['sensor']:+.2f} s "
        f"(target within {TARGET_SECONDS:.0f} s): {verdict}"
        + f"\nbackfill difference {differences['backfill']:+.2f} s (listing per date)\n"
    )
    return 0 if verdict == "PASS" else 2


if __name__ == "__main__":
    sys.exit(main())
