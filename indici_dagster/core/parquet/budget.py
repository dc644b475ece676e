"""How much of a Parquet file may be decoded, and in batches of how many rows.

A few kilobytes of Parquet can decode to gigabytes: a dictionary page holding one huge value
that every row points at, or a page that compresses a long run into almost nothing. Before any
data page is decoded, the footer's sizes (`total_uncompressed_size` and `total_compressed_size`
of each column chunk, `num_rows` of each row group) and each dictionary's longest value decide
the batch size of each row group, so that one batch stays near `ReadLimits.batch_bytes`; a file
whose footer already exceeds the limits fails before its data is read. While reading, the
decoded size of every batch and the running total of the file are measured and checked again,
so a footer that understates its sizes fails the file at its first batch over the limits; that
one batch (Arrow decompresses a whole page at once) is decoded before it can be measured.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

MIB = 1 << 20
_DICTIONARY_ENCODINGS = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}
_MIN_VALUE_BYTES = 16
"""Decoded bytes counted per value at least: the widest fixed type plus offsets and validity."""


@dataclass(frozen=True)
class ReadLimits:
    """The decoding limits of one file."""

    batch_bytes: int = 16 * MIB
    """Decoded bytes one record batch is sized for; a batch measured over `MEASURED_SLACK`
    times this fails its file."""
    file_floor_bytes: int = 256 * MIB
    """Decoded bytes any file may reach, however small it is stored."""
    expansion: int = 1000
    """Decoded bytes a file may reach per byte it stores, where that allows more than the floor."""

    MEASURED_SLACK = 4
    """Footer averages can understate a skewed batch: a measured batch fails only above this
    multiple of `batch_bytes`."""

    def file_bytes(self, stored_bytes: int) -> int:
        """Decoded bytes a file storing `stored_bytes` of column data may reach in all."""
        return max(self.file_floor_bytes, self.expansion * stored_bytes)


DEFAULT_LIMITS = ReadLimits()


class FileTooLargeError(ValueError):
    """A file that would decode to more than its limits allow; names what, never a value."""


def _mib(size: float) -> str:
    return f"{size / MIB:,.1f} MiB" if size >= MIB else f"{size / 1024:,.1f} KiB"


def _leaves(arrow_type: pa.DataType) -> int:
    """How many Parquet leaf columns hold a column of `arrow_type`."""
    if pa.types.is_struct(arrow_type):
        return sum(_leaves(arrow_type.field(i).type) for i in range(arrow_type.num_fields))
    if pa.types.is_map(arrow_type):
        return _leaves(arrow_type.key_type) + _leaves(arrow_type.item_type)
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return _leaves(arrow_type.value_type)
    if pa.types.is_fixed_size_list(arrow_type):
        return _leaves(arrow_type.value_type)
    return 1


def _leaf_names(parquet_file: pq.ParquetFile) -> list[str]:
    """The top-level column each leaf column chunk belongs to, in leaf order."""
    names = []
    for field in parquet_file.schema_arrow:
        names += [field.name] * _leaves(field.type)
    if len(names) != parquet_file.metadata.num_columns:  # a schema Arrow reshaped: by path
        names = [column.path for column in parquet_file.schema]
    return names


class _DictionaryPeek:
    """A second reader of the file's handle that keeps dictionaries encoded, opened once."""

    def __init__(self, parquet_file: pq.ParquetFile, source: BinaryIO | None) -> None:
        self._file, self._source = parquet_file, source
        self._reader: pq.ParquetFile | None = None
        self._columns: list[str] = []

    def longest_values(self, group: int, columns: Sequence[str]) -> dict[str, int]:
        """Bytes of the longest dictionary value of each of `columns` in row group `group`;
        columns it could not tell are left out. Reads only their dictionary and first pages."""
        longest: dict[str, int] = {}
        if self._source is None or not columns:
            return longest
        try:
            wanted = sorted(set(self._columns) | set(columns))
            if self._reader is None or wanted != self._columns:
                self._columns = wanted
                self._reader = pq.ParquetFile(
                    self._source,
                    metadata=self._file.metadata,
                    read_dictionary=wanted,
                    buffer_size=MIB,
                    pre_buffer=False,
                    coerce_int96_timestamp_unit="us",
                )
            batches = self._reader.iter_batches(
                batch_size=1, row_groups=[group], columns=list(columns), use_threads=False
            )
            batch = next(batches, None)
        except (pa.ArrowException, OSError, ValueError):
            return longest  # the caller counts the whole column chunk instead
        if batch is None:
            return longest
        for name, array in zip(batch.schema.names, batch.columns, strict=True):
            if pa.types.is_dictionary(array.type) and len(array.dictionary):
                lengths = pc.binary_length(array.dictionary)
                longest[name] = int(pc.max(lengths).as_py() or 0)
        return longest


