"""Batches for binary COPY are decoded and encoded ahead on a helper thread, and never leak it."""

import io
import threading
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indici_dagster.core.parquet.arrow_batches import StagingBatches
from indici_dagster.core.parquet.reader import TargetColumn, ValueCastError
from indici_dagster.core.wire import pg_binary

COLUMNS = [
    TargetColumn("visit_id", "bigint", "VisitID"),
    TargetColumn("minutes", "integer", "Minutes"),
]
TARGETS = [pa.int64(), pa.int32()]
CONSTANTS = ("Visits_20261124_020000.parquet", datetime(2026, 11, 24, tzinfo=UTC), "run")


def parquet(minutes: list[int]) -> pq.ParquetFile:
    sink = io.BytesIO()
    table = pa.table(
        {"VisitID": pa.array(range(len(minutes)), pa.int64()), "Minutes": pa.array(minutes)}
    )
    pq.write_table(table, sink, row_group_size=4)
    return pq.ParquetFile(io.BytesIO(sink.getvalue()))


def decoders() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "indici-decode"]


def test_every_row_arrives_in_order_with_its_row_number():
    batches = StagingBatches(parquet(list(range(10))), COLUMNS, TARGETS, CONSTANTS, "UTC", 3)
    table = pa.Table.from_batches(list(batches._batches()))
    assert table.column("minutes").to_pylist() == list(range(10))
    assert table.column("_row_number").to_pylist() == list(range(1, 11))
    assert batches.rows == 10
    assert not decoders()


def test_a_consumer_that_stops_early_releases_the_decoding_thread():
    batches = StagingBatches(parquet(list(range(40))), COLUMNS, TARGETS, CONSTANTS, "UTC", 2)
    stream = batches._batches()
    next(stream)
    stream.close()  # what the driver does when the database refuses a row
    assert not decoders()
    assert batches.rows == 2


def test_a_value_that_does_not_fit_is_raised_to_the_consumer_with_its_row():
    minutes = [1] * 9 + [2**40]
    batches = StagingBatches(parquet(minutes), COLUMNS, TARGETS, CONSTANTS, "UTC", 4)
    stream = batches.copy_stream()
    with pytest.raises(ValueCastError, match="row 10"):
        while stream.read(1 << 20):
            pass
    assert isinstance(batches.error, ValueCastError)
    assert batches.rows == 8  # the two full batches before it were handed over
    assert not decoders()


def test_the_copy_stream_is_header_rows_and_trailer_in_chunks_no_bigger_than_asked():
    batches = StagingBatches(parquet(list(range(10))), COLUMNS, TARGETS, CONSTANTS, "UTC", 3)
    stream = batches.copy_stream()
    chunks = []
    while chunk := stream.read(7):
        assert len(chunk) <= 7
        chunks.append(chunk)
    data = b"".join(chunks)
    assert data.startswith(pg_binary.COPY_HEADER)
    assert data.endswith(pg_binary.COPY_TRAILER)
    assert batches.rows == 10
    assert not decoders()


def test_closing_the_copy_stream_early_releases_the_decoding_thread():
    batches = StagingBatches(parquet(list(range(40))), COLUMNS, TARGETS, CONSTANTS, "UTC", 2)
    stream = batches.copy_stream()
    stream.read(30)  # header and part of the first batch
    stream.close()  # what the load does when the database refuses a row
    assert not decoders()
