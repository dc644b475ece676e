"""Rules kept in DynamoDB (a moto server): the `indici rules` commands and the definitions."""

import uuid

import boto3
import pytest

from indici_dagster.cli import main
from indici_dagster.core.rules.store import load_rules, shipped_rules_path
from indici_dagster.core.settings import Settings
from indici_dagster.lib.keys import rpt_key, staging_key
from indici_dagster_tests.support.common import TIMEZONE, build


@pytest.fixture
def table(moto_endpoint, monkeypatch, tmp_path) -> str:
    """A new, empty rules table (partition key `dataset`); INDICI_RULES left unset."""
    monkeypatch.delenv("INDICI_RULES", raising=False)
    monkeypatch.chdir(tmp_path)  # the local rules snapshot copy stays in the test's folder
    name = f"indici-rules-{uuid.uuid4().hex[:8]}"
    boto3.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "dataset", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "dataset", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def datasets_in(table: str) -> list[str]:
    items = boto3.resource("dynamodb").Table(table).scan(ConsistentRead=True)["Items"]
    return sorted(item["dataset"] for item in items)


def test_push_then_pull_round_trips_the_shipped_rules(table, tmp_path):
    shipped = shipped_rules_path()
    pulled = tmp_path / "pulled.yaml"

    assert main(["rules", "push", str(shipped), "--table", table]) == 0
    assert main(["rules", "pull", "--table", table, "-o", str(pulled)]) == 0

    assert load_rules(pulled) == load_rules(shipped)
    assert load_rules(f"dynamodb://{table}") == load_rules(shipped)


def test_definitions_built_from_dynamodb_rules_have_each_datasets_assets(table, tmp_path):
    assert main(["rules", "push", str(shipped_rules_path()), "--table", table]) == 0
    settings = Settings(
        landing=str(tmp_path / "landing"),
        partitioned=str(tmp_path / "partitioned"),
        rules=f"dynamodb://{table}",
        pg_dsn="postgresql://nobody@127.0.0.1:1/none",  # never connected to while building
        timezone=TIMEZONE,
        start_date="2026-01-01",
    )

    keys = build(settings).resolve_asset_graph().get_all_asset_keys()

    for dataset in load_rules():
        assert staging_key(dataset) in keys
        assert rpt_key(dataset) in keys


def test_push_with_replace_leaves_exactly_the_files_rules(table, tmp_path):
    assert main(["rules", "push", str(shipped_rules_path()), "--table", table]) == 0
    fewer = tmp_path / "fewer.yaml"
    fewer.write_text("- dataset: EthnicityCode\n- dataset: VaccineCode\n")

    assert main(["rules", "push", str(fewer), "--table", table]) == 0
    assert len(datasets_in(table)) == len(load_rules())
    assert main(["rules", "push", str(fewer), "--table", table, "--replace"]) == 0

    assert datasets_in(table) == ["EthnicityCode", "VaccineCode"]


def test_an_invalid_rule_is_rejected_by_validate_and_never_pushed(table, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "- dataset: Invoices\n"
        "  primary_key: [InvoiceID]\n"
        "  columns:\n"
        "    InvoiceID: bigint\n"
        "    TotalAmount: money\n"
    )

    assert main(["rules", "validate", str(bad)]) == 2
    assert "money" in capsys.readouterr().err
    assert main(["rules", "push", str(bad), "--table", table]) == 2
    assert datasets_in(table) == []


def test_history_false_round_trips_through_dynamodb(table, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- dataset: Rooms\n  primary_key: [RoomID]\n  columns: {RoomID: bigint}\n  history: false\n"
    )
    assert main(["rules", "push", str(rules), "--table", table]) == 0

    assert load_rules(f"dynamodb://{table}")["Rooms"].history is False
