"""Values whose binary COPY form is not a plain Arrow value: uuid, json, jsonb, text as numeric.

Each function takes a whole Arrow column and returns the values `pg_binary` sends byte for
byte, after checking each value as Postgres's own input function would. A value that does not
fit raises `BadValueError` with its 0-based position in the column, never the value itself.
"""

import json
from decimal import Decimal, InvalidOperation

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from indici_dagster.core.wire import pg_binary

_HEX4 = "[0-9a-fA-F]{4}"
_UUID_TEXT = rf"^(?:\{{{_HEX4}(?:-?{_HEX4}){{7}}\}}|{_HEX4}(?:-?{_HEX4}){{7}})$"
"""What Postgres's `uuid_in` reads: 32 hex digits, optionally in braces, with a hyphen allowed
after any group of four."""
_UUID_BYTES = 16
_HEX_VALUES = np.full(256, 0, dtype=np.uint8)
for _digit in range(16):
    _HEX_VALUES[ord(f"{_digit:x}")] = _HEX_VALUES[ord(f"{_digit:X}")] = _digit
_JSONB_VERSION = b"\x01"
_NUL_ESCAPE = r"(?:^|[^\\])(?:\\\\)*\\u0000"
"""A `\\u0000` escape (not an escaped backslash followed by `u0000`): jsonb refuses it."""


class BadValueError(ValueError):
    """A value that does not fit its column's type, by 0-based position in the column."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"position {index}: {reason}")
        self.index, self.reason = index, reason


def _first(mask: pa.Array) -> int:
    return int(pc.index(mask, True).as_py())


def _as_text(column: pa.Array) -> pa.Array:
    """The column as Arrow strings; bytes that are not UTF-8 raise `BadValueError`."""
    if pa.types.is_string(column.type):
        return column
    try:
        return column.cast(pa.string())
    except pa.ArrowInvalid:
        for index, value in enumerate(column.to_pylist()):
            if value is not None:
                try:
                    bytes(value).decode("utf-8")
                except UnicodeDecodeError:
                    raise BadValueError(index, "not valid UTF-8") from None
        raise


def uuid_bytes(column: pa.Array) -> pa.Array:
    """uuid text (or 16-byte values) as the 16 bytes `uuid_recv` reads."""
    if isinstance(column.type, pa.ExtensionType):
        column = column.storage
    if pa.types.is_fixed_size_binary(column.type) and column.type.byte_width == _UUID_BYTES:
        return column
    text = _as_text(column)
    well_formed = pc.fill_null(pc.match_substring_regex(text, _UUID_TEXT), True)
    if not pc.all(well_formed).as_py():
        raise BadValueError(_first(pc.invert(well_formed)), "not a uuid")
    digits = pc.replace_substring_regex(text, r"[{}\-]", "")
    digits = pc.fill_null(digits, "0" * 2 * _UUID_BYTES).cast(pa.large_string())
    offsets = np.frombuffer(digits.buffers()[1], dtype=np.int64)
    start = int(offsets[digits.offset])
    rows = len(column)
    hex_digits = np.frombuffer(digits.buffers()[2], dtype=np.uint8)[start : start + 32 * rows]
    nibbles = _HEX_VALUES[hex_digits].reshape(rows, _UUID_BYTES, 2)
    packed = (nibbles[:, :, 0] << 4) | nibbles[:, :, 1]
    validity = pc.is_valid(column).buffers()[1] if column.null_count else None
    return pa.Array.from_buffers(
        pa.binary(_UUID_BYTES), rows, [validity, pa.py_buffer(packed.tobytes())]
    )


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _check_json(text: pa.Array, *, jsonb: bool) -> None:
    """Raise `BadValueError` for the first value that is not JSON text `json_in` reads (with
    `jsonb`: that `jsonb_in` reads, which also refuses half a surrogate pair)."""
    for index, value in enumerate(text.to_pylist()):
        if value is None:
            continue
        try:
            # numbers stay text: no float rounding, no limit on an integer's digits
            json.loads(value, parse_constant=_refuse_constant, parse_int=str, parse_float=str)
        except RecursionError:
            raise BadValueError(index, "JSON nested too deeply") from None
        except ValueError:
            raise BadValueError(index, "not valid JSON") from None
        if jsonb and ("\\ud" in value or "\\uD" in value):
            _check_surrogates(index, value)


def _check_surrogates(index: int, value: str) -> None:
    """jsonb refuses a `\\u` escape of half a surrogate pair; Python's parser allows it."""
    decoded = json.loads(value, parse_int=str, parse_float=str)
    stack = [decoded]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise BadValueError(index, "JSON with an unpaired surrogate escape") from None


def json_text(column: pa.Array) -> pa.Array:
    """Valid JSON text, sent as it is (the `json` wire form is its text)."""
    text = _as_text(column)
    _check_json(text, jsonb=False)
    return text


def jsonb_bytes(column: pa.Array) -> pa.Array:
    """Valid JSON text behind the version byte 1 (the `jsonb` wire form)."""
    text = _as_text(column)
    _check_json(text, jsonb=True)
    nul = pc.fill_null(pc.match_substring_regex(text, _NUL_ESCAPE), False)
    if pc.any(nul).as_py():
        raise BadValueError(_first(nul), "JSON with a \\u0000 escape, which jsonb cannot hold")
    version = pa.scalar(_JSONB_VERSION, pa.binary())
    return pc.binary_join_element_wise(version, text.cast(pa.binary()), b"")


def numeric_from_text(column: pa.Array) -> pa.Array:
    """Decimal text (as `numeric_in` reads it) in `numeric` wire form, one value at a time."""
    text = _as_text(column)
    encoded = []
    for index, value in enumerate(text.to_pylist()):
        if value is None:
            encoded.append(None)
            continue
        try:
            if not value.isascii():  # Python reads other scripts' digits; Postgres does not
                raise ValueError("not ASCII")
            encoded.append(pg_binary.numeric_bytes(Decimal(value)))
        except (InvalidOperation, ValueError):
            raise BadValueError(index, "not a number") from None
    return pa.array(encoded, pa.binary())
