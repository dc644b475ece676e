"""The landing ledger: every landed object version (key + ETag) the sensor has handed over.

A version is recorded once, with its outcome, so an unchanged file is never requested twice, a
re-sent file with new content is new work, and files of a dataset without a rule wait here
until a rule exists.
"""

import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.filenames import LandedFileName, UnrecognisedFileNameError, parse_file_name
from indici_dagster.core.sql import LEDGER_TABLE, STAGING_SCHEMA, qualified
from indici_dagster.core.storage import StoredObject

LEDGER = qualified(STAGING_SCHEMA, LEDGER_TABLE)

CREATE_LEDGER_TABLE = sql.SQL(
    """
    CREATE TABLE IF NOT EXISTS {ledger} (
        source_key text NOT NULL,
        etag text NOT NULL,
        size bigint,
        file_name text,
        dataset text,
        partition_key text,
        outcome text NOT NULL,
        run_key text,
        message text,
        first_seen_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (source_key, etag)
    );
    CREATE INDEX IF NOT EXISTS landing_ledger_outcome_idx ON {ledger} (outcome)
    """
).format(ledger=LEDGER)


class Outcome(StrEnum):
    """What the sensor did with an object version."""

    REQUESTED = "requested"
    NO_RULE = "no_rule"
    UNRECOGNISED = "unrecognised"
    OUT_OF_RANGE = "out_of_range"


@dataclass(frozen=True)
class LedgerEntry:
    """One object version and what the sensor decided for it."""

    source_key: str
    etag: str
    size: int | None
    outcome: Outcome
    file_name: str | None = None
    dataset: str | None = None
    partition_key: str | None = None
    run_key: str | None = None
    message: str | None = None


@dataclass
class DateRequest:
    """One run to request: a partition, the datasets with rules among its files, the files."""

    partition_key: str
    datasets: set[str] = field(default_factory=set)
    entries: list[LedgerEntry] = field(default_factory=list)

    @property
    def run_key(self) -> str:
        """Stable for the same set of object versions, new when any content changes."""
        digest = hashlib.sha256()
        for entry in sorted(self.entries, key=lambda e: (e.source_key, e.etag)):
            digest.update(f"{entry.source_key}\0{entry.etag}\n".encode())
        return f"{self.partition_key}:{digest.hexdigest()[:20]}"


@dataclass
class LandingPlan:
    """The sensor's decisions for one tick."""

    requests: list[DateRequest]
    no_rule: list[LedgerEntry]
    unrecognised: list[LedgerEntry]
    out_of_range: list[LedgerEntry]
    not_yet: list[StoredObject]
    """Objects dated after the last partition (clock skew): left for a later tick."""


def plan_landing(
    new_objects: Iterable[StoredObject],
    waiting_for_rule: Iterable[LedgerEntry],
    datasets_with_rules: Collection[str],
    *,
    timezone: str,
    first_partition: str,
    last_partition: str,
) -> LandingPlan:
    """Decide what to request for newly landed objects and for files that now have a rule.

    Pure: groups files by partition date, one request per date; files of datasets without a
    rule still go into the date's request (they are copied and audited) and are marked
    `no_rule`; unrecognised names and dates before the first partition are marked, never
    requested.
    """
    by_date: dict[str, DateRequest] = {}
    plan = LandingPlan([], [], [], [], [])
    for obj in new_objects:
        try:
            landed: LandedFileName = parse_file_name(obj.key, timezone)
        except UnrecognisedFileNameError as error:
            plan.unrecognised.append(
                LedgerEntry(obj.key, obj.etag, obj.size, Outcome.UNRECOGNISED, message=str(error))
            )
            continue
        partition = landed.partition_key
        if partition > last_partition:
            plan.not_yet.append(obj)
            continue
        entry = LedgerEntry(
            obj.key,
            obj.etag,
            obj.size,
            Outcome.REQUESTED,
            landed.file_name,
            landed.dataset,
            partition,
        )
        if partition < first_partition:
            plan.out_of_range.append(
                replace(
                    entry,
                    outcome=Outcome.OUT_OF_RANGE,
                    message=f"dated {partition}, before the first partition {first_partition}",
                )
            )
            continue
        request = by_date.setdefault(partition, DateRequest(partition))
        if landed.dataset in datasets_with_rules:
            request.datasets.add(landed.dataset)
            request.entries.append(entry)
        else:
            request.entries.append(replace(entry, outcome=Outcome.NO_RULE))
    for entry in waiting_for_rule:
        if entry.dataset in datasets_with_rules and entry.partition_key:
            request = by_date.setdefault(entry.partition_key, DateRequest(entry.partition_key))
            request.datasets.add(entry.dataset)
            request.entries.append(replace(entry, outcome=Outcome.REQUESTED))
    for request in by_date.values():
        run_key = request.run_key
        request.entries = [replace(e, run_key=run_key) for e in request.entries]
        plan.no_rule.extend(e for e in request.entries if e.outcome is Outcome.NO_RULE)
    plan.requests = sorted(by_date.values(), key=lambda r: r.partition_key)
    return plan


