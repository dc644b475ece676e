"""Restore archived files of a date range: the landed objects and their partitioned copies.

`indici restore` asks S3 to restore every archived object of the dates (optionally of one
dataset) and says, per object, what it did: requested a restore, found one already running, or
found the object readable (never archived, or restored). Asking again changes nothing that is
already requested: it is safe to repeat until every object is available.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from indici_dagster.core.landing.scan import file_of_dates, objects_of_dates
from indici_dagster.core.storage.archive import TIERS, ArchiveState, archive_state, request_restore
from indici_dagster.core.storage.base import Storage, StoredObject
from indici_dagster.core.storage.s3_storage import S3Storage

MAX_DAYS = 366
"""The longest date range one command restores (a year): a larger one is a typo more often."""
_PARTITION_FOLDER = re.compile(r"dataset=([A-Za-z][A-Za-z0-9]*)/")


class RestoreInputError(ValueError):
    """A restore request that cannot be right (dates, tier, days); one line, no values."""


@dataclass(frozen=True)
class RestoreRange:
    """The dates (inclusive) and the optional dataset to restore, checked."""

    first: date
    last: date
    dataset: str | None = None

    @property
    def partition_keys(self) -> list[str]:
        """Every date of the range as `YYYY-MM-DD`."""
        days = (self.last - self.first).days
        return [(self.first + timedelta(days=n)).isoformat() for n in range(days + 1)]


def parse_range(first: str, last: str, dataset: str | None, known: set[str]) -> RestoreRange:
    """Check `--from`, `--to` and `--dataset`: real `YYYY-MM-DD` dates, `first` not after
    `last`, at most `MAX_DAYS` days, a dataset among `known`; else `RestoreInputError`."""
    dates = []
    for flag, text in (("--from", first), ("--to", last)):
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text or ""):
            raise RestoreInputError(f"{flag} must be a date as YYYY-MM-DD")
        try:
            dates.append(date.fromisoformat(text))
        except ValueError:
            raise RestoreInputError(f"{flag} {text} is not a real date") from None
    if dates[0] > dates[1]:
        raise RestoreInputError(f"--from {first} is after --to {last}")
    if (dates[1] - dates[0]).days >= MAX_DAYS:
        raise RestoreInputError(f"the range covers more than {MAX_DAYS} days: restore it in parts")
    if dataset is not None and dataset not in known:
        raise RestoreInputError(
            "--dataset names no dataset of the rules (see `indici rules validate`)"
        )
    return RestoreRange(dates[0], dates[1], dataset)


def check_request(days: int, tier: str) -> None:
    """`--days` between 1 and 365 and a tier S3 offers; else `RestoreInputError`."""
    if not 1 <= days <= 365:
        raise RestoreInputError("--days must be between 1 and 365")
    if tier not in TIERS:
        raise RestoreInputError(f"--tier must be one of {', '.join(TIERS)}")


@dataclass
class RestoreReport:
    """What a restore did, by object location (escaped, printable)."""

    requested: list[str] = field(default_factory=list)
    """Archived objects whose restore this command requested."""
    restoring: list[str] = field(default_factory=list)
    """Archived objects whose restore was already in progress."""
    available: list[str] = field(default_factory=list)
    """Objects readable now: never archived, or restored."""


def landed_objects(storage: Storage, wanted: RestoreRange, timezone: str) -> list[StoredObject]:
    """The landed objects of the range (by their names' dates), of its dataset if given."""
    keys = wanted.partition_keys
    found = []
    for obj in objects_of_dates(storage, keys):
        name = file_of_dates(storage, obj, keys, timezone)
        if isinstance(name, str):
            continue  # never read by the pipeline either: nothing to restore
        if wanted.dataset is None or name.dataset == wanted.dataset:
            found.append(obj)
    return sorted(found, key=lambda o: o.key)


def partitioned_objects(storage: Storage, wanted: RestoreRange) -> list[StoredObject]:
    """The partitioned copies of the range: `dataset=<D>/date=<YYYY-MM-DD>/` of each date."""
    if wanted.dataset is not None:
        datasets = [wanted.dataset]
    elif isinstance(storage, S3Storage):
        folders = storage.list_folders("")
        datasets = [m[1] for f in folders if (m := _PARTITION_FOLDER.fullmatch(f))]
    else:
        datasets = sorted(
            {m[1] for o in storage.list_objects() if (m := _PARTITION_FOLDER.match(o.key))}
        )
    found = []
    for dataset in datasets:
        for key in wanted.partition_keys:
            prefix = f"dataset={dataset}/date={key}/"
            found += [o for o in storage.list_objects(prefix) if o.problem is None]
    return found


def _states(
    storage: Storage, objects: list[StoredObject], days: int, tier: str
) -> Iterator[tuple[str, ArchiveState, bool]]:
    """(location, state, whether this call requested its restore) of each object."""
    for obj in objects:
        shown = storage.display(obj.key)
        if not isinstance(storage, S3Storage):
            yield shown, ArchiveState.AVAILABLE, False  # a local folder archives nothing
            continue
        head = storage.head_response(obj.key)
        if head is None:
            continue  # removed since it was listed: nothing to restore
        state = archive_state(head)
        if state is ArchiveState.ARCHIVED:
            key = storage.prefix + obj.key
            yield (
                shown,
                request_restore(storage.client, storage.bucket, key, head, days, tier),
                True,
            )
        else:
            yield shown, state, False


def restore_range(
    landing: Storage,
    partitioned: Storage,
    wanted: RestoreRange,
    *,
    timezone: str,
    days: int,
    tier: str,
) -> RestoreReport:
    """Request a restore of every archived landed and partitioned object of the range and
    report each object once: `requested`, `restoring` (already in progress) or `available`.
    Idempotent: objects already restoring or restored are never requested again."""
    check_request(days, tier)
    report = RestoreReport()
    for storage, objects in (
        (landing, landed_objects(landing, wanted, timezone)),
        (partitioned, partitioned_objects(partitioned, wanted)),
    ):
        for shown, state, asked in _states(storage, objects, days, tier):
            if asked and state is ArchiveState.RESTORING:
                report.requested.append(shown)
            elif state is ArchiveState.RESTORING:
                report.restoring.append(shown)
            else:
                report.available.append(shown)
    return report
