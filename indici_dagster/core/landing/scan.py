"""Which landed objects a sensor tick looks at: recent ones per dataset, plus a slice of the rest.

Listing a whole S3 prefix every tick costs time in proportion to everything ever landed. Names
sort by date within a dataset (`<Dataset>_<YYYYMMDD>…`), so each tick lists every dataset's keys
from a few days before the newest it has seen, and sweeps a bounded slice of the whole prefix,
continuing where the last tick stopped: a late file with an old timestamp is still found, within
one sweep. The state is a few bytes per dataset. Local folders are listed whole (that is cheap).
"""

import re
from collections.abc import Collection, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from indici_dagster.core.escaping import key_problem
from indici_dagster.core.filenames import NAME_PATTERNS, LandedFileName, try_parse_file_name
from indici_dagster.core.storage.base import Storage, StoredObject
from indici_dagster.core.storage.local_storage import LocalStorage
from indici_dagster.core.storage.s3_storage import S3Storage

_DATASET = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_MAX_FOLDER_DEPTH = 32
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
    slice is swept whole every tick). Raises `LocationMissingError` when the landing folder or
    bucket is missing: never "no new files".
    """
    storage.require_exists()
    if not isinstance(storage, S3Storage):
        return list(storage.list_objects()), {}
    state = state or {}
    newest: dict[str, str] = dict(state.get("newest", {}))
    found: dict[str, StoredObject] = {}
    prefixes, loose = storage.list_name_prefixes()
    # a prefix with control characters is never listed by itself (its keys can never be handed
    # over): the sweep finds them, and they are audited as problems
    prefixes = [p for p in prefixes if key_problem(p) is None]
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


def objects_of_dates(storage: Storage, partition_keys: Iterable[str]) -> list[StoredObject]:
    """Every object whose base name may belong to one of these dates (`YYYY-MM-DD`), in any
    folder, found with storage requests in proportion to the dates' files, not to the history.

    A name's `YYYYMMDD` is its partition date (the embedded time is local wall-clock time). On
    S3: one `Delimiter="_"` listing finds each folder's dataset prefixes (`<folder>/<Dataset>_`),
    and each is listed only under `<Dataset>_<YYYYMMDD>` for the wanted dates (`<YYYYMM>` for a
    month with many of them). Folders whose names hold `_` are found by listings that skip a
    dataset's dated names, and are searched the same way. Callers still parse every name.
    Not found: files inside a folder named `<Dataset>_<digit>...` (next to that dataset's dated
    files) unless the folder's name begins with the wanted date or month.
    """
    stamps = sorted({key.replace("-", "") for key in partition_keys})
    if not stamps:
        return []
    if isinstance(storage, S3Storage):
        found: dict[str, StoredObject] = {}
        _search_s3_folder(storage, "", stamps, found, 0)
        return list(found.values())
    if isinstance(storage, LocalStorage):
        wanted = tuple(f"_{stamp}" for stamp in stamps)
        return list(storage.list_objects(accept=lambda name: any(s in name for s in wanted)))
    return list(storage.list_objects())


def file_of_dates(
    storage: Storage, obj: StoredObject, partition_keys: Collection[str], timezone: str
) -> LandedFileName | str:
    """The parsed name of `obj` when it is a file of one of `partition_keys` that the landing
    listing hands over, else why it is not (never quoting the key).

    The one check for both a date's listed objects and the versions a run's tags name: the
    storage's own listing check (`key_refusal`: hidden, unsafe, unstorable keys), then the
    name pattern and the date.
    """
    problem = obj.problem or storage.key_refusal(obj.key)
    if problem is not None:
        return problem
    name = try_parse_file_name(obj.key, timezone)
    if name is None:
        return f"its name does not match {NAME_PATTERNS}"
    if name.partition_key not in partition_keys:
        return f"its name is dated {name.partition_key}, not {', '.join(sorted(partition_keys))}"
    return name


MONTH_LISTING_FROM = 4
"""Wanted dates of one month from which that month is listed whole (a range backfill), rather
than date by date."""


def _name_prefixes(stamps: list[str]) -> list[str]:
    """`YYYYMMDD` name prefixes to list, merged into `YYYYMM` where a month has many dates:
    a daily run lists its date, a year-long backfill a dozen months."""
    by_month: dict[str, list[str]] = {}
    for stamp in stamps:
        by_month.setdefault(stamp[:6], []).append(stamp)
    prefixes = []
    for month, days in sorted(by_month.items()):
        prefixes += [month] if len(days) >= MONTH_LISTING_FROM else days
    return prefixes


def _search_s3_folder(
    storage: S3Storage, folder: str, stamps: list[str], found: dict[str, StoredObject], depth: int
) -> None:
    if depth > _MAX_FOLDER_DEPTH:
        raise RecursionError(f"folders nested deeper than {_MAX_FOLDER_DEPTH} under the landing")
    prefixes, _ = storage.list_name_prefixes(folder)  # keys without `_` are never indici names
    for prefix in [p for p in prefixes if key_problem(p) is None]:  # no handable keys under it
        stem = prefix[:-1].rsplit("/", 1)[-1]
        if _DATASET.fullmatch(stem):
            for stamp in _name_prefixes(stamps):
                for obj in storage.list_objects(prefix + stamp):
                    found[obj.key] = obj
            # folders under `<Dataset>_` whose names do not start with a digit (dated names do)
            subfolders = storage.list_folders(prefix, stop_at=prefix + "0")
            subfolders += storage.list_folders(prefix, start_after=prefix + ":")
        else:
            subfolders = storage.list_folders(prefix)  # no dated names can be here
        for subfolder in subfolders:
            _search_s3_folder(storage, subfolder, stamps, found, depth + 1)
