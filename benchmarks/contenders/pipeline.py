"""The pipeline's own loads and upserts without Dagster: loads first, file by file, RSS probes and
the direct backfill. Each contender returns {"steps": {name: seconds}, ...}."""

import uuid
from datetime import date
from pathlib import Path
from typing import Any

from benchmarks import project
from benchmarks.constants import (
    BACKFILL_LAST_DAY,
    BACKFILL_ONE_FILE,
    BIG_FILE,
    DELTA_FILE,
    INITIAL_FILE,
    KEY,
    MAIN_DAYS,
    TABLE,
)
from benchmarks.contenders.checks import fingerprint, table_counts
from benchmarks.util import Timer, peak_rss_mb


def contender_pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's own staging loads and rpt upserts, through the functions the assets call."""
    project.ensure_catalog(spec["dsn"])
    timer = Timer()
    run_id = str(uuid.uuid4())
    main = Path(spec["files"]) / "main"
    loaded, upserts = {}, {}
    for label, name in (("initial", INITIAL_FILE), ("delta", DELTA_FILE)):
        with timer.step(f"load_{label}"):
            loaded[label] = project.pipeline_load(spec["dsn"], main, name, run_id).rows_loaded
    for label, day in zip(("initial", "delta"), MAIN_DAYS, strict=True):
        with timer.step(f"upsert_{label}"):
            results = project.pipeline_upsert(spec["dsn"], day, day, run_id)
        upserts[label] = {
            "inserted": sum(r.rows_inserted for r in results),
            "updated": sum(r.rows_updated for r in results),
            "unchanged": sum(r.rows_unchanged for r in results),
        }
    out: dict[str, Any] = {
        "steps": timer.steps,
        "loaded": loaded,
        "upserts": upserts,
        "counts": table_counts(spec["dsn"]),
    }
    if spec["verify"]:
        out["fingerprints"] = {
            "staging": fingerprint(
                spec["dsn"], "indici_staging", TABLE, "_source_file,_row_number"
            ),
            "rpt": fingerprint(spec["dsn"], "rpt", TABLE, KEY),
        }
    return out


def contender_pipeline_by_partition(spec: dict[str, Any]) -> dict[str, Any]:
    """The `dagster` contender's work without Dagster: per date, in the same order as its runs,
    load the date's file and upsert the date (the baseline for the Dagster overhead)."""
    project.ensure_catalog(spec["dsn"])
    timer = Timer()
    run_id = str(uuid.uuid4())
    main = Path(spec["files"]) / "main"
    for label, name, day in zip(
        ("initial", "delta"), (INITIAL_FILE, DELTA_FILE), MAIN_DAYS, strict=True
    ):
        with timer.step(f"run_{label}"):
            project.pipeline_load(spec["dsn"], main, name, run_id)
            project.pipeline_upsert(spec["dsn"], day, day, run_id)
    return {"steps": timer.steps, "counts": table_counts(spec["dsn"])}


def contender_rss_small(spec: dict[str, Any]) -> dict[str, Any]:
    """Only the staging load of the main initial file: peak RSS at the main size."""
    return _rss_probe(spec, Path(spec["files"]) / "main", INITIAL_FILE)


def contender_rss_big(spec: dict[str, Any]) -> dict[str, Any]:
    """Only the staging load of the big file: peak RSS at the big size."""
    return _rss_probe(spec, Path(spec["files"]) / "big", BIG_FILE)


def _rss_probe(spec: dict[str, Any], folder: Path, name: str) -> dict[str, Any]:
    project.ensure_catalog(spec["dsn"])
    before = peak_rss_mb()
    timer = Timer()
    with timer.step("load"):
        result = project.pipeline_load(spec["dsn"], folder, name, str(uuid.uuid4()))
    return {"steps": timer.steps, "rows": result.rows_loaded, "rss_before_load_mb": before}


def contender_backfill_direct_range(spec: dict[str, Any]) -> dict[str, Any]:
    """Every daily file through `load_file_into_staging`, then one upsert for the range."""
    project.ensure_catalog(spec["dsn"])
    folder = Path(spec["files"]) / "backfill"
    run_id = str(uuid.uuid4())
    backfill = spec["info"]["backfill"]
    timer = Timer()
    with timer.step("load"):
        for path in sorted(folder.glob("*.parquet")):
            project.pipeline_load(spec["dsn"], folder, path.name, run_id)
    first, last = (
        date.fromisoformat(backfill["first_day"]),
        date.fromisoformat(backfill["last_day"]),
    )
    with timer.step("upsert"):
        project.pipeline_upsert(spec["dsn"], first, last, run_id)
    return {"steps": timer.steps, "counts": table_counts(spec["dsn"])}


def contender_backfill_direct_one_file(spec: dict[str, Any]) -> dict[str, Any]:
    """The same rows as one file: one load, one upsert."""
    project.ensure_catalog(spec["dsn"])
    run_id = str(uuid.uuid4())
    timer = Timer()
    with timer.step("load"):
        project.pipeline_load(
            spec["dsn"], Path(spec["files"]) / "backfill_one", BACKFILL_ONE_FILE, run_id
        )
    with timer.step("upsert"):
        project.pipeline_upsert(spec["dsn"], BACKFILL_LAST_DAY, BACKFILL_LAST_DAY, run_id)
    return {"steps": timer.steps, "counts": table_counts(spec["dsn"])}
