"""Every use of the pipeline's own code, in one place.

When the project's API moves (module split, renamed function), only this module changes. Imports
happen inside the functions: the dlt contenders run under another interpreter that has no
`indici_dagster`, and must still be able to import the benchmark package.
"""

from datetime import date
from pathlib import Path
from typing import Any

from benchmarks.constants import DATASET, RULE, TIMEZONE
from benchmarks.util import day_window

PACKAGE = "indici_dagster"
"""The project's package directory, fingerprinted before and after a run."""

SENSOR = "indici_landing_sensor"
LEDGER = "indici_staging.landing_ledger"


def rule_columns() -> list[tuple[str, str, str]]:
    """(source name, Postgres name, Postgres type) of the bench rule, via the project's parser."""
    from indici_dagster.core.rules.model import parse_rule

    return [(c.source, c.name, c.type) for c in parse_rule(RULE).columns]


def nhi_number(number: int) -> str:
    """A valid-looking NHI number, as the project's sample data makes them."""
    from indici_dagster.core.sample.data import nhi_number as make

    return make(number)


def warehouse(dsn: str) -> Any:
    """The project's warehouse on `dsn` in the bench time zone."""
    from indici_dagster.core.warehouse.facade import Warehouse

    return Warehouse(dsn, TIMEZONE)


def ensure_catalog(dsn: str) -> None:
    """Create the project's schemas and catalog tables (what a first run does)."""
    warehouse(dsn).ensure_catalog()


def pipeline_load(dsn: str, folder: Path, name: str, run_id: str) -> Any:
    """One file through `load_file_into_staging`, opened as the staging asset does; the result
    has `rows_loaded`."""
    from indici_dagster.core.filenames import parse_file_name
    from indici_dagster.core.parquet.reader import open_parquet
    from indici_dagster.core.rules.model import parse_rule
    from indici_dagster.core.storage.local_storage import LocalStorage

    storage = LocalStorage(folder)
    obj = storage.head(name)
    with storage.open_for_read(name, etag=obj.etag) as handle:
        return warehouse(dsn).load_file_into_staging(
            parse_rule(RULE),
            parse_file_name(name, TIMEZONE),
            open_parquet(handle),
            run_id=run_id,
            source_key=storage.display(name),
            source_etag=obj.etag,
        )


def pipeline_upsert(dsn: str, first: date, last: date, run_id: str) -> list:
    """`upsert_window_into_rpt` over the days `first`..`last`; each result has
    `rows_inserted`, `rows_updated` and `rows_unchanged`."""
    from indici_dagster.core.rules.model import parse_rule
    from indici_dagster.core.steps.ingest import partition_key_of_file

    start, end = day_window(first, last)
    return warehouse(dsn).upsert_window_into_rpt(
        parse_rule(RULE),
        start,
        end,
        run_id=run_id,
        partition_key_of=lambda name: partition_key_of_file(name, TIMEZONE),
    )


def definitions(spec: dict[str, Any], landing: str, partitioned: str) -> Any:
    """The project's Dagster definitions for the bench rule, landing and partitioned places."""
    from indici_dagster.core.settings import Settings
    from indici_dagster.definitions import build_definitions

    return build_definitions(
        Settings(
            landing=landing,
            partitioned=partitioned,
            rules=spec["rules_path"],
            pg_dsn=spec["dsn"],
            timezone=TIMEZONE,
            start_date=spec["start_date"],
        )
    )


def ingest_job(defs: Any) -> Any:
    """The project's ingest job from `defs`."""
    from indici_dagster.definitions import INGEST_JOB

    return defs.resolve_job_def(INGEST_JOB)


def asset_selection() -> list:
    """The assets one partition run materializes for the bench dataset."""
    from indici_dagster.lib.keys import PARTITIONED, RAW, rpt_key, staging_key

    return [RAW, PARTITIONED, staging_key(DATASET), rpt_key(DATASET)]


def landing_storage(defs: Any) -> Any:
    """The landing resource's storage (for the bare listing the sensor is compared with)."""
    return defs.resources["landing"].get_storage()
