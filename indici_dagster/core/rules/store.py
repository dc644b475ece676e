"""Where rules live: a YAML file or a DynamoDB table (`dynamodb://<table>`)."""

from collections.abc import Mapping
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from indici_dagster.core.errors import missing_resource_hint
from indici_dagster.core.rules.model import Rule, RuleError, parse_rules

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


def dynamodb_table(location: str) -> str:
    """The table named by a `dynamodb://<table>` location."""
    table = location[len(DYNAMODB_SCHEME) :].strip("/")
    if not table:
        raise RuleError(f"{location!r} names no DynamoDB table")
    return table


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        # a DynamoDB set has no order: sorted, so the same item always reads the same
        return sorted(_plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class RulesUnavailableError(RuleError):
    """The rules store could not be read (as opposed to rules that were read and are invalid)."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient
        """True when trying again later may succeed (unreachable, timed out, throttled)."""


def _unavailable(table: str, error: Exception) -> RulesUnavailableError:
    """One line saying why `table` could not be read, and whether a retry may help."""
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", "")) or type(error).__name__
        transient = code not in _PERMANENT_CODES
        reason = f"{code} ({error})"
    else:
        transient = not isinstance(error, NoCredentialsError)
        reason = f"{type(error).__name__} ({error})"
    hint = missing_resource_hint(error)
    return RulesUnavailableError(
        f"cannot read rules from DynamoDB table {table!r}: {reason}"
        + (f"; {hint}" if hint else ""),
        transient=transient,
    )


_PERMANENT_CODES = frozenset(
    {
        "AccessDeniedException",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ValidationException",
    }
)


def read_dynamodb_rules(table: str, dynamodb: Any = None) -> list[dict[str, Any]]:
    """Return every rule item in a DynamoDB table (paginated scan, strongly consistent).

    `dynamodb` is a boto3 DynamoDB service resource (default: one from the environment).
    Raises `RulesUnavailableError` when the table cannot be read (unreachable, missing, access
    denied), saying whether a retry may help.
    """
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"ConsistentRead": True}
    try:
        table_resource = (dynamodb or boto3.resource("dynamodb")).Table(table)
        while True:
            page = table_resource.scan(**kwargs)
            items.extend(_plain(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    except (BotoCoreError, ClientError) as error:
        raise _unavailable(table, error) from None


def _dynamodb_value(value: Any) -> Any:
    """`value` as boto3 stores it: DynamoDB numbers take `Decimal`, never `float`."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {k: _dynamodb_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dynamodb_value(v) for v in value]
    return value


def write_dynamodb_rules(rules: Mapping[str, Rule], table: str, *, replace: bool = False) -> int:
    """Put every rule into a DynamoDB table (partition key `dataset`); returns how many.

    With `replace`, items for datasets not in `rules` are deleted, so the table then holds
    exactly these rules.
    """
    table_resource = boto3.resource("dynamodb").Table(table)
    with table_resource.batch_writer(overwrite_by_pkeys=["dataset"]) as batch:
        for rule in rules.values():
            batch.put_item(Item=_dynamodb_value(rule.to_dict()))
        if replace:
            for item in read_dynamodb_rules(table):
                if item.get("dataset") not in rules:
                    batch.delete_item(Key={"dataset": item["dataset"]})
    return len(rules)


def load_rules(location: str | Path | None = None, dynamodb: Any = None) -> dict[str, Rule]:
    """Load and validate the rules at `location` (YAML path or `dynamodb://table`).

    With no location, the rules file shipped in the package; `dynamodb` is the boto3 resource
    for a table (default: one from the environment). Raises `RuleError` if the rules cannot be
    read (`RulesUnavailableError`), any rule is invalid (naming each by dataset), or there are
    none: a pipeline never runs with half its rules, nor with none.
    """
    location = str(location) if location else str(shipped_rules_path())
    if location.startswith(DYNAMODB_SCHEME):
        items = read_dynamodb_rules(dynamodb_table(location), dynamodb)
    else:
        items = read_rules_file(location)
    try:
        rules = parse_rules(items)
    except RuleError as error:
        raise RuleError(f"rules in {location}: {error}") from None
    if not rules:
        raise RuleError(
            f"rules in {location}: there are none; a pipeline without rules would load nothing "
            "(add rules, e.g. with `indici rules push`)"
        )
    return rules
