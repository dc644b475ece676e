"""PostgreSQL's binary COPY format, encoded from Arrow record batches a whole column at a time.

`COPY ... FROM STDIN (FORMAT binary)` is the fastest way into Postgres: the server reads each
value's internal form without parsing text. The encoder here turns each column into big-endian
values and 4-byte length prefixes with numpy and Arrow compute, lays fixed-width runs side by
side, and joins the rest row-wise in one Arrow kernel, so no Python code runs per row (except
for decimals wider than 64 bits, which are rare). Batches must already have the Arrow type
matching their column (see `types.ColumnType.wire`): binary Arrow values are sent as they are,
so a type whose wire form is not a plain Arrow value (uuid, jsonb, a float as `numeric`) is
converted to its wire bytes first (`numeric_from_floats`, `wire_forms`).

Format reference: https://www.postgresql.org/docs/current/sql-copy.html (Binary Format) and the
`*_send` / `*_recv` functions of each type.
"""

import decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
"""Signature, flags (no OIDs) and header-extension length."""
COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)

_POSTGRES_EPOCH_DAYS = 10_957  # 2000-01-01 in days since 1970-01-01
_POSTGRES_EPOCH_MICROS = _POSTGRES_EPOCH_DAYS * 86_400 * 1_000_000
_NULL_LENGTH = -1
_NUMERIC_POSITIVE = 0x0000
_NUMERIC_NEGATIVE = 0x4000
_NUMERIC_NAN = 0xC000
_NUMERIC_INFINITY = 0xD000
_NUMERIC_NEGATIVE_INFINITY = 0xF000
_NBASE_DIGITS = 4  # numeric digits are base 10,000
_JOIN_TYPE = pa.large_binary()
_NO_SEPARATOR = pa.scalar(b"", _JOIN_TYPE)


class UnsupportedBinaryTypeError(TypeError):
    """An Arrow type this encoder has no binary form for."""


def encode_batch(batch: pa.RecordBatch) -> pa.Buffer:
    """The batch's rows in binary COPY row format (no header or trailer).

    Guarantees that each value arrives in Postgres exactly as Arrow holds it: integers, floats
    (NaN and infinities included), booleans, text, dates, microsecond timestamps (a zone-aware
    one as the instant it denotes), microsecond times and decimals (at their own scale). NULLs
    stay NULL; binary values (any Arrow binary type) are sent byte for byte, as the value's
    whole wire form. Raises `UnsupportedBinaryTypeError` for any other column type.
    """
    rows = batch.num_rows
    field_count = np.full((rows, 1), batch.num_columns, dtype=">i2").view(np.uint8)
    # Runs of fixed-width bytes (field count, length prefixes, values without NULLs) are laid
    # side by side with numpy; only text and columns holding NULLs stay separate arrays. The
    # row-wise join then handles a few arrays instead of two per column.
    parts: list[pa.Array] = []
    block: list[np.ndarray] = [field_count]
    for column in batch.columns:
        fixed, variable = _encode_column(column)
        block.append(fixed)
        if variable is not None:
            parts.append(_fixed_width_rows(np.concatenate(block, axis=1)))
            parts.append(variable)
            block = []
    if block:
        parts.append(_fixed_width_rows(np.concatenate(block, axis=1)))
    if len(parts) == 1:
        joined = parts[0]
    else:
        joined = pc.binary_join_element_wise(*parts, _NO_SEPARATOR, null_handling="skip")
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int64)[joined.offset :]
    start, stop = int(offsets[0]), int(offsets[rows])
    return joined.buffers()[2].slice(start, stop - start)


