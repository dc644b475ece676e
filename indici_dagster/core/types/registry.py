"""The one registry of column types and load metadata columns.

Each allowed Postgres type is one `ColumnType`: how rules spell it (and the limits of its
parameters), which Parquet (Arrow) types load into it by default, the Arrow type whose binary
COPY form Postgres reads as it (and any conversion to that form), which types it widens into
without loss, and how sample files make up a value and store it. Rules validation, staging
loads, type inference and sample data all read this registry: adding a type is one `register`.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from indici_dagster.core.types import sample_values as samples
from indici_dagster.core.types.sample_values import Sample
from indici_dagster.core.wire import pg_binary, wire_forms

Params = tuple[int, ...]
Arrow = pa.DataType


class TypeSpellingError(ValueError):
    """A type name that is not an allowed column type, or parameters out of range."""


@dataclass(frozen=True)
class ColumnType:
    """One allowed Postgres column type."""

    name: str
    """Canonical base spelling, as SQL text and rules use it (`numeric`, `varchar`)."""
    arrow: Callable[[Params], Arrow]
    """The Arrow type a Parquet column of this type has in sample files."""
    sample: Callable[[Sample], Any]
    """A made-up value for sample files (a Python value of `arrow`)."""
    wire: Callable[[Params, Arrow], Arrow]
    """The Arrow type `pg_binary` sends for a column of this type fed from a file's type."""
    infer: Callable[[Arrow], Params | None] = lambda _: None
    """Parameters if a file column of this Arrow type loads as this type where no rule says."""
    convert: Callable[[pa.Array, Params], pa.Array | None] = lambda _array, _params: None
    """A special conversion to the wire form, or None to cast to `wire` (raises `BadValueError`)."""
    aliases: tuple[str, ...] = ()
    """Other spellings accepted in rules; one ending in `()` takes the parameters."""
    parameters: tuple[tuple[str, int, int], ...] = ()
    """(name, lowest, highest) of each parameter; the first is required when any is given."""
    plain: bool = True
    """Whether the type may be written without parameters."""
    widens_to: Callable[[Params, "ColumnType", Params], bool] = lambda _p, _t, _q: False
    """Whether every value of this type is held exactly by another type (a checked widening)."""
    key: Callable[[str, Params, int, int], Any] = samples.text_key
    """The n-th value of a key column in sample files (source name, parameters, n, first ID)."""

    def spell(self, params: Params) -> str:
        """Canonical spelling with parameters: `numeric(12,2)`."""
        return f"{self.name}({','.join(map(str, params))})" if params else self.name


REGISTRY: dict[str, ColumnType] = {}
"""Every allowed type by canonical name, in inference order."""


def register(column_type: ColumnType) -> ColumnType:
    """Add (or replace) a type; rules, loads and sample files accept it from then on."""
    REGISTRY[column_type.name] = column_type
    return column_type


def unregister(name: str) -> None:
    """Remove a type added by `register`."""
    REGISTRY.pop(name, None)


_SPELLING = re.compile(r"([a-z][a-z0-9 ]*?)\s*(?:\(\s*([0-9]{1,9})\s*(?:,\s*([0-9]{1,9})\s*)?\))?")


def parse_type(type_name: object) -> tuple[ColumnType, Params]:
    """The registered type and parameters a spelling names; raises `TypeSpellingError`.

    Parameters are checked against what Postgres accepts (numeric precision 1 to 1000 and
    scale 0 to the precision; a length from 1 to 10485760), so a rule never names a type the
    database would refuse.
    """
    text = " ".join(str(type_name).strip().lower().split()) if type_name is not None else ""
    match = _SPELLING.fullmatch(text)
    if match:
        base, numbers = match.group(1), tuple(int(g) for g in match.groups()[1:] if g)
        for column_type in REGISTRY.values():
            if numbers and column_type.parameters:
                if base == column_type.name or f"{base}()" in column_type.aliases:
                    return column_type, _checked(column_type, numbers, type_name)
            elif not numbers and (
                (column_type.plain and base == column_type.name) or base in column_type.aliases
            ):
                return column_type, ()
    allowed = ", ".join(sorted(_spellings()))
    raise TypeSpellingError(f"type {type_name!r} is not supported; use one of {allowed}")


def _spellings() -> set[str]:
    names = set()
    for column_type in REGISTRY.values():
        if column_type.plain:
            names.add(column_type.name)
        names.update(a for a in column_type.aliases if not a.endswith("()"))
        if column_type.parameters:
            names.add(f"{column_type.name}({','.join(p for p, _, _ in column_type.parameters)})")
    return names