def plan_reads(
    parquet_file: pq.ParquetFile,
    max_rows: int,
    limits: ReadLimits = DEFAULT_LIMITS,
    source: BinaryIO | None = None,
) -> "ReadPlan":
    """Check the file's footer against `limits` and return how to read it.

    Raises `FileTooLargeError` when the footer's uncompressed sizes exceed `limits.file_bytes`
    of its stored sizes. Batch sizes are decided per row group as reading reaches it (see
    `ReadPlan.batch_rows`), so looking at its dictionaries overlaps the loading of earlier rows.
    """
    metadata = parquet_file.metadata
    names = _leaf_names(parquet_file)
    stored = decoded = 0
    largest = ("", 0)
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for leaf in range(row_group.num_columns):
            chunk = row_group.column(leaf)
            stored += chunk.total_compressed_size
            decoded += chunk.total_uncompressed_size
            if chunk.total_uncompressed_size > largest[1]:
                largest = (names[leaf], chunk.total_uncompressed_size)
    budget = limits.file_bytes(stored)
    if decoded > budget:
        raise FileTooLargeError(
            f"the file's pages decompress to {_mib(decoded)} from {_mib(stored)} stored, over "
            f"the limit of {_mib(budget)} (largest: column {largest[0]!r}, "
            f"{_mib(largest[1])} in one row group); nothing of this file was loaded"
        )
    peek = _DictionaryPeek(parquet_file, source)
    return ReadPlan(parquet_file, names, max_rows, limits, peek, budget)


class ReadPlan:
    """How to read one file: its decoded-bytes budget, and rows per batch for each row group."""

    def __init__(
        self,
        parquet_file: pq.ParquetFile,
        names: list[str],
        max_rows: int,
        limits: ReadLimits,
        peek: _DictionaryPeek,
        file_bytes: int,
    ) -> None:
        self._file, self._names, self._max_rows = parquet_file, names, max_rows
        self._limits, self._peek = limits, peek
        self._batch_rows: dict[int, int] = {}
        self.file_bytes = file_bytes
        """Decoded bytes the whole file may reach."""

    def batch_rows(self, group: int) -> int:
        """Rows per batch in row group `group`: at most `max_rows`, fewer when its rows are
        wide, so that a batch decodes to about `limits.batch_bytes`.

        A dictionary-encoded string column counts each row as its dictionary's longest value
        (read through the file's handle when known, otherwise the whole column chunk), a
        DELTA_BYTE_ARRAY column as its whole column chunk: those encodings can repeat a long
        value on every row. Raises `FileTooLargeError` when one row alone exceeds a batch.
        """
        if group not in self._batch_rows:
            limits = self._limits
            widths = _row_widths(self._file, self._peek, group, self._names, self._max_rows, limits)
            row_bytes = sum(widths.values())
            if row_bytes > limits.batch_bytes:
                widest = max(widths, key=widths.__getitem__)
                raise FileTooLargeError(
                    f"row group {group}: one row may decode to {_mib(row_bytes)} (column "
                    f"{widest!r}: {_mib(widths[widest])}), over the limit of "
                    f"{_mib(limits.batch_bytes)} per batch; nothing of this file was loaded"
                )
            fitting = limits.batch_bytes // max(int(row_bytes), 1)
            self._batch_rows[group] = max(1, min(self._max_rows, fitting))
        return self._batch_rows[group]

    def runs(self) -> Iterator[tuple[int, list[int]]]:
        """Row groups to read together, with their batch size. A row group of a batch or more
        is read alone, its batch size decided as reading reaches it; consecutive smaller ones
        of one batch size are read together, so their batches are not cut short."""
        metadata = self._file.metadata
        group = 0
        while group < metadata.num_row_groups:
            size, groups = self.batch_rows(group), [group]
            small = metadata.row_group(group).num_rows < size
            group += 1
            while (
                small
                and group < metadata.num_row_groups
                and metadata.row_group(group).num_rows < size
                and self.batch_rows(group) == size
            ):
                groups.append(group)
                group += 1
            yield size, groups


