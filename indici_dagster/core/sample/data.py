"""Deterministic, entirely fake indici extracts for demos and tests.

`write_sample_files` writes a few days of Parquet files for every dataset in a set of rules,
named the way indici names its files. The people, NHI numbers and clinical details are invented:
NHI numbers are syntactically valid (three letters, four digits, correct check digit) and most
start with `Z`, the prefix reserved for test NHIs.
"""

import io
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from math import ceil
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from indici_dagster.core.rules.model import Column, Rule
from indici_dagster.core.sample.vocabulary import (
    INT_POOLS,
    TEXT_POOLS,
    TRUE_RATES,
    nhi_number,
    static_table,
)
from indici_dagster.core.storage.base import Storage
from indici_dagster.core.types.registry import parse_type
from indici_dagster.core.types.sample_values import Sample

TWO_FILE_DATASET = "Appointments"
"""Gets a second, later file on the last day that updates keys of the first."""
EMPTY_FILE_DATASET = "Medications"
"""Gets a file with the full schema and no rows on the last day."""
NULL_RATE = 0.08
"""Share of values left null in non-key, non-reference, non-NHI columns."""

_SIZES = {"*": ((40, 121), (5, 21)), "Providers": ((8, 16), (0, 3))}
"""Ranges of new rows per file: (first day, later days), by dataset."""


@dataclass(frozen=True)
class _Day:
    business: date
    """The day the extract describes: the day before the file's date."""
    written_utc: datetime


@dataclass
class _State:
    """Rows generated so far for one keyed dataset, by key."""

    rows: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    today: list[tuple[Any, ...]] = field(default_factory=list)
    counters: dict[tuple[Any, ...], int] = field(default_factory=dict)


def arrow_type(type_name: str) -> pa.DataType:
    """The Arrow type sample files use for a canonical rule type (from the type registry)."""
    column_type, params = parse_type(type_name)
    return column_type.arrow(params)


def _pick(rng: np.random.Generator, pool: Sequence[Any]) -> Any:
    return pool[int(rng.integers(len(pool)))]


def _value(rng: np.random.Generator, column: Column, day: _Day) -> Any:
    """A plausible random value for a non-key, non-reference column: from a pool of realistic
    values for its name where there is one, else from its type's generator in the registry."""
    name = column.source
    column_type, params = parse_type(column.type)
    arrow = column_type.arrow(params)
    pools = INT_POOLS if pa.types.is_integer(arrow) else TEXT_POOLS
    pool = next((p for k, p in pools.items() if name.endswith(k)), None)
    if pool and (pa.types.is_integer(arrow) or pa.types.is_string(arrow)):
        return _pick(rng, pool)
    if pa.types.is_boolean(arrow):
        return bool(rng.random() < next((r for k, r in TRUE_RATES.items() if k in name), 0.5))
    return column_type.sample(Sample(rng, name, params, day.business, day.written_utc))


def _key_value(column: Column, number: int, base: int) -> Any:
    """The `number`th key value of a key column (IDs count from `base`), from its registry type."""
    column_type, params = parse_type(column.type)
    return column_type.key(column.source, params, number, base)


def _new_keys(
    rng: np.random.Generator,
    rule: Rule,
    state: _State,
    count: int,
    parents: Mapping[str, list[Any]],
) -> list[tuple[Any, ...]]:
    """`count` unused keys; key columns naming another dataset's key take a parent's value and
    the other key columns count within that parent (e.g. invoice line numbers 1, 2, 3)."""
    columns = [rule.column(name) for name in rule.primary_key]
    linked = [c for c in columns if parents.get(c.source)]
    base = 1 if linked else 10_000 * (1 + zlib.crc32(rule.dataset.encode()) % 90)
    keys = []
    for _ in range(count):
        parent = {c.source: _pick(rng, parents[c.source]) for c in linked}
        group = tuple(parent.values())
        state.counters[group] = number = state.counters.get(group, 0) + 1
        keys.append(tuple(parent.get(c.source, _key_value(c, number, base)) for c in columns))
    return keys


def _fill(
    rng: np.random.Generator,
    rule: Rule,
    row: dict[str, Any],
    columns: Sequence[Column],
    day: _Day,
    refs: Mapping[str, list[Any]],
) -> None:
    """Set `columns` of `row` to fresh values: references to parents, NHIs or random values."""
    nhi = {rule.column(name).source for name in rule.nhi_columns}
    for column in sorted(columns, key=lambda c: c.source in nhi):  # NHIs after PatientID
        if refs.get(column.source):
            row[column.source] = _pick(rng, refs[column.source])
        elif column.source in nhi:
            patient = row.get("PatientID")
            number = patient if isinstance(patient, int) else int(rng.integers(100_000))
            row[column.source] = nhi_number(number)
        elif rng.random() < NULL_RATE:
            row[column.source] = None
        else:
            value = _value(rng, column, day)
            _, params = parse_type(column.type)
            if isinstance(value, str) and params and column.type.startswith(("varchar", "char")):
                value = value[: params[0]]  # within the declared length
            row[column.source] = value


def _key(rule: Rule, row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row[rule.column(name).source] for name in rule.primary_key)


