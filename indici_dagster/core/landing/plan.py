"""What a sensor tick requests: landed object versions grouped into one run request per date,
and versions staged without their rpt step grouped into one rpt-only request per date.

Pure functions over listed objects and ledger entries; the sensor asks Dagster and the ledger,
this module only decides.
"""

import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace

from indici_dagster.core.escaping import escape_text
from indici_dagster.core.filenames import (
    LandedFileName,
    UnrecognisedFileNameError,
    base_name,
    parse_file_name,
)
from indici_dagster.core.storage.base import StoredObject
from indici_dagster.core.warehouse.ledger import LedgerEntry, Outcome

MAX_ATTEMPTS = 10
"""Run keys tried for one request: the key, then `<key>:attempt<n>` after each run that ended
under the previous one without processing the request's versions."""


@dataclass
class DateRequest:
    """One run to request: a partition, the datasets with rules among its files, the files;
    `rpt_only`: only the rpt step of those datasets, for versions already staged."""

    partition_key: str
    datasets: set[str] = field(default_factory=set)
    entries: list[LedgerEntry] = field(default_factory=list)
    rpt_only: bool = False

    @property
    def run_key(self) -> str:
        """A function of the date, the set of object versions and the datasets with rules
        among them only: evaluating again after a lost tick gives the same key; new content, or
        a rule for a waiting dataset, a new one. An rpt-only request's key says so
        (`<date>:rpt:<digest>`), so it never equals the key of the run that copied the files."""
        digest = hashlib.sha256("\0".join(sorted(self.datasets)).encode() + b"\n")
        for entry in sorted(self.entries, key=lambda e: (e.source_key, e.etag)):
            digest.update(f"{entry.source_key}\0{entry.etag}\n".encode())
        kind = ":rpt" if self.rpt_only else ""
        return f"{self.partition_key}{kind}:{digest.hexdigest()[:20]}"


def attempt_key(run_key: str, attempt: int) -> str:
    """The run key of the request's `attempt`-th run (1: the key itself)."""
    return run_key if attempt == 1 else f"{run_key}:attempt{attempt}"


def plan_rpt(
    needing_rpt: Iterable[LedgerEntry], datasets_with_rules: Collection[str]
) -> list[DateRequest]:
    """Pure: one rpt-only request per date for versions staged without their rpt step (of
    datasets that still have a rule; the others wait, as files without a rule do)."""
    by_date: dict[str, DateRequest] = {}
    for entry in needing_rpt:
        if entry.dataset not in datasets_with_rules or not entry.partition_key:
            continue
        request = by_date.setdefault(
            entry.partition_key, DateRequest(entry.partition_key, rpt_only=True)
        )
        request.datasets.add(entry.dataset)
        request.entries.append(entry)
    return sorted(by_date.values(), key=lambda r: r.partition_key)


@dataclass
class LandingPlan:
    """The sensor's decisions for one tick."""

    requests: list[DateRequest]
    no_rule: list[LedgerEntry]
    unrecognised: list[LedgerEntry]
    out_of_range: list[LedgerEntry]
    not_yet: list[StoredObject]
    """Objects dated after the last partition (clock skew): left for a later tick."""
    unreadable: list[LedgerEntry]
    """Symlinks, special files, unreadable files and keys that cannot be stored (escaped)."""

    @property
    def rejected(self) -> list[LedgerEntry]:
        """Versions refused without a run: recorded and audited by the sensor, left in place."""
        return self.unrecognised + self.out_of_range + self.unreadable


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
    `no_rule`; unrecognised names, dates before the first partition and entries that can never
    be read are marked, never requested.
    """
    by_date: dict[str, DateRequest] = {}
    plan = LandingPlan([], [], [], [], [], [])
    for obj in new_objects:
        if obj.problem is not None:
            plan.unreadable.append(
                LedgerEntry(
                    obj.key,
                    obj.etag,
                    obj.size,
                    Outcome.UNREADABLE,
                    escape_text(base_name(obj.key), 200),
                    message=f"not read: {obj.problem}",
                )
            )
            continue
        try:
            landed: LandedFileName = parse_file_name(obj.key, timezone)
        except UnrecognisedFileNameError as error:
            plan.unrecognised.append(
                LedgerEntry(
                    obj.key,
                    obj.etag,
                    obj.size,
                    Outcome.UNRECOGNISED,
                    escape_text(base_name(obj.key), 200),
                    message=str(error),
                )
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
            Outcome.IN_RUN,
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
            request.entries.append(replace(entry, outcome=Outcome.IN_RUN))
    for request in by_date.values():
        run_key = request.run_key
        request.entries = [replace(e, run_key=run_key) for e in request.entries]
        plan.no_rule.extend(e for e in request.entries if e.outcome is Outcome.NO_RULE)
    plan.requests = sorted(by_date.values(), key=lambda r: r.partition_key)
    return plan


def summarize_waiting(entries: Iterable[LedgerEntry]) -> dict[str, list[str]]:
    """Partition keys of files waiting for a rule, by dataset."""
    waiting: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        waiting[entry.dataset or "?"].add(entry.partition_key or "?")
    return {dataset: sorted(keys) for dataset, keys in sorted(waiting.items())}
