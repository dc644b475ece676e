"""The table layers, one pair of assets per dataset with a rule: `staging/<D>` and `rpt/<D>`.

Each file's staging load and each rpt upsert records its run in the landing ledger, in the
transaction that writes the rows: only a version both steps recorded can be settled `done`."""

from collections.abc import Sequence

from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    AssetsDefinition,
    DailyPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from indici_dagster.core.pipeline_names import RPT_SCHEMA, STAGING_SCHEMA
from indici_dagster.core.quality.queries import WarehouseQueries
from indici_dagster.core.rules.model import Rule
from indici_dagster.core.steps.ingest import load_partitions_into_staging, partition_key_of_file
from indici_dagster.core.types.registry import METADATA
from indici_dagster.core.warehouse.audit import Step
from indici_dagster.core.warehouse.rpt_upsert import FileUpsert
from indici_dagster.defs.tables.checks import (
    evaluate_rpt_checks,
    evaluate_staging_checks,
    rpt_check_specs,
    staging_check_specs,
)
from indici_dagster.defs.tables.schema import column_schema, declared_columns
from indici_dagster.lib.keys import PARTITIONED, rpt_key, staging_key
from indici_dagster.lib.outcomes import OutcomeLogResource, sends_outcomes
from indici_dagster.lib.partitions import RANGE_BACKFILL, group_by_partition
from indici_dagster.lib.resources import FileStorageResource, WarehouseResource
from indici_dagster.lib.rules_resource import RulesResource
from indici_dagster.lib.step_failures import TRANSIENT_RETRY, fail_fast_on_permanent_errors


def _describe(rule: Rule, layer: str) -> str:
    kind = "static snapshot" if rule.is_static else f"keyed on {', '.join(rule.primary_key)}"
    about = f"{rule.description}\n\n" if rule.description else ""
    if layer == "staging":
        return about + (
            f"Every row of each {rule.dataset} file of the date in `indici_staging.{rule.table}` "
            f"({kind}), with `_source_file`, `_source_ts` and `_row_number`. Re-runs replace a "
            "file's rows, never duplicate them."
        )
    return about + (
        f"Current state of {rule.dataset} in `rpt.{rule.table}` ({kind}): the newest version of "
        "each key by `_source_ts`, then `_row_number`, then file name; late files never "
        "overwrite newer rows."
    )


def _declared(rule: Rule, layer: str) -> dict[str, object]:
    """The columns a keyed rule declares, shown before anything loads; nothing for a static
    rule, whose columns only its files say."""
    if rule.is_static:
        return {}
    metadata = [(c.name, c.type) for c in METADATA if layer == "staging" or c.rpt is not None]
    return {"dagster/column_schema": column_schema(rule, declared_columns(rule) + metadata)}


