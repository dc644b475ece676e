"""Where rules live: a YAML file or a DynamoDB table (`dynamodb://<table>`), and the snapshot
of the last rule set read from DynamoDB that a code location loads from while DynamoDB is down.
"""

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from indici_dagster.core.rule_fingerprints import rule_set_fingerprint
from indici_dagster.core.rules import Rule, RuleError, parse_rules
from indici_dagster.core.storage import Storage

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
    return RulesUnavailableError(
        f"cannot read rules from DynamoDB table {table!r}: {reason}", transient=transient
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


def load_rules(location: str | Path | None = None, dynamodb: Any = None) -> dict[str, Rule]:
    """Load and validate the rules at `location` (YAML path or `dynamodb://table`).

    With no location, the rules file shipped in the package; `dynamodb` is the boto3 resource
    for a table (default: one from the environment). Raises `RuleError` if the rules cannot be
    read (`RulesUnavailableError`), any rule is invalid (naming each by dataset), or there are
    none: a pipeline never runs with half its rules, nor with none.
    """
    location = str(location) if location else str(shipped_rules_path())
    if location.startswith(DYNAMODB_SCHEME):
        items = read_dynamodb_rules(_dynamodb_table(location), dynamodb)
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


# --------------------------------------------------------------------------------------------
# The snapshot: the last rule set read from DynamoDB, so a location loads while it is down

SNAPSHOT_PREFIX = "_indici/rules/"
"""Where snapshots live in their storage: one JSON object per DynamoDB table."""


@dataclass(frozen=True)
class LoadedRules:
    """A validated rule set and where it came from."""

    rules: dict[str, Rule]
    source: str
    """The rules location: a YAML path or `dynamodb://<table>`."""
    as_of: datetime
    """When the rules were read; for a snapshot, when it was saved."""
    from_snapshot: str | None = None
    """Why the snapshot was used (the store's error; empty when the snapshot was read on its
    own), or None when the rules were read from the store."""
    snapshot_problem: str | None = None
    """Why a rule set read from the store could not be kept as the snapshot, if it could not."""

    def summary(self) -> str:
        """One line for the UI and logs: source, time, count and fingerprint; never content."""
        when = self.as_of.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        what = f"{len(self.rules)} rules, fingerprint {rule_set_fingerprint(self.rules)}"
        if self.from_snapshot is None:
            return f"read from {self.source} at {when} ({what})"
        return (
            f"SNAPSHOT of {self.source} saved {when} ({what}), used because the table could not "
            f"be read when the code location loaded: {self.from_snapshot}"
        )


def snapshot_key(location: str) -> str:
    """The snapshot key for a `dynamodb://<table>` location."""
    return f"{SNAPSHOT_PREFIX}{_dynamodb_table(location)}.json"


def save_snapshot(storage: Storage, loaded: LoadedRules) -> bool:
    """Keep `loaded` as the snapshot of its table unless the snapshot already holds these rules.

    Returns True when written. The snapshot is what `load_rules_or_snapshot` falls back to.
    """
    fingerprint = rule_set_fingerprint(loaded.rules)
    key = snapshot_key(loaded.source)
    with contextlib.suppress(RuleError):
        current = read_snapshot(storage, loaded.source)
        if current is not None and rule_set_fingerprint(current.rules) == fingerprint:
            return False
    document = {
        "source": loaded.source,
        "saved_at": loaded.as_of.astimezone(UTC).isoformat(),
        "fingerprint": fingerprint,
        "rules": [loaded.rules[d].to_dict() for d in sorted(loaded.rules)],
    }
    storage.put_bytes(key, json.dumps(document, indent=1).encode("utf-8"))
    return True


def read_snapshot(storage: Storage, location: str) -> LoadedRules | None:
    """The snapshot of the table at `location`, or None if there is none.

    Raises `RuleError` when it exists but cannot be read, does not validate, or does not match
    its own fingerprint (a damaged snapshot is never used).
    """
    key = snapshot_key(location)
    try:
        if storage.head(key) is None:
            return None
        with storage.open_for_read(key) as handle:
            document = json.loads(handle.read().decode("utf-8"))
        rules = parse_rules(document["rules"])
        saved_at = datetime.fromisoformat(document["saved_at"])
    except (RuleError, KeyError, TypeError, ValueError) as error:
        raise RuleError(f"snapshot {storage.display(key)} is damaged: {error}") from None
    except (OSError, BotoCoreError, ClientError) as error:
        raise RuleError(
            f"snapshot {storage.display(key)} cannot be read: {type(error).__name__}"
        ) from None
    if not rules or document.get("fingerprint") != rule_set_fingerprint(rules):
        raise RuleError(f"snapshot {storage.display(key)} is damaged: its fingerprint differs")
    return LoadedRules(rules, location, saved_at, from_snapshot="")


def load_rules_or_snapshot(
    location: str | None,
    dynamodb: Any = None,
    snapshots: Storage | None = None,
    now: datetime | None = None,
) -> LoadedRules:
    """Load the rules as a code location does: from the store, else from the last snapshot.

    A DynamoDB rule set read successfully is kept as the snapshot in `snapshots`. When the table
    cannot be reached (a transient error), the snapshot is returned with `from_snapshot` saying
    why. Everything else raises `RuleError` with one line: invalid or no rules, a table that is
    missing or refused, and an unreachable table with no snapshot yet (a first-ever load).
    """
    source = location or str(shipped_rules_path())
    now = now or datetime.now(UTC)
    if not source.startswith(DYNAMODB_SCHEME):
        return LoadedRules(load_rules(source), source, now)
    try:
        loaded = LoadedRules(load_rules(source, dynamodb), source, now)
    except RulesUnavailableError as error:
        if not error.transient or snapshots is None:
            raise
        try:
            snapshot = read_snapshot(snapshots, source)
        except RuleError as damaged:
            raise RuleError(f"{error}; and {damaged}") from None
        if snapshot is None:
            raise RulesUnavailableError(
                f"{error}; and no snapshot of earlier rules exists at "
                f"{snapshots.display(snapshot_key(source))} (it is written on the first "
                "successful read), so the code location cannot load until the table is reachable",
                transient=True,
            ) from None
        return LoadedRules(snapshot.rules, source, snapshot.as_of, from_snapshot=str(error))
    if snapshots is not None:
        try:
            save_snapshot(snapshots, loaded)
        except (OSError, BotoCoreError, ClientError) as error:
            problem = f"cannot write {snapshots.display(snapshot_key(source))}: {error}"
            return replace(loaded, snapshot_problem=problem)
    return loaded
