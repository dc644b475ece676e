"""Parquet files written the way other engines write them, and files built to exhaust memory.

pyarrow's writer options reproduce what Spark, Impala and parquet-mr put on disk: no Arrow
schema in the footer (so only Parquet's own types and annotations describe each column),
INT96 timestamps, strings as bare BYTE_ARRAY without the UTF8 annotation, decimals as
FIXED_LEN_BYTE_ARRAY, dictionary or delta encodings, and data page v2.
"""

import io

import pyarrow as pa
import pyarrow.parquet as pq

MIB = 1 << 20


def _write(table: pa.Table, **options: object) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, store_schema=False, **options)  # type: ignore[arg-type]
    return sink.getvalue()


def spark_file(table: pa.Table) -> bytes:
    """As Spark writes by default (spark.sql.parquet.outputTimestampType=INT96): timestamps as
    INT96, decimals as FIXED_LEN_BYTE_ARRAY, dictionary pages, snappy, data page v1."""
    return _write(
        table,
        use_deprecated_int96_timestamps=True,
        store_decimal_as_integer=False,
        compression="snappy",
        data_page_version="1.0",
    )


def impala_file(table: pa.Table) -> bytes:
    """As Impala writes: INT96 timestamps, and strings (given as `binary` columns) as plain
    BYTE_ARRAY with no UTF8 annotation, so readers see them as binary."""
    return _write(table, use_deprecated_int96_timestamps=True, compression="snappy")


def parquet_mr_file(table: pa.Table, *, timestamp_unit: str = "ms") -> bytes:
    """As parquet-mr (Hive, older Java writers) writes: TIMESTAMP(MILLIS) or (MICROS), dates as
    INT32 DATE, decimals as FIXED_LEN_BYTE_ARRAY, dictionary pages, format 1.0 types."""
    return _write(
        table,
        coerce_timestamps=timestamp_unit,
        allow_truncated_timestamps=False,
        store_decimal_as_integer=False,
        version="2.4",
        compression="gzip",
    )


def encoded_file(
    table: pa.Table, encodings: dict[str, str] | None = None, *, page_version: str = "1.0"
) -> bytes:
    """`table` with the given column encodings (`DELTA_BINARY_PACKED`, `DELTA_LENGTH_BYTE_ARRAY`,
    `DELTA_BYTE_ARRAY`, ...; dictionary encoding when None) and data page version."""
    if encodings is None:
        return _write(table, use_dictionary=True, data_page_version=page_version)
    return _write(
        table,
        use_dictionary=False,
        column_encoding=encodings,
        data_page_version=page_version,
        version="2.6",
    )


def nanosecond_file(table: pa.Table) -> bytes:
    """Timestamps kept at nanoseconds (Parquet TIMESTAMP(NANOS), format 2.6)."""
    return _write(table, version="2.6", coerce_timestamps=None)


def dictionary_bomb(rows: int = 1000, value_bytes: int = MIB) -> bytes:
    """A few kilobytes: one dictionary value of `value_bytes` that each of `rows` rows points
    at, so that decoding the file's rows makes `rows * value_bytes` bytes."""
    dictionary = pa.array([b"A" * value_bytes]).cast(pa.string())
    indices = pa.array([0] * rows, pa.int32())
    table = pa.table(
        {
            "PatientID": pa.array(range(rows), pa.int64()),
            "FamilyName": pa.DictionaryArray.from_arrays(indices, dictionary),
        }
    )
    return _write(table, compression="zstd", row_group_size=rows)


def compressed_page_bomb(rows: int = 24, value_bytes: int = 64 * MIB) -> bytes:
    """A few hundred kilobytes: `rows` values of `value_bytes` repeated bytes, each in its own
    zstd-compressed plain data page of one row group, so decoding makes `rows * value_bytes`."""
    value = pa.array([b"A" * value_bytes]).cast(pa.string())  # one buffer, shared by every chunk
    table = pa.table(
        {
            "PatientID": pa.array(range(rows), pa.int64()),
            "FamilyName": pa.chunked_array([value] * rows),
        }
    )
    return _write(
        table, compression="zstd", compression_level=1, use_dictionary=False, row_group_size=rows
    )
