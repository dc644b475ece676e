"""Landed file names: `<Dataset>_<YYYYMMDDHHMMSS>.parquet`, `<Dataset>_<YYYYMMDD>_<HHMMSS>.parquet`.

The embedded timestamp is wall-clock time in the pipeline's zone; its date is the partition.
"""

import posixpath
import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

_FILE_NAME = re.compile(
    r"(?P<dataset>[A-Za-z][A-Za-z0-9]*)_(?P<date>[0-9]{8})_?(?P<time>[0-9]{6})\.parquet"
)

NAME_PATTERNS = "<Dataset>_<YYYYMMDDHHMMSS>.parquet or <Dataset>_<YYYYMMDD>_<HHMMSS>.parquet"


@dataclass(frozen=True)
class LandedFileName:
    """What a landed file's name says: its dataset, embedded timestamp and daily partition."""

    file_name: str
    dataset: str
    source_ts: datetime
    """The embedded timestamp as an aware datetime in the configured zone."""

    @property
    def partition_key(self) -> str:
        """The local date of the embedded timestamp, `YYYY-MM-DD`."""
        return self.source_ts.date().isoformat()


class UnrecognisedFileNameError(ValueError):
    """A landed key whose base name does not follow the indici naming pattern."""


def base_name(key: str) -> str:
    """Return the last path segment of an object key or path."""
    return posixpath.basename(key.replace("\\", "/"))


def parse_file_name(key: str, timezone: str) -> LandedFileName:
    """Parse a landed key (or bare file name) into dataset, timestamp and partition key.

    The timestamp is read as wall-clock time in `timezone`. Raises `UnrecognisedFileNameError`, with
    the reason, for anything that is not exactly one of the two documented patterns or whose
    timestamp is not a real date and time.
    """
    name = base_name(key)
    match = _FILE_NAME.fullmatch(name)
    if match is None:
        raise UnrecognisedFileNameError(f"{name!r} does not match {NAME_PATTERNS}")
    stamp = match["date"] + match["time"]
    try:
        naive = datetime.strptime(stamp, "%Y%m%d%H%M%S")
    except ValueError as error:
        raise UnrecognisedFileNameError(f"{name!r} has an impossible timestamp {stamp}") from error
    return LandedFileName(
        file_name=name,
        dataset=match["dataset"],
        source_ts=naive.replace(tzinfo=ZoneInfo(timezone)),
    )


def try_parse_file_name(key: str, timezone: str) -> LandedFileName | None:
    """Like `parse_file_name`, but returns None for an unrecognised name."""
    try:
        return parse_file_name(key, timezone)
    except UnrecognisedFileNameError:
        return None
