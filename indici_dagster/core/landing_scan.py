"""Which landed objects a sensor tick looks at: recent ones per dataset, plus a slice of the rest.

Listing a whole S3 prefix every tick costs time in proportion to everything ever landed. Names
sort by date within a dataset (`<Dataset>_<YYYYMMDD>…`), so each tick lists every dataset's keys
from a few days before the newest it has seen, and sweeps a bounded slice of the whole prefix,
continuing where the last tick stopped: a late file with an old timestamp is still found, within
one sweep. The state is a few bytes per dataset. Local folders are listed whole (that is cheap).
"""

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from indici_dagster.core.storage import S3Storage, Storage, StoredObject

LOOKBACK_DAYS = 3
SWEEP_KEYS_PER_TICK = 2_000
_DATE_AFTER_PREFIX = re.compile(r"([0-9]{8})")


def _date_of(key: str, prefix: str) -> str | None:
    match = _DATE_AFTER_PREFIX.match(key, len(prefix))
    if match is None:
        return None
    try:
        date(int(match[1][:4]), int(match[1][4:6]), int(match[1][6:]))
    except ValueError:
        return None
    return match[1]


def _remember_newest(newest: dict[str, str], key: str) -> None:
    """Track the newest date in each dataset's key prefix (the text up to the first `_`)."""
    if "_" not in key:
        return
    prefix = key[: key.index("_") + 1]
    stamp = _date_of(key, prefix)
    if stamp and stamp > newest.get(prefix, ""):
        newest[prefix] = stamp


def scan_landing(
    storage: Storage, state: dict[str, Any] | None, *, sweep_keys: int = SWEEP_KEYS_PER_TICK
) -> tuple[list[StoredObject], dict[str, Any]]:
    """The objects worth comparing with the ledger this tick, and the state for the next one.

    Guarantees every object is returned by some tick: recent keys of every dataset each tick,
    every other key at least once per sweep of the whole location (a location smaller than one
    slice is swept whole every tick).
    """
    if not isinstance(storage, S3Storage):
        return list(storage.list_objects()), {}
    state = state or {}
    newest: dict[str, str] = dict(state.get("newest", {}))
    found: dict[str, StoredObject] = {}
    prefixes, loose = storage.list_name_prefixes()
    for obj in loose:
        found[obj.key] = obj
    # a dataset not seen yet starts from today: older keys (a backlog) come with the sweep, so
    # even the first tick on a bucket of years of files stays short
    today = datetime.now(UTC).strftime("%Y%m%d")
    for prefix in prefixes:
        newest_seen = newest.get(prefix, today)
        since = date(int(newest_seen[:4]), int(newest_seen[4:6]), int(newest_seen[6:])) - timedelta(
            days=LOOKBACK_DAYS
        )
        start_after = f"{prefix}{since:%Y%m%d}"
        for obj in storage.list_objects(prefix, start_after=start_after):
            found[obj.key] = obj
            _remember_newest(newest, obj.key)
    swept = 0
    last_key = None
    for obj in storage.list_objects(start_after=state.get("sweep_after")):
        found[obj.key] = obj
        _remember_newest(newest, obj.key)
        swept += 1
        last_key = obj.key
        if swept >= sweep_keys:
            break
    sweep_after = last_key if swept >= sweep_keys else None  # None: start over next tick
    known = set(prefixes)
    return list(found.values()), {
        "newest": {p: d for p, d in newest.items() if p in known},
        "sweep_after": sweep_after,
    }
