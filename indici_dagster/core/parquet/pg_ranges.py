"""PostgreSQL's date and timestamp ranges, checked on converted Arrow columns before encoding.

A value outside them is refused with its column and row, never clamped or wrapped: binary COPY
counts from 2000-01-01, and a value near the ends of Arrow's range would overflow that
subtraction into another, valid-looking date.
"""

from collections.abc import Sequence
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from indici_dagster.core.parquet.reader import (
    READ_BUFFER_BYTES,
    TargetColumn,
    UnreadableParquetError,
    ValueCastError,
)

UNIX_EPOCH_JULIAN_DAY = 2_440_588
TIMESTAMP_MIN_MICROS = -210_866_803_200_000_000
"""4714-11-24 00:00:00 BC, the first timestamp Postgres holds, in microseconds since 1970.
Its last (294276 AD) lies beyond every int64 microsecond count, so needs no check."""
DATE_MIN_DAYS = -UNIX_EPOCH_JULIAN_DAY
"""4714-11-24 BC (Julian day 0), in days since 1970."""
DATE_END_DAYS = 2_147_483_494 - UNIX_EPOCH_JULIAN_DAY
"""5874898-01-01, the first date past Postgres's range, in days since 1970."""
INT96_END_MILLIS = (2**63 - 1) // 1000
"""The first millisecond count whose microseconds may not fit in int64 (294247 AD)."""
_INT96_CHECK_ROWS = 65_536


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


def check_int96_range(
    parquet_file: pq.ParquetFile, source: BinaryIO | None, columns: Sequence[str]
) -> None:
    """Raise `ValueOutOfRangeError` for the first INT96 value of `columns` that microseconds
    cannot hold or Postgres cannot store.

    An INT96 day number reaches 11 million years; converted to microseconds, days beyond
    294247 AD wrap to other, valid-looking dates. A second reader of the same handle reads
    these columns at milliseconds, where no INT96 value wraps, and checks every one before
    the microseconds are used.
    """
    if not columns:
        return
    if source is None:
        raise UnreadableParquetError(
            f"INT96 columns {sorted(columns)} can be range-checked only in a file opened by "
            "open_parquet"
        )
    reader = pq.ParquetFile(
        source,
        metadata=parquet_file.metadata,
        buffer_size=READ_BUFFER_BYTES,
        pre_buffer=False,
        coerce_int96_timestamp_unit="ms",
    )
    first_row = 1
    batches = reader.iter_batches(
        batch_size=_INT96_CHECK_ROWS, columns=list(columns), use_threads=False
    )
    for batch in batches:
        for name, array in zip(batch.schema.names, batch.columns, strict=True):
            millis = array.view(pa.int64())
            index = _first_outside(millis, TIMESTAMP_MIN_MICROS // 1000, INT96_END_MILLIS)
            if index is not None:
                raise ValueOutOfRangeError(name, "timestamp", first_row + index)
        first_row += batch.num_rows
