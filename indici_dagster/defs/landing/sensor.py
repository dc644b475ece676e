"""`indici_landing_sensor`: hands newly landed files to the ingest job, one run per date.

The sensor records no hand-over of its own. A date's request carries a run key made from the
date and the object versions only, so evaluating again after a lost tick requests the same
versions under the same key, and Dagster's run-key de-duplication keeps a request that was
stored from running twice. What a run processed is recorded by the run (`indici/partitioned`
writes the ledger, each staging load and rpt upsert marks the versions it loaded or applied);
each tick settles each version by its own marks and audit rows once the runs that recorded it
ended (`core/warehouse/ledger_settle.py`): `done` once an rpt upsert applied it, so a run
failing on one file leaves only that file needing attention; a run Dagster no longer knows is
judged from the ledger and the audit log, and said once.
Versions a run staged without applying them get an rpt-only request for their date
(run key `<date>:rpt:<digest>`). A run key whose run ended without recording the request's
versions (a run tagged by hand, or made by anything but this sensor) does not stop them: they
are requested again under `<key>:attempt<n>` (`defs/landing/runs.py`), said once in the log.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from dagster import (
    DailyPartitionsDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.escaping import escape_text
from indici_dagster.core.landing import plan as landing_plan
from indici_dagster.core.landing.run_objects import encode_objects_tags
from indici_dagster.core.landing.scan import scan_landing
from indici_dagster.core.rules.model import Rule
from indici_dagster.core.warehouse import ledger, ledger_settle
from indici_dagster.core.warehouse.audit import AuditEntry, Status, Step, write_audit_entries
from indici_dagster.defs.landing import runs as landing_runs
from indici_dagster.defs.landing.runs import SENSOR_NAME
from indici_dagster.lib.outcomes import OutcomeLogResource, log_delivery
from indici_dagster.lib.resources import FileStorageResource, WarehouseResource
from indici_dagster.lib.rules_resource import RulesResource, fingerprint_tags

MAX_RUNS_PER_TICK = 50
"""A large backlog is handed over this many dates at a time; the rest follows next tick."""
MAX_ATTENTION_LINES = 20
"""Runs or files needing attention named one by one per tick; the rest are counted."""


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
    request: landing_plan.DateRequest,
    tags: Mapping[str, str] | None = None,
    run_key: str | None = None,
) -> RunRequest:
    """The run request of one date: raw, partitioned, and the tables of its datasets (or, for
    an rpt-only request, their rpt assets); `tags` (the rules it was requested under, why it is
    requested) join the request's own, and a full request's versions (`run_objects`: the run
    reads them without listing; not part of the run key). `run_key`: the attempt's key."""
    own = {"indici/files": str(len(request.entries)), "indici/trigger": "landing"}
    if not request.rpt_only:
        own.update(
            encode_objects_tags(
                request.partition_key, [(e.source_key, e.etag, e.size) for e in request.entries]
            )
        )
    return RunRequest(
        run_key=run_key or request.run_key,
        partition_key=request.partition_key,
        asset_selection=landing_runs.selection_of(request),
        tags={**own, **(tags or {})},
    )


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
            "assets of the datasets among the files; for files a run staged without rpt, one "
            "rpt-only run per date. Settles each file by its own outcome: done once applied "
            "to rpt; only files that did not load need attention. Reports files without a rule "
            "and files that did not load every tick (a run Dagster no longer knows: once)."
        ),
    )
    def indici_landing_sensor(
        context: SensorEvaluationContext,
        landing: FileStorageResource,
        warehouse: WarehouseResource,
        rules: RulesResource,
        outcomes: OutcomeLogResource,
    ) -> SensorResult | SkipReason:
        current = rules.rules_for_tick(built_rules, context.log)  # fails the tick if unreadable
        store = warehouse.get_warehouse()
        previous = _load_cursor(context.cursor)
        objects, scan_state = scan_landing(landing.get_storage(), previous.get("scan"))
        with store.transaction() as cursor:
            ledger_settle.require_step_columns(cursor)
            unseen = ledger.find_unseen(cursor, objects)
            waiting = ledger.waiting_for_rule(cursor)
            attention = landing_runs.settle(context.instance, cursor)
            needing_rpt = ledger_settle.needing_rpt(cursor)
            clashes = ledger.name_clashes(cursor)
        plan = landing_plan.plan_landing(
            unseen,
            waiting,
            current.keys(),
            timezone=timezone,
            first_partition=partitions_def.get_first_partition_key(),
            last_partition=partitions_def.get_last_partition_key(),
        )
        candidates = plan.requests + landing_plan.plan_rpt(needing_rpt, current.keys())
        with store.transaction() as cursor:
            handed = _hand_over(context, cursor, candidates, attention)
            # refusals and failed runs Dagster has stored: never a hand-over
            ledger.record(cursor, plan.rejected + handed.failed_entries)
            refused = [_audit_for(e) for e in plan.rejected]
            write_audit_entries(cursor, refused)
        # after the commit: the audit log is the record, CloudWatch a copy (no run: the stream
        # is the sensor's name)
        log_delivery(context.log, outcomes.send_entries(refused, SENSOR_NAME))

        requests = [request for request, _ in handed.requests]
        _report(context, plan, waiting + needing_rpt, requests, current, attention, clashes)
        if handed.in_flight:
            context.log.info(f"{handed.in_flight} request(s) already made, waiting for their runs")
        if len(candidates) > handed.looked_at:
            context.log.info(f"{len(candidates) - handed.looked_at} date(s) left for the next tick")
        run_requests = [
            run_request_for(
                request,
                {
                    **fingerprint_tags(current, {e.dataset for e in request.entries}),
                    **landing_runs.request_tags(request, resolution),
                },
                resolution.run_key,
            )
            for request, resolution in handed.requests
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


@dataclass
class _HandOver:
    """What a tick makes of its candidate requests."""

    requests: list[tuple[landing_plan.DateRequest, landing_runs.Resolution]] = field(
        default_factory=list
    )
    in_flight: int = 0
    looked_at: int = 0
    failed_entries: list[ledger.LedgerEntry] = field(default_factory=list)
    """Versions of requested runs that failed before recording them."""


def _hand_over(
    context: SensorEvaluationContext,
    cursor: Cursor,
    candidates: Sequence[landing_plan.DateRequest],
    attention: list[str],
) -> _HandOver:
    """Decide each candidate by its run key's runs (`landing_runs.resolve`), at most
    `MAX_RUNS_PER_TICK` new requests; a failed rpt-only run takes its versions over (in the
    caller's transaction); lines needing attention are added to `attention`."""
    handed = _HandOver()
    for request in candidates:
        if len(handed.requests) >= MAX_RUNS_PER_TICK:
            break
        handed.looked_at += 1
        resolution = landing_runs.resolve(context.instance, cursor, request)
        if resolution.action == "request":
            handed.requests.append((request, resolution))
            if resolution.spent:  # said on the tick that requests again, not every tick
                context.log.warning(landing_runs.spent_line(request, resolution))
        elif resolution.action == "in_flight":
            handed.in_flight += 1
        elif resolution.action == "failed" and resolution.run is not None:
            run_id, status = resolution.run.run_id, resolution.run.status.value.lower()
            if request.rpt_only:
                ledger_settle.hand_to_failed_run(cursor, request.entries, run_id, f"run {status}")
            else:
                handed.failed_entries += [
                    replace(
                        e, outcome=ledger.Outcome.RUN_FAILED, run_id=run_id, message=f"run {status}"
                    )
                    for e in request.entries
                ]
            attention.append(
                f"run {run_id} ({request.partition_key}, {len(request.entries)} file(s)) "
                f"ended {status}: its files are not done; re-execute the run or backfill the date"
            )
        elif resolution.action == "exhausted":
            attention.append(
                f"{landing_plan.MAX_ATTEMPTS} runs under run key {request.run_key} and its "
                f"attempts ended without processing the {len(request.entries)} file(s) of "
                f"{request.partition_key}: not requested again; backfill the date"
            )
    return handed


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
