"""PostgreSQL's date and timestamp ranges, checked on converted Arrow columns before encoding.

A value outside them is refused with its column and row, never clamped or wrapped: binary COPY
counts from 2000-01-01, and a value near the ends of Arrow's range would overflow that
subtraction into another, valid-looking date.
"""

import pyarrow as pa
import pyarrow.compute as pc

from indici_dagster.core.parquet import TargetColumn, ValueCastError

UNIX_EPOCH_JULIAN_DAY = 2_440_588
TIMESTAMP_MIN_MICROS = -210_866_803_200_000_000
"""4714-11-24 00:00:00 BC, the first timestamp Postgres holds, in microseconds since 1970.
Its last (294276 AD) lies beyond every int64 microsecond count, so needs no check."""
DATE_MIN_DAYS = -UNIX_EPOCH_JULIAN_DAY
"""4714-11-24 BC (Julian day 0), in days since 1970."""
DATE_END_DAYS = 2_147_483_494 - UNIX_EPOCH_JULIAN_DAY
"""5874898-01-01, the first date past Postgres's range, in days since 1970."""


class ValueOutOfRangeError(ValueCastError):
    """A date or timestamp Postgres cannot hold: names column, type and row, never the value."""

    def __init__(self, column: str, type_name: str, row_number: int) -> None:
        ValueError.__init__(
            self,
            f"column {column!r}: a value lies outside PostgreSQL's {type_name} range "
            f"(first offending row {row_number}); nothing of this file was loaded",
        )
        self.column, self.type_name, self.row_number = column, type_name, row_number


def _first_outside(values: pa.Array, low: int, end: int | None) -> int | None:
    """0-based index of the first value below `low` or at/after `end`, or None."""
    outside = pc.less(values, low)
    if end is not None:
        outside = pc.or_(outside, pc.greater_equal(values, end))
    outside = pc.fill_null(outside, False)
    if not pc.any(outside).as_py():
        return None
    return int(pc.index(outside, True).as_py())


def check_range(array: pa.Array, column: TargetColumn, first_row: int) -> None:
    """Raise `ValueOutOfRangeError` for the first date or timestamp Postgres cannot hold.

    `array` is a converted column (date32, or timestamp in microseconds); other types pass.
    """
    if pa.types.is_timestamp(array.type) and array.type.unit == "us":
        index = _first_outside(array.view(pa.int64()), TIMESTAMP_MIN_MICROS, None)
    elif pa.types.is_date32(array.type):
        index = _first_outside(array.view(pa.int32()), DATE_MIN_DAYS, DATE_END_DAYS)
    else:
        return
    if index is not None:
        raise ValueOutOfRangeError(column.source or column.name, column.type, first_row + index)
