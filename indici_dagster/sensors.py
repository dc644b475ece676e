"""`indici_landing_sensor`: hands newly landed files to the ingest job, one run per date.

The sensor records no hand-over of its own. A date's request carries a run key made from the
date and the object versions only, so evaluating again after a lost tick requests the same
versions under the same key, and Dagster's run-key de-duplication keeps a request that was
stored from running twice. What a run processed is recorded by the run (`indici/partitioned`
writes the ledger); each tick settles those versions by asking Dagster how their run ended.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DailyPartitionsDefinition,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.assets.keys import PARTITIONED, RAW, rpt_key, staging_key
from indici_dagster.core import landing_plan, ledger
from indici_dagster.core.audit import AuditEntry, Status, Step, write_audit_entries
from indici_dagster.core.escaping import escape_text
from indici_dagster.core.landing_scan import scan_landing
from indici_dagster.core.rules import Rule
from indici_dagster.core.run_objects import encode_objects_tags
from indici_dagster.resources import FileStorageResource, WarehouseResource
from indici_dagster.rules_resource import RulesResource, fingerprint_tags

SENSOR_NAME = "indici_landing_sensor"
RUN_KEY_TAG = "dagster/run_key"
SENSOR_NAME_TAG = "dagster/sensor_name"
ROOT_RUN_TAG = "dagster/root_run_id"
MAX_RUNS_PER_TICK = 50
"""A large backlog is handed over this many dates at a time; the rest follows next tick."""
MAX_ATTENTION_LINES = 20
"""Runs or files needing attention named one by one per tick; the rest are counted."""

_ENDED_BADLY = (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
_ENDED = (DagsterRunStatus.SUCCESS, *_ENDED_BADLY)


def _load_cursor(cursor: str | None) -> dict:
    """The previous tick's state; an unreadable cursor means starting afresh (the ledger and
    run keys keep anything from being processed twice)."""
    try:
        state = json.loads(cursor) if cursor else {}
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def _audit_for(entry: ledger.LedgerEntry) -> AuditEntry:
    return AuditEntry(
        Step.LANDING,
        Status.ERROR,
        source_file=entry.file_name or escape_text(entry.source_key.rsplit("/", 1)[-1], 200),
        dataset=entry.dataset,
        partition_key=entry.partition_key,
        source_key=entry.source_key,
        source_etag=entry.etag,
        message=f"not processed, left in landing: {entry.message}",
    )


def run_request_for(
    request: landing_plan.DateRequest, tags: Mapping[str, str] | None = None
) -> RunRequest:
    """The run request of one date: raw, partitioned, and the tables of its datasets; `tags`
    (the rules it was requested under) join the request's own, and the versions requested
    (`run_objects`: the run reads them without listing; not part of the run key)."""
    return RunRequest(
        run_key=request.run_key,
        partition_key=request.partition_key,
        asset_selection=[RAW, PARTITIONED]
        + [key(d) for d in sorted(request.datasets) for key in (staging_key, rpt_key)],
        tags={
            "indici/files": str(len(request.entries)),
            "indici/trigger": "landing",
            **encode_objects_tags(
                request.partition_key, [(e.source_key, e.etag, e.size) for e in request.entries]
            ),
            **(tags or {}),
        },
    )


def _run_for_key(instance: DagsterInstance, run_key: str) -> DagsterRun | None:
    """The newest run this sensor created under `run_key` (the daemon's own look-up)."""
    runs = instance.get_runs(
        filters=RunsFilter(tags={RUN_KEY_TAG: run_key, SENSOR_NAME_TAG: SENSOR_NAME}), limit=1
    )
    return runs[0] if runs else None


def _succeeded_later(instance: DagsterInstance, run: DagsterRun) -> bool:
    """True when a re-execution of `run` (same root run) has succeeded."""
    root = run.tags.get(ROOT_RUN_TAG) or run.run_id
    return bool(
        instance.get_run_ids(
            filters=RunsFilter(tags={ROOT_RUN_TAG: root}, statuses=[DagsterRunStatus.SUCCESS]),
            limit=1,
        )
    )


def _settle_runs(
    context: SensorEvaluationContext, cursor: Cursor, unsettled: Sequence[ledger.UnsettledRun]
) -> list[str]:
    """Mark versions of finished runs `done` or `run_failed`; lines for runs needing attention."""
    attention = []
    for item in unsettled:
        run = context.instance.get_run_by_id(item.run_id)
        if run is None:
            attention.append(f"run {item.run_id} ({item.files} file(s)) is unknown to Dagster")
            continue
        if run.status not in _ENDED:
            continue
        if run.status == DagsterRunStatus.SUCCESS or _succeeded_later(context.instance, run):
            ledger.settle_run(cursor, item.run_id, ledger.Outcome.DONE, None)
            continue
        status = run.status.value.lower()
        ledger.settle_run(cursor, item.run_id, ledger.Outcome.RUN_FAILED, f"run {status}")
        span = (
            item.first_date
            if item.first_date == item.last_date
            else (f"{item.first_date} to {item.last_date}")
        )
        attention.append(
            f"run {item.run_id} ({span}, {item.files} file(s)) ended {status}: its files are "
            "not done; re-execute the run or backfill the date"
        )
    return attention


class NamedJob(Protocol):
    """A job definition, named: `define_asset_job`'s result or a `JobDefinition`."""

    name: str


def build_landing_sensor(
    job: NamedJob,
    partitions_def: DailyPartitionsDefinition,
    built_rules: Mapping[str, Rule],
    timezone: str,
) -> SensorDefinition:
    """The landing sensor for these rules, targeting `job` (by name)."""

    @sensor(
        name=SENSOR_NAME,
        job_name=job.name,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Lists the landing location, and for object versions (key + ETag) no run has "
            "processed requests one run per date: raw, partitioned and the staging and rpt "
            "assets of the datasets among the files. Reports files without a rule and runs "
            "that failed every tick."
        ),
    )
    def indici_landing_sensor(
        context: SensorEvaluationContext,
        landing: FileStorageResource,
        warehouse: WarehouseResource,
        rules: RulesResource,
    ) -> SensorResult | SkipReason:
        current = rules.rules_for_tick(built_rules, context.log)  # fails the tick if unreadable
        store = warehouse.get_warehouse()
        previous = _load_cursor(context.cursor)
        objects, scan_state = scan_landing(landing.get_storage(), previous.get("scan"))
        with store.connection() as connection, connection.cursor() as cursor:
            unseen = ledger.find_unseen(cursor, objects)
            waiting = ledger.waiting_for_rule(cursor)
            attention = _settle_runs(context, cursor, ledger.unsettled_runs(cursor))
            clashes = ledger.name_clashes(cursor)
            connection.commit()
        plan = landing_plan.plan_landing(
            unseen,
            waiting,
            current.keys(),
            timezone=timezone,
            first_partition=partitions_def.get_first_partition_key(),
            last_partition=partitions_def.get_last_partition_key(),
        )
        requests, in_flight, ended = [], [], []
        for request in plan.requests:
            if len(requests) >= MAX_RUNS_PER_TICK:
                break
            # the daemon's own de-duplication, asked first so stored requests take no slot
            run = _run_for_key(context.instance, request.run_key)
            if run is None:
                requests.append(request)
            elif run.status not in _ENDED:
                in_flight.append(request)
            else:
                ended.append((request, run))
        failed_entries = []
        clash_keys = {key for key, _ in clashes}
        for request, run in ended:
            if run.status == DagsterRunStatus.SUCCESS:
                if any(e.source_key not in clash_keys for e in request.entries):
                    attention.append(
                        f"run {run.run_id} for {request.partition_key} succeeded without "
                        f"recording {len(request.entries)} of its files"
                    )
                continue
            status = run.status.value.lower()
            failed_entries += [
                replace(
                    e, outcome=ledger.Outcome.RUN_FAILED, run_id=run.run_id, message=f"run {status}"
                )
                for e in request.entries
            ]
            attention.append(
                f"run {run.run_id} ({request.partition_key}, {len(request.entries)} file(s)) "
                f"ended {status}: its files are not done; re-execute the run or backfill the date"
            )
        with store.connection() as connection, connection.cursor() as cursor:
            # refusals and failed runs Dagster has stored: never a hand-over
            ledger.record(cursor, plan.rejected + failed_entries)
            write_audit_entries(cursor, [_audit_for(e) for e in plan.rejected])
            connection.commit()

        _report(context, plan, waiting, requests, current, attention, clashes)
        if in_flight:
            context.log.info(f"{len(in_flight)} date(s) already requested, waiting for their runs")
        if len(plan.requests) > len(requests) + len(in_flight) + len(ended):
            left = len(plan.requests) - len(requests) - len(in_flight) - len(ended)
            context.log.info(f"{left} date(s) left for the next tick")
        run_requests = [
            run_request_for(
                request, fingerprint_tags(current, {e.dataset for e in request.entries})
            )
            for request in requests
        ]
        cursor_state = json.dumps(
            {
                "scan": scan_state,
                "looked_at": len(objects),
                "new": len(unseen),
                "requested": len(run_requests),
            }
        )
        if not run_requests:
            return SensorResult(
                skip_reason=SkipReason(f"no new files among {len(objects)} looked at"),
                cursor=cursor_state,
            )
        return SensorResult(run_requests=run_requests, cursor=cursor_state)

    return indici_landing_sensor


