"""Whether each dataset's feed is fresh: judged on when its files landed, never on loads.

A backfill of an old date materializes assets today, so materialization times would make a
quiet feed look fresh; the landing location's own times (S3 `LastModified`, a local file's
modification time) cannot be moved by anything the pipeline does. A dataset whose newest
landed file is older than its rule's `max_file_age_hours` is *stale* (0 turns it off).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from indici_dagster.core.filenames import try_parse_file_name
from indici_dagster.core.rules.model import Rule
from indici_dagster.core.storage.base import Storage, StoredObject


@dataclass(frozen=True)
class Freshness:
    """One dataset's freshness at `checked_at`."""

    dataset: str
    limit_hours: float
    """The rule's `max_file_age_hours`; 0: not checked."""
    newest_landing: datetime | None
    """When the newest file of the dataset landed; None when none has."""
    checked_at: datetime

    @property
    def checked(self) -> bool:
        """False when the rule turns the check off (`max_file_age_hours: 0`)."""
        return self.limit_hours > 0

    @property
    def age_hours(self) -> float | None:
        """Hours since the newest file landed, or None when none has."""
        if self.newest_landing is None:
            return None
        return max(0.0, (self.checked_at - self.newest_landing).total_seconds() / 3600)

    @property
    def stale(self) -> bool:
        """True when checked and no file landed within the limit (or none ever did)."""
        if not self.checked:
            return False
        age = self.age_hours
        return age is None or age > self.limit_hours

    def describe(self) -> str:
        """One line: the dataset, the newest landing and its age against the limit."""
        if not self.checked:
            return f"{self.dataset}: freshness not checked (max_file_age_hours is 0)"
        if self.newest_landing is None:
            return f"{self.dataset}: no file has landed (limit {self.limit_hours:g} h)"
        state = "QUIET" if self.stale else "fresh"
        return (
            f"{self.dataset}: {state}, newest file landed {_utc(self.newest_landing)}, "
            f"{self.age_hours:.1f} h ago (limit {self.limit_hours:g} h)"
        )


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def newest_landings(
    objects: Iterable[StoredObject], datasets: Iterable[str], timezone: str
) -> dict[str, datetime | None]:
    """For each of `datasets`, when its newest file (by name) in `objects` landed, or None.

    Objects that are never handed over (hidden, unreadable, an unrecognised name) do not count.
    """
    newest: dict[str, datetime | None] = dict.fromkeys(datasets)
    for obj in objects:
        if obj.problem is not None:
            continue
        name = try_parse_file_name(obj.key, timezone)
        if name is None or name.dataset not in newest:
            continue
        current = newest[name.dataset]
        if current is None or obj.last_modified > current:
            newest[name.dataset] = obj.last_modified
    return newest


def landed_objects(storage: Storage) -> list[StoredObject]:
    """Every object in the landing location that its listing would hand over.

    One listing of the whole location: an hourly check costs one list request per 1,000 keys.
    Raises `LocationMissingError` when the location itself is missing (never "all quiet").
    """
    storage.require_exists()
    return [o for o in storage.list_objects() if storage.key_refusal(o.key) is None]


def utc_now() -> datetime:
    """This clock, in UTC."""
    return datetime.now(UTC)


def judge(
    rules: Mapping[str, Rule],
    newest: Mapping[str, datetime | None],
    now: datetime | None = None,
) -> list[Freshness]:
    """Each rule's dataset's freshness at `now` (default: this clock), sorted by dataset."""
    moment = now or utc_now()
    return [
        Freshness(dataset, rules[dataset].max_file_age_hours, newest.get(dataset), moment)
        for dataset in sorted(rules)
    ]


def newly_stale(results: Iterable[Freshness], alerted: Iterable[str]) -> list[Freshness]:
    """The stale datasets not in `alerted` (those an alert already went out for)."""
    already = set(alerted)
    return [r for r in results if r.stale and r.dataset not in already]


def alert_text(result: Freshness, ui_url: str | None, asset_path: str) -> tuple[str, str]:
    """(subject, body) of the alert for a dataset whose feed went quiet; `asset_path` is the
    checked asset's key as the UI spells it (`indici/landing/<dataset>`)."""
    if result.newest_landing is None:
        subject = f"indici: no file has landed for {result.dataset}"
        newest = "Newest file landed: none yet"
    else:
        subject = f"indici: {result.dataset} feed quiet for {result.age_hours:.0f} h"
        newest = f"Newest file landed: {_utc(result.newest_landing)} ({result.age_hours:.1f} h ago)"
    lines = [
        f"No file of dataset {result.dataset} has landed for longer than its rule allows.",
        f"Dataset: {result.dataset}",
        newest,
        f"Limit: {result.limit_hours:g} h (the rule's max_file_age_hours)",
    ]
    if ui_url:
        lines.append(f"Check in Dagster: {ui_url.rstrip('/')}/assets/{asset_path}?view=checks")
    lines.append(
        "Ask the sender whether the feed stopped. Nothing is sent again for this dataset until "
        "a file lands and it goes quiet once more."
    )
    return subject[:100], "\n".join(lines)