def _checked(column_type: ColumnType, numbers: Params, spelled: object) -> Params:
    if len(numbers) > len(column_type.parameters):
        raise TypeSpellingError(f"type {spelled!r}: too many parameters")
    for value, (name, low, high) in zip(numbers, column_type.parameters, strict=False):
        high = numbers[0] if high < 0 else high  # -1: at most the first parameter
        if not low <= value <= high:
            raise TypeSpellingError(f"type {spelled!r}: {name} must be from {low} to {high}")
    return numbers


def canonical(type_name: object) -> str:
    """The canonical spelling of an allowed type (safe to place in SQL text as a type name)."""
    column_type, params = parse_type(type_name)
    return column_type.spell(params)


def inferred_type(arrow_type: Arrow) -> str | None:
    """The canonical type a file column of `arrow_type` loads as when no rule names it."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    for column_type in REGISTRY.values():
        params = column_type.infer(arrow_type)
        if params is not None:
            return column_type.spell(params)
    return None


def widens(planned: str, actual: str) -> bool:
    """True if a column of type `actual` holds every value of type `planned` exactly."""
    if planned == actual:
        return True
    try:
        (source, params), (target, target_params) = parse_type(planned), parse_type(actual)
    except TypeSpellingError:
        return False
    return source.widens_to(params, target, target_params)


# ---------------------------------------------------------------------------- metadata columns


@dataclass(frozen=True)
class MetadataColumn:
    """A column the pipeline adds to every staging (and rpt) table."""

    name: str
    type: str
    arrow: Arrow
    staging: str
    """Column constraint in staging."""
    rpt: str | None
    """Column constraint in rpt, or None if rpt does not carry it."""
    loaded: bool
    """Whether a staging COPY supplies it (else it takes its default)."""
    description: str = ""
    """What it holds, as data dictionaries and column comments say."""


METADATA = (
    MetadataColumn(
        "_source_file",
        "text",
        pa.string(),
        "NOT NULL",
        "NOT NULL",
        True,
        "The file the row came from.",
    ),
    MetadataColumn(
        "_source_ts",
        "timestamptz",
        pa.timestamp("us", "UTC"),
        "NOT NULL",
        "NOT NULL",
        True,
        "The timestamp in the file's name: newer versions of a key win by it.",
    ),
    MetadataColumn(
        "_row_number",
        "bigint",
        pa.int64(),
        "NOT NULL",
        "NOT NULL",
        True,
        "The row's 1-based position among its file's data rows.",
    ),
    MetadataColumn(
        "_loaded_at",
        "timestamptz",
        pa.timestamp("us", "UTC"),
        "NOT NULL DEFAULT now()",
        "NOT NULL",
        False,
        "When the row was loaded.",
    ),
    MetadataColumn(
        "_run_id", "text", pa.string(), "", None, True, "The Dagster run that loaded the row."
    ),
)
"""Load metadata, in table order: the file, its timestamp, the row's 1-based position in the
file's data rows, when it was loaded and by which run."""
METADATA_NAMES = tuple(c.name for c in METADATA)
METADATA_DESCRIPTIONS = {c.name: c.description for c in METADATA}


# ------------------------------------------------------------------------------- the types


def _is(*checks: Callable[[Arrow], bool]) -> Callable[[Arrow], Params | None]:
    return lambda t: () if any(check(t) for check in checks) else None


def simple(name: str, arrow_type: Arrow, sample: Callable[[Sample], Any], **more: Any) -> None:
    """Register a type whose sample files and wire form share one Arrow type."""
    register(ColumnType(name, lambda _p: arrow_type, sample, lambda _p, _s: arrow_type, **more))


def _integer(name: str, arrow_type: Arrow, aliases: tuple[str, ...], *sources: Callable) -> None:
    def widens_to(_params: Params, target: ColumnType, target_params: Params) -> bool:
        wider = _INTEGER_RANKS.get(target.name, -1) > _INTEGER_RANKS[name]
        return wider or (target.name == "numeric" and not target_params)

    simple(name, arrow_type, samples.integer, infer=_is(*sources), aliases=aliases,
           widens_to=widens_to, key=samples.counted_key)  # fmt: skip


_INTEGER_RANKS = {"smallint": 0, "integer": 1, "bigint": 2}
_integer("smallint", pa.int16(), ("int2",), pa.types.is_int8, pa.types.is_int16, pa.types.is_uint8)
_integer("integer", pa.int32(), ("int", "int4"), pa.types.is_int32, pa.types.is_uint16)
_integer("bigint", pa.int64(), ("int8",), pa.types.is_int64, pa.types.is_uint32)


def _scale(params: Params) -> int:
    return (params[1:] or (0,))[0]


def _numeric_arrow(params: Params) -> Arrow:
    """Plain numeric: floats; numeric(p,s): decimals (text beyond 76 digits)."""
    if not params:
        return pa.float64()
    if params[0] <= 38:
        return pa.decimal128(params[0], _scale(params))
    return pa.decimal256(params[0], _scale(params)) if params[0] <= 76 else pa.string()