def build_table_assets(
    rule: Rule, partitions_def: DailyPartitionsDefinition, timezone: str
) -> list[AssetsDefinition]:
    """The staging and rpt assets of one dataset."""
    staging_asset_key, rpt_asset_key = staging_key(rule.dataset), rpt_key(rule.dataset)
    tags = {"dataset": rule.dataset}

    @asset(
        key=staging_asset_key,
        deps=[PARTITIONED],
        group_name="staging",
        pool="indici_warehouse",
        description=_describe(rule, "staging"),
        metadata=_declared(rule, "staging"),
        partitions_def=partitions_def,
        backfill_policy=RANGE_BACKFILL,
        retry_policy=TRANSIENT_RETRY,
        kinds={"postgres"},
        tags=tags,
        check_specs=staging_check_specs(staging_asset_key, rule),
    )
    @fail_fast_on_permanent_errors
    @sends_outcomes(Step.STAGING, dataset=rule.dataset)
    def staging(
        context: AssetExecutionContext,
        partitioned: FileStorageResource,
        warehouse: WarehouseResource,
        rules: RulesResource,
        outcomes: OutcomeLogResource,
    ) -> MaterializeResult:
        rules.require_unchanged(context, {rule.dataset: rule}, [rule.dataset])
        db = warehouse.get_warehouse()
        outcomes = load_partitions_into_staging(
            partitioned.get_storage(), db, rule, context.partition_keys, run_id=context.run_id
        )
        queries = WarehouseQueries(db)
        for o in outcomes:
            if o.error:
                context.log.error(f"{o.file_name}: {o.error}")
            elif o.result.message:
                context.log.warning(f"{o.file_name}: {o.result.message}")
        checks = evaluate_staging_checks(queries, rule, outcomes)
        by_date = group_by_partition(context.partition_keys, outcomes, lambda o: o.partition_key)
        for partition_key, date_outcomes in by_date.items():
            date_loaded = [o for o in date_outcomes if o.result is not None]
            context.add_asset_metadata(
                {
                    "dagster/partition_row_count": sum(o.result.rows_loaded for o in date_loaded),
                    "files_loaded": MetadataValue.json(
                        {o.file_name: o.result.rows_loaded for o in date_loaded}
                    ),
                    "files_failed": MetadataValue.json(
                        [o.file_name for o in date_outcomes if o.error]
                    ),
                },
                partition_key=partition_key,
            )
        return MaterializeResult(
            metadata={
                "dagster/table_name": f"{STAGING_SCHEMA}.{rule.table}",
                "dagster/column_schema": column_schema(
                    rule, queries.table_columns(STAGING_SCHEMA, rule.table)
                ),
                "dagster/row_count": queries.row_count(STAGING_SCHEMA, rule.table),
            },
            check_results=checks,
        )

    @asset(
        key=rpt_asset_key,
        deps=[staging_asset_key],
        group_name="rpt",
        pool="indici_warehouse",
        description=_describe(rule, "rpt"),
        metadata=_declared(rule, "rpt"),
        partitions_def=partitions_def,
        backfill_policy=RANGE_BACKFILL,
        retry_policy=TRANSIENT_RETRY,
        kinds={"postgres"},
        tags=tags,
        check_specs=rpt_check_specs(rpt_asset_key, rule),
    )
    @fail_fast_on_permanent_errors
    @sends_outcomes(Step.RPT, dataset=rule.dataset)
    def rpt(
        context: AssetExecutionContext,
        warehouse: WarehouseResource,
        rules: RulesResource,
        outcomes: OutcomeLogResource,
    ) -> MaterializeResult:
        rules.require_unchanged(context, {rule.dataset: rule}, [rule.dataset])
        db = warehouse.get_warehouse()
        window = context.partition_time_window
        results = db.upsert_window_into_rpt(
            rule,
            window.start,
            window.end,
            run_id=context.run_id,
            partition_key_of=lambda name: partition_key_of_file(name, timezone),
            # the ledger records this run as the rpt step of the staged versions of its dates
            ledger_dates=context.partition_keys,
        )
        queries = WarehouseQueries(db)
        metadata = {
            "dagster/table_name": f"{RPT_SCHEMA}.{rule.table}",
            "dagster/column_schema": column_schema(
                rule, queries.table_columns(RPT_SCHEMA, rule.table)
            ),
            "dagster/row_count": queries.row_count(RPT_SCHEMA, rule.table),
        }
        by_date = group_by_partition(
            context.partition_keys,
            results,
            lambda result: partition_key_of_file(result.source_file, timezone),
        )
        applied = {key: _applied_metadata(date_results) for key, date_results in by_date.items()}
        checks = evaluate_rpt_checks(queries, rule, results)
        errors = [
            error
            for step in (Step.STAGING, Step.RPT)
            for error in queries.audit_errors(context.run_id, rule.dataset, str(step))
        ]
        if errors:
            # the good files are applied; the run still fails so the broken ones are seen
            for partition_key in context.partition_keys:
                context.log_event(
                    AssetMaterialization(
                        rpt_asset_key,
                        partition=partition_key,
                        metadata={**metadata, **applied[partition_key]},
                    )
                )
            raise Failure(
                description=f"{len(errors)} {rule.dataset} file(s) could not be loaded: "
                + "; ".join(f"{f}: {m}" for f, m in errors),
                allow_retries=False,
            )
        for partition_key, date_metadata in applied.items():
            context.add_asset_metadata(date_metadata, partition_key=partition_key)
        return MaterializeResult(metadata=metadata, check_results=checks)

    return [staging, rpt]


def _applied_metadata(results: Sequence[FileUpsert]) -> dict[str, object]:
    """What one date's files changed in rpt, in total and file by file."""
    return {
        "rows_inserted": sum(r.rows_inserted for r in results),
        "rows_updated": sum(r.rows_updated for r in results),
        "rows_unchanged": sum(r.rows_unchanged for r in results),
        "rows_rejected": sum(r.rows_rejected for r in results),
        "files": MetadataValue.json(
            {
                r.source_file: {"inserted": r.rows_inserted, "updated": r.rows_updated}
                for r in results
            }
        ),
    }
