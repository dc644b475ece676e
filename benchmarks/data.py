"""Deterministic indici-like rows: an Arrow table per chunk of keys, Parquet writing, delta keys."""

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from benchmarks import project
from benchmarks.constants import ADDRESS_PIECES, FAMILY_NAMES, GIVEN_NAMES, NOTE_PIECES, STATUSES


def generate_chunk(rng, keys):
    """An Arrow table of indici-like rows for `keys` (numpy int64), deterministic given `rng`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(keys)

    def nulls(fraction: float):
        return rng.random(n) < fraction

    def pick(pool: list[str], null_fraction: float = 0.0):
        values = pa.array(pool, pa.string()).take(pa.array(rng.integers(0, len(pool), n)))
        if null_fraction:
            values = pc.if_else(
                pa.array(nulls(null_fraction)), pa.scalar(None, pa.string()), values
            )
        return values

    def timestamps(base: datetime, spread_days: int, null_fraction: float = 0.0, tz=None):
        micros = rng.integers(0, spread_days * 86_400_000_000, n, dtype=np.int64)
        start = np.datetime64(base.replace(tzinfo=None), "us")
        values = start + micros.astype("timedelta64[us]")
        mask = nulls(null_fraction) if null_fraction else None
        return pa.array(values, pa.timestamp("us", tz=tz), mask=mask)

    def decimals(low: int, high: int, null_fraction: float = 0.0):
        # decimal128(12,2) stores the value in cents as a 128-bit integer: build it directly
        cents = rng.integers(low, high, n, dtype=np.int64)
        words = np.empty((n, 2), dtype=np.int64)
        words[:, 0], words[:, 1] = cents, np.where(cents < 0, -1, 0)
        values = pa.Array.from_buffers(
            pa.decimal128(12, 2), n, [None, pa.py_buffer(words.tobytes())]
        )
        if null_fraction:
            empty = pa.scalar(None, pa.decimal128(12, 2))
            values = pc.if_else(pa.array(nulls(null_fraction)), empty, values)
        return values

    nhi_pool = [project.nhi_number(i) for i in range(2_000)]
    key_text = pc.cast(pa.array(keys, pa.int64()), pa.string())
    notes = pc.binary_join_element_wise(pick(NOTE_PIECES), pick(NOTE_PIECES), key_text, " | ")
    notes = pc.if_else(pa.array(nulls(0.4)), pa.scalar(None, pa.string()), notes)
    born = np.datetime64("1930-01-01") + rng.integers(0, 33_000, n).astype("timedelta64[D]")
    visit = np.datetime64("2025-01-01") + rng.integers(0, 700, n).astype("timedelta64[D]")
    columns = {
        "PatientEventID": pa.array(keys, pa.int64()),
        "PatientID": pa.array(rng.integers(1, 500_000, n), pa.int64()),
        "PracticeID": pa.array(rng.integers(1, 200, n), pa.int32()),
        "ProviderID": pa.array(rng.integers(1, 5_000, n), pa.int32(), mask=nulls(0.1)),
        "Priority": pa.array(rng.integers(0, 5, n), pa.int16()),
        "DurationMinutes": pa.array(rng.integers(5, 120, n), pa.int32()),
        "Amount": decimals(0, 50_000_00),
        "Discount": decimals(-5_000, 5_000, 0.3),
        "Score": pa.array(rng.normal(50, 15, n), pa.float64(), mask=nulls(0.05)),
        "Weight": pa.array(rng.uniform(2, 180, n).astype(np.float32), pa.float32(), nulls(0.2)),
        "NHINumber": pick(nhi_pool, 0.05),
        "FamilyName": pick(FAMILY_NAMES),
        "GivenName": pick(GIVEN_NAMES, 0.02),
        "Notes": notes,
        "Address": pick(ADDRESS_PIECES, 0.1),
        "Status": pick(STATUSES),
        "IsActive": pa.array(rng.random(n) < 0.9, pa.bool_(), mask=nulls(0.05)),
        "IsDeceased": pa.array(rng.random(n) < 0.01, pa.bool_()),
        "DateOfBirth": pa.array(born, pa.date32()),
        "VisitDate": pa.array(visit, pa.date32(), mask=nulls(0.15)),
        "CreatedAt": timestamps(datetime(2020, 1, 1), 2_500),
        "UpdatedAt": timestamps(datetime(2026, 1, 1), 320),
        "CancelledAt": timestamps(datetime(2025, 1, 1), 600, 0.85),
        "SyncedAt": timestamps(datetime(2026, 1, 1), 320, 0.2, tz="UTC"),
    }
    return pa.table(columns)


def write_parquet(path: Path, key_chunks: Iterator, seed: int, row_group_rows: int) -> int:
    """Write chunks of generated rows (one row group per chunk) to `path`; returns rows."""
    import numpy as np
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    rows = 0
    writer = None
    try:
        for keys in key_chunks:
            table = generate_chunk(rng, keys)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=row_group_rows)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def chunked(keys, size: int) -> Iterator:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def delta_keys(rows: int, delta_rows: int, seed: int):
    """Keys of the delta: 30% updates of initial keys, ~5% repeated inside the delta, rest new."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n_update = min(rows, round(delta_rows * 0.30))
    n_repeat = round(delta_rows * 0.05)
    n_new = delta_rows - n_update - n_repeat
    updates = rng.choice(np.arange(1, rows + 1, dtype=np.int64), n_update, replace=False)
    new = np.arange(rows + 1, rows + 1 + n_new, dtype=np.int64)
    base = np.concatenate([updates, new])
    repeats = rng.choice(base, n_repeat, replace=True) if n_repeat and len(base) else base[:0]
    keys = np.concatenate([base, repeats])
    rng.shuffle(keys)
    return keys, {"updates": int(n_update), "new": int(n_new), "repeated": int(n_repeat)}
