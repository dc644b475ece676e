"""The `rules` resource against moto's DynamoDB: a location that loads while DynamoDB is down,
rules that change between a tick and its run, and rule tables that are empty or malformed."""

import dataclasses
import json
import logging
import os
import socket
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import boto3
import pytest
import yaml
from dagster import DagsterInstance, Failure
from dagster._core.remote_representation.external_data import (
    RepositorySnap,
    ResourceConfigEnvVarSnap,
)

from indici_dagster.core.rules.fingerprints import (
    parse_fingerprints,
    rule_changes,
    rule_set_fingerprint,
)
from indici_dagster.core.rules.model import RuleError, parse_rules
from indici_dagster.core.rules.snapshot import (
    CLOCK_SKEW,
    SNAPSHOT_PREFIX,
    LoadedRules,
    SnapshotPlace,
    read_snapshot,
    save_snapshot,
)
from indici_dagster.core.rules.store import write_dynamodb_rules
from indici_dagster.core.settings import Settings
from indici_dagster.core.storage.open_storage import open_storage
from indici_dagster.core.storage.s3_storage import parse_s3_url
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster.definitions import INGEST_JOB
from indici_dagster.lib.keys import PARTITIONED, RAW, rpt_key, staging_key
from indici_dagster.lib.rules_resource import RULES_FINGERPRINT_TAG, RulesResource, fingerprint_tags
from indici_dagster_tests.support.common import (
    TEST_RULES,
    TIMEZONE,
    build,
    execute_requests,
    patients,
    put_s3,
    query,
    s3_keys,
    tick,
)

