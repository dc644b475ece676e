"""Made-up values for sample files, one generator per built-in column type (see `types`)."""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np

TEXTS = [
    "Follow up in 2 weeks",
    'Patient said "feeling much better", BP stable',
    "Reviewed bloods; HbA1c 52\nRepeat in 3 months",
    "Kōrero with whānau about the care plan",
    'O\'Neil, "Jo" asked for an interpreter',
    "Script sent to pharmacy, 1 x repeat",
    "",
]
_ID_LETTERS = list("ABCDEFGHJKLMNPQRSTUVWXYZ")
_JSON = '{"source": "sample", "note": "Kōrero, \\"quoted\\""}'


@dataclass(frozen=True)
class Sample:
    """What a sample value is made from: a random source, the column and the day described."""

    rng: np.random.Generator
    source: str
    """The column's name in the file (some generators follow it: `DateOfBirth`, `...Count`)."""
    params: tuple[int, ...]
    """The column type's parameters: `(12, 2)` for numeric(12,2)."""
    business_day: date
    written_utc: datetime

    def pick(self, pool: list[Any]) -> Any:
        """One item of `pool`."""
        return pool[int(self.rng.integers(len(pool)))]


def integer(s: Sample) -> int:
    return int(
        s.rng.integers(1, 5) if s.source.endswith(("Number", "Count")) else s.rng.integers(100)
    )


def floating(s: Sample) -> float:
    return round(float(s.rng.uniform(0.5, 10)), 3)


def numeric(s: Sample) -> Any:
    """A float for plain numeric; a decimal within the precision (text beyond 76 digits)."""
    if not s.params:
        return floating(s)
    precision, scale = s.params[0], (s.params[1:] or (0,))[0]
    limit = min(500, 10 ** (precision - scale) - 1)
    value = Decimal(int(s.rng.integers(limit * 10**scale + 1))).scaleb(-scale)
    return value if precision <= 76 else str(value)


def text(s: Sample) -> str:
    if s.source.endswith("Number"):
        return f"{s.pick(_ID_LETTERS)}{s.pick(_ID_LETTERS)}{s.rng.integers(10_000, 99_999)}"
    return s.pick(TEXTS)


def boolean(s: Sample) -> bool:
    return bool(s.rng.random() < 0.5)


def day(s: Sample) -> date:
    back = s.rng.integers(365, 90 * 365) if "Birth" in s.source else s.rng.integers(0, 400)
    return s.business_day - timedelta(days=int(back))


def timestamp(s: Sample) -> datetime:
    back = int(s.rng.integers(0, 3650)) if "Enrol" in s.source else 0
    start = datetime.combine(s.business_day - timedelta(days=back), time(7, 30))
    minutes, seconds = int(s.rng.integers(0, 11 * 60)), int(s.rng.integers(60))
    return start + timedelta(minutes=minutes, seconds=seconds)


def timestamptz(s: Sample) -> datetime:
    return s.written_utc - timedelta(seconds=int(s.rng.integers(60, 18 * 3600)))


def clock(s: Sample) -> time:
    return time(int(s.rng.integers(7, 19)), s.pick([0, 15, 30, 45]))


def uuid_text(s: Sample) -> str:
    return str(uuid.UUID(bytes=s.rng.bytes(16)))


def json_text(_s: Sample) -> str:
    return _JSON


def raw_bytes(s: Sample) -> bytes:
    return s.rng.bytes(8)


# The `number`th value of a key column (IDs count from `base`): one function per kind of type.


def counted_key(_source: str, _params: tuple[int, ...], number: int, base: int) -> int:
    return base + number - 1


def decimal_key(source: str, params: tuple[int, ...], number: int, base: int) -> Any:
    value = counted_key(source, params, number, base)
    return Decimal(value) if params else value


def text_key(source: str, params: tuple[int, ...], number: int, base: int) -> str:
    return str(counted_key(source, params, number, base))


def date_key(_source: str, _params: tuple[int, ...], number: int, _base: int) -> date:
    return date(2000, 1, 1) + timedelta(days=number)


def timestamp_key(_source: str, _params: tuple[int, ...], number: int, _base: int) -> datetime:
    return datetime(2000, 1, 1) + timedelta(minutes=number)


def timestamptz_key(source: str, params: tuple[int, ...], number: int, base: int) -> datetime:
    return timestamp_key(source, params, number, base).replace(tzinfo=UTC)


def uuid_key(source: str, _params: tuple[int, ...], number: int, base: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{source}/{base}/{number}"))
