"""How a file's columns map onto its staging table, checked before any row is sent.

Pure functions: a file's Arrow schema and its rule give a `StagingPlan`; the plan is checked
against the table's column budget, and each column is given the type its staging column really
has. Each refusal is a `FileLoadError` naming the column and the types, never a value.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pyarrow as pa

from indici_dagster.core.db_errors import FileLoadError, quote_name
from indici_dagster.core.naming import InvalidIdentifierError, to_identifier
from indici_dagster.core.parquet.reader import (
    TargetColumn,
    UnsupportedColumnTypeError,
    postgres_type_for,
)
from indici_dagster.core.rules.model import Rule
from indici_dagster.core.types.registry import METADATA_NAMES, TypeSpellingError, canonical, widens

MAX_TABLE_COLUMNS = 1000
"""Columns a staging table may reach, metadata and dropped columns included: well under
PostgreSQL's 1,600, so a legitimate new column always has room. A file that would pass it fails."""


@dataclass(frozen=True)
class StagingPlan:
    """How a file's columns map onto its staging table."""

    columns: tuple[TargetColumn, ...]
    missing: tuple[str, ...]
    """Rule columns the file lacks (they load as NULL)."""
    extra: tuple[str, ...]
    """File columns the rule does not name (added to staging with a type from Parquet)."""
    drift: tuple[str, ...] = ()
    """Staging names of the columns the rule does not name (for a static rule: every column)."""
    static: bool = False
    """The rule names no columns: the first file's columns define the table."""


def plan_staging_columns(rule: Rule, schema: pa.Schema) -> StagingPlan:
    """Map a file's Arrow schema onto the rule's columns.

    File columns match rule columns by snake_case name. Raises `FileLoadError` for a file column
    that cannot become an identifier, that collides with another or with a metadata column, or
    whose type is unsupported; and for a keyed dataset whose file holds none of its columns.
    """
    fields = list(schema)
    by_name: dict[str, pa.Field] = {}
    for field in fields:
        try:
            name = to_identifier(field.name)
        except InvalidIdentifierError:
            raise FileLoadError(
                f"column {quote_name(field.name)} cannot become a Postgres identifier "
                "(in snake_case it is empty, longer than 63 characters or starts with a digit)"
            ) from None
        if name in METADATA_NAMES:
            raise FileLoadError(
                f"column {quote_name(field.name)} collides with metadata column {name!r}"
            )
        if name in by_name:
            raise FileLoadError(
                f"columns {quote_name(by_name[name].name)} and {quote_name(field.name)} "
                f"both map to {name!r}"
            )
        by_name[name] = field
    targets: list[TargetColumn] = []
    missing: list[str] = []
    for column in rule.columns:
        field = by_name.get(column.name)
        targets.append(TargetColumn(column.name, column.type, field.name if field else None))
        if field is None:
            missing.append(column.source)
    if rule.columns and len(missing) == len(rule.columns):
        raise FileLoadError("the file holds none of the rule's columns")
    known = {c.name for c in rule.columns}
    extra: list[str] = []
    for name, field in by_name.items():
        if name in known:
            continue
        try:
            type_name = postgres_type_for(field.type)
        except UnsupportedColumnTypeError as error:
            raise FileLoadError(f"column {quote_name(field.name)}: {error}") from None
        targets.append(TargetColumn(name, type_name, field.name))
        if not rule.is_static:
            extra.append(field.name)
    drift = tuple(t.name for t in targets if t.name not in known)
    return StagingPlan(tuple(targets), tuple(missing), tuple(extra), drift, rule.is_static)


def check_column_budget(
    plan: StagingPlan, existing: Sequence[str], slots_used: int, max_new_columns: int
) -> None:
    """Refuse (with `FileLoadError`) a file that would add more than `max_new_columns` columns
    the rule does not name to its staging table, or take the table past `MAX_TABLE_COLUMNS`.

    `existing` are the table's columns, `slots_used` the attribute numbers PostgreSQL has used
    for it (dropped columns keep theirs); both empty/0 for a table not created yet. The first
    file of a static rule defines its table, so only the ceiling applies to it.
    """
    have = set(existing)
    new = [c.name for c in plan.columns if c.name not in have]
    new_drift = [name for name in plan.drift if name not in have]
    if not (plan.static and not have) and len(new_drift) > max_new_columns:
        raise FileLoadError(
            f"the file would add {len(new_drift)} columns the rule does not name; at most "
            f"{max_new_columns} are added per file (INDICI_MAX_NEW_COLUMNS): name them in the "
            "rule or raise the limit"
        )
    metadata = 0 if have else len(METADATA_NAMES)
    total = slots_used + len(new) + metadata
    if total > MAX_TABLE_COLUMNS:
        raise FileLoadError(
            f"the staging table would have {total} columns ({slots_used} used so far, dropped "
            f"ones included, {metadata} for load metadata, {len(new)} new from this file); at "
            f"most {MAX_TABLE_COLUMNS} are allowed"
        )


def typed_columns(
    columns: Sequence[TargetColumn],
    source_types: Mapping[str, pa.DataType],
    table_types: Mapping[str, str],
) -> tuple[TargetColumn, ...]:
    """Each column with the type its staging column really has (`table_types`, as the catalog
    spells them), so the values sent are always of the column's own type.

    A column the table lacks keeps its planned type. One whose table type differs is accepted
    only if every value of the planned type fits the table's type exactly (a checked widening,
    such as integer into bigint) or the file's column holds nothing but NULLs; otherwise
    `FileLoadError` names the column, the table's type and the file's type.
    """
    typed = []
    for column in columns:
        existing = table_types.get(column.name)
        if existing is None:
            typed.append(column)
            continue
        try:
            actual = canonical(existing)
        except TypeSpellingError:
            actual = None
        source = source_types.get(column.source) if column.source is not None else None
        if source is not None and pa.types.is_dictionary(source):
            source = source.value_type
        only_nulls = source is None or pa.types.is_null(source)
        if actual is not None and (only_nulls or widens(column.type, actual)):
            typed.append(replace(column, type=actual))
            continue
        raise FileLoadError(
            f"column {column.source or column.name!r}: the staging column's type is {existing} "
            f"but the file's is {column.type}, which it cannot hold exactly; nothing of this "
            "file was loaded"
        )
    return tuple(typed)


def drift_message(plan: StagingPlan) -> str | None:
    """The audit message for a file whose columns differ from its rule's (names only)."""
    parts = []
    if plan.extra:
        names = ", ".join(quote_name(name) for name in plan.extra)
        parts.append(f"columns not in the rule, added to staging: {names}")
    if plan.missing:
        parts.append(
            f"rule columns missing from the file, loaded as NULL: {', '.join(plan.missing)}"
        )
    return "; ".join(parts) or None
