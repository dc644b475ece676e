"""A moto S3 server on 127.0.0.1 with many landed objects, for the landing-sensor contender."""

import contextlib
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.constants import DATASET, MAIN_DAYS


@contextlib.contextmanager
def moto_bucket(count: int, work: Path) -> Iterator[dict[str, Any]]:
    """A moto S3 server on 127.0.0.1 with `count` landed objects, and the env pointing at it."""
    import socket
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    from botocore.config import Config
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
            config=Config(max_pool_connections=32),
        )
        s3.create_bucket(Bucket="landing")
        s3.create_bucket(Bucket="partitioned")
        names = sensor_object_names(count)
        started = time.perf_counter()
        how = "moto backend, in process"
        try:
            # fast: straight into the server's in-process backend (moto internals)
            from moto.core.models import DEFAULT_ACCOUNT_ID
            from moto.s3.models import s3_backends

            backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
            for key in names:
                backend.put_object("landing", key, b"PAR1", disable_notification=True)
            listed = s3.list_objects_v2(Bucket="landing", Prefix=names[-1])["KeyCount"]
            if listed != 1:
                raise LookupError("objects put into the backend are not listed")
        except Exception:  # moto changed: fall back to its HTTP API (slow, ~100 objects/s)
            how = "HTTP PUTs"
            with ThreadPoolExecutor(16) as pool:
                list(
                    pool.map(
                        lambda key: s3.put_object(Bucket="landing", Key=key, Body=b"PAR1"),
                        names,
                    )
                )
        yield {
            "env": env,
            "landing": "s3://landing/incoming",
            "partitioned": "s3://partitioned/indici",
            "objects": len(names),
            "upload_seconds": round(time.perf_counter() - started, 2),
            "upload_how": how,
        }
    finally:
        server.stop()
    del work


def sensor_object_names(count: int) -> list[str]:
    """Landed keys over the last 365 days: ~90% a dataset with a rule, ~9.5% one without,
    ~0.5% names that do not parse."""
    names = []
    last = MAIN_DAYS[-1]
    for index in range(count):
        day = last - timedelta(days=index % 365)
        second = index // 365
        stamp = f"{day:%Y%m%d}_{second // 3600 % 24:02d}{second // 60 % 60:02d}{second % 60:02d}"
        if index % 200 == 7:
            names.append(f"incoming/{DATASET}_{day:%Y%m%d}.parquet")  # unrecognised
        elif index % 10 == 3:
            names.append(f"incoming/NoRuleYet_{stamp}.parquet")
        else:
            names.append(f"incoming/{DATASET}_{stamp}.parquet")
    return names
