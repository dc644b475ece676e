"""`indici/audit_summary`: each date's files per dataset, in `rpt.indici_audit_daily`.

It depends on every rpt asset, so it runs last in every run of the ingest job (the sensor's runs,
rpt-only runs and backfills alike) and a late file refreshes its date's row. Its two checks
recount the summary from the audit log and the ledger (`core/quality/audit_reconcile.py`)."""

from collections.abc import Iterable

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from indici_dagster.core.pipeline_names import AUDIT_DAILY_TABLE, RPT_SCHEMA
from indici_dagster.core.quality.audit_reconcile import reconcile
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster.lib.keys import AUDIT_SUMMARY, rpt_key
from indici_dagster.lib.partitions import RANGE_BACKFILL
from indici_dagster.lib.resources import WarehouseResource
from indici_dagster.lib.step_failures import TRANSIENT_RETRY, fail_fast_on_permanent_errors

AUDIT_GROUP = "audit"
FILES_COUNTED = "every_landed_file_counted"
TOTALS_RECONCILE = "totals_reconcile_with_audit_log"

CHECK_SPECS = [
    AssetCheckSpec(
        FILES_COUNTED,
        asset=AUDIT_SUMMARY,
        blocking=False,
        description="Every file the landing ledger dates to the date is counted in its "
        "dataset's row.",
    ),
    AssetCheckSpec(
        TOTALS_RECONCILE,
        asset=AUDIT_SUMMARY,
        blocking=False,
        description="Every count of every row equals a recount from the audit log (each file "
        "by its newest outcome, rows from its newest attempt).",
    ),
]


def evaluate_summary_checks(warehouse: Warehouse, dates: Iterable[str]) -> list[AssetCheckResult]:
    """Results of both checks for these dates, from one snapshot of the warehouse."""
    keys = sorted(dates)
    stored, audit, landed = warehouse.audit_summary_sources(keys)
    found = reconcile(stored, audit, landed)
    return [
        AssetCheckResult(
            check_name=FILES_COUNTED,
            passed=not found.missing_files,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "files_landed": len(landed),
                "not_counted": MetadataValue.json(found.missing_files),
            },
        ),
        AssetCheckResult(
            check_name=TOTALS_RECONCILE,
            passed=not found.mismatched,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "rows_checked": len(stored),
                "mismatched": MetadataValue.json(found.mismatched),
            },
        ),
    ]


def build_audit_summary_asset(
    datasets: Iterable[str], partitions_def: DailyPartitionsDefinition
) -> AssetsDefinition:
    """The summary asset, downstream of the rpt asset of each of these datasets."""

    @asset(
        key=AUDIT_SUMMARY,
        deps=[rpt_key(d) for d in sorted(datasets)],
        group_name=AUDIT_GROUP,
        pool="indici_warehouse",
        description="Each date's files per dataset in `rpt.indici_audit_daily`: received, "
        "loaded, empty, failed, without a rule, and their rows (each file once, by its newest "
        "outcome). Readable by the reader role.",
        partitions_def=partitions_def,
        backfill_policy=RANGE_BACKFILL,
        retry_policy=TRANSIENT_RETRY,
        kinds={"postgres"},
        check_specs=CHECK_SPECS,
    )
    @fail_fast_on_permanent_errors
    def audit_summary(
        context: AssetExecutionContext, warehouse: WarehouseResource
    ) -> MaterializeResult:
        db = warehouse.get_warehouse()
        rows = db.replace_audit_summary(context.partition_keys)
        for partition_key in context.partition_keys:
            day = [r for r in rows if str(r.partition_key) == partition_key]
            context.add_asset_metadata(
                {
                    "dagster/partition_row_count": len(day),
                    "files_received": sum(r.files_received for r in day),
                    "files_loaded": sum(r.files_loaded for r in day),
                    "files_failed": sum(r.files_failed for r in day),
                    "files_no_rule": sum(r.files_no_rule for r in day),
                    "files_not_yet_loaded": sum(r.files_pending for r in day),
                },
                partition_key=partition_key,
            )
        return MaterializeResult(
            metadata={"dagster/table_name": f"{RPT_SCHEMA}.{AUDIT_DAILY_TABLE}"},
            check_results=evaluate_summary_checks(db, context.partition_keys),
        )

    return audit_summary
