"""Asset checks: what each layer promises, verified against the warehouse after it runs.

The checks are declared on the assets (so they run in the same step and show beside each
materialization in the UI) and evaluated here from core queries. Their metadata holds counts,
file names and column names, never row values.
"""

from collections.abc import Sequence

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from indici_dagster.core.quality.nhi import NhiCounts
from indici_dagster.core.quality.queries import WarehouseQueries
from indici_dagster.core.rules.model import Rule
from indici_dagster.core.steps.ingest import FileOutcome
from indici_dagster.core.warehouse.audit import Step
from indici_dagster.core.warehouse.rpt_upsert import FileUpsert

ROWS_MATCH_FILES = "rows_loaded_match_files"
KEY_NOT_NULL = "primary_key_not_null"
COLUMNS_MATCH_RULE = "columns_match_rule"
NHI_VALID = "nhi_numbers_valid"
PRIMARY_KEY_VALID = "primary_key_unique_and_not_null"
COUNTS_RECONCILE = "row_counts_reconcile"


def staging_check_specs(key: AssetKey, rule: Rule) -> list[AssetCheckSpec]:
    """The checks a staging asset declares for its rule."""
    specs = [
        AssetCheckSpec(
            ROWS_MATCH_FILES,
            asset=key,
            description="Every file of the date loaded, with as many rows as its Parquet footer.",
        )
    ]
    if not rule.is_static:
        specs += [
            AssetCheckSpec(
                KEY_NOT_NULL,
                asset=key,
                description="No staged row of the date has a NULL primary-key column "
                "(such rows are kept out of rpt).",
            ),
            AssetCheckSpec(
                COLUMNS_MATCH_RULE,
                asset=key,
                description="Files hold exactly the rule's columns: no new column the rule does "
                "not name yet, none of the rule's columns missing (WARN).",
            ),
        ]
    if rule.nhi_columns:
        specs.append(
            AssetCheckSpec(
                NHI_VALID,
                asset=key,
                description="NHI numbers of the date are well-formed with a correct check "
                "character and are not test NHIs (counts only; WARN).",
            )
        )
    return specs


def rpt_check_specs(key: AssetKey, rule: Rule) -> list[AssetCheckSpec]:
    """The checks an rpt asset declares for its rule."""
    specs = [
        AssetCheckSpec(
            COUNTS_RECONCILE,
            asset=key,
            description="For every file of the date: rows in the Parquet footer = rows staged = "
            "rows inserted + updated + unchanged + rejected.",
        )
    ]
    if not rule.is_static:
        specs.append(
            AssetCheckSpec(
                PRIMARY_KEY_VALID,
                asset=key,
                description="Every rpt row has a complete primary key, held by no other row.",
            )
        )
    return specs


def evaluate_staging_checks(
    queries: WarehouseQueries, rule: Rule, outcomes: Sequence[FileOutcome]
) -> list[AssetCheckResult]:
    """Results for every check in `staging_check_specs(rule)`, for the files just processed."""
    # every file with rows in its footer: one that loaded none of them is a mismatch too
    loaded = [o for o in outcomes if o.result is not None and o.result.rows_read]
    files = [o.file_name for o in loaded]
    staged = queries.staged_files(rule, files)
    null_keys = {name: f.null_keys for name, f in staged.items() if f.null_keys}
    mismatches = [
        o.file_name
        for o in loaded
        if (staged[o.file_name].rows if o.file_name in staged else 0) != o.result.rows_read
    ]
    failed = [f"{o.file_name}: {o.error}" for o in outcomes if o.error]
    results = [
        AssetCheckResult(
            check_name=ROWS_MATCH_FILES,
            passed=not mismatches and not failed,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "files_checked": len(outcomes),
                "count_mismatches": MetadataValue.json(mismatches),
                "files_not_loaded": MetadataValue.json(failed),
            },
        )
    ]
    if rule.is_static:
        return results
    drift = queries.columns_not_in_rule(rule)
    missing = sorted({c for o in loaded for c in o.result.missing_columns})
    results += [
        AssetCheckResult(
            check_name=KEY_NOT_NULL,
            passed=not null_keys,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "rows_with_null_key": sum(null_keys.values()),
                "by_file": MetadataValue.json(null_keys),
            },
        ),
        AssetCheckResult(
            check_name=COLUMNS_MATCH_RULE,
            passed=not drift and not missing,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "columns_not_in_rule": MetadataValue.json(drift),
                "rule_columns_missing_from_files": MetadataValue.json(missing),
            },
        ),
    ]
    if rule.nhi_columns:
        counts = {
            column: sum((f.nhi[column] for f in staged.values()), NhiCounts())
            for column in rule.nhi_columns
        }
        results.append(
            AssetCheckResult(
                check_name=NHI_VALID,
                passed=all(c.invalid == 0 and c.test == 0 for c in counts.values()),
                severity=AssetCheckSeverity.WARN,
                metadata={
                    "invalid": sum(c.invalid for c in counts.values()),
                    "test": sum(c.test for c in counts.values()),
                    "valid": sum(c.valid for c in counts.values()),
                    "missing": sum(c.missing for c in counts.values()),
                    "by_column": MetadataValue.json(
                        {
                            column: {"invalid": c.invalid, "test": c.test, "valid": c.valid}
                            for column, c in counts.items()
                        }
                    ),
                },
            )
        )
    return results


def evaluate_rpt_checks(
    queries: WarehouseQueries, rule: Rule, applied: Sequence[FileUpsert]
) -> list[AssetCheckResult]:
    """Results for every check in `rpt_check_specs(rule)`, for the files one upsert applied.

    The reconciliation compares three independent counts per file: the Parquet footer and the
    rows COPY reported (both from the staging audit), and the staged rows the upsert statement
    itself counted and split into inserted, updated, unchanged and rejected.
    """
    staging = queries.latest_audit_by_file(
        rule.dataset, str(Step.STAGING), [a.source_file for a in applied]
    )
    unreconciled = {}
    for upsert in applied:
        audit = staging.get(upsert.source_file) or {}
        footer, loaded = audit.get("rows_read"), audit.get("rows_loaded")
        parts = [upsert.rows_inserted, upsert.rows_updated, upsert.rows_unchanged]
        accounted = sum(parts) + upsert.rows_rejected
        if not (footer == loaded == upsert.rows_staged == accounted) or min(parts) < 0:
            unreconciled[upsert.source_file] = {
                "footer": footer,
                "loaded": loaded,
                "staged": upsert.rows_staged,
                "inserted_updated_unchanged_rejected": [*parts, upsert.rows_rejected],
            }
    results = [
        AssetCheckResult(
            check_name=COUNTS_RECONCILE,
            passed=not unreconciled,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "files_checked": len(applied),
                "unreconciled": MetadataValue.json(unreconciled),
            },
        )
    ]
    if not rule.is_static:
        duplicates, nulls = queries.primary_key_problems(rule)
        results.append(
            AssetCheckResult(
                check_name=PRIMARY_KEY_VALID,
                passed=duplicates == 0 and nulls == 0,
                severity=AssetCheckSeverity.ERROR,
                metadata={"rows_with_duplicate_key": duplicates, "rows_with_null_key": nulls},
            )
        )
    return results