def find_unseen(cursor: Cursor, objects: Sequence[StoredObject]) -> list[StoredObject]:
    """Return the objects whose key + ETag the ledger does not hold (one set-based query)."""
    if not objects:
        return []
    cursor.execute(
        sql.SQL(
            "SELECT t.ordinality - 1 FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY "
            "AS t(source_key, etag, ordinality) WHERE NOT EXISTS (SELECT 1 FROM {} l "
            "WHERE l.source_key = t.source_key AND l.etag = t.etag)"
        ).format(LEDGER),
        ([o.key for o in objects], [o.etag for o in objects]),
    )
    return [objects[index] for (index,) in cursor.fetchall()]


def waiting_for_rule(cursor: Cursor) -> list[LedgerEntry]:
    """Every recorded file whose dataset had no rule when it was handed over."""
    cursor.execute(
        sql.SQL(
            "SELECT source_key, etag, size, outcome, file_name, dataset, partition_key "
            "FROM {} WHERE outcome = %s ORDER BY source_key"
        ).format(LEDGER),
        (str(Outcome.NO_RULE),),
    )
    return [LedgerEntry(k, e, s, Outcome(o), f, d, p) for k, e, s, o, f, d, p in cursor.fetchall()]


def record(cursor: Cursor, entries: Iterable[LedgerEntry]) -> None:
    """Insert or update ledger rows for these object versions (one statement, any number)."""
    rows = list(entries)
    if not rows:
        return
    columns = [
        ("source_key", "text", [e.source_key for e in rows]),
        ("etag", "text", [e.etag for e in rows]),
        ("size", "bigint", [e.size for e in rows]),
        ("file_name", "text", [e.file_name for e in rows]),
        ("dataset", "text", [e.dataset for e in rows]),
        ("partition_key", "text", [e.partition_key for e in rows]),
        ("outcome", "text", [str(e.outcome) for e in rows]),
        ("run_key", "text", [e.run_key for e in rows]),
        ("message", "text", [e.message for e in rows]),
    ]
    cursor.execute(
        sql.SQL(
            "INSERT INTO {ledger} ({names}) SELECT * FROM unnest({arrays}) "
            "ON CONFLICT (source_key, etag) DO UPDATE SET outcome = EXCLUDED.outcome, "
            "run_key = EXCLUDED.run_key, message = EXCLUDED.message, updated_at = now()"
        ).format(
            ledger=LEDGER,
            names=sql.SQL(", ").join(sql.Identifier(name) for name, _, _ in columns),
            # the array types are constants of this function, never input
            arrays=sql.SQL(", ").join(sql.SQL(f"%s::{kind}[]") for _, kind, _ in columns),
        ),
        [values for _, _, values in columns],
    )


def summarise_waiting(entries: Iterable[LedgerEntry]) -> dict[str, list[str]]:
    """Partition keys of files waiting for a rule, by dataset."""
    waiting: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        waiting[entry.dataset or "?"].add(entry.partition_key or "?")
    return {dataset: sorted(keys) for dataset, keys in sorted(waiting.items())}
