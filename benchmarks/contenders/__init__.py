"""Every contender by name. Each runs in its own subprocess on a freshly reset database, takes the
run's shared configuration (`spec`) and returns {"steps": {name: seconds}, ...}.

Top-level imports here and in the contender modules are standard library only: a contender
subprocess may run under another interpreter (`--dlt-python`) that has only pyarrow, psycopg2
and dlt.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.contenders.baselines import (
    contender_dlt,
    contender_dlt_parquet,
    contender_pandas_to_sql,
)
from benchmarks.contenders.dagster_runs import (
    contender_backfill_dagster_one_file,
    contender_backfill_dagster_range,
    contender_dagster,
    contender_sensor,
)
from benchmarks.contenders.limit import (
    contender_limit_adbc,
    contender_limit_csv_server,
    contender_limit_csv_stdin,
)
from benchmarks.contenders.pipeline import (
    contender_backfill_direct_one_file,
    contender_backfill_direct_range,
    contender_pipeline,
    contender_pipeline_by_partition,
    contender_rss_big,
    contender_rss_small,
)
from benchmarks.util import peak_rss_mb

RUN_ONCE = {"sensor"}
"""Contenders run once, after the other rounds, that repeat their measurements themselves."""

CONTENDERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "limit_adbc": contender_limit_adbc,
    "limit_csv_server": contender_limit_csv_server,
    "limit_csv_stdin": contender_limit_csv_stdin,
    "pipeline": contender_pipeline,
    "pipeline_by_partition": contender_pipeline_by_partition,
    "dagster": contender_dagster,
    "pandas_to_sql": contender_pandas_to_sql,
    "dlt": contender_dlt,
    "dlt_parquet": contender_dlt_parquet,
    "rss_small": contender_rss_small,
    "rss_big": contender_rss_big,
    "backfill_direct_range": contender_backfill_direct_range,
    "backfill_direct_one_file": contender_backfill_direct_one_file,
    "backfill_dagster_range": contender_backfill_dagster_range,
    "backfill_dagster_one_file": contender_backfill_dagster_one_file,
    "sensor": contender_sensor,
}


def run_contender_here(name: str, spec_path: str, result_path: str) -> None:
    """Entry point of a contender subprocess: run it, write its result and peak RSS."""
    import warnings

    warnings.simplefilter("ignore")
    spec = json.loads(Path(spec_path).read_text())
    result = CONTENDERS[name](spec)
    result["peak_rss_mb"] = peak_rss_mb()
    Path(result_path).write_text(json.dumps(result, default=str))