def _encode_column(column: pa.Array) -> tuple[np.ndarray, pa.Array | None]:
    """The column as (fixed-width bytes per row, variable-length values or None).

    The fixed part always holds each value's 4-byte length (-1 for NULL); it also holds the
    value itself when every value has the same width and none is NULL.
    """
    rows = len(column)
    kind = column.type
    if pa.types.is_null(kind) or column.null_count == rows:
        return _lengths(np.full(rows, _NULL_LENGTH, dtype=np.int32)), None
    if _is_variable_width(kind):
        values = column.cast(_JOIN_TYPE)
        offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)
        lengths = np.diff(offsets[values.offset : values.offset + rows + 1])
        return _lengths(_with_nulls(lengths, column)), values
    if pa.types.is_decimal128(kind):
        values_bytes = _decimal_values(column)
        if values_bytes is None:
            return _decimals_slowly(column)
    elif pa.types.is_decimal256(kind):
        return _decimals_slowly(column)
    elif pa.types.is_fixed_size_binary(kind):
        values_bytes = _fixed_size_values(column)
    else:
        values_bytes = _big_endian_values(column).view(np.uint8).reshape(rows, -1)
    width = values_bytes.shape[1]
    lengths = _lengths(_with_nulls(np.full(rows, width, dtype=np.int32), column))
    if not column.null_count:
        return np.concatenate([lengths, values_bytes], axis=1), None
    return lengths, _fixed_width_rows(values_bytes, _validity(column))


def _big_endian_values(column: pa.Array) -> np.ndarray:
    """The column's values (NULLs as zero) in their Postgres wire form, as a numpy array."""
    kind = column.type
    if column.null_count:
        column = pc.fill_null(column, pa.scalar(0 if kind != pa.bool_() else False, kind))
    if kind == pa.bool_():
        return column.to_numpy(zero_copy_only=False).astype(np.uint8)
    if kind == pa.date32():
        days = column.cast(pa.int32()).to_numpy()
        return (days - _POSTGRES_EPOCH_DAYS).astype(">i4")
    if pa.types.is_timestamp(kind):
        micros = column.cast(pa.int64()).to_numpy()
        return (micros - _POSTGRES_EPOCH_MICROS).astype(">i8")
    if kind == pa.time64("us"):
        return column.cast(pa.int64()).to_numpy().astype(">i8")
    if kind in (pa.int16(), pa.int32(), pa.int64(), pa.float32(), pa.float64()):
        values = column.to_numpy()
        return values.astype(values.dtype.newbyteorder(">"))
    raise UnsupportedBinaryTypeError(f"no binary COPY encoding for Arrow type {kind}")


def _is_variable_width(kind: pa.DataType) -> bool:
    return any(
        check(kind)
        for check in (
            pa.types.is_string,
            pa.types.is_large_string,
            pa.types.is_binary,
            pa.types.is_large_binary,
        )
    )


def _fixed_size_values(column: pa.Array) -> np.ndarray:
    """A fixed-size binary column's values (NULLs as zero bytes) as a (rows, width) matrix."""
    width = column.type.byte_width
    if column.null_count:
        column = pc.fill_null(column, pa.scalar(bytes(width), column.type))
    data = np.frombuffer(column.buffers()[1], dtype=np.uint8)
    return data[column.offset * width : (column.offset + len(column)) * width].reshape(-1, width)


def _validity(column: pa.Array) -> pa.Buffer | None:
    """A validity bitmap at offset 0 for the column, or None if it has no NULLs."""
    if not column.null_count:
        return None
    return pc.is_valid(column).buffers()[1]


def _with_nulls(lengths: np.ndarray, column: pa.Array) -> np.ndarray:
    if not column.null_count:
        return lengths
    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    return np.where(valid, lengths, _NULL_LENGTH)


def _lengths(lengths: np.ndarray) -> np.ndarray:
    """Each row's 4-byte big-endian length (-1 for NULL), as a (rows, 4) byte matrix."""
    return lengths.astype(">i4").view(np.uint8).reshape(len(lengths), 4)


def _fixed_width_rows(data: np.ndarray, validity: pa.Buffer | None = None) -> pa.Array:
    """A binary array whose row i holds the bytes `data[i]` (a (rows, width) byte matrix)."""
    rows, width = data.shape
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int64)
    return pa.Array.from_buffers(
        _JOIN_TYPE,
        rows,
        [validity, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))],
    )


