"""Batch sizes and decoded-bytes limits, decided from Parquet footers before decoding."""

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indici_dagster.core.parquet.arrow_batches import COPY_BATCH_ROWS
from indici_dagster.core.parquet.budget import (
    DEFAULT_LIMITS,
    MIB,
    FileTooLargeError,
    ReadLimits,
    plan_reads,
    read_batches,
)
from indici_dagster.core.parquet.reader import open_parquet
from indici_dagster_tests.support import foreign_parquet
from indici_dagster_tests.support.common import patients


def plan(data: bytes, limits: ReadLimits = DEFAULT_LIMITS):
    opened = open_parquet(io.BytesIO(data))
    return opened, plan_reads(opened, COPY_BATCH_ROWS, limits, opened.source)


def rows_read(opened, read_plan, limits: ReadLimits = DEFAULT_LIMITS) -> list[int]:
    names = opened.schema_arrow.names
    return [
        v for b in read_batches(opened, names, read_plan, limits) for v in b.column(0).to_pylist()
    ]


def test_an_ordinary_file_keeps_full_batches():
    _, read_plan = plan(patients([(i, f"Family{i}") for i in range(50_000)]))

    assert read_plan.batch_rows(0) == COPY_BATCH_ROWS


def test_a_dictionary_with_one_long_value_shrinks_batches_to_fit_that_value_on_every_row():
    values = ["short"] * 49_999 + ["x" * 100_000]
    data = foreign_parquet.encoded_file(pa.table({"ID": range(50_000), "Note": values}))

    opened, read_plan = plan(data)

    row_bytes = 100_000 + 16 + 16
    assert read_plan.batch_rows(0) == 16 * MIB // row_bytes
    assert rows_read(opened, read_plan) == list(range(50_000))


def test_without_the_handle_a_dictionary_counts_as_its_whole_column_chunk():
    values = [f"value{i % 500}" for i in range(50_000)]
    data = foreign_parquet.encoded_file(pa.table({"Note": values}))
    bare = pq.ParquetFile(io.BytesIO(data))
    chunk = bare.metadata.row_group(0).column(0).total_uncompressed_size

    read_plan = plan_reads(bare, COPY_BATCH_ROWS)

    assert read_plan.batch_rows(0) == 16 * MIB // (chunk + 16)


def test_a_delta_byte_array_column_counts_as_its_whole_column_chunk():
    values = [f"prefix-shared-{i}" for i in range(50_000)]
    data = foreign_parquet.encoded_file(
        pa.table({"Note": values}), {"Note": "DELTA_BYTE_ARRAY"}, page_version="2.0"
    )
    opened, read_plan = plan(data)
    chunk = opened.metadata.row_group(0).column(0).total_uncompressed_size

    assert read_plan.batch_rows(0) == 16 * MIB // (chunk + 16)
    assert rows_read(opened, read_plan) == values


def test_a_row_wider_than_a_batch_fails_naming_row_group_and_column_before_decoding():
    data = foreign_parquet.dictionary_bomb(rows=3, value_bytes=2 * MIB)

    with pytest.raises(FileTooLargeError) as raised:
        plan(data, ReadLimits(batch_bytes=1 * MIB))[1].batch_rows(0)

    assert "row group 0: one row may decode to 2.0 MiB (column 'FamilyName'" in str(raised.value)


def test_pages_that_decompress_beyond_the_expansion_limit_fail_from_the_footer_alone():
    data = foreign_parquet.compressed_page_bomb(rows=4, value_bytes=4 * MIB)

    with pytest.raises(FileTooLargeError) as raised:
        plan(data, ReadLimits(file_floor_bytes=8 * MIB))

    assert "pages decompress to 16.0 MiB" in str(raised.value)
    assert "over the limit of 8.0 MiB (largest: column 'FamilyName'" in str(raised.value)


def test_a_batch_far_over_its_footer_estimate_fails_when_measured():
    # plain values: the footer's average hides that the first rows hold nearly all the bytes
    values = ["x" * 200_000] * 60 + ["y"] * 100_000
    data = foreign_parquet.encoded_file(pa.table({"Note": values}), {"Note": "PLAIN"})
    limits = ReadLimits(batch_bytes=2 * MIB)
    opened, read_plan = plan(data, limits)

    with pytest.raises(FileTooLargeError) as raised:
        rows_read(opened, read_plan, limits)

    assert f"rows 1 to {read_plan.batch_rows(0)} decode to" in str(raised.value)


def test_batches_of_row_groups_with_different_widths_keep_every_row_in_order():
    sink = io.BytesIO()
    narrow = pa.table({"ID": range(0, 30_000), "Note": ["a"] * 30_000})
    wide = pa.table({"ID": range(30_000, 31_000), "Note": ["w" * 50_000] * 1_000})
    with pq.ParquetWriter(sink, narrow.schema, use_dictionary=False) as writer:
        writer.write_table(narrow)
        writer.write_table(wide)
        writer.write_table(narrow.set_column(0, "ID", pa.array(range(31_000, 61_000))))
    opened, read_plan = plan(sink.getvalue())

    assert read_plan.batch_rows(0) == read_plan.batch_rows(2) == COPY_BATCH_ROWS
    assert read_plan.batch_rows(1) < 1_000
    assert rows_read(opened, read_plan) == list(range(61_000))


def test_small_row_groups_are_read_together_in_full_batches():
    sink = io.BytesIO()
    table = pa.table({"ID": range(40_000)})
    pq.write_table(table, sink, row_group_size=1_000)
    opened, read_plan = plan(sink.getvalue())

    sizes = [b.num_rows for b in read_batches(opened, ["ID"], read_plan)]

    assert sizes == [COPY_BATCH_ROWS, COPY_BATCH_ROWS, 40_000 - 2 * COPY_BATCH_ROWS]
