"""Reading landed Parquet files: footers, Postgres types, and a streamed CSV feed for COPY.

Files are read record batch by record batch; at most one encoded batch is held in memory, so
memory use does not grow with file size.
"""

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from indici_dagster.core.db_errors import describe_library_error, quote_name

BATCH_ROWS = 65_536
READ_BUFFER_BYTES = 1 << 20
_INTEGER_TYPES = {"smallint", "integer", "bigint"}


class UnreadableParquetError(ValueError):
    """Bytes that are not a readable Parquet file (truncated, corrupt, zero columns, ...)."""


class UnsupportedColumnTypeError(ValueError):
    """A Parquet column whose type has no Postgres equivalent here."""


class ValueCastError(ValueError):
    """A value that does not fit its column's type: names column, type and row, never the value."""

    def __init__(self, column: str, type_name: str, row_number: int) -> None:
        super().__init__(
            f"column {quote_name(column)}: a value cannot be converted to {type_name} "
            f"(first offending row {row_number}); nothing of this file was loaded"
        )
        self.column, self.type_name, self.row_number = column, type_name, row_number


@dataclass(frozen=True)
class ParquetSummary:
    """What a Parquet footer says about a file."""

    rows: int
    columns: tuple[tuple[str, str], ...]
    """(column name, Arrow type) for each column, in file order."""
    row_groups: int


def open_parquet(handle: BinaryIO) -> pq.ParquetFile:
    """Open a Parquet file from a seekable handle, reading only its footer.

    Raises `UnreadableParquetError` for anything that is not a Parquet file with columns.
    """
    try:
        # a buffered stream decodes column chunks piece by piece instead of whole row groups
        parquet_file = pq.ParquetFile(handle, buffer_size=READ_BUFFER_BYTES, pre_buffer=False)
    except (pa.ArrowException, OSError, ValueError) as error:
        # Arrow's own text is not kept: it may quote the file's bytes
        raise UnreadableParquetError(
            f"not a readable Parquet file: {describe_library_error(error)}"
        ) from None
    if len(parquet_file.schema_arrow) == 0:
        raise UnreadableParquetError("the Parquet file has no columns")
    return parquet_file


def summarise(parquet_file: pq.ParquetFile) -> ParquetSummary:
    """Return row count and schema from an opened file's footer."""
    schema = parquet_file.schema_arrow
    return ParquetSummary(
        rows=parquet_file.metadata.num_rows,
        columns=tuple((f.name, str(f.type)) for f in schema),
        row_groups=parquet_file.metadata.num_row_groups,
    )


def postgres_type_for(arrow_type: pa.DataType) -> str:
    """Return the Postgres type that holds every value of `arrow_type` without loss.

    Raises `UnsupportedColumnTypeError` for nested and binary types.
    """
    if pa.types.is_dictionary(arrow_type):
        return postgres_type_for(arrow_type.value_type)
    checks: Sequence[tuple[object, str]] = (
        (pa.types.is_boolean, "boolean"),
        (lambda t: pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t), "smallint"),
        (lambda t: pa.types.is_int32(t) or pa.types.is_uint16(t), "integer"),
        (lambda t: pa.types.is_int64(t) or pa.types.is_uint32(t), "bigint"),
        (pa.types.is_uint64, "numeric"),
        (lambda t: pa.types.is_float16(t) or pa.types.is_float32(t), "real"),
        (pa.types.is_float64, "double precision"),
        (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "text"),
        (pa.types.is_date, "date"),
        (pa.types.is_time, "time"),
        (pa.types.is_null, "text"),
    )
    for check, name in checks:
        if check(arrow_type):  # type: ignore[operator]
            return name
    if pa.types.is_timestamp(arrow_type):
        return "timestamptz" if arrow_type.tz else "timestamp"
    if pa.types.is_decimal(arrow_type):
        return f"numeric({arrow_type.precision},{arrow_type.scale})"
    raise UnsupportedColumnTypeError(f"Parquet type {arrow_type} has no supported Postgres type")


@dataclass(frozen=True)
class TargetColumn:
    """Where one COPY column's values come from: a file column, or NULL when the file lacks it."""

    name: str
    """Postgres column name."""
    type: str
    """Postgres type (canonical)."""
    source: str | None
    """Parquet column name, or None to load NULL."""


