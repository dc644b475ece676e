"""Transformation rules: one per dataset, naming its table, primary key and column types.

A rule with neither `primary_key` nor `columns` is *static*: its files load with column types
taken from the Parquet schema and its reporting table holds the newest snapshot.
"""

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from indici_dagster.core.naming import InvalidIdentifierError, snake_case, validate_identifier
from indici_dagster.core.pipeline_names import PIPELINE_RELATIONS, dataset_relations
from indici_dagster.core.types.registry import METADATA_NAMES, TypeSpellingError, canonical

DATASET_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9]*")

"""Columns the pipeline adds to every staging table; a source column may not map onto them."""
MAX_RULE_COLUMNS = 1600 - len(METADATA_NAMES)
"""Postgres's limit of 1,600 columns a table, less the metadata columns."""
DEFAULT_MAX_FILE_AGE_HOURS = 36
"""How old the newest landed file of a dataset may be before its feed counts as quiet."""


class RuleError(ValueError):
    """A rule or rules file that cannot be used, with the reason."""


def canonical_type(type_name: str) -> str:
    """Return the canonical Postgres spelling of an allowed column type (see `types`).

    Only registered types with parameters in Postgres's own limits are accepted, so the result
    is safe to place in SQL text as a type name. Raises `RuleError` for anything else.
    """
    try:
        return canonical(type_name)
    except TypeSpellingError as error:
        raise RuleError(str(error)) from None


@dataclass(frozen=True)
class Column:
    """One rule column: its name in the files, its Postgres name and its Postgres type."""

    source: str
    name: str
    type: str


@dataclass(frozen=True)
class Rule:
    """A validated transformation rule for one dataset."""

    dataset: str
    table: str
    primary_key: tuple[str, ...] = ()
    """Postgres names of the key columns, in key order."""
    columns: tuple[Column, ...] = ()
    nhi_columns: tuple[str, ...] = field(default=())
    """Postgres names of columns holding NHI numbers."""
    max_file_age_hours: float = DEFAULT_MAX_FILE_AGE_HOURS
    """How old the newest landed file may be before a freshness warning; 0: never warned."""

    @property
    def is_static(self) -> bool:
        """True for a rule without column definitions: types come from the Parquet schema."""
        return not self.columns

    def column(self, name: str) -> Column:
        """Return the rule column with Postgres name `name`."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Return the rule in the rules-file form (source names, as written by a user)."""
        data: dict[str, Any] = {"dataset": self.dataset, "table": self.table}
        if self.columns:
            by_name = {c.name: c.source for c in self.columns}
            data["primary_key"] = [by_name[k] for k in self.primary_key]
            data["columns"] = {c.source: c.type for c in self.columns}
        if self.nhi_columns:
            by_name = {c.name: c.source for c in self.columns}
            data["nhi_columns"] = [by_name[k] for k in self.nhi_columns]
        if self.max_file_age_hours != DEFAULT_MAX_FILE_AGE_HOURS:
            # written only when set, so rule sets (and their fingerprints) without it read as before
            data["max_file_age_hours"] = self.max_file_age_hours
        return data


