"""Landing freshness per dataset: the `landing_freshness` check on each `indici/landing/<D>`
asset, and `indici_freshness_sensor`, which evaluates it every half hour without a run.

`indici/landing/<D>` is an external asset (an `AssetSpec`: the dataset's files in the landing
location, which Valentia writes and the pipeline never materializes), in the group `landing`.
Its check is declared once, as an executable `@multi_asset_check` (it can be run by hand from
the UI). It is on the external asset, not on `indici/staging/<D>`, because Dagster adds every
check of the selected assets to a run that selects assets (a sensor's request, a backfill): on
the staging asset it would list the whole landing location in every run. No run selects an
external asset, so no ingest run ever executes it. The sensor records its results as runless
`AssetCheckEvaluation`s (`SensorResult(asset_events=...)`, stored by the daemon), so it is
evaluated even when nothing lands. Judged on landing times, never on materializations
(`core/alerts/freshness.py`). A dataset that turns stale gets one SNS message; the sensor's
cursor remembers it until a file lands again.
"""

import json
from collections.abc import Iterator, Mapping

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetSpec,
    DefaultSensorStatus,
    MetadataValue,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    multi_asset_check,
    sensor,
)

from indici_dagster.core.alerts import freshness
from indici_dagster.core.alerts.sns import publish_alert
from indici_dagster.core.rules.model import Rule
from indici_dagster.lib.resources import FileStorageResource

CHECK_NAME = "landing_freshness"
LANDING_GROUP = "landing"
FRESHNESS_SENSOR = "indici_freshness_sensor"
INTERVAL_SECONDS = 1800
"""Half an hour: evaluated at least hourly, however late a daemon loop is."""


def landing_key(dataset: str) -> AssetKey:
    """`indici/landing/<dataset>`: the dataset's files in the landing location."""
    return AssetKey(["indici", "landing", dataset])


def checked_rules(rules: Mapping[str, Rule]) -> dict[str, Rule]:
    """The rules whose datasets are checked (`max_file_age_hours` above 0)."""
    return {dataset: rule for dataset, rule in rules.items() if rule.max_file_age_hours > 0}


def _metadata(result: freshness.Freshness) -> dict[str, MetadataValue]:
    metadata: dict[str, MetadataValue] = {
        "max_file_age_hours": MetadataValue.float(float(result.limit_hours)),
        "checked_at": MetadataValue.timestamp(result.checked_at),
    }
    if result.newest_landing is not None:
        metadata["newest_landing"] = MetadataValue.timestamp(result.newest_landing)
        metadata["age_hours"] = MetadataValue.float(round(result.age_hours or 0.0, 3))
    else:
        metadata["newest_landing"] = MetadataValue.text("no file has landed")
    return metadata


def evaluation(result: freshness.Freshness) -> AssetCheckEvaluation:
    """The runless check evaluation of one dataset's freshness (severity WARN)."""
    return AssetCheckEvaluation(
        asset_key=landing_key(result.dataset),
        check_name=CHECK_NAME,
        passed=not result.stale,
        metadata=_metadata(result),
        severity=AssetCheckSeverity.WARN,
        description=result.describe(),
    )


def evaluate(
    landing: FileStorageResource, rules: Mapping[str, Rule], timezone: str
) -> list[freshness.Freshness]:
    """Every checked dataset's freshness, from one listing of the landing location."""
    objects = freshness.landed_objects(landing.get_storage())
    newest = freshness.newest_landings(objects, rules, timezone)
    return freshness.judge(rules, newest)


def build_landing_assets(rules: Mapping[str, Rule]) -> list[AssetSpec]:
    """The external asset `indici/landing/<D>` of every checked dataset."""
    return [
        AssetSpec(
            landing_key(dataset),
            group_name=LANDING_GROUP,
            description=(
                f"The {dataset} files in the landing location (INDICI_LANDING), written by the "
                "sender; never materialized. Its landing_freshness check says whether they "
                "keep arriving."
            ),
        )
        for dataset in sorted(checked_rules(rules))
    ]


def build_freshness_checks(rules: Mapping[str, Rule], timezone: str) -> list[AssetChecksDefinition]:
    """The `landing_freshness` check of every checked dataset, as one executable definition
    (none when no dataset is checked), on the assets of `build_landing_assets`."""
    checked = checked_rules(rules)
    if not checked:
        return []
    specs = [
        AssetCheckSpec(
            CHECK_NAME,
            asset=landing_key(dataset),
            description=(
                f"WARN when no {dataset} file has landed for {rule.max_file_age_hours:g} h (the "
                "rule's max_file_age_hours), judged on landing times; evaluated by "
                f"{FRESHNESS_SENSOR}"
            ),
        )
        for dataset, rule in sorted(checked.items())
    ]

    @multi_asset_check(name="indici_landing_freshness", specs=specs, can_subset=True)
    def indici_landing_freshness(
        context: AssetCheckExecutionContext, landing: FileStorageResource
    ) -> Iterator[AssetCheckResult]:
        selected = context.selected_asset_check_keys
        yield from [
            AssetCheckResult(
                asset_key=e.asset_key,
                check_name=e.check_name,
                passed=e.passed,
                severity=e.severity,
                metadata=e.metadata,
                description=e.description,
            )
            for e in map(evaluation, evaluate(landing, checked, timezone))
            if any(k.asset_key == e.asset_key and k.name == e.check_name for k in selected)
        ]

    return [indici_landing_freshness]


def _alerted(cursor: str | None) -> list[str]:
    """Datasets an alert went out for and that have not landed a file since."""
    try:
        state = json.loads(cursor) if cursor else {}
    except ValueError:
        return []
    alerted = state.get("alerted") if isinstance(state, dict) else None
    return [d for d in alerted if isinstance(d, str)] if isinstance(alerted, list) else []


def build_freshness_sensor(
    rules: Mapping[str, Rule], timezone: str, alert_sns_topic: str | None, ui_url: str | None
) -> SensorDefinition:
    """The sensor recording every checked dataset's `landing_freshness` result each tick, and
    publishing one SNS message per dataset that turns stale (with `alert_sns_topic`)."""
    checked = checked_rules(rules)

    @sensor(
        name=FRESHNESS_SENSOR,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Every half hour: the landing_freshness check of each dataset (WARN when its newest "
            "landed file is older than the rule's max_file_age_hours), recorded without a run; "
            "one SNS message per dataset that goes quiet when INDICI_ALERT_SNS_TOPIC is set."
        ),
    )
    def indici_freshness_sensor(
        context: SensorEvaluationContext, landing: FileStorageResource
    ) -> SensorResult:
        results = evaluate(landing, checked, timezone)
        alerted = set(_alerted(context.cursor))
        for result in freshness.newly_stale(results, alerted):
            context.log.warning(f"feed quiet: {result.describe()}")
            if alert_sns_topic is None:
                alerted.add(result.dataset)
                continue
            path = "/".join(landing_key(result.dataset).path)
            problem = publish_alert(alert_sns_topic, *freshness.alert_text(result, ui_url, path))
            if problem is None:
                alerted.add(result.dataset)
            else:  # tried again next tick: the warning is not lost
                context.log.error(f"{result.dataset}: {problem}")
        still = sorted(d for d in alerted if any(r.dataset == d and r.stale for r in results))
        return SensorResult(
            asset_events=[evaluation(result) for result in results],
            cursor=json.dumps({"alerted": still}),
        )

    return indici_freshness_sensor
