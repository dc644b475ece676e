"""The whole `Definitions`, loaded once: the asset graph, the job, the sensor and the checks.

Loading builds nothing and connects to nothing, so this is cheap; it catches wiring mistakes
(an asset outside its layer's group, a job that would silently take in a new asset, a check
attached to the wrong asset) before any run does.
"""

import pytest
from dagster import AssetKey, AssetsDefinition, Definitions, asset

from indici_dagster.core.rules.store import load_rules
from indici_dagster.core.settings import Settings
from indici_dagster.definitions import INGEST_JOB, build_definitions
from indici_dagster.defs.landing.sensor import SENSOR_NAME
from indici_dagster.lib.keys import AUDIT_SUMMARY, PARTITIONED, RAW, rpt_key, staging_key


@pytest.fixture(scope="module")
def laptop_defs(tmp_path_factory: pytest.TempPathFactory) -> Definitions:
    folder = tmp_path_factory.mktemp("defs")
    settings = Settings(
        landing=str(folder / "landing"),
        partitioned=str(folder / "partitioned"),
        pg_dir=str(folder / "pg"),
    )
    return build_definitions(settings)


@pytest.fixture(scope="module")
def shipped_rules():
    return load_rules(Settings().rules)


def _assets(defs: Definitions) -> dict[AssetKey, AssetsDefinition]:
    graph = defs.resolve_asset_graph()
    return {key: graph.get(key).assets_def for key in graph.get_all_asset_keys()}


def test_every_layer_has_its_assets_in_its_group(laptop_defs, shipped_rules):
    graph = laptop_defs.resolve_asset_graph()
    groups = {key: graph.get(key).group_name for key in graph.get_all_asset_keys()}

    expected = {RAW: "raw", PARTITIONED: "partitioned", AUDIT_SUMMARY: "audit"}
    for dataset in shipped_rules:
        expected[staging_key(dataset)] = "staging"
        expected[rpt_key(dataset)] = "rpt"
        if shipped_rules[dataset].max_file_age_hours > 0:  # external, for the freshness check
            expected[AssetKey(["indici", "landing", dataset])] = "landing"
    assert groups == expected


def test_the_layers_are_chained(laptop_defs, shipped_rules):
    graph = laptop_defs.resolve_asset_graph()

    assert graph.get(PARTITIONED).parent_keys == {RAW}
    for dataset in shipped_rules:
        assert graph.get(staging_key(dataset)).parent_keys == {PARTITIONED}
        assert graph.get(rpt_key(dataset)).parent_keys == {staging_key(dataset)}
    # the daily audit summary comes after every rpt asset
    assert graph.get(AUDIT_SUMMARY).parent_keys == {rpt_key(d) for d in shipped_rules}


def test_the_ingest_job_takes_its_layers_and_nothing_else(laptop_defs, shipped_rules):
    job = laptop_defs.resolve_job_def(INGEST_JOB)
    selected = {key for key in job.asset_layer.selected_asset_keys}

    layers = {RAW, PARTITIONED, AUDIT_SUMMARY}
    layers |= {key(d) for d in shipped_rules for key in (staging_key, rpt_key)}
    assert selected == layers


def test_an_asset_of_another_group_does_not_join_the_ingest_job(laptop_defs):
    @asset(key=["indici", "daily_summary"], group_name="summary")
    def daily_summary() -> None:
        """A later layer, such as a daily summary, in a group of its own."""

    defs = Definitions.merge(laptop_defs, Definitions(assets=[daily_summary]))
    job = defs.resolve_job_def(INGEST_JOB)

    assert AssetKey(["indici", "daily_summary"]) not in set(job.asset_layer.selected_asset_keys)


def test_the_landing_sensor_targets_the_ingest_job(laptop_defs):
    sensor = laptop_defs.resolve_sensor_def(SENSOR_NAME)

    assert [target.job_name for target in sensor.targets] == [INGEST_JOB]


def test_each_layer_has_its_checks(laptop_defs, shipped_rules):
    checks = {
        (spec.asset_key, spec.name)
        for assets_def in _assets(laptop_defs).values()
        for spec in assets_def.check_specs
    }

    assert (RAW, "files_readable_and_not_empty") in checks
    assert (PARTITIONED, "no_file_name_clashes") in checks
    assert (AUDIT_SUMMARY, "every_landed_file_counted") in checks
    assert (AUDIT_SUMMARY, "totals_reconcile_with_audit_log") in checks
    for dataset, rule in shipped_rules.items():
        assert (staging_key(dataset), "rows_loaded_match_files") in checks
        assert (rpt_key(dataset), "row_counts_reconcile") in checks
        if rule.primary_key:
            assert (rpt_key(dataset), "primary_key_unique_and_not_null") in checks


def test_the_rules_descriptions_and_pii_marks_show_on_the_table_assets(laptop_defs, shipped_rules):
    assets = _assets(laptop_defs)
    patients = shipped_rules["Patients"]
    for key in (staging_key("Patients"), rpt_key("Patients")):
        spec = assets[key].specs_by_key[key]
        assert spec.description.startswith(patients.description)
        columns = {c.name: c for c in spec.metadata["dagster/column_schema"].columns}
        assert columns["nhi_number"].tags == {"pii": "nhi"}
        assert columns["nhi_number"].description.startswith("The patient's National Health")
        assert columns["date_of_birth"].tags == {"pii": "dob"}
        assert columns["_source_ts"].description
    static = staging_key("EthnicityCode")  # columns known only once a file loaded
    assert "dagster/column_schema" not in assets[static].specs_by_key[static].metadata
