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
from indici_dagster.core.rules.docs import (
    NHI_MARK,
    ColumnDoc,
    DocError,
    column_entry,
    parse_column_entry,
    parse_description,
)
from indici_dagster.core.types.registry import METADATA_NAMES, TypeSpellingError, canonical

DATASET_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9]*")

"""Columns the pipeline adds to every staging table; a source column may not map onto them."""
MAX_RULE_COLUMNS = 1600 - len(METADATA_NAMES)
"""Postgres's limit of 1,600 columns a table, less the metadata columns."""
DEFAULT_MAX_FILE_AGE_HOURS = 36
"""How old the newest landed file of a dataset may be before its feed counts as quiet."""


RULE_FIELDS = frozenset(
    {
        "dataset",
        "table",
        "description",
        "primary_key",
        "columns",
        "nhi_columns",
        "history",
        "max_file_age_hours",
    }
)
MAX_HISTORY_TABLE = 63 - len("_history")
"""The longest table name a keyed dataset with history may have (`rpt.<table>_history`)."""


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
    """Postgres names of typed columns holding NHI numbers (`pii: nhi`, or the older
    `nhi_columns` list): the ones the NHI checks examine."""
    description: str | None = None
    column_docs: tuple[tuple[str, ColumnDoc], ...] = ()
    """(Postgres name, what the rule says of it) for each column the rule describes or marks,
    in the rule's order; a static rule may describe columns it gives no type."""
    history: bool = True
    """Whether a keyed dataset keeps `rpt.<table>_history` (`history: false` turns it off)."""
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

    def doc(self, name: str) -> ColumnDoc | None:
        """What the rule says of the column with Postgres name `name`, or None."""
        return dict(self.column_docs).get(name)

    @property
    def pii_columns(self) -> dict[str, str]:
        """Postgres name -> `pii` mark of every marked column (NHI columns included)."""
        return {name: doc.pii for name, doc in self.column_docs if doc.pii is not None}

    def to_dict(self) -> dict[str, Any]:
        """Return the rule in the rules-file form (source names, as written by a user): the
        short column form where the rule says nothing but a type, NHI columns as `pii: nhi`."""
        data: dict[str, Any] = {"dataset": self.dataset, "table": self.table}
        if self.description is not None:
            data["description"] = self.description
        docs = dict(self.column_docs)
        if self.columns:
            by_name = {c.name: c.source for c in self.columns}
            data["primary_key"] = [by_name[k] for k in self.primary_key]
            data["columns"] = {
                c.source: column_entry(c.type, docs.get(c.name)) for c in self.columns
            }
        elif docs:
            data["columns"] = {doc.source: column_entry(None, doc) for doc in docs.values()}
        if not self.history:
            data["history"] = False
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
    unknown = set(data) - RULE_FIELDS
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

    try:
        description = parse_description(data.get("description"), f"rule {dataset}")
        columns, docs = _parse_columns(dataset, data.get("columns") or {})
    except DocError as error:
        raise RuleError(str(error)) from None
    typed = {c.name: c.source for c in columns}

    def resolve(names: list[str], what: str, among: dict[str, str]) -> tuple[str, ...]:
        resolved = []
        for source in names:
            name = snake_case(source)
            if name not in among:
                raise RuleError(f"rule {dataset}: {what} column {source!r} is not in columns")
            if name in resolved:
                raise RuleError(f"rule {dataset}: {what} names {source!r} twice")
            resolved.append(name)
        return tuple(resolved)

    key = resolve(_as_list(data.get("primary_key"), "primary_key", dataset), "primary_key", typed)
    listed_nhi = resolve(_as_list(data.get("nhi_columns"), "nhi_columns", dataset), "nhi", typed)
    if columns and not key:
        raise RuleError(f"rule {dataset}: a rule with columns needs a primary_key")
    if key and not columns:
        raise RuleError(f"rule {dataset}: a rule with a primary_key needs columns")
    docs = _mark_listed_nhi(dataset, docs, listed_nhi, typed)
    nhi_columns = tuple(name for name, doc in docs if doc.pii == NHI_MARK and name in typed)
    history = data.get("history", True)
    if not isinstance(history, bool):
        raise RuleError(f"rule {dataset}: history must be true or false")
    if columns and history and len(table) > MAX_HISTORY_TABLE:
        raise RuleError(
            f"rule {dataset}: table {table!r} is too long for its history "
            f"({table}_history): at most {MAX_HISTORY_TABLE} characters, or history: false"
        )
    return Rule(
        dataset,
        table,
        key,
        tuple(columns),
        nhi_columns,
        description=description,
        column_docs=tuple(docs),
        history=history,
        max_file_age_hours=_max_file_age_hours(data.get("max_file_age_hours"), dataset),
    )


def _parse_columns(
    dataset: str, raw_columns: Any
) -> tuple[list[Column], list[tuple[str, ColumnDoc]]]:
    """The typed columns and the column docs of a rule's `columns`, in its order.

    Either every entry has a type (a keyed rule), or none has (a static rule describing the
    columns its files bring); each source name maps to a distinct, non-metadata Postgres name.
    """
    if not isinstance(raw_columns, Mapping):
        raise RuleError(f"rule {dataset}: columns must map source column names to types")
    if len(raw_columns) > MAX_RULE_COLUMNS:
        raise RuleError(f"rule {dataset}: more than {MAX_RULE_COLUMNS} columns")
    columns: list[Column] = []
    docs: list[tuple[str, ColumnDoc]] = []
    seen: dict[str, str] = {}
    untyped: list[str] = []
    for source, value in raw_columns.items():
        what = f"rule {dataset}: column {source!r}"
        try:
            name = validate_identifier(snake_case(str(source)))
        except InvalidIdentifierError as error:
            raise RuleError(f"{what}: {error}") from error
        if name in METADATA_NAMES:
            raise RuleError(f"{what} maps to reserved name {name!r}")
        if name in seen:
            raise RuleError(
                f"rule {dataset}: columns {seen[name]!r} and {source!r} both map to {name!r}"
            )
        seen[name] = str(source)
        type_name, doc = parse_column_entry(str(source), value, what)
        if doc.description is not None or doc.pii is not None:
            docs.append((name, doc))
        if type_name is None:
            untyped.append(str(source))
            continue
        try:
            columns.append(Column(str(source), name, canonical_type(type_name)))
        except RuleError as error:
            raise RuleError(f"{what}: {error}") from error
    if untyped and columns:
        raise RuleError(
            f"rule {dataset}: column {untyped[0]!r} has no type (a rule types every column, "
            "or none: a static rule only describes its columns)"
        )
    return columns, docs


def _mark_listed_nhi(
    dataset: str,
    docs: list[tuple[str, ColumnDoc]],
    listed: tuple[str, ...],
    typed: dict[str, str],
) -> list[tuple[str, ColumnDoc]]:
    """`docs` with each column of the older `nhi_columns` list marked `pii: nhi` (a column
    the long form marks otherwise is an error), kept in the rule's column order."""
    by_name = dict(docs)
    for name in listed:
        doc = by_name.get(name)
        if doc is not None and doc.pii not in (None, NHI_MARK):
            raise RuleError(
                f"rule {dataset}: column {typed[name]!r} is in nhi_columns "
                f"but marked pii: {doc.pii}"
            )
        by_name[name] = ColumnDoc(typed[name], doc.description if doc else None, NHI_MARK)
    order = list(typed) + [name for name, _ in docs if name not in typed]
    return [(name, by_name[name]) for name in order if name in by_name]


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
