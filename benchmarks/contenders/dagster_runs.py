"""Through Dagster: partition runs, single-run range backfills and landing-sensor ticks.
Each contender returns {"steps": {name: seconds}, ...}."""

import contextlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import project
from benchmarks.constants import BACKFILL_LAST_DAY, MAIN_DAYS, RANGE_END_TAG, RANGE_START_TAG
from benchmarks.contenders.checks import table_counts
from benchmarks.util import Timer, connect


def _dagster_setup(spec: dict[str, Any], landing: Path) -> tuple[Any, Any, float]:
    """The project's definitions over `landing`, its ingest job, and seconds to build them."""
    started = time.perf_counter()
    defs = project.definitions(spec, str(landing), spec["partitioned"])
    job = project.ingest_job(defs)
    return defs, job, time.perf_counter() - started


def _step_seconds(instance: Any, run_id: str) -> dict[str, float]:
    """Seconds from STEP_START to STEP_SUCCESS/FAILURE of each step, from the event log."""
    starts: dict[str, float] = {}
    spans: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            spans[event.step_key] = entry.timestamp - starts.get(event.step_key, entry.timestamp)
    return {key.replace("indici__", ""): round(value, 3) for key, value in spans.items()}


def _execute(job: Any, instance: Any, **kwargs: Any) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    result = job.execute_in_process(
        asset_selection=project.asset_selection(), instance=instance, raise_on_error=True, **kwargs
    )
    elapsed = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"run {result.run_id} failed")
    return elapsed, _step_seconds(instance, result.run_id)


def contender_dagster(spec: dict[str, Any]) -> dict[str, Any]:
    """Both main partitions materialized through Dagster, one `execute_in_process` each."""
    from dagster import DagsterInstance

    defs, job, load_seconds = _dagster_setup(spec, Path(spec["files"]) / "main")
    del defs
    timer = Timer()
    step_seconds = {}
    with DagsterInstance.ephemeral() as instance:
        for label, day in zip(("initial", "delta"), MAIN_DAYS, strict=True):
            seconds, step_seconds[label] = _execute(job, instance, partition_key=day.isoformat())
            timer.steps[f"run_{label}"] = seconds
    return {
        "steps": timer.steps,
        "definitions_seconds": load_seconds,
        "step_seconds": step_seconds,
        "counts": table_counts(spec["dsn"]),
    }


def _dagster_single_run(spec: dict[str, Any], folder: str, **run: Any) -> dict[str, Any]:
    """One `execute_in_process` over the files in `folder`, timed with its steps."""
    from dagster import DagsterInstance

    _, job, load_seconds = _dagster_setup(spec, Path(spec["files"]) / folder)
    with DagsterInstance.ephemeral() as instance:
        seconds, steps = _execute(job, instance, **run)
    return {
        "steps": {"run": seconds},
        "definitions_seconds": load_seconds,
        "step_seconds": steps,
        "counts": table_counts(spec["dsn"]),
    }


def contender_backfill_dagster_range(spec: dict[str, Any]) -> dict[str, Any]:
    """Every daily backfill file in one single-run range backfill (range tags)."""
    backfill = spec["info"]["backfill"]
    tags = {RANGE_START_TAG: backfill["first_day"], RANGE_END_TAG: backfill["last_day"]}
    return _dagster_single_run(spec, "backfill", tags=tags)


def contender_backfill_dagster_one_file(spec: dict[str, Any]) -> dict[str, Any]:
    """The same rows as one file in one partition run."""
    return _dagster_single_run(spec, "backfill_one", partition_key=BACKFILL_LAST_DAY.isoformat())


def contender_sensor(spec: dict[str, Any]) -> dict[str, Any]:
    """Landing-sensor ticks over the objects in the moto bucket: cold, draining, steady."""
    from dagster import DagsterInstance, DagsterRunStatus, build_sensor_context

    project.ensure_catalog(spec["dsn"])  # the ledger must exist to be emptied
    defs = project.definitions(spec, spec["sensor"]["landing"], spec["sensor"]["partitioned"])
    sensor = defs.resolve_sensor_def(project.SENSOR)
    timer = Timer()
    with DagsterInstance.ephemeral() as instance:

        def tick(cursor: str | None):
            with build_sensor_context(
                instance=instance, definitions=defs, cursor=cursor, resources=defs.resources
            ) as context:
                return sensor.evaluate_tick(context)

        def timed(what: Callable[[], Any]) -> tuple[float, Any]:
            started = time.perf_counter()
            value = what()
            return time.perf_counter() - started, value

        # this contender runs once (a drain at 100k objects takes many minutes) and repeats
        # the cold and the steady tick itself; the steps are medians over those repeats
        repeats = max(1, int(spec["repeats"]))
        cold = []
        for _ in range(repeats):
            with contextlib.closing(connect(spec["dsn"])) as connection:
                with connection.cursor() as cursor:  # forget every hand-over: a cold start
                    cursor.execute(f"TRUNCATE {project.LEDGER}")
                connection.commit()
            seconds, result = timed(lambda: tick(None))
            cold.append(seconds)
        first_cursor = result.cursor or ""
        first_runs = len(result.run_requests or [])
        drained = 1
        job = defs.resolve_job_def("indici_ingest_job")

        def store(result) -> None:
            """Create the requested runs as the daemon does (not launched): the sensor records
            no hand-over itself, and skips dates whose run is stored and unfinished."""
            for request in result.run_requests or []:
                instance.create_run_for_job(
                    job_def=job,
                    status=DagsterRunStatus.NOT_STARTED,
                    tags={
                        **request.tags,
                        "dagster/run_key": request.run_key,
                        "dagster/sensor_name": "indici_landing_sensor",
                    },
                )

        with timer.step("drain_ticks"):
            while result.run_requests and drained < 1000:
                store(result)
                result = tick(result.cursor)
                drained += 1
        steady = []
        for _ in range(repeats):
            seconds, result = timed(lambda cursor=result.cursor: tick(cursor))
            steady.append(seconds)
        # what part of a tick is only the S3 listing (through the same resource), once
        storage = project.landing_storage(defs)
        listing, listed = timed(lambda: sum(1 for _ in storage.list_objects()))
        timer.steps.update(
            first_tick=statistics.median(cold),
            steady_tick=statistics.median(steady),
            list_only=listing,
        )
    with contextlib.closing(connect(spec["dsn"])) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {project.LEDGER}")
        ledger_rows = cursor.fetchone()[0]
    return {
        "steps": timer.steps,
        "ticks_to_drain": drained,
        "first_tick_runs": first_runs,
        "tick_seconds": {"cold": cold, "steady": steady},
        "cursor_bytes": len(first_cursor.encode()),
        "cursor_bytes_steady": len((result.cursor or "").encode()),
        "cursor": result.cursor,
        "ledger_rows": ledger_rows,
        "listed": listed,
    }


RUN_ONCE = {"sensor"}