def _as_list(value: Any, what: str, dataset: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        return [str(v) for v in value]
    raise RuleError(f"rule {dataset}: {what} must be a list of column names")


def _max_file_age_hours(value: Any, dataset: str) -> float:
    """A non-negative, finite number of hours (`int` when whole); 0 turns the check off."""
    if value is None:
        return DEFAULT_MAX_FILE_AGE_HOURS
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if number is None or not math.isfinite(number) or number < 0:
        raise RuleError(
            f"rule {dataset}: max_file_age_hours must be a number of hours, 0 or more "
            "(0 turns the freshness warning off)"
        )
    return int(number) if float(number).is_integer() else float(number)


def parse_rule(data: Mapping[str, Any]) -> Rule:
    """Validate one rule as written in YAML or stored in DynamoDB and return it.

    Guarantees every identifier in the result (table and column names) is a valid, unquoted-safe
    Postgres identifier, every type is an allowed type, the primary key names rule columns, and
    no source column maps onto a metadata column or onto another source column.
    """
    if not isinstance(data, Mapping):
        raise RuleError(f"a rule must be a mapping, got {type(data).__name__}")
    unknown = set(data) - {
        "dataset",
        "table",
        "primary_key",
        "columns",
        "nhi_columns",
        "max_file_age_hours",
    }
    dataset = str(data.get("dataset", "")).strip()
    if not DATASET_PATTERN.fullmatch(dataset):
        raise RuleError(
            f"rule dataset {dataset!r} must be letters and digits, starting with a letter"
        )
    if unknown:
        raise RuleError(f"rule {dataset}: unknown fields {sorted(unknown)}")
    try:
        table = validate_identifier(str(data.get("table") or snake_case(dataset)))
    except InvalidIdentifierError as error:
        raise RuleError(f"rule {dataset}: table {error}") from error
    if table in PIPELINE_RELATIONS or table.startswith("_"):
        raise RuleError(f"rule {dataset}: table name {table!r} is reserved for the pipeline")

    raw_columns = data.get("columns") or {}
    if not isinstance(raw_columns, Mapping):
        raise RuleError(f"rule {dataset}: columns must map source column names to types")
    if len(raw_columns) > MAX_RULE_COLUMNS:
        raise RuleError(f"rule {dataset}: more than {MAX_RULE_COLUMNS} columns")
    columns: list[Column] = []
    seen: dict[str, str] = {}
    for source, type_name in raw_columns.items():
        try:
            name = validate_identifier(snake_case(str(source)))
        except InvalidIdentifierError as error:
            raise RuleError(f"rule {dataset}: column {source!r}: {error}") from error
        if name in METADATA_NAMES:
            raise RuleError(f"rule {dataset}: column {source!r} maps to reserved name {name!r}")
        if name in seen:
            raise RuleError(
                f"rule {dataset}: columns {seen[name]!r} and {source!r} both map to {name!r}"
            )
        seen[name] = str(source)
        try:
            columns.append(Column(str(source), name, canonical_type(type_name)))
        except RuleError as error:
            raise RuleError(f"rule {dataset}: column {source!r}: {error}") from error

    def resolve(names: list[str], what: str) -> tuple[str, ...]:
        resolved = []
        for source in names:
            name = snake_case(source)
            if name not in seen:
                raise RuleError(f"rule {dataset}: {what} column {source!r} is not in columns")
            if name in resolved:
                raise RuleError(f"rule {dataset}: {what} names {source!r} twice")
            resolved.append(name)
        return tuple(resolved)

    primary_key = resolve(_as_list(data.get("primary_key"), "primary_key", dataset), "primary_key")
    nhi_columns = resolve(_as_list(data.get("nhi_columns"), "nhi_columns", dataset), "nhi")
    if columns and not primary_key:
        raise RuleError(f"rule {dataset}: a rule with columns needs a primary_key")
    if primary_key and not columns:
        raise RuleError(f"rule {dataset}: a rule with a primary_key needs columns")
    max_age = _max_file_age_hours(data.get("max_file_age_hours"), dataset)
    return Rule(dataset, table, primary_key, tuple(columns), nhi_columns, max_age)


def parse_rules(items: Iterable[Mapping[str, Any]]) -> dict[str, Rule]:
    """Validate a list of rules; returns them by dataset.

    Raises `RuleError` naming every problem found (not just the first), including two rules for
    one dataset, two datasets writing one table, and a table named like an index another
    dataset's tables bring.
    """
    rules: dict[str, Rule] = {}
    tables: dict[str, str] = {}
    problems: list[str] = []
    for item in items:
        try:
            rule = parse_rule(item)
        except RuleError as error:
            problems.append(str(error))
            continue
        if rule.dataset in rules:
            problems.append(f"rule {rule.dataset}: defined twice")
        elif rule.table in tables:
            problems.append(
                f"rule {rule.dataset}: table {rule.table!r} is already used by {tables[rule.table]}"
            )
        else:
            rules[rule.dataset] = rule
            tables[rule.table] = rule.dataset
    for rule in rules.values():
        for name in dataset_relations(rule.table):
            if name in tables:
                problems.append(
                    f"rule {tables[name]}: table {name!r} is the name of an index of "
                    f"{rule.dataset}'s tables"
                )
    if problems:
        raise RuleError("; ".join(problems))
    return rules
