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

from indici_dagster.core.escaping import escape_text
from indici_dagster.core.rules.model import Rule
from indici_dagster.core.steps.ingest import (
    RawFileReport,
    copy_to_partitioned,
    describe_landed_file,
    landed_files_for,
)
from indici_dagster.core.warehouse import ledger
from indici_dagster.core.warehouse.audit import Status, Step, write_audit_entries
from indici_dagster.lib.keys import PARTITIONED, RAW, staging_key
from indici_dagster.lib.outcomes import OutcomeLogResource, sends_outcomes
from indici_dagster.lib.partitions import RANGE_BACKFILL, group_by_partition
from indici_dagster.lib.resources import FileStorageResource, WarehouseResource
from indici_dagster.lib.rules_resource import RulesResource
from indici_dagster.lib.step_failures import TRANSIENT_RETRY, fail_fast_on_permanent_errors

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
    @fail_fast_on_permanent_errors
    def raw(context: AssetExecutionContext, landing: FileStorageResource) -> MaterializeResult:
        """The files landed for the date: names parsed, Parquet footers read. Nothing moves."""
        storage = landing.get_storage()
        files = landed_files_for(storage, context.partition_keys, timezone, context.run.tags)
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
        check_specs=[
            AssetCheckSpec(
                "no_file_name_clashes",
                asset=PARTITIONED,
                description="No two landed keys of the date share a file name (such a pair is "
                "refused and audited; the date's other files carry on).",
            ),
            AssetCheckSpec(
                "no_archived_files",
                asset=PARTITIONED,
                description="No landed file of the date is archived (an archived file is "
                "audited with the `indici restore` command to run; the date's other files "
                "carry on).",
            ),
        ],
    )
    @fail_fast_on_permanent_errors
    # the `no_rule` rows of files without a rule are staging rows this step writes
    @sends_outcomes(Step.PARTITIONED, Step.STAGING)
    def partitioned(
        context: AssetExecutionContext,
        landing: FileStorageResource,
        partitioned: FileStorageResource,
        warehouse: WarehouseResource,
        rules: RulesResource,
        outcomes: OutcomeLogResource,
    ) -> MaterializeResult:
        """Every landed file of the date, copied byte for byte to `dataset=<D>/date=<date>/`."""
        rules.require_unchanged(context, built_rules)
        source, target = landing.get_storage(), partitioned.get_storage()
        files = landed_files_for(source, context.partition_keys, timezone, context.run.tags)
        report = copy_to_partitioned(source, target, files, built_rules, run_id=context.run_id)
        failed_keys = {
            e.source_key
            for e in report.entries
            if e.status == Status.ERROR
            and e.source_key not in report.clashes
            and e.source_key not in report.archived  # recorded: settled as needing attention
        }
        selection = context.run.asset_selection  # None: the whole job
        not_loaded = {
            d for d in built_rules if selection is not None and staging_key(d) not in selection
        }
        store = warehouse.get_warehouse()
        with store.transaction() as cursor:
            # the audit rows and what the run processed, in one transaction
            write_audit_entries(cursor, report.entries)
            ledger.record(
                cursor,
                ledger.processed_entries(
                    # a file this run does not load (its table not selected) stays new work
                    [(f.object, f.name) for f in files if f.name.dataset not in not_loaded],
                    refused=set(report.clashes),
                    failed=failed_keys,
                    datasets_with_rules=built_rules.keys(),
                    run_id=context.run_id,
                    run_key=context.run.tags.get("dagster/run_key"),
                ),
            )
        waiting = sorted({f.name.dataset for f in files if f.name.dataset not in built_rules})
        if waiting:
            context.log.warning(f"no rule yet for datasets {waiting}: copied and audited only")
        for key in report.clashes:
            context.log.error(f"{escape_text(key)}: another key has the same file name; not copied")
        for entry in report.entries:
            if entry.source_key in report.archived:
                context.log.error(f"{entry.source_file}: {entry.message}")
        if report.failed:
            # a failed copy may succeed on the next attempt
            raise Failure("; ".join(report.failed), allow_retries=True)
        return MaterializeResult(
            metadata={
                "file_count": len(files),
                "copied": report.copied,
                "already_present": len(files)
                - report.copied
                - len(report.clashes)
                - len(report.archived),
                "datasets_without_rule": MetadataValue.json(waiting),
                "partitioned": target.url,
            },
            check_results=[
                AssetCheckResult(
                    check_name="no_file_name_clashes",
                    passed=not report.clashes,
                    severity=AssetCheckSeverity.ERROR,
                    metadata={
                        "refused": MetadataValue.json(
                            sorted(escape_text(k) for k in report.clashes)
                        )
                    },
                ),
                AssetCheckResult(
                    check_name="no_archived_files",
                    passed=not report.archived,
                    severity=AssetCheckSeverity.ERROR,
                    metadata={
                        "archived": MetadataValue.json(
                            sorted(escape_text(k) for k in report.archived)
                        )
                    },
                ),
            ],
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
