"""A rule's `max_file_age_hours`: default 36, 0 turns freshness off, validated, and kept through
YAML, DynamoDB (a moto server) and the rules snapshot."""

import uuid
from datetime import UTC, datetime

import boto3
import pytest

from indici_dagster.core.rules.fingerprints import rule_set_fingerprint
from indici_dagster.core.rules.model import RuleError, parse_rule, parse_rules
from indici_dagster.core.rules.snapshot import (
    LoadedRules,
    SnapshotPlace,
    read_snapshot,
    save_snapshot,
)
from indici_dagster.core.rules.store import load_rules, write_dynamodb_rules, write_rules_file
from indici_dagster.core.storage.local_storage import LocalStorage

RULES = [
    {"dataset": "Patients", "primary_key": ["PatientID"], "columns": {"PatientID": "bigint"}},
    {"dataset": "EthnicityCode", "max_file_age_hours": 0},
    {"dataset": "Appointments", "max_file_age_hours": 1.5},
    {"dataset": "Invoices", "max_file_age_hours": 72},
]


def test_the_default_is_36_hours_and_0_turns_it_off():
    rules = parse_rules(RULES)
    assert rules["Patients"].max_file_age_hours == 36
    assert rules["EthnicityCode"].max_file_age_hours == 0
    assert rules["Appointments"].max_file_age_hours == 1.5
    assert rules["Invoices"].max_file_age_hours == 72


@pytest.mark.parametrize("value", [-1, "36", True, float("nan"), float("inf"), [36], {"h": 1}])
def test_anything_but_a_non_negative_number_is_refused_naming_the_rule_and_field(value):
    with pytest.raises(RuleError) as caught:
        parse_rule({"dataset": "Patients", "max_file_age_hours": value})
    assert str(caught.value).startswith("rule Patients: max_file_age_hours must be a number")


def test_a_rule_without_the_field_reads_and_fingerprints_as_before():
    plain = parse_rules([RULES[0]])
    assert "max_file_age_hours" not in plain["Patients"].to_dict()
    # a fingerprint names the table's shape only: a new limit never makes runs look stale
    changed = parse_rules([{**RULES[0], "max_file_age_hours": 5}])
    assert rule_set_fingerprint(changed) == rule_set_fingerprint(plain)


def test_it_round_trips_through_a_rules_file(tmp_path):
    rules = parse_rules(RULES)
    write_rules_file(rules, tmp_path / "rules.yaml")
    assert load_rules(tmp_path / "rules.yaml") == rules


def test_it_round_trips_through_dynamodb(moto_endpoint):
    table = f"indici-rules-{uuid.uuid4().hex[:8]}"
    boto3.client("dynamodb").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "dataset", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "dataset", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    rules = parse_rules(RULES)
    write_dynamodb_rules(rules, table)
    assert load_rules(f"dynamodb://{table}") == rules


def test_the_snapshot_keeps_it_and_a_changed_limit_is_saved_again(tmp_path):
    place = SnapshotPlace(LocalStorage(tmp_path), "rules/t.json")
    location = "dynamodb://t"
    now = datetime.now(UTC)
    first = parse_rules(RULES)
    assert save_snapshot(place, LoadedRules(first, location, now))
    snapshot = read_snapshot(place, location)
    assert snapshot is not None and snapshot.rules == first

    changed = parse_rules([{**RULES[0], "max_file_age_hours": 5}, *RULES[1:]])
    assert save_snapshot(place, LoadedRules(changed, location, now))
    snapshot = read_snapshot(place, location)
    assert snapshot is not None and snapshot.rules["Patients"].max_file_age_hours == 5
