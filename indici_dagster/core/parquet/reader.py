"""Reading landed Parquet files: footers, Postgres types, and the byte stream COPY reads.

Files are read record batch by record batch; at most one encoded batch is held in memory, so
memory use does not grow with file size.
"""

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from indici_dagster.core.db_errors import describe_library_error, quote_name
from indici_dagster.core.types.registry import inferred_type

READ_BUFFER_BYTES = 1 << 20
INT96_UNIT = "us"
"""INT96 timestamps (Spark, Impala) decode at microseconds: every year from 290,000 BC to
294,000 AD fits, where nanoseconds wrap outside 1677-2262. Postgres keeps microseconds."""


class UnreadableParquetError(ValueError):
    """Bytes that are not a readable Parquet file (truncated, corrupt, zero columns, ...)."""


class UnsupportedColumnTypeError(ValueError):
    """A Parquet column whose type has no Postgres equivalent here."""


class ValueCastError(ValueError):
    """A value that does not fit its column's type: names column, type and row, never the value."""

    def __init__(
        self, column: str, type_name: str, row_number: int, reason: str | None = None
    ) -> None:
        super().__init__(
            f"column {quote_name(column)}: a value cannot be converted to {type_name} "
            f"(first offending row {row_number}{f': {reason}' if reason else ''}); "
            "nothing of this file was loaded"
        )
        self.column, self.type_name, self.row_number = column, type_name, row_number


@dataclass(frozen=True)
class ParquetSummary:
    """What a Parquet footer says about a file."""

    rows: int
    columns: tuple[tuple[str, str], ...]
    """(column name, Arrow type) for each column, in file order."""
    row_groups: int


class LandedParquetFile(pq.ParquetFile):
    """A Parquet file opened for loading: INT96 at microseconds, and its handle kept, so the
    reading budget can look at its dictionaries before decoding any data page."""

    def __init__(self, handle: BinaryIO) -> None:
        # a buffered stream decodes column chunks piece by piece instead of whole row groups
        super().__init__(
            handle,
            buffer_size=READ_BUFFER_BYTES,
            pre_buffer=False,
            coerce_int96_timestamp_unit=INT96_UNIT,
        )
        self.source = handle


def open_parquet(handle: BinaryIO) -> pq.ParquetFile:
    """Open a Parquet file from a seekable handle, reading only its footer.

    Raises `UnreadableParquetError` for anything that is not a Parquet file with columns.
    """
    try:
        parquet_file = LandedParquetFile(handle)
    except (pa.ArrowException, OSError, ValueError) as error:
        # Arrow's own text is not kept: it may quote the file's bytes
        raise UnreadableParquetError(
            f"not a readable Parquet file: {describe_library_error(error)}"
        ) from None
    if len(parquet_file.schema_arrow) == 0:
        raise UnreadableParquetError("the Parquet file has no columns")
    return parquet_file


def int96_columns(parquet_file: pq.ParquetFile) -> list[str]:
    """The file's top-level INT96 columns. Raises `UnreadableParquetError` if one decodes at
    nanoseconds, where values outside 1677-2262 wrap to other dates, undetectably
    (`open_parquet` never opens a file that way; this stops any other opener)."""
    schema = parquet_file.schema_arrow
    names = []
    for index in range(len(parquet_file.schema)):
        column = parquet_file.schema.column(index)
        if column.physical_type != "INT96" or column.path not in schema.names:
            continue
        arrow_type = schema.field(column.path).type
        if pa.types.is_timestamp(arrow_type) and arrow_type.unit == "ns":
            raise UnreadableParquetError(
                f"INT96 column {column.path!r} was opened at nanoseconds, where dates outside "
                f"1677-2262 wrap; open the file with open_parquet ({INT96_UNIT})"
            )
        names.append(column.path)
    return names


def summarize(parquet_file: pq.ParquetFile) -> ParquetSummary:
    """Return row count and schema from an opened file's footer."""
    schema = parquet_file.schema_arrow
    return ParquetSummary(
        rows=parquet_file.metadata.num_rows,
        columns=tuple((f.name, str(f.type)) for f in schema),
        row_groups=parquet_file.metadata.num_row_groups,
    )


def postgres_type_for(arrow_type: pa.DataType) -> str:
    """Return the Postgres type that holds every value of `arrow_type` without loss.

    Raises `UnsupportedColumnTypeError` for types no registered type takes (nested ones).
    """
    type_name = inferred_type(arrow_type)
    if type_name is None:
        raise UnsupportedColumnTypeError(
            f"Parquet type {arrow_type} has no supported Postgres type"
        )
    return type_name


@dataclass(frozen=True)
class TargetColumn:
    """Where one COPY column's values come from: a file column, or NULL when the file lacks it."""

    name: str
    """Postgres column name."""
    type: str
    """Postgres type (canonical)."""
    source: str | None
    """Parquet column name, or None to load NULL."""


def reject_unsupported(array: pa.Array, column: TargetColumn) -> None:
    """Raise `UnsupportedColumnTypeError` for values no staging column can hold (nested)."""
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