def _report(
    context: SensorEvaluationContext,
    plan: landing_plan.LandingPlan,
    waiting: Sequence[ledger.LedgerEntry],
    requests: Sequence[landing_plan.DateRequest],
    rules: Mapping[str, Rule],
    attention: Sequence[str],
    clashes: Sequence[tuple[str, str | None]],
) -> None:
    """The tick's log: refusals, datasets waiting for a rule, and what needs attention."""
    for entry in plan.rejected:
        context.log.warning(f"{escape_text(entry.source_key)}: {entry.message}; left where it is")
    still_waiting = [e for e in waiting if e.dataset not in rules] + [
        e for r in requests for e in r.entries if e.outcome is ledger.Outcome.NO_RULE
    ]
    for dataset, dates in landing_plan.summarize_waiting(still_waiting).items():
        span = dates[0] if len(dates) == 1 else f"{len(dates)} dates, {dates[0]} to {dates[-1]}"
        context.log.warning(
            f"dataset {dataset} has no rule: its files ({span}) are copied and audited, "
            "and will load once a rule exists"
        )
    for line in attention[:MAX_ATTENTION_LINES]:
        context.log.warning(f"needs attention: {line}")
    for key, partition_key in clashes[:MAX_ATTENTION_LINES]:
        context.log.warning(
            f"needs attention: {escape_text(key)} ({partition_key}) has the same file name as "
            "another key and is not processed: remove or rename one"
        )
    if len(attention) > MAX_ATTENTION_LINES:
        context.log.warning(f"{len(attention) - MAX_ATTENTION_LINES} more runs need attention")
    if plan.not_yet:
        context.log.info(f"{len(plan.not_yet)} file(s) dated after today wait for their date")
