"""The snapshot of the last rule set read from DynamoDB, so a code location loads while the
table cannot be reached.

It is kept in two places: under the partitioned location (`_indici/rules/<table>.json`, shared
by the code server, the daemon and every run worker, and surviving a container that is
replaced) and in a local folder (`<folder>/<table>.json`, the folder from
`snapshot_dir.local_snapshot_dir`, which still answers when S3 is unreachable along with
DynamoDB; a read-only folder only loses that copy, quietly). On a fallback the newer readable copy
is used; a damaged copy (unreadable, invalid, or not matching its own fingerprint) never is.
"""

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from indici_dagster.core.rules.fingerprints import rule_set_fingerprint
from indici_dagster.core.rules.model import Rule, RuleError, parse_rules
from indici_dagster.core.rules.snapshot_dir import is_read_only_error
from indici_dagster.core.rules.store import (
    DYNAMODB_SCHEME,
    RulesUnavailableError,
    dynamodb_table,
    load_rules,
    shipped_rules_path,
)
from indici_dagster.core.storage.base import Storage
from indici_dagster.core.storage.local_storage import LocalStorage

SNAPSHOT_PREFIX = "_indici/rules/"
"""Where the snapshot lives under the partitioned location: one JSON object per table."""
CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of this machine's clock a snapshot's `saved_at` may be (clocks of the code
server and the workers differ a little); a copy dated further ahead is refused: it would be
preferred over every honest copy for years."""


@dataclass(frozen=True)
class LoadedRules:
    """A validated rule set and where it came from."""

    rules: dict[str, Rule]
    source: str
    """The rules location: a YAML path or `dynamodb://<table>`."""
    as_of: datetime
    """When the rules were read; for a snapshot, when it was saved."""
    from_snapshot: str | None = None
    """Why the snapshot was used (the store's error; empty for a snapshot read on its own), or
    None when the rules were read from the store."""
    snapshot_problem: str | None = None
    """What went wrong keeping or reading a snapshot copy, when something did."""
    snapshot_note: str | None = None
    """A local copy not kept because its folder is read-only: safe, worth a debug line only."""

    def summary(self) -> str:
        """One line for the UI and logs: source, time, count and fingerprint; never content."""
        when = self.as_of.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        what = f"{len(self.rules)} rules, fingerprint {rule_set_fingerprint(self.rules)}"
        if self.from_snapshot is None:
            return f"read from {self.source} at {when} ({what})"
        return (
            f"SNAPSHOT of {self.source} saved {when} ({what}), used because the table could not "
            f"be read when the code location loaded: {self.from_snapshot}"
        )


@dataclass(frozen=True)
class SnapshotPlace:
    """One copy of a table's snapshot: a storage and the key in it."""

    storage: Storage
    key: str

    def display(self) -> str:
        """Where the copy is, for messages."""
        return self.storage.display(self.key)


def snapshot_places(
    location: str, partitioned: Storage | None, local_dir: str | Path | None
) -> list[SnapshotPlace]:
    """The copies of the snapshot of the table at `location` (a `dynamodb://` location): under
    `partitioned`'s `_indici/rules/`, and in the folder `local_dir` itself."""
    table = dynamodb_table(location)
    places = []
    if partitioned is not None:
        places.append(SnapshotPlace(partitioned, f"{SNAPSHOT_PREFIX}{table}.json"))
    if local_dir:
        places.append(SnapshotPlace(LocalStorage(local_dir), f"{table}.json"))
    return places


def save_snapshot(place: SnapshotPlace, loaded: LoadedRules) -> bool:
    """Keep `loaded` at `place` unless the copy there already holds these rules; True if written."""
    fingerprint = rule_set_fingerprint(loaded.rules)
    with contextlib.suppress(RuleError):
        current = read_snapshot(place, loaded.source)
        # compared whole: the fingerprint leaves out settings such as `max_file_age_hours`
        if current is not None and current.rules == loaded.rules:
            return False
    document = {
        "source": loaded.source,
        "saved_at": loaded.as_of.astimezone(UTC).isoformat(),
        "fingerprint": fingerprint,
        "rules": [loaded.rules[d].to_dict() for d in sorted(loaded.rules)],
    }
    place.storage.put_bytes(place.key, json.dumps(document, indent=1).encode("utf-8"))
    return True


def read_snapshot(
    place: SnapshotPlace, location: str, now: datetime | None = None
) -> LoadedRules | None:
    """The snapshot copy at `place`, or None if there is none.

    Raises `RuleError` when it exists but cannot be read, does not validate, does not match
    its own fingerprint, or says it was saved after `now` (default: this clock) plus
    `CLOCK_SKEW` or without a time zone: such a snapshot is never used.
    """
    try:
        if place.storage.head(place.key) is None:
            return None
        with place.storage.open_for_read(place.key) as handle:
            document = json.loads(handle.read().decode("utf-8"))
        rules = parse_rules(document["rules"])
        saved_at = datetime.fromisoformat(document["saved_at"])
    except (RuleError, KeyError, TypeError, ValueError) as error:
        raise RuleError(f"snapshot {place.display()} is damaged: {error}") from None
    except (OSError, BotoCoreError, ClientError) as error:
        reason = type(error).__name__
        raise RuleError(f"snapshot {place.display()} cannot be read: {reason}") from None
    if not rules or document.get("fingerprint") != rule_set_fingerprint(rules):
        raise RuleError(f"snapshot {place.display()} is damaged: its fingerprint differs")
    if saved_at.tzinfo is None:
        raise RuleError(f"snapshot {place.display()} is damaged: its saved_at has no time zone")
    if saved_at > (now or datetime.now(UTC)) + CLOCK_SKEW:
        raise RuleError(
            f"snapshot {place.display()} is refused: its saved_at is in the future (more than "
            f"{CLOCK_SKEW.total_seconds() / 60:g} minutes ahead of this clock)"
        )
    return LoadedRules(rules, location, saved_at, from_snapshot="")


def _fall_back(
    error: RulesUnavailableError, source: str, places: Sequence[SnapshotPlace], now: datetime
) -> LoadedRules:
    """The newest readable snapshot copy, used because the table could not be read."""
    found, problems = [], []
    for place in places:
        try:
            snapshot = read_snapshot(place, source, now)
        except RuleError as damaged:
            problems.append(str(damaged))
            continue
        if snapshot is not None:
            found.append(snapshot)
    if not found and problems:
        raise RuleError(f"{error}; and {'; '.join(problems)}") from None
    if not found:
        raise RulesUnavailableError(
            f"{error}; and no snapshot of earlier rules exists "
            f"({', '.join(p.display() for p in places)}; one is written on the first successful "
            "read), so the code location cannot load until the table is reachable",
            transient=True,
        ) from None
    newest = max(found, key=lambda s: s.as_of)
    return replace(newest, from_snapshot=str(error), snapshot_problem="; ".join(problems) or None)


def load_rules_or_snapshot(
    location: str | None,
    dynamodb: Any = None,
    places: Sequence[SnapshotPlace] = (),
    now: datetime | None = None,
) -> LoadedRules:
    """Load the rules as a code location does: from the store, else from the last snapshot.

    A DynamoDB rule set read successfully is kept at every place. When the table cannot be
    reached (a transient error), the newest readable copy is returned with `from_snapshot`
    saying why. Everything else raises `RuleError` with one line: invalid or no rules, a table
    that is missing or refused, and an unreachable table with no usable snapshot (a first-ever
    load).
    """
    source = location or str(shipped_rules_path())
    now = now or datetime.now(UTC)
    if not source.startswith(DYNAMODB_SCHEME):
        return LoadedRules(load_rules(source), source, now)
    try:
        loaded = LoadedRules(load_rules(source, dynamodb), source, now)
    except RulesUnavailableError as error:
        if not error.transient or not places:
            raise
        return _fall_back(error, source, places, now)
    problems, notes = [], []
    for place in places:
        try:
            save_snapshot(place, loaded)
        except (OSError, BotoCoreError, ClientError) as error:
            line = f"cannot write {place.display()}: {type(error).__name__}"
            local = isinstance(place.storage, LocalStorage)
            (notes if local and is_read_only_error(error) else problems).append(line)
    return replace(
        loaded, snapshot_problem="; ".join(problems) or None, snapshot_note="; ".join(notes) or None
    )
