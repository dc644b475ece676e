"""Where rules live: a YAML file or a DynamoDB table (`dynamodb://<table>`)."""

from collections.abc import Mapping
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError

from indici_dagster.core.rules import Rule, RuleError, parse_rules

DYNAMODB_SCHEME = "dynamodb://"


def shipped_rules_path() -> Path:
    """Path of the rules file shipped inside the package."""
    return Path(str(resources.files("indici_dagster").joinpath("rules.yaml")))


def read_rules_file(path: str | Path) -> list[dict[str, Any]]:
    """Return the raw rule mappings in a YAML rules file (a list, or a mapping with `rules:`)."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise RuleError(f"cannot read rules file {path}: {error}") from error
    if isinstance(document, Mapping) and "rules" in document:
        document = document["rules"]
    if document is None:
        return []
    if not isinstance(document, list):
        raise RuleError(f"rules file {path} must hold a list of rules")
    return document


def write_rules_file(rules: Mapping[str, Rule], path: str | Path) -> None:
    """Write rules to a YAML rules file, one list item per rule, sorted by dataset."""
    items = [rules[name].to_dict() for name in sorted(rules)]
    Path(path).write_text(yaml.safe_dump(items, sort_keys=False), encoding="utf-8")


def _dynamodb_table(location: str) -> str:
    table = location[len(DYNAMODB_SCHEME) :].strip("/")
    if not table:
        raise RuleError(f"{location!r} names no DynamoDB table")
    return table


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    return value


def read_dynamodb_rules(table: str) -> list[dict[str, Any]]:
    """Return every rule item in a DynamoDB table (paginated scan, strongly consistent).

    Raises `RuleError` when the table cannot be read (unreachable, missing, access denied).
    """
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"ConsistentRead": True}
    try:
        table_resource = boto3.resource("dynamodb").Table(table)
        while True:
            page = table_resource.scan(**kwargs)
            items.extend(_plain(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    except (BotoCoreError, ClientError) as error:
        raise RuleError(f"cannot read rules from DynamoDB table {table!r}: {error}") from error


def write_dynamodb_rules(rules: Mapping[str, Rule], table: str, *, replace: bool = False) -> int:
    """Put every rule into a DynamoDB table (partition key `dataset`); returns how many.

    With `replace`, items for datasets not in `rules` are deleted, so the table then holds
    exactly these rules.
    """
    table_resource = boto3.resource("dynamodb").Table(table)
    with table_resource.batch_writer(overwrite_by_pkeys=["dataset"]) as batch:
        for rule in rules.values():
            batch.put_item(Item=rule.to_dict())
        if replace:
            for item in read_dynamodb_rules(table):
                if item.get("dataset") not in rules:
                    batch.delete_item(Key={"dataset": item["dataset"]})
    return len(rules)


def load_rules(location: str | Path | None = None) -> dict[str, Rule]:
    """Load and validate the rules at `location` (YAML path or `dynamodb://table`).

    With no location, the rules file shipped in the package. Raises `RuleError` if the rules
    cannot be read or any rule is invalid: a pipeline never runs with half its rules.
    """
    location = str(location) if location else str(shipped_rules_path())
    if location.startswith(DYNAMODB_SCHEME):
        return parse_rules(read_dynamodb_rules(_dynamodb_table(location)))
    return parse_rules(read_rules_file(location))