def _numeric_wire(params: Params, source: Arrow) -> Arrow:
    """A decimal for ordinary numbers; wire bytes for floats and wide text (see convert)."""
    if pa.types.is_floating(source):
        return pg_binary.NUMERIC_FROM_FLOAT
    text = pa.types.is_string(source) or pa.types.is_large_string(source)
    if text and (not params or params[0] > 38):
        return pa.binary()
    if params and params[0] <= 38:
        return pa.decimal128(params[0], _scale(params))
    return source if pa.types.is_decimal(source) else pa.decimal128(38, 0)


def _numeric_convert(array: pa.Array, params: Params) -> pa.Array | None:
    if pa.types.is_floating(array.type):
        return pg_binary.numeric_from_floats(array)
    if _numeric_wire(params, array.type) == pa.binary():
        return wire_forms.numeric_from_text(array)
    return None


def _numeric_widens(params: Params, target: ColumnType, target_params: Params) -> bool:
    if target.name != "numeric" or not target_params:
        return target.name == "numeric"
    if not params:
        return False
    integer_digits = params[0] - _scale(params)
    return _scale(target_params) >= _scale(params) and (
        target_params[0] - _scale(target_params) >= integer_digits
    )


def _numeric_infer(t: Arrow) -> Params | None:
    if pa.types.is_decimal(t):
        return (t.precision, t.scale)
    return () if pa.types.is_uint64(t) else None


register(ColumnType("numeric", _numeric_arrow, samples.numeric, _numeric_wire, _numeric_infer,
                    _numeric_convert, aliases=("decimal", "decimal()"),
                    parameters=(("precision", 1, 1000), ("scale", 0, -1)),
                    widens_to=_numeric_widens, key=samples.decimal_key))  # fmt: skip
simple("real", pa.float32(), samples.floating, infer=_is(pa.types.is_float16, pa.types.is_float32),
       aliases=("float4",), widens_to=lambda _p, t, _q: t.name == "double precision")  # fmt: skip
simple("double precision", pa.float64(), samples.floating, infer=_is(pa.types.is_float64),
       aliases=("float8", "float"))  # fmt: skip


def _varchar_widens(params: Params, target: ColumnType, target_params: Params) -> bool:
    return target.name == "text" or (target.name == "varchar" and target_params >= params)


_LENGTH = (("length", 1, 10_485_760),)
simple("text", pa.string(), samples.text, aliases=("varchar", "character varying"),
       infer=_is(pa.types.is_string, pa.types.is_large_string, pa.types.is_null))  # fmt: skip
simple("varchar", pa.string(), samples.text, aliases=("character varying()",),
       parameters=_LENGTH, plain=False, widens_to=_varchar_widens)  # fmt: skip
simple("char", pa.string(), samples.text, aliases=("character()",), parameters=_LENGTH,
       plain=False)  # fmt: skip
simple("boolean", pa.bool_(), samples.boolean, infer=_is(pa.types.is_boolean), aliases=("bool",))
simple("date", pa.date32(), samples.day, infer=_is(pa.types.is_date), key=samples.date_key)
simple("timestamp", pa.timestamp("us"), samples.timestamp, aliases=("timestamp without time zone",),
       infer=lambda t: () if pa.types.is_timestamp(t) and not t.tz else None,
       key=samples.timestamp_key)  # fmt: skip
simple("timestamptz", pa.timestamp("us", "UTC"), samples.timestamptz,
       aliases=("timestamp with time zone",),
       infer=lambda t: () if pa.types.is_timestamp(t) and t.tz else None,
       key=samples.timestamptz_key)  # fmt: skip
simple("time", pa.time64("us"), samples.clock, infer=_is(pa.types.is_time),
       aliases=("time without time zone",))  # fmt: skip


def _from_text(
    name: str, wire: Arrow, convert: Callable[[pa.Array], pa.Array], sample, **more
) -> None:
    """A type that files hold as text and the wire takes as `wire` after `convert` checks it."""
    register(ColumnType(name, lambda _p: pa.string(), sample, lambda _p, _s: wire,
                        convert=lambda array, _p: convert(array), **more))  # fmt: skip


_from_text("uuid", pa.binary(16), wire_forms.uuid_bytes, samples.uuid_text, key=samples.uuid_key)
_from_text("json", pa.string(), wire_forms.json_text, samples.json_text)  # its text
_from_text("jsonb", pa.binary(), wire_forms.jsonb_bytes, samples.json_text)  # version 1, text
_BINARY = (pa.types.is_binary, pa.types.is_large_binary, pa.types.is_fixed_size_binary)
simple("bytea", pa.binary(), samples.raw_bytes, infer=_is(*_BINARY))