def _prepare(array: pa.Array, column: TargetColumn, timezone: str, first_row: int) -> pa.Array:
    """Turn a file column into values whose CSV text Postgres reads as `column.type`."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_timestamp(array.type) and array.type.tz and column.type == "timestamp":
        # an instant stored in UTC lands as local wall-clock time in the pipeline's zone
        array = pc.local_timestamp(array.cast(pa.timestamp(array.type.unit, tz=timezone)))
    if column.type in _INTEGER_TYPES and pa.types.is_floating(array.type):
        # pandas writes integer columns with gaps as floats: accept them when they are whole
        whole = pc.equal(pc.floor(array), array)
        bad = pc.invert(pc.fill_null(whole, True))
        if pc.any(bad).as_py():
            index = pc.index(bad, True).as_py()
            raise ValueCastError(column.source or column.name, column.type, first_row + index)
        array = array.cast(pa.int64(), safe=False)
    reject_unsupported(array, column)
    return array


def reject_unsupported(array: pa.Array, column: TargetColumn) -> None:
    """Raise `UnsupportedColumnTypeError` for values no staging column can hold (binary, nested)."""
    if pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type):
        raise UnsupportedColumnTypeError(
            f"column {column.source!r}: binary Parquet values are not supported"
        )
    if pa.types.is_nested(array.type):
        raise UnsupportedColumnTypeError(
            f"column {column.source!r}: nested Parquet type {array.type} is not supported"
        )


class CopyStream(io.RawIOBase):
    """Read-only bytes over a stream of chunks, in pieces of at most the size asked for: what
    psycopg2's `copy_expert` reads a COPY from.

    Closing it (also done when it is garbage collected) stops the stream's producer.
    """

    def __init__(self, chunks: Iterator[bytes | pa.Buffer]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all of the current chunk if negative); empty at the end."""
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._pending = memoryview(chunk)
        if size < 0:
            size = len(self._pending)
        piece, self._pending = self._pending[:size], self._pending[size:]
        return piece.tobytes()

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        piece = self.read(len(buffer))
        buffer[: len(piece)] = piece
        return len(piece)

    def close(self) -> None:
        self._chunks.close()  # type: ignore[attr-defined]
        super().close()


class CsvCopyFeed(CopyStream):
    """A read-only stream of CSV rows for `COPY ... FROM STDIN (FORMAT csv)`.

    Each record batch of the file is converted and encoded only when the reader asks for more
    bytes. Every row carries the constant metadata values and its 1-based row number.
    """

    def __init__(
        self,
        parquet_file: pq.ParquetFile,
        columns: Sequence[TargetColumn],
        constants: Sequence[str],
        timezone: str,
        batch_rows: int = BATCH_ROWS,
    ) -> None:
        self._file = parquet_file
        self._columns = list(columns)
        self._constants = [pa.scalar(value, pa.string()) for value in constants]
        self._timezone = timezone
        self.rows = 0
        self.error: Exception | None = None
        """The exception a read raised: psycopg2 reports it only as a cancelled COPY."""
        self._lines = 0
        self._batch_lines: list[tuple[int, int, int, np.ndarray | None]] = []
        """(first row, lines before it, rows, COPY line of each row or None if one line each)."""
        super().__init__(self._encoded_batches(batch_rows))

    def row_of_line(self, line: int) -> int:
        """The file row that PostgreSQL's COPY error context calls `line`.

        In CSV, COPY counts a line for each newline inside a quoted value too, except inside the
        first row (it has not yet seen a line end then); this undoes that.
        """
        for first_row, before, rows, ends in self._batch_lines:
            if ends is None and before < line <= before + rows:
                return first_row + line - before - 1
            if ends is not None and before < line <= ends[-1]:
                return first_row + int(np.searchsorted(ends, line))
        return line

    def _count_lines(self, arrays: Sequence[pa.Array], first_row: int, size: int) -> None:
        newlines = np.zeros(size, dtype=np.int64)
        for array in arrays:
            if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
                counted = pc.fill_null(pc.count_substring(array, "\n"), 0)
                newlines += counted.to_numpy(zero_copy_only=False)
        if first_row == 1:
            newlines[0] = 0
        if newlines.any():
            ends = self._lines + np.cumsum(newlines + 1)
            self._batch_lines.append((first_row, self._lines, size, ends))
            self._lines = int(ends[-1])
        else:
            self._batch_lines.append((first_row, self._lines, size, None))
            self._lines += size

    def _encoded_batches(self, batch_rows: int) -> Iterator[bytes]:
        try:
            yield from self._csv_batches(batch_rows)
        except Exception as error:
            self.error = error
            raise

    def _csv_batches(self, batch_rows: int) -> Iterator[bytes]:
        sources = sorted({c.source for c in self._columns if c.source is not None})
        options = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")
        # one column at a time: Postgres has the other core, and memory stays flat
        batches = self._file.iter_batches(batch_size=batch_rows, columns=sources, use_threads=False)
        for batch in batches:
            size = batch.num_rows
            if size == 0:
                continue
            first_row = self.rows + 1
            arrays, names = [], []
            for column in self._columns:
                if column.source is None:
                    arrays.append(pa.nulls(size, pa.string()))
                else:
                    raw = batch.column(batch.schema.get_field_index(column.source))
                    arrays.append(_prepare(raw, column, self._timezone, first_row))
                names.append(column.name)
            for index, constant in enumerate(self._constants):
                arrays.append(pa.repeat(constant, size))
                names.append(f"_constant_{index}")
            arrays.append(pa.array(np.arange(first_row, first_row + size, dtype=np.int64)))
            names.append("_row_number")
            self._count_lines(arrays, first_row, size)
            sink = io.BytesIO()
            pa_csv.write_csv(pa.RecordBatch.from_arrays(arrays, names=names), sink, options)
            self.rows += size
            yield sink.getvalue()
