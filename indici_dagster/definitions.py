"""Assembles the indici pipeline: assets per layer, the landing sensor, resources."""

import warnings

from dagster import (
    AssetSelection,
    BetaWarning,
    Definitions,
    define_asset_job,
)

from indici_dagster.core.settings import Settings, SettingsError, load_settings
from indici_dagster.defs.alerts.freshness import (
    build_freshness_checks,
    build_freshness_sensor,
    build_landing_assets,
)
from indici_dagster.defs.alerts.run_failures import build_run_failure_sensor
from indici_dagster.defs.files.assets import build_file_assets
from indici_dagster.defs.landing.sensor import build_landing_sensor
from indici_dagster.defs.retention.job import build_retention
from indici_dagster.defs.tables.assets import build_table_assets
from indici_dagster.defs.tables.audit_summary import AUDIT_GROUP, build_audit_summary_asset
from indici_dagster.lib.executor import build_executor
from indici_dagster.lib.outcomes import outcomes_pin
from indici_dagster.lib.partitions import daily_partitions
from indici_dagster.lib.pinned import pin_resources
from indici_dagster.lib.resources import resource_pins
from indici_dagster.lib.rules_resource import load_code_location_rules, rules_pin

INGEST_JOB = "indici_ingest_job"
SUMMARY_JOB = "indici_audit_summary_job"
INGEST_GROUPS = ("raw", "partitioned", "staging", "rpt", AUDIT_GROUP)
"""The layers the ingest job runs, by asset group, the daily audit summary last: an asset in any
other group never joins the sensor's runs or their backfills by accident."""


def build_definitions(settings: Settings) -> Definitions:
    """Everything Dagster shows, for these settings and the rules they point at.

    `settings` are the deployment's: every resource field is pinned to them, and a run whose
    config sets one differently fails before it reads or writes anything.
    """
    loaded = load_code_location_rules(settings)
    rules = loaded.rules
    partitions = daily_partitions(settings)
    with warnings.catch_warnings():
        # BackfillPolicy is marked beta; range backfills rely on it deliberately
        warnings.simplefilter("ignore", BetaWarning)
        assets = build_file_assets(partitions, rules, settings.timezone)
        for rule in rules.values():
            assets += build_table_assets(rule, partitions, settings.timezone)
        assets.append(build_audit_summary_asset(rules, partitions))
    ingest_job = define_asset_job(
        INGEST_JOB,
        selection=AssetSelection.groups(*INGEST_GROUPS),
        partitions_def=partitions,
        description="Landed files of a date through every layer (launched by the landing sensor)."
        + (f"\n\nRules: {loaded.summary()}" if loaded.from_snapshot is not None else ""),
    )
    summary_job = define_asset_job(
        SUMMARY_JOB,
        selection=AssetSelection.groups(AUDIT_GROUP),
        partitions_def=partitions,
        description="The daily audit summary of a date again, after a failed ingest run "
        "(requested by indici_run_failure_sensor: the run's own summary step was skipped).",
    )
    retention_jobs, retention_schedules = build_retention(settings, rules)
    return Definitions(
        assets=[*assets, *build_landing_assets(rules)],
        asset_checks=build_freshness_checks(rules, settings.timezone),
        jobs=[ingest_job, summary_job, *retention_jobs],
        schedules=retention_schedules,
        sensors=[
            build_landing_sensor(ingest_job, partitions, rules, settings.timezone),
            build_run_failure_sensor(
                settings.alert_sns_topic, settings.ui_url, summary_job, INGEST_JOB
            ),
            build_freshness_sensor(
                rules, settings.timezone, settings.alert_sns_topic, settings.ui_url
            ),
        ],
        resources=pin_resources(
            {
                **resource_pins(settings),
                "rules": rules_pin(settings, loaded),
                "outcomes": outcomes_pin(settings),
            }
        ),
        executor=build_executor(settings),
    )


def _load_settings() -> Settings:
    """The environment's settings; a bad one stops the load with its one-line message."""
    try:
        return load_settings()
    except SettingsError as error:
        raise SettingsError(str(error)) from None  # the message says it all: no inner frames


defs = build_definitions(_load_settings())
