"""`indici_retention_job` and its daily `indici_retention_schedule`: off unless a retention
setting is set.

- `INDICI_STAGING_RETENTION_DAYS`: each dataset's staging rows of files older than that many
  days, and only of files rpt already holds (`core/warehouse/retention.py` decides, in SQL).
- `INDICI_RUN_RETENTION_DAYS`: Dagster run records (with their event logs) of runs that ended
  and were created more than that many days ago; Dagster OSS never deletes old runs itself.

With neither set, neither the job nor the schedule exists: nothing can be pruned by launching
it from the UI, and nothing looks scheduled that would do nothing. The job is an op job, so it
is in no asset group and never joins the ingest job's runs or backfills. Both steps are audited
(`retention` rows with counts). The landing sensor needs no run to stay: it settles versions
from the ledger and the audit log and says a deleted run's files at most once.
"""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultScheduleStatus,
    JobDefinition,
    OpExecutionContext,
    RunsFilter,
    ScheduleDefinition,
    job,
    op,
)

from indici_dagster.core.rules.model import Rule
from indici_dagster.core.settings import Settings
from indici_dagster.core.warehouse.retention import runs_deleted_audit
from indici_dagster.lib.resources import WarehouseResource

RETENTION_JOB = "indici_retention_job"
RETENTION_SCHEDULE = "indici_retention_schedule"
RETENTION_CRON = "30 3 * * *"
"""Daily, at 03:30 in the pipeline's time zone: after the night's files, before the morning."""
ENDED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
RUNS_PER_BATCH = 200


def cutoff_for(days: int, now: datetime | None = None) -> datetime:
    """The moment `days` days before `now` (UTC): older than this is pruned."""
    return (now or datetime.now(UTC)) - timedelta(days=days)


def delete_old_runs(instance: DagsterInstance, cutoff: datetime, keep: str) -> int:
    """Delete the records (and event logs) of runs that ended and were created before `cutoff`,
    never the run `keep` (the one deleting); returns how many."""
    filters = RunsFilter(created_before=cutoff, statuses=ENDED)
    deleted = 0
    while True:
        records = instance.get_run_records(filters=filters, limit=RUNS_PER_BATCH)
        doomed = [r.dagster_run.run_id for r in records if r.dagster_run.run_id != keep]
        for run_id in doomed:
            instance.delete_run(run_id)
        deleted += len(doomed)
        if len(records) < RUNS_PER_BATCH or not doomed:
            return deleted


def build_retention(
    settings: Settings, rules: Mapping[str, Rule]
) -> tuple[list[JobDefinition], list[ScheduleDefinition]]:
    """The retention job and its schedule for these settings, or nothing when both retention
    settings are unset."""
    staging_days, run_days = settings.staging_retention_days, settings.run_retention_days
    if staging_days is None and run_days is None:
        return [], []
    tables = sorted((rule.dataset, rule.table) for rule in rules.values())

    @op(description="Deletes staging rows of old files that rpt holds; audited.")
    def prune_staging(context: OpExecutionContext, warehouse: WarehouseResource) -> None:
        if staging_days is None:
            context.log.info("INDICI_STAGING_RETENTION_DAYS is unset: staging is kept")
            return
        db, cutoff = warehouse.get_warehouse(), cutoff_for(staging_days)
        pruned = [
            db.prune_staging(dataset, table, cutoff, run_id=context.run_id, days=staging_days)
            for dataset, table in tables
        ]
        for p in pruned:
            context.log.info(f"{p.dataset}: {p.rows} staging row(s) of {p.files} file(s) deleted")
        context.add_output_metadata(
            {
                "rows_deleted": sum(p.rows for p in pruned),
                "files_pruned": sum(p.files for p in pruned),
                "cutoff": cutoff.isoformat(),
            }
        )

    @op(description="Deletes Dagster run records of ended runs older than the retention.")
    def prune_runs(context: OpExecutionContext, warehouse: WarehouseResource) -> None:
        if run_days is None:
            context.log.info("INDICI_RUN_RETENTION_DAYS is unset: runs are kept")
            return
        cutoff = cutoff_for(run_days)
        deleted = delete_old_runs(context.instance, cutoff, context.run_id)
        warehouse.get_warehouse().write_audit(
            [runs_deleted_audit(deleted, cutoff, context.run_id, run_days)]
        )
        context.log.info(f"{deleted} Dagster run record(s) deleted")
        context.add_output_metadata({"runs_deleted": deleted, "cutoff": cutoff.isoformat()})

    @job(
        name=RETENTION_JOB,
        description="Deletes staging rows of old, applied files and old Dagster run records, "
        "as INDICI_STAGING_RETENTION_DAYS and INDICI_RUN_RETENTION_DAYS say; rpt is untouched.",
    )
    def retention_job() -> None:
        prune_staging()
        prune_runs()

    schedule = ScheduleDefinition(
        name=RETENTION_SCHEDULE,
        job=retention_job,
        cron_schedule=RETENTION_CRON,
        execution_timezone=settings.timezone,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Runs indici_retention_job daily.",
    )
    return [retention_job], [schedule]
