"""A daily run's raw and partitioned steps at 100,000 landed objects, against a nearly empty bucket.

Times the storage work of `indici/raw` (find the date's files, read their footers) and
`indici/partitioned` (find them again, copy them) through the core functions those steps call,
in a moto S3 bucket filled by `benchmarks.moto_bucket` with a year of other dates' objects, and
counts the S3 requests. Target: the run at 100,000 objects within 2 s of the same run on a
nearly empty bucket. Not part of the test suite:

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
from indici_dagster.core.ingest import (
    copy_to_partitioned,
    describe_landed_file,
    landed_files_for,
)
from indici_dagster.core.storage import S3Storage

DATASETS = [f"Dataset{n:02d}" for n in range(12)]
NEARLY_EMPTY = 100
TARGET_SECONDS = 2.0


def _parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"ID": pa.array(range(100), pa.int64())}), sink)
    return sink.getvalue()


def daily_run(objects: int, repeats: int) -> dict:
    """Median seconds and S3 requests of one date's raw + partitioned storage work, with
    `objects` other objects landed (a year of other dates)."""
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
        seconds, counted = [], []
        for round_number in range(repeats):
            target = S3Storage(f"s3://partitioned/round{round_number}", client)
            requests[0] = 0
            started = time.perf_counter()
            files = landed_files_for(landing, [day.isoformat()], TIMEZONE)  # indici/raw
            reports = [describe_landed_file(landing, f) for f in files]
            files = landed_files_for(landing, [day.isoformat()], TIMEZONE)  # indici/partitioned
            report = copy_to_partitioned(landing, target, files, {}, run_id="bench")
            seconds.append(time.perf_counter() - started)
            counted.append(requests[0])
            if len(files) != 2 * len(DATASETS) or report.failed or any(r.error for r in reports):
                raise RuntimeError("the date's files were not all found, read and copied")
        return {
            "objects": bucket["objects"] + 2 * len(DATASETS),
            "seconds": statistics.median(seconds),
            "requests": statistics.median(counted),
        }


def main() -> int:
    """Run both sizes and print the comparison; exit 2 when the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    small = daily_run(NEARLY_EMPTY, args.repeats)
    large = daily_run(args.objects, args.repeats)
    difference = large["seconds"] - small["seconds"]
    verdict = "PASS" if difference <= TARGET_SECONDS else "FAIL"
    sys.stdout.write(
        "| landed objects | raw + partitioned storage work (median) | S3 requests |\n"
        "|---|---|---|\n"
        f"| {small['objects']:,} | {small['seconds']:.2f} s | {small['requests']:.0f} |\n"
        f"| {large['objects']:,} | {large['seconds']:.2f} s | {large['requests']:.0f} |\n"
        f"\ndifference {difference:+.2f} s (target within {TARGET_SECONDS:.0f} s): {verdict}\n"
    )
    return 0 if verdict == "PASS" else 2


if __name__ == "__main__":
    sys.exit(main())
