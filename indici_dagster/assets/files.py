"""The file layers: `indici/raw` (what landed for a date) and `indici/partitioned` (its copy)."""

from collections.abc import Mapping

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)

from indici_dagster.assets.keys import PARTITIONED, RAW
from indici_dagster.core.ingest import (
    RawFileReport,
    copy_to_partitioned,
    describe_landed_file,
    landed_files_for,
)
from indici_dagster.core.rules import Rule
from indici_dagster.partitions import RANGE_BACKFILL, group_by_partition
from indici_dagster.resources import FileStorageResource, WarehouseResource
from indici_dagster.retries import TRANSIENT_RETRY, fails_fast_on_permanent_errors
from indici_dagster.rules_resource import RulesResource

_FILES_SCHEMA = TableSchema(
    columns=[
        TableColumn("file", "string"),
        TableColumn("dataset", "string"),
        TableColumn("date", "string"),
        TableColumn("rows", "int"),
        TableColumn("status", "string"),
    ]
)


def build_file_assets(
    partitions_def: DailyPartitionsDefinition, rules: Mapping[str, Rule], timezone: str
) -> list[AssetsDefinition]:
    """The `raw` and `partitioned` assets, each covering every dataset."""
    built_rules = rules

    @asset(
        key=RAW,
        group_name="raw",
        partitions_def=partitions_def,
        backfill_policy=RANGE_BACKFILL,
        retry_policy=TRANSIENT_RETRY,
        kinds={"s3", "parquet"},
        check_specs=[
            AssetCheckSpec(
                "files_readable_and_not_empty",
                asset=RAW,
                description="Every file landed for the date is readable Parquet with rows.",
            )
        ],
    )
    @fails_fast_on_permanent_errors
    def raw(context: AssetExecutionContext, landing: FileStorageResource) -> MaterializeResult:
        """The files landed for the date: names parsed, Parquet footers read. Nothing moves."""
        storage = landing.get_storage()
        files = landed_files_for(storage, context.partition_keys, timezone)
        reports = [describe_landed_file(storage, f) for f in files]
        problems = [
            f"{r.file.name.file_name}: {r.error or 'no rows'}"
            for r in reports
            if r.error or r.rows == 0
        ]
        for problem in problems:
            context.log.warning(problem)
        by_date = group_by_partition(
            context.partition_keys, reports, lambda report: report.file.name.partition_key
        )
        for partition_key, date_reports in by_date.items():
            context.add_asset_metadata(_raw_metadata(date_reports), partition_key=partition_key)
        return MaterializeResult(
            metadata={"landing": storage.url},
            check_results=[
                AssetCheckResult(
                    check_name="files_readable_and_not_empty",
                    passed=not problems,
                    severity=AssetCheckSeverity.WARN,
                    metadata={"problems": MetadataValue.json(problems), "files": len(reports)},
                )
            ],
        )

    @asset(
        key=PARTITIONED,
        deps=[RAW],
        group_name="partitioned",
        pool="indici_warehouse",
        partitions_def=partitions_def,
        backfill_policy=RANGE_BACKFILL,
        retry_policy=TRANSIENT_RETRY,
        kinds={"s3"},
    )
    @fails_fast_on_permanent_errors
    def partitioned(
        context: AssetExecutionContext,
        landing: FileStorageResource,
        partitioned: FileStorageResource,
        warehouse: WarehouseResource,
        rules: RulesResource,
    ) -> MaterializeResult:
        """Every landed file of the date, copied byte for byte to `dataset=<D>/date=<date>/`."""
        rules.require_unchanged(context, built_rules)
        source, target = landing.get_storage(), partitioned.get_storage()
        files = landed_files_for(source, context.partition_keys, timezone)
        report = copy_to_partitioned(source, target, files, built_rules, run_id=context.run_id)
        warehouse.get_warehouse().write_audit(report.entries)
        waiting = sorted({f.name.dataset for f in files if f.name.dataset not in built_rules})
        if waiting:
            context.log.warning(f"no rule yet for datasets {waiting}: copied and audited only")
        if report.failed or report.clashes:
            raise Failure(
                "; ".join(report.clashes + report.failed),
                # a clash of names needs a person; a failed copy may succeed on the next attempt
                allow_retries=not report.clashes,
            )
        return MaterializeResult(
            metadata={
                "file_count": len(files),
                "copied": report.copied,
                "already_present": len(files) - report.copied,
                "datasets_without_rule": MetadataValue.json(waiting),
                "partitioned": target.url,
            }
        )

    return [raw, partitioned]


def _raw_metadata(reports: list[RawFileReport]) -> dict[str, object]:
    """What one date's materialization of `indici/raw` shows: its files, rows and schemas."""
    records = []
    for report in reports:
        name = report.file.name
        status = "unreadable" if report.error else ("empty" if report.rows == 0 else "ok")
        records.append(
            TableRecord(
                {
                    "file": name.file_name,
                    "dataset": name.dataset,
                    "date": name.partition_key,
                    "rows": report.rows,
                    "status": status,
                }
            )
        )
    schemas = {
        r.file.name.file_name: [f"{c}: {t}" for c, t in r.summary.columns]
        for r in reports
        if r.summary
    }
    return {
        "dagster/row_count": sum(r.rows for r in reports),
        "files": MetadataValue.table(records, schema=_FILES_SCHEMA),
        "file_count": len(reports),
        "schemas": MetadataValue.json(schemas),
    }