def _row_widths(
    parquet_file: pq.ParquetFile,
    peek: _DictionaryPeek,
    group: int,
    names: list[str],
    max_rows: int,
    limits: ReadLimits,
) -> dict[str, float]:
    """Decoded bytes one row of each column of row group `group` may take."""
    row_group = parquet_file.metadata.row_group(group)
    rows = max(row_group.num_rows, 1)
    # a chunk no bigger than this cannot take more than its share of a batch, however encoded
    small_chunk = limits.batch_bytes // max(row_group.num_columns, 1) // min(rows, max_rows)
    widths: dict[str, float] = {}
    worst: dict[str, int] = {}
    dictionaries: list[str] = []
    for leaf in range(row_group.num_columns):
        chunk = row_group.column(leaf)
        name, size = names[leaf], chunk.total_uncompressed_size
        widths[name] = widths.get(name, 0) + max(size / rows, _MIN_VALUE_BYTES)
        if chunk.physical_type != "BYTE_ARRAY" or size <= small_chunk:
            continue  # fixed widths cannot grow; a small chunk cannot grow past a batch
        encodings = set(chunk.encodings)
        if "DELTA_BYTE_ARRAY" in encodings:
            worst[name] = worst.get(name, 0) + size
        elif encodings & _DICTIONARY_ENCODINGS:
            worst[name] = worst.get(name, 0) + size
            dictionaries.append(name)
    longest = peek.longest_values(group, sorted(set(dictionaries)))
    for name, size in worst.items():
        value = longest.get(name, size) if name in dictionaries else size
        widths[name] = max(widths[name], value + _MIN_VALUE_BYTES)
    return widths


def read_batches(
    parquet_file: pq.ParquetFile,
    columns: Sequence[str],
    plan: ReadPlan,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> Iterator[pa.RecordBatch]:
    """The file's rows in record batches sized by `plan`, each measured as it is decoded.

    Raises `FileTooLargeError` when a row group's rows are too wide for a batch, a batch
    decodes to more than `MEASURED_SLACK` times `limits.batch_bytes`, or the batches so far to
    more than `plan.file_bytes`.
    """
    total = 0
    first_row = 1
    for rows, groups in plan.runs():
        # one column at a time: Postgres has the other core, and memory stays flat
        batches = parquet_file.iter_batches(
            batch_size=rows, row_groups=groups, columns=list(columns), use_threads=False
        )
        for batch in batches:
            size = batch.nbytes
            total += size
            last_row = first_row + batch.num_rows - 1
            if size > limits.batch_bytes * limits.MEASURED_SLACK:
                raise FileTooLargeError(
                    f"rows {first_row} to {last_row} decode to {_mib(size)}, over the limit of "
                    f"{_mib(limits.batch_bytes * limits.MEASURED_SLACK)} per batch; "
                    "nothing of this file was loaded"
                )
            if total > plan.file_bytes:
                raise FileTooLargeError(
                    f"the file decodes to over {_mib(plan.file_bytes)} by row {last_row}, over "
                    f"its limit (at most {limits.expansion} times its stored size, or "
                    f"{_mib(limits.file_floor_bytes)}); nothing of this file was loaded"
                )
            first_row = last_row + 1
            yield batch
