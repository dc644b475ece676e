"""`indici_landing_sensor`: hands newly landed files to the ingest job, one run per date."""

import json
from collections.abc import Mapping

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
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from indici_dagster.assets.keys import PARTITIONED, RAW, rpt_key, staging_key
from indici_dagster.core import ledger
from indici_dagster.core.audit import AuditEntry, Status, Step, write_audit_entries
from indici_dagster.core.landing_scan import scan_landing
from indici_dagster.core.rules import Rule
from indici_dagster.resources import FileStorageResource, WarehouseResource
from indici_dagster.rules_resource import RulesResource, fingerprint_tags

MAX_RUNS_PER_TICK = 50
"""A large backlog is handed over this many dates at a time; the rest follows next tick."""


def _load_cursor(cursor: str | None) -> dict:
    """The previous tick's state; an unreadable cursor means starting afresh (the ledger keeps
    anything from being handed over twice)."""
    try:
        state = json.loads(cursor) if cursor else {}
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def _audit_for(entry: ledger.LedgerEntry) -> AuditEntry:
    return AuditEntry(
        Step.LANDING,
        Status.ERROR,
        source_file=entry.file_name or entry.source_key.rsplit("/", 1)[-1],
        dataset=entry.dataset,
        partition_key=entry.partition_key,
        source_key=entry.source_key,
        source_etag=entry.etag,
        message=f"not processed, left in landing: {entry.message}",
    )


def build_landing_sensor(
    job: UnresolvedAssetJobDefinition,
    partitions_def: DailyPartitionsDefinition,
    built_rules: Mapping[str, Rule],
    timezone: str,
) -> SensorDefinition:
    """The landing sensor for these rules, targeting `job`."""

    @sensor(
        name="indici_landing_sensor",
        job=job,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Lists the landing location, and for object versions (key + ETag) not yet handed "
            "over requests one run per date: raw, partitioned and the staging and rpt assets of "
            "the datasets among the files. Reports files without a rule every tick."
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
        plan = ledger.plan_landing(
            unseen,
            waiting,
            current.keys(),
            timezone=timezone,
            first_partition=partitions_def.get_first_partition_key(),
            last_partition=partitions_def.get_last_partition_key(),
        )
        requests = plan.requests[:MAX_RUNS_PER_TICK]
        handed_over = [e for r in requests for e in r.entries]
        rejected = plan.unrecognised + plan.out_of_range
        with store.connection() as connection, connection.cursor() as cursor:
            ledger.record(cursor, handed_over + rejected)
            write_audit_entries(cursor, [_audit_for(e) for e in rejected])
            connection.commit()

        for entry in rejected:
            context.log.warning(f"{entry.source_key}: {entry.message}; left where it is")
        still_waiting = [e for e in waiting if e.dataset not in current] + [
            e for r in requests for e in r.entries if e.outcome is ledger.Outcome.NO_RULE
        ]
        for dataset, dates in ledger.summarise_waiting(still_waiting).items():
            span = dates[0] if len(dates) == 1 else f"{len(dates)} dates, {dates[0]} to {dates[-1]}"
            context.log.warning(
                f"dataset {dataset} has no rule: its files ({span}) are copied and audited, "
                "and will load once a rule exists"
            )
        if plan.not_yet:
            context.log.info(f"{len(plan.not_yet)} file(s) dated after today wait for their date")
        if len(plan.requests) > len(requests):
            context.log.info(f"{len(plan.requests) - len(requests)} date(s) left for the next tick")

        run_requests = [
            RunRequest(
                run_key=request.run_key,
                partition_key=request.partition_key,
                asset_selection=[RAW, PARTITIONED]
                + [key(d) for d in sorted(request.datasets) for key in (staging_key, rpt_key)],
                tags={
                    "indici/files": str(len(request.entries)),
                    "indici/trigger": "landing",
                    **fingerprint_tags(current, {e.dataset for e in request.entries}),
                },
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
