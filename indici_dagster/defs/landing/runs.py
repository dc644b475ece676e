"""What the landing sensor asks Dagster about runs: how the runs the ledger names ended, and
which run key a request is made under.

A run key alone never says that files were processed: any run can carry the sensor's
`dagster/run_key` and `dagster/sensor_name` tags (set by hand, or copied by a re-execution), and
the daemon then never launches that key again. So a key whose run ended without recording the
request's versions in the ledger is spent, and the request is made again under the next
attempt's key (`<key>:attempt<n>`, at most `landing_plan.MAX_ATTEMPTS`), said once in the log.
"""

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.landing import plan as landing_plan
from indici_dagster.core.warehouse import ledger_settle
from indici_dagster.core.warehouse.ledger_settle import RunEnd
from indici_dagster.lib.keys import AUDIT_SUMMARY, PARTITIONED, RAW, rpt_key, staging_key

SENSOR_NAME = "indici_landing_sensor"
RUN_KEY_TAG = "dagster/run_key"
SENSOR_NAME_TAG = "dagster/sensor_name"
PARTITION_TAG = "dagster/partition"

NEVER_STARTED_AFTER = timedelta(hours=1)
"""A run under a request's key created this long ago and never started spends the key."""
ENDED_BADLY = (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
ENDED = (DagsterRunStatus.SUCCESS, *ENDED_BADLY)
_ENDS = {
    DagsterRunStatus.SUCCESS: RunEnd.SUCCESS,
    DagsterRunStatus.FAILURE: RunEnd.FAILURE,
    DagsterRunStatus.CANCELED: RunEnd.CANCELED,
}


def run_ends(instance: DagsterInstance, run_ids: Collection[str]) -> dict[str, RunEnd]:
    """How each run stands (one storage query); runs Dagster does not know are `unknown`."""
    ids = sorted(set(run_ids))
    runs = {r.run_id: r for r in instance.get_runs(filters=RunsFilter(run_ids=ids))} if ids else {}
    return {
        run_id: (
            _ENDS.get(runs[run_id].status, RunEnd.UNFINISHED) if run_id in runs else RunEnd.UNKNOWN
        )
        for run_id in ids
    }


def settle(instance: DagsterInstance, cursor: Cursor) -> list[str]:
    """Settle the ledger's unsettled versions, each by its own outcome
    (`ledger_settle.decide`), then the versions their successors replaced; returns the lines
    needing attention (one per run and reason)."""
    versions = ledger_settle.unsettled_versions(cursor)
    runs = {r for v in versions for r in (v.run_id, v.staged_run_id) if r}
    ends = run_ends(instance, runs)
    decided = [(version, ledger_settle.decide(version, ends)) for version in versions]
    ledger_settle.settle_versions(cursor, decided)
    ledger_settle.settle_replaced(cursor)
    return ledger_settle.attention_lines(decided, ends)


def selection_of(request: landing_plan.DateRequest) -> list:
    """The assets a request's run materializes, the date's audit summary last (so a late file,
    or an rpt-only run, refreshes it)."""
    datasets = sorted(request.datasets)
    if request.rpt_only:
        return [rpt_key(d) for d in datasets] + [AUDIT_SUMMARY]
    layers = [key(d) for d in datasets for key in (staging_key, rpt_key)]
    return [RAW, PARTITIONED, *layers, AUDIT_SUMMARY]


def _run_for_key(instance: DagsterInstance, run_key: str) -> tuple[DagsterRun, bool] | None:
    """The newest run carrying this sensor's `run_key` (the daemon's own look-up), and whether
    it was created but never started for longer than `NEVER_STARTED_AFTER` (made by hand: the
    daemon submits what it creates at once)."""
    records = instance.get_run_records(
        filters=RunsFilter(tags={RUN_KEY_TAG: run_key, SENSOR_NAME_TAG: SENSOR_NAME}), limit=1
    )
    if not records:
        return None
    run, created = records[0].dagster_run, records[0].create_timestamp
    age = datetime.now(UTC) - (created if created.tzinfo else created.replace(tzinfo=UTC))
    return run, run.status == DagsterRunStatus.NOT_STARTED and age > NEVER_STARTED_AFTER


def _could_process(run: DagsterRun, request: landing_plan.DateRequest) -> bool:
    """True when the run was of the request's date and selected all its assets (the audit
    summary aside: it processes no file, and runs made before it existed lack it)."""
    selected = run.asset_selection
    return run.tags.get(PARTITION_TAG) == request.partition_key and (
        selected is None or set(selection_of(request)) - {AUDIT_SUMMARY} <= set(selected)
    )


@dataclass
class Resolution:
    """What to do for one request: `request` it under `run_key`, wait for its run
    (`in_flight`), nothing (`processed`), record its `failed` run, or give up (`exhausted`)."""

    action: str
    run_key: str
    run: DagsterRun | None = None
    spent: list[tuple[str, DagsterRun]] = field(default_factory=list)
    """(key, run) of runs that ended under an earlier key without processing the versions."""


def resolve(
    instance: DagsterInstance, cursor: Cursor, request: landing_plan.DateRequest
) -> Resolution:
    """The key to request under, walking past keys whose run ended (or was never started)
    without recording the request's versions in the ledger; a run of the request's date and
    assets that failed or was cancelled is the request's failed run, needing attention, not a
    spent key."""
    spent: list[tuple[str, DagsterRun]] = []
    key = request.run_key
    for attempt in range(1, landing_plan.MAX_ATTEMPTS + 1):
        key = landing_plan.attempt_key(request.run_key, attempt)
        found = _run_for_key(instance, key)
        if found is None:
            return Resolution("request", key, None, spent)
        run, never_started = found
        if run.status not in ENDED and not never_started:
            return Resolution("in_flight", key, run, spent)
        if ledger_settle.recorded_by(cursor, run.run_id, request.entries, rpt=request.rpt_only):
            return Resolution("processed", key, run, spent)
        if run.status in ENDED_BADLY and _could_process(run, request):
            return Resolution("failed", key, run, spent)
        spent.append((key, run))
    return Resolution("exhausted", key, None, spent)


def spent_line(request: landing_plan.DateRequest, resolution: Resolution) -> str:
    """The one log line saying a request is made again, and why."""
    key, run = resolution.spent[-1]
    what = "rpt step" if request.rpt_only else "file(s)"
    return (
        f"run {run.run_id} carries this sensor's run key {key} but {_ended(run)} without "
        f"processing the {len(request.entries)} {what} of "
        f"{request.partition_key} it was requested for (made by hand, or by something other "
        f"than this sensor): requested again under run key {resolution.run_key}"
    )


def _ended(run: DagsterRun) -> str:
    if run.status in ENDED:
        return f"ended {run.status.value.lower()}"
    return f"has not started in {NEVER_STARTED_AFTER}"


def request_tags(request: landing_plan.DateRequest, resolution: Resolution) -> dict[str, str]:
    """Tags saying why a request is made: an rpt step for staged versions, or an attempt after
    a spent key."""
    tags: dict[str, str] = {}
    if request.rpt_only:
        staged_by = sorted({e.run_id for e in request.entries if e.run_id})
        tags["indici/trigger"] = "rpt"
        tags["indici/reason"] = (
            f"staged without their rpt step by run {staged_by[0]}"
            if len(staged_by) == 1
            else f"staged without their rpt step by {len(staged_by)} runs"
        )
    if resolution.spent:
        tags["indici/requested_again_after"] = resolution.spent[-1][1].run_id
    return tags