def _batch(
    rng: np.random.Generator,
    rule: Rule,
    states: Mapping[str, _State],
    owners: Mapping[str, str],
    day: _Day,
    new: int,
    update_from: Sequence[tuple[Any, ...]],
    updates: int,
) -> list[dict[str, Any]]:
    """Rows for one file: `updates` distinct keys of `update_from` changed, plus `new` new keys.

    Columns named like another dataset's key (`owners`) reference keys already generated; new
    rows' key columns prefer parent keys first generated today (new invoices get new lines).
    """
    state = states[rule.dataset]
    refs = {c: [k[0] for k in states[o].rows] for c, o in owners.items() if o != rule.dataset}
    parents = {c: [k[0] for k in states[owners[c]].today] or keys for c, keys in refs.items()}
    key_sources = [rule.column(name).source for name in rule.primary_key]
    nhi = {rule.column(name).source for name in rule.nhi_columns}
    mutable = [c for c in rule.columns if c.source not in [*key_sources, *nhi, *refs]]
    stamps = [c for c in mutable if parse_type(c.type)[0].name == "timestamptz"]
    rows = []
    for index in rng.permutation(len(update_from))[:updates]:
        old = state.rows[update_from[int(index)]]
        for _ in range(10):  # until some value really changes
            row = dict(old)
            chosen = [mutable[int(i)] for i in rng.permutation(len(mutable))[:2]]
            _fill(rng, rule, row, chosen + stamps, day, {})
            if row != old:
                break
        state.rows[_key(rule, row)] = row
        rows.append(row)
    for key in _new_keys(rng, rule, state, new, parents):
        row = dict(zip(key_sources, key, strict=True))
        _fill(rng, rule, row, [c for c in rule.columns if c.source not in key_sources], day, refs)
        state.rows[key] = row
        state.today.append(key)
        rows.append(row)
    return rows


def _generation_order(rules: Mapping[str, Rule], owners: Mapping[str, str]) -> list[str]:
    """Datasets ordered so each comes after the datasets whose keys its columns reference."""
    depth: dict[str, int] = {}

    def visit(dataset: str, seen: frozenset[str]) -> int:
        if dataset not in depth:
            parents = {owners[c.source] for c in rules[dataset].columns if c.source in owners}
            parents -= seen | {dataset}
            depth[dataset] = 1 + max((visit(p, seen | {dataset}) for p in parents), default=0)
        return depth[dataset]

    return sorted(rules, key=lambda d: (visit(d, frozenset()), d))


def _to_parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def write_sample_files(
    storage: Storage,
    rules: Mapping[str, Rule],
    *,
    timezone: str = "Pacific/Auckland",
    days: int = 3,
    end_date: date | None = None,
    seed: int = 20261124,
) -> list[str]:
    """Write `days` days of fake Parquet extracts for every dataset in `rules`; return the keys.

    Guarantees:
    - the same arguments write the same bytes under the same keys; the keys return sorted;
    - each dataset gets a file a day for `days` days ending at `end_date` (default: yesterday in
      `timezone`), named `<Dataset>_<YYYYMMDD>_<HHMMSS>.parquet` or, for every third dataset,
      `<Dataset>_<YYYYMMDDHHMMSS>.parquet`, at a local time between 04:00 and 05:59 (clear of
      the usual 02:00-03:59 daylight-saving changes);
    - keyed datasets' files hold exactly the rule's source columns with matching Arrow types;
      day 1 is an initial batch, later days update existing keys and add new ones, and ID
      columns reference keys already written;
    - `TWO_FILE_DATASET` gets a second file on the last day updating keys of the first;
    - `EMPTY_FILE_DATASET` (else another keyed dataset) gets the one empty file, on the last day;
    - static datasets get a full code-table snapshot a day.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    zone = ZoneInfo(timezone)
    end_date = end_date or datetime.now(zone).date() - timedelta(days=1)
    owners = {
        r.column(r.primary_key[0]).source: d for d, r in rules.items() if len(r.primary_key) == 1
    }
    order = _generation_order(rules, owners)
    keyed = [d for d in order if not rules[d].is_static]
    two_file = TWO_FILE_DATASET if TWO_FILE_DATASET in keyed else (keyed or [None])[0]
    empty = EMPTY_FILE_DATASET if EMPTY_FILE_DATASET in keyed else (keyed or [None])[-1]
    rngs = {d: np.random.default_rng([seed, zlib.crc32(d.encode())]) for d in rules}
    states = {d: _State() for d in keyed}
    written: list[str] = []

    def write(dataset: str, when: datetime, table: pa.Table) -> None:
        sep = "" if sorted(rules).index(dataset) % 3 == 1 else "_"  # both indici name forms
        written.append(f"{dataset}_{when:%Y%m%d}{sep}{when:%H%M%S}.parquet")
        storage.put_bytes(written[-1], _to_parquet(table))

    def day(when: datetime) -> _Day:
        return _Day(when.date() - timedelta(days=1), when.replace(tzinfo=zone).astimezone(UTC))

    for offset in range(days):
        file_date = end_date - timedelta(days=days - 1 - offset)
        last = offset == days - 1
        for state in states.values():
            state.today = []
        for index, dataset in enumerate(order):
            when = datetime.combine(file_date, time(4, (5 + 4 * index) % 60, (7 + 13 * index) % 60))
            rule, rng, state = rules[dataset], rngs[dataset], states.get(dataset)
            if state is None:
                write(dataset, when, static_table(dataset))
                continue
            schema = pa.schema([(c.source, arrow_type(c.type)) for c in rule.columns])
            known = list(state.rows)
            initial, delta = _SIZES.get(dataset, _SIZES["*"])
            new = int(rng.integers(*(delta if known else initial)))
            rows = []  # the one empty file
            if not (dataset == empty and last):
                rows = _batch(
                    rng, rule, states, owners, day(when), new, known, ceil(len(known) / 8)
                )
            write(dataset, when, pa.Table.from_pylist(rows, schema=schema))
            if dataset == two_file and last:  # a later file the same day, updating the first
                first = [_key(rule, row) for row in rows]
                later = when.replace(hour=5)
                rows = _batch(rng, rule, states, owners, day(later), 3, first, ceil(len(first) / 3))
                write(dataset, later, pa.Table.from_pylist(rows, schema=schema))
    return sorted(written)