DAY = "2026-11-22"
PATIENTS_FILE = "Patients_20261122093000.parquet"
RULES = parse_rules(yaml.safe_load(TEST_RULES))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def table(moto_endpoint, monkeypatch, tmp_path) -> str:
    """A rules table on moto holding TEST_RULES; INDICI_RULES left unset, and the working
    directory (where the local snapshot copy is kept) the test's own."""
    monkeypatch.delenv("INDICI_RULES", raising=False)
    monkeypatch.delenv("INDICI_RULES_SNAPSHOT_DIR", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # the laptop default: ./.indici/rules
    monkeypatch.chdir(tmp_path)
    name = f"indici-rules-{uuid.uuid4().hex[:8]}"
    boto3.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "dataset", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "dataset", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    write_dynamodb_rules(RULES, name)
    return name


def settings_for(table: str, landing: str, partitioned: str, dsn: str | None = None) -> Settings:
    return Settings(
        landing=landing,
        partitioned=partitioned,
        rules=f"dynamodb://{table}",
        pg_dsn=dsn or "postgresql://nobody@127.0.0.1:1/none",  # not connected to at load
        timezone=TIMEZONE,
        start_date="2026-01-01",
    )


def dynamodb_unreachable(monkeypatch) -> None:
    """Point DynamoDB (only) at a closed loopback port; S3 stays on moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{_closed_port()}")


def rules_resource_snap(defs):
    """What the UI shows for the `rules` resource (the repository snapshot it is served from)."""
    snap = RepositorySnap.from_def(defs.get_repository_def())
    return next(r for r in snap.resources if r.name == "rules")


def test_a_location_loads_from_the_snapshot_while_dynamodb_is_unreachable_and_says_so(
    table, buckets, monkeypatch, caplog
):
    landing, partitioned = buckets
    settings = settings_for(table, landing, partitioned)
    build(settings)  # DynamoDB reachable: the rule set is kept as the snapshot
    assert s3_keys(partitioned) == [f"{SNAPSHOT_PREFIX}{table}.json"]

    dynamodb_unreachable(monkeypatch)
    with caplog.at_level(logging.WARNING):
        defs = build(settings)

    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert all(staging_key(d) in keys and rpt_key(d) in keys for d in RULES)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("SNAPSHOT" in w and table in w and "saved 20" in w for w in warnings)
    rule_set = json.loads(rules_resource_snap(defs).configured_values["rule_set"])
    assert (
        "SNAPSHOT" in rule_set and "saved 20" in rule_set and "EndpointConnectionError" in rule_set
    )
    assert "SNAPSHOT" in defs.resolve_job_def(INGEST_JOB).description


def test_the_local_snapshot_copy_is_used_when_s3_is_unreachable_too(
    table, buckets, monkeypatch, tmp_path
):
    landing, partitioned = buckets
    settings = settings_for(table, landing, partitioned)
    build(settings)
    assert (tmp_path / ".indici" / "rules" / f"{table}.json").is_file()

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")  # S3 as well
    defs = build(settings)

    rule_set = json.loads(rules_resource_snap(defs).configured_values["rule_set"])
    assert rule_set.startswith(f"SNAPSHOT of dynamodb://{table} saved")
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert all(staging_key(d) in keys for d in RULES)


def test_a_first_load_with_dynamodb_unreachable_and_no_snapshot_fails_with_one_clear_message(
    table, buckets, monkeypatch
):
    landing, partitioned = buckets
    dynamodb_unreachable(monkeypatch)

    with pytest.raises(RuleError) as raised:
        build(settings_for(table, landing, partitioned))

    message = str(raised.value)
    assert f"DynamoDB table {table!r}" in message
    assert "no snapshot of earlier rules exists" in message
    assert "\n" not in message and raised.value.__cause__ is None
    assert s3_keys(partitioned) == []


def test_a_damaged_snapshot_copy_is_never_used(table, buckets, monkeypatch, tmp_path, caplog):
    landing, partitioned = buckets
    settings = settings_for(table, landing, partitioned)
    build(settings)
    put_s3(partitioned, f"{SNAPSHOT_PREFIX}{table}.json", b'{"rules": [], "saved_at": "x"}')
    dynamodb_unreachable(monkeypatch)

    with caplog.at_level(logging.WARNING):
        build(settings)  # from the intact local copy, saying the other is damaged
    assert any(
        f"{SNAPSHOT_PREFIX}{table}.json is damaged" in r.getMessage() for r in caplog.records
    )

    local = tmp_path / ".indici" / "rules" / f"{table}.json"
    local.write_text(local.read_text().replace("bigint", "integer"))  # fingerprint no longer fits
    with pytest.raises(RuleError) as raised:
        build(settings)

    assert "EndpointConnectionError" in str(raised.value)
    assert f"{SNAPSHOT_PREFIX}{table}.json is damaged" in str(raised.value)
    assert f"rules/{table}.json is damaged: its fingerprint differs" in str(raised.value)


def planted_snapshot(document: dict, saved_at: str) -> bytes:
    """`document` with a Patients rule of one more column (so using it would show), dated
    `saved_at`, with a fingerprint that fits: intact in every other way."""
    rules = parse_rules(document["rules"])
    item = rules["Patients"].to_dict()
    item["columns"] = {**item["columns"], "Planted": "text"}
    rules = parse_rules([item, *(r.to_dict() for d, r in rules.items() if d != "Patients")])
    planted = {
        **document,
        "saved_at": saved_at,
        "fingerprint": rule_set_fingerprint(rules),
        "rules": [rules[d].to_dict() for d in sorted(rules)],
    }
    return json.dumps(planted).encode()


def test_a_snapshot_saved_in_the_future_is_refused_naming_it(
    table, buckets, monkeypatch, tmp_path, caplog
):
    landing, partitioned = buckets
    settings = settings_for(table, landing, partitioned)
    build(settings)  # both copies kept, dated now
    key = f"{SNAPSHOT_PREFIX}{table}.json"
    bucket, prefix = parse_s3_url(partitioned)
    s3 = boto3.client("s3")
    document = json.loads(s3.get_object(Bucket=bucket, Key=prefix + key)["Body"].read())
    s3.put_object(
        Bucket=bucket,
        Key=prefix + key,
        Body=planted_snapshot(document, "2099-01-01T00:00:00+00:00"),
    )
    dynamodb_unreachable(monkeypatch)

    with caplog.at_level(logging.WARNING):
        defs = build(settings)  # from the honest local copy, never the planted one

    refused = [r.getMessage() for r in caplog.records if "in the future" in r.getMessage()]
    assert len(refused) == 1 and key in refused[0] and "\n" not in refused[0]
    rule_set = json.loads(rules_resource_snap(defs).configured_values["rule_set"])
    assert "saved 2099" not in rule_set and f"fingerprint {rule_set_fingerprint(RULES)}" in rule_set

    (tmp_path / ".indici" / "rules" / f"{table}.json").unlink()  # only the planted copy left
    with pytest.raises(RuleError) as raised:
        build(settings)
    assert f"{key} is refused: its saved_at is in the future" in str(raised.value)


def test_a_snapshot_a_little_ahead_of_this_clock_is_still_used(buckets):
    _, partitioned = buckets
    now = datetime.now(UTC)
    place = SnapshotPlace(open_storage(partitioned), f"{SNAPSHOT_PREFIX}t.json")
    loaded = LoadedRules(RULES, "dynamodb://t", now + CLOCK_SKEW / 2)
    save_snapshot(place, loaded)
    assert read_snapshot(place, "dynamodb://t", now).as_of == loaded.as_of  # clock skew
    with pytest.raises(RuleError, match="is refused: its saved_at is in the future"):
        read_snapshot(place, "dynamodb://t", now - CLOCK_SKEW)
    naive = json.loads(
        planted_snapshot(
            json.loads(place.storage.open_for_read(place.key).read()), "2026-01-01T00:00:00"
        )
    )
    place.storage.put_bytes(place.key, json.dumps(naive).encode())
    with pytest.raises(RuleError, match="saved_at has no time zone"):
        read_snapshot(place, "dynamodb://t", now)


def test_the_rules_resource_shows_its_source_as_the_variable_it_came_from(
    table, buckets, monkeypatch
):
    landing, partitioned = buckets
    monkeypatch.setenv("INDICI_RULES", f"dynamodb://{table}")
    # as `Settings.from_env` marks a variable it read from the environment
    settings = settings_for(table, landing, partitioned)
    defs = build(dataclasses.replace(settings, from_environment=frozenset({"INDICI_RULES"})))

    resource = rules_resource_snap(defs)
    assert resource.configured_values["location"] == ResourceConfigEnvVarSnap(name="INDICI_RULES")
    rule_set = json.loads(resource.configured_values["rule_set"])
    assert rule_set.startswith(f"read from dynamodb://{table} at")


def test_an_empty_rules_table_is_an_error_at_load_not_an_empty_pipeline(table, buckets):
    landing, partitioned = buckets
    dynamodb = boto3.resource("dynamodb").Table(table)
    for dataset in RULES:
        dynamodb.delete_item(Key={"dataset": dataset})

    with pytest.raises(RuleError, match=rf"rules in dynamodb://{table}: there are none"):
        build(settings_for(table, landing, partitioned))


def test_a_malformed_rule_item_fails_the_load_naming_it_even_with_a_snapshot(table, buckets):
    landing, partitioned = buckets
    settings = settings_for(table, landing, partitioned)
    build(settings)  # a snapshot exists
    boto3.resource("dynamodb").Table(table).put_item(
        Item={
            "dataset": "Invoices",
            "primary_key": ["InvoiceID"],
            "columns": {"InvoiceID": "money"},
        }
    )

    with pytest.raises(RuleError) as raised:
        build(settings)

    assert "rule Invoices: column 'InvoiceID': type 'money' is not supported" in str(raised.value)


# --------------------------------------------------------------------------------------------
# A tick and its run


@pytest.fixture
def landed(table, buckets, database):
    """Definitions over moto S3 and DynamoDB, with one Patients file landed."""
    landing, partitioned = buckets
    put_s3(landing, PATIENTS_FILE, patients([(1, "Alpha-family"), (2, "Beta-family")]))
    return settings_for(table, landing, partitioned, database)


def change_patients_rule(table: str) -> None:
    item = RULES["Patients"].to_dict()
    item["columns"] = {**item["columns"], "Gender": "text"}
    boto3.resource("dynamodb").Table(table).put_item(Item=item)


def staged_files(dsn: str) -> list[tuple]:
    return query(
        dsn,
        "SELECT source_file, status FROM indici_staging.auditlog WHERE step = 'staging' "
        "ORDER BY source_file",
    )


def test_the_sensor_tags_each_run_with_the_rules_it_requested_it_under(landed, monkeypatch):
    monkeypatch.setenv("INDICI_RULES", landed.rules)  # the resource then reads it at tick time
    defs = build(landed)
    with DagsterInstance.ephemeral() as instance:
        result = tick(defs, instance)

    (request,) = result.run_requests
    requested = parse_fingerprints(request.tags[RULES_FINGERPRINT_TAG])
    assert set(requested) == {"Patients"}
    assert rule_changes(requested, RULES, ["Patients"]) == []


def test_a_tick_after_a_rule_change_requests_under_the_current_rule_and_says_so(
    landed, table, database, capfd
):
    defs = build(landed)  # a code location loaded before the change
    change_patients_rule(table)
    with DagsterInstance.ephemeral() as instance:
        result = tick(defs, instance)
        sensor_log = capfd.readouterr().err
        (outcome,) = execute_requests(build(landed), instance, result)

    current = parse_rules(boto3.resource("dynamodb").Table(table).scan()["Items"])
    requested = parse_fingerprints(result.run_requests[0].tags[RULES_FINGERPRINT_TAG])
    assert rule_changes(requested, current, ["Patients"]) == []
    assert "rules changed since this code location loaded" in sensor_log
    assert "Patients: columns changed" in sensor_log
    assert outcome.success
    assert query(database, "SELECT count(*), count(gender) FROM rpt.patients") == [(2, 0)]


def test_a_rule_changed_between_the_tick_and_the_run_fails_the_run_naming_the_change(
    landed, table, database
):
    with DagsterInstance.ephemeral() as instance:
        result = tick(build(landed), instance)
        change_patients_rule(table)
        defs = build(landed)  # the run worker loads the location with the new rule

        (outcome,) = execute_requests(defs, instance, result)

        assert not outcome.success
        failures = [e for e in outcome.all_events if e.event_type_value == "STEP_FAILURE"]
        messages = [e.event_specific_data.error.message for e in failures]
        assert any("Patients: columns changed" in m for m in messages), messages
        assert not any("family" in m for m in messages)  # names parts, never values
        assert (PATIENTS_FILE, "success") not in staged_files(database)

        # a new run of the date, not requested under the old rule, loads with the new one
        retry = defs.resolve_job_def(INGEST_JOB).execute_in_process(
            partition_key=DAY,
            asset_selection=list(result.run_requests[0].asset_selection),
            instance=instance,
        )
    assert retry.success
    assert query(database, "SELECT count(*), count(gender) FROM rpt.patients") == [(2, 0)]


def test_a_rule_changed_after_the_copy_fails_the_table_steps_naming_it(landed, table, database):
    with DagsterInstance.ephemeral() as instance:
        defs = build(landed)
        (request,) = tick(defs, instance).run_requests
        job = defs.resolve_job_def(INGEST_JOB)
        copy = job.execute_in_process(
            partition_key=DAY,
            asset_selection=[RAW, PARTITIONED],
            tags=request.tags,
            instance=instance,
        )
        assert copy.success
        change_patients_rule(table)

        tables = (
            build(landed)
            .resolve_job_def(INGEST_JOB)
            .execute_in_process(
                partition_key=DAY,
                asset_selection=[staging_key("Patients"), rpt_key("Patients")],
                tags=request.tags,
                instance=instance,
                raise_on_error=False,
            )
        )

    failures = [e for e in tables.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failures] == ["indici__staging__Patients"]
    assert "Patients: columns changed" in failures[0].event_specific_data.error.message
    assert staged_files(database) == []


def test_an_unchanged_rule_set_runs_the_requested_files_through(landed, database):
    defs = build(landed)
    with DagsterInstance.ephemeral() as instance:
        (outcome,) = execute_requests(defs, instance, tick(defs, instance))
    assert outcome.success
    assert query(database, "SELECT count(*) FROM rpt.patients") == [(2,)]


def test_a_tick_that_cannot_read_the_rules_fails_and_hands_nothing_over(
    landed, database, monkeypatch
):
    defs = build(landed)
    Warehouse(database, TIMEZONE).ensure_catalog()
    dynamodb_unreachable(monkeypatch)

    with DagsterInstance.ephemeral() as instance, pytest.raises(Exception) as raised:
        tick(defs, instance)

    assert "cannot read rules from DynamoDB table" in str(raised.value)
    assert query(database, "SELECT count(*) FROM indici_staging.landing_ledger") == [(0,)]


def test_a_malformed_rule_item_after_the_tick_fails_the_run_naming_it_and_loads_nothing(
    landed, table, database
):
    with DagsterInstance.ephemeral() as instance:
        defs = build(landed)
        result = tick(defs, instance)
        boto3.resource("dynamodb").Table(table).put_item(
            Item={"dataset": "Invoices", "primary_key": "Nope", "columns": {"InvoiceID": "int"}}
        )

        (outcome,) = execute_requests(defs, instance, result)

    assert not outcome.success
    failures = [e for e in outcome.all_events if e.event_type_value == "STEP_FAILURE"]
    assert any(
        "rule Invoices: primary_key column 'Nope' is not in columns"
        in e.event_specific_data.error.message
        for e in failures
    )
    assert (PATIENTS_FILE, "success") not in staged_files(database)


# --------------------------------------------------------------------------------------------
# Fingerprints


def test_a_rule_change_is_named_by_part_and_never_shows_rule_content():
    datasets = [*RULES, "Vaccinations"]
    requested = parse_fingerprints(fingerprint_tags(RULES, datasets)[RULES_FINGERPRINT_TAG])
    changed = yaml.safe_load(TEST_RULES.replace("Amount: numeric(12,2)", "Amount: numeric(14,2)"))
    now = parse_rules([*changed, {"dataset": "Vaccinations"}])
    del now["EthnicityCode"]

    changes = rule_changes(requested, now, datasets)

    assert changes == [
        "EthnicityCode: rule removed",
        "InvoiceLines: columns changed",
        "Vaccinations: rule added",
    ]
    assert rule_changes(requested, RULES, datasets) == []


def test_a_damaged_rules_fingerprint_tag_is_refused():
    with pytest.raises(RuleError, match="not Dataset=fingerprint"):
        parse_fingerprints("Patients=abc")


def test_a_step_that_cannot_reach_the_rules_store_fails_retryably_with_one_line(table):
    resource = RulesResource(
        location=f"dynamodb://{table}",
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",  # its own setting beats the moto env
        max_attempts=1,
    )
    step = SimpleNamespace(run=SimpleNamespace(tags={}))

    with pytest.raises(Failure) as raised:
        resource.require_unchanged(step, RULES, ["Patients"])

    assert raised.value.allow_retries
    assert raised.value.description.startswith(f"cannot read rules from DynamoDB table {table!r}")
    assert "EndpointConnectionError" in raised.value.description
    # and with the table reachable, the same rules pass
    RulesResource(location=f"dynamodb://{table}").require_unchanged(step, RULES, ["Patients"])


def test_the_local_snapshot_copy_lives_under_dagster_home_not_the_working_folder(
    table, buckets, monkeypatch, tmp_path
):
    landing, partitioned = buckets
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    build(settings_for(table, landing, partitioned))

    assert (home / "indici" / "rules" / f"{table}.json").is_file()
    assert not (tmp_path / ".indici").exists()  # the image's working folder is not writable


def test_indici_rules_snapshot_dir_names_the_local_copy_folder(
    table, buckets, monkeypatch, tmp_path
):
    landing, partitioned = buckets
    folder = tmp_path / "snapshots"
    monkeypatch.setenv("INDICI_RULES_SNAPSHOT_DIR", str(folder))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    settings = dataclasses.replace(
        settings_for(table, landing, partitioned),
        rules_snapshot_dir=Settings.from_env(
            {"INDICI_RULES_SNAPSHOT_DIR": str(folder)}
        ).rules_snapshot_dir,
    )
    build(settings)
    assert (folder / f"{table}.json").is_file()

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")  # S3 too
    rule_set = json.loads(rules_resource_snap(build(settings)).configured_values["rule_set"])
    assert rule_set.startswith(f"SNAPSHOT of dynamodb://{table} saved")  # from that folder


def _read_only_folder(tmp_path) -> str:
    """A folder this process cannot create files in: a 0555 folder, or for root (whom file
    modes do not stop) a path under /sys, where nothing can be created."""
    if os.geteuid() == 0:
        return "/sys/indici-rules-snapshot"
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return str(folder)


def test_a_read_only_local_snapshot_folder_is_quiet_and_the_rules_still_load(
    table, buckets, monkeypatch, tmp_path, caplog
):
    landing, partitioned = buckets
    settings = dataclasses.replace(
        settings_for(table, landing, partitioned), rules_snapshot_dir=_read_only_folder(tmp_path)
    )
    with caplog.at_level(logging.DEBUG, logger="indici_dagster.rules"):
        defs = build(settings)

    assert all(staging_key(d) in defs.resolve_asset_graph().get_all_asset_keys() for d in RULES)
    snapshot_lines = [r for r in caplog.records if "rules snapshot" in r.getMessage()]
    assert snapshot_lines and all(r.levelno == logging.DEBUG for r in snapshot_lines)
    assert s3_keys(partitioned) == [f"{SNAPSHOT_PREFIX}{table}.json"]  # the shared copy is kept

    dynamodb_unreachable(monkeypatch)  # and the fallback still works, from the shared copy
    rule_set = json.loads(rules_resource_snap(build(settings)).configured_values["rule_set"])
    assert rule_set.startswith(f"SNAPSHOT of dynamodb://{table} saved")