def _decimal_values(column: pa.Array) -> np.ndarray | None:
    """Postgres `numeric` wire form (digit count, weight, sign, display scale, base-10,000
    digits) of every value as a (rows, width) byte matrix; None if a value exceeds 64 bits or
    has more integer digits than the type's precision allows.

    Every row gets the same number of digits; Postgres drops leading and trailing zero digits.
    """
    kind: pa.Decimal128Type = column.type  # type: ignore[assignment]
    rows = len(column)
    scale = kind.scale
    if not 0 <= scale <= 18:
        return None
    words = np.frombuffer(column.buffers()[1], dtype="<i8")
    words = words[2 * column.offset : 2 * (column.offset + rows)]
    low, high = words[0::2], words[1::2]
    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    if not np.all(~valid | (high == (low >> 63))):
        return None
    unscaled = np.where(valid, low, 0)
    magnitude = np.abs(unscaled).astype(np.uint64)  # |min int64| still fits unsigned
    integer_part, fraction = np.divmod(magnitude, np.uint64(10**scale))
    integer_groups = -(-max(1, min(kind.precision - scale, 20)) // _NBASE_DIGITS)
    if integer_groups * _NBASE_DIGITS < 20 and int(integer_part.max(initial=0)) >= 10 ** (
        integer_groups * _NBASE_DIGITS
    ):
        # a Parquet decimal may hold more digits than its declared precision: never cut them
        return None
    fraction_groups = -(-scale // _NBASE_DIGITS)
    padding = fraction_groups * _NBASE_DIGITS - scale  # zeros that fill the last fraction group
    groups = integer_groups + fraction_groups
    encoded = np.empty((rows, 4 + groups), dtype=">i2")
    encoded[:, 0] = groups
    encoded[:, 1] = integer_groups - 1  # weight: the first digit's power of 10,000
    encoded[:, 2] = np.where(unscaled < 0, _NUMERIC_NEGATIVE, _NUMERIC_POSITIVE)
    encoded[:, 3] = scale
    nbase = np.uint64(10**_NBASE_DIGITS)
    for index in range(integer_groups):
        power = np.uint64(10 ** (_NBASE_DIGITS * (integer_groups - 1 - index)))
        encoded[:, 4 + index] = (integer_part // power) % nbase
    for index in range(fraction_groups):
        exponent = _NBASE_DIGITS * (fraction_groups - 1 - index) - padding
        if exponent >= 0:
            digit = (fraction // np.uint64(10**exponent)) % nbase
        else:  # the last group, shifted left over its padding
            digit = (fraction % np.uint64(10 ** (_NBASE_DIGITS - padding))) * np.uint64(10**padding)
        encoded[:, 4 + integer_groups + index] = digit
    return encoded.view(np.uint8)


def _decimals_slowly(column: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Decimals beyond 64 bits, one value at a time through Python's `decimal`."""
    encoded = [None if value is None else numeric_bytes(value) for value in column.to_pylist()]
    lengths = np.array([_NULL_LENGTH if v is None else len(v) for v in encoded], np.int32)
    return _lengths(lengths), pa.array(encoded, _JOIN_TYPE)


def numeric_bytes(value: decimal.Decimal) -> bytes:
    """One decimal in Postgres `numeric` wire form, byte for byte what `numeric_send` gives for
    the same value (NaN and infinities included; a signalling NaN raises `ValueError`)."""
    sign, digits, exponent = value.as_tuple()
    if value.is_snan():
        raise ValueError("a signalling NaN has no numeric form")
    if not isinstance(exponent, int):
        special = _NUMERIC_NAN if value.is_nan() else _NUMERIC_INFINITY
        if value.is_infinite() and sign:
            special = _NUMERIC_NEGATIVE_INFINITY
        return np.array([0, 0, special, 0], dtype=">u2").tobytes()
    scale = max(0, -exponent)
    text = "".join(map(str, digits))
    if exponent < 0:
        text = text.rjust(scale, "0")  # at least as many digits as the scale
        integer_text, fraction_text = text[: len(text) - scale], text[len(text) - scale :]
    else:
        integer_text, fraction_text = text + "0" * exponent, ""
    integer_text = integer_text.lstrip("0")
    integer_text = integer_text.rjust(-(-len(integer_text) // 4) * 4, "0")
    fraction_text = fraction_text.ljust(-(-len(fraction_text) // 4) * 4, "0")
    groups = [int(integer_text[i : i + 4]) for i in range(0, len(integer_text), 4)]
    weight = len(groups) - 1
    groups += [int(fraction_text[i : i + 4]) for i in range(0, len(fraction_text), 4)]
    # Postgres's own form: no leading or trailing zero digits, and weight 0 for zero
    while groups and groups[-1] == 0:
        groups.pop()
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    if not groups:
        weight = 0
    header = [len(groups), weight, _NUMERIC_NEGATIVE if sign else _NUMERIC_POSITIVE, scale]
    return np.array(header + groups, dtype=">i2").tobytes()


_FLOAT_TEXT = (
    r"^(?P<sign>-?)(?P<whole>[0-9]+)(?:\.(?P<fraction>[0-9]*))?(?:e(?P<exponent>[+-]?[0-9]+))?$"
)
_FLOAT_GROUPS = 6  # a shortest float has at most 17 digits: 5 groups, and 1 for the shift
NUMERIC_FROM_FLOAT = pa.binary(2 * (4 + _FLOAT_GROUPS))
"""The Arrow type `numeric_from_floats` returns: header and digits, 2 bytes each."""


def numeric_from_floats(column: pa.Array) -> pa.Array:
    """Each float's `numeric` wire form: the shortest decimal that reads back as the same
    float (0.1 is 0.1, as Python and Arrow print it), NaN as NaN, infinities as infinities.

    Returns a `fixed_size_binary` array (NULLs stay NULL) that `encode_batch` sends as it is;
    a column's precision and scale are applied by Postgres, which rounds the decimal half away
    from zero exactly as it would its text. Raises `ValueError` if Arrow printed a float in a
    form this does not read (never expected; checked, not assumed).
    """
    if pa.types.is_float16(column.type):
        column = column.cast(pa.float32())
    rows = len(column)
    finite = pc.fill_null(pc.is_finite(column), False)
    text = pc.if_else(finite, pc.cast(column, pa.string()), pa.scalar("0"))
    parts = pc.extract_regex(text, _FLOAT_TEXT)
    if parts.null_count:
        raise ValueError(f"row {pc.index(pc.is_null(parts), True).as_py()}: unreadable float text")
    sign, whole, fraction, exponent = (parts.field(i) for i in range(4))
    mantissa = pc.cast(pc.binary_join_element_wise(whole, fraction, ""), pa.int64()).to_numpy()
    exponent = pc.replace_substring(exponent, "+", "")
    exponent = pc.if_else(pc.equal(exponent, ""), pa.scalar("0"), exponent)
    power = pc.cast(exponent, pa.int64()).to_numpy() - pc.utf8_length(fraction).to_numpy()
    shift = power % _NBASE_DIGITS
    groups = np.zeros((rows, _FLOAT_GROUPS), dtype=np.int64)
    nbase = 10**_NBASE_DIGITS
    carry = np.zeros(rows, dtype=np.int64)
    for index in range(_FLOAT_GROUPS - 1, 0, -1):
        digit = mantissa // nbase ** (_FLOAT_GROUPS - 1 - index) % nbase
        value = digit * 10**shift + carry
        groups[:, index], carry = value % nbase, value // nbase
    groups[:, 0] = carry
    values = column.to_numpy(zero_copy_only=False)
    signs = np.where(pc.equal(sign, "-").to_numpy(zero_copy_only=False), 0x4000, 0)
    signs = np.where(np.isnan(values), _NUMERIC_NAN, signs)
    signs = np.where(values == np.inf, _NUMERIC_INFINITY, signs)
    signs = np.where(values == -np.inf, _NUMERIC_NEGATIVE_INFINITY, signs)
    special = signs >= _NUMERIC_NAN
    encoded = np.empty((rows, 4 + _FLOAT_GROUPS), dtype=">i2")
    encoded[:, 0] = _FLOAT_GROUPS
    encoded[:, 1] = np.where(special, 0, _FLOAT_GROUPS - 1 + (power - shift) // _NBASE_DIGITS)
    encoded[:, 2] = signs.astype(np.uint16).view(np.int16)
    encoded[:, 3] = np.where(special, 0, np.maximum(0, -power))
    encoded[:, 4:] = np.where(special[:, None], 0, groups)
    return pa.Array.from_buffers(
        NUMERIC_FROM_FLOAT,
        rows,
        [_validity(column), pa.py_buffer(encoded.view(np.uint8).tobytes())],
    )
