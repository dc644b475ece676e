"""National Health Index (NHI) number validation per HISO 10046.

Two formats are recognised, after normalisation (surrounding whitespace stripped, ASCII letters
upper-cased, so validation is case-insensitive):

* old form `AAANNNC`: three letters, three digits, one check digit;
* new form `AAANNAX`: three letters, two digits, one letter, one check letter.

Letters are A-Z excluding I and O, valued 1-24 in alphabetical order (A=1 ... H=8, J=9 ... N=13,
P=14 ... Z=24); digits have their face value. Both forms weight the first six characters'
values by 7, 6, 5, 4, 3, 2 and sum them.

* Old form: `checksum = sum mod 11`; a checksum of 0 makes the NHI invalid whatever its check
  digit; otherwise the check digit is `11 - checksum`, with 10 written as 0.
* New form: the check letter is the letter valued `24 - (sum mod 24)` (so a remainder of 0 gives
  24, 'Z').

NHIs starting with 'Z' are test identifiers. Nothing here ever echoes an NHI: functions return
only a status, a boolean or counts, and no exception message contains the value examined.

`nhi_status` is the definition; `nhi_status_sql` is the same classification as a Postgres
expression, so a check can count a whole partition's statuses inside the database.
"""

import re
from dataclasses import dataclass
from enum import StrEnum
from string import ascii_lowercase, ascii_uppercase

from psycopg2 import sql

_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
"""The 24 NHI letters in value order; a letter's value is its index plus one."""

_LETTER_VALUE = {letter: index for index, letter in enumerate(_LETTERS, start=1)}
_WEIGHTS = (7, 6, 5, 4, 3, 2)

_LETTER_CLASS = "[A-HJ-NP-Z]"
_OLD_FORM = re.compile(f"{_LETTER_CLASS}{{3}}[0-9]{{4}}")
_NEW_FORM = re.compile(f"{_LETTER_CLASS}{{3}}[0-9]{{2}}{_LETTER_CLASS}{{2}}")

_TEST_PREFIX = "Z"

_STRIPPED = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""What `str.strip()` removes: every character for which `str.isspace()` holds."""


class NhiStatus(StrEnum):
    """The outcome of checking one value."""

    VALID = "valid"
    """Well-formed, correct check character, not a test NHI."""
    TEST = "test"
    """Well-formed and correct check character, but starts with 'Z' (a test identifier)."""
    INVALID = "invalid"
    """Present but not a well-formed NHI with a correct check character."""
    MISSING = "missing"
    """`None`, or empty once surrounding whitespace is stripped."""


@dataclass(frozen=True)
class NhiCounts:
    """How many values fell into each `NhiStatus`."""

    valid: int = 0
    test: int = 0
    invalid: int = 0
    missing: int = 0

    def __add__(self, other: "NhiCounts") -> "NhiCounts":
        return NhiCounts(
            valid=self.valid + other.valid,
            test=self.test + other.test,
            invalid=self.invalid + other.invalid,
            missing=self.missing + other.missing,
        )

    @property
    def total(self) -> int:
        """The number of values counted: the sum of the four counts."""
        return self.valid + self.test + self.invalid + self.missing


def _char_value(char: str) -> int:
    """Value of a normalised NHI character: a digit's face value or a letter's table value."""
    if char.isdigit():
        return int(char)
    return _LETTER_VALUE[char]


def _weighted_sum(prefix: str) -> int:
    """Sum of the first six characters' values weighted 7, 6, 5, 4, 3, 2."""
    return sum(_char_value(char) * weight for char, weight in zip(prefix, _WEIGHTS, strict=True))


def _normalise(value: str) -> str | None:
    """Strip surrounding whitespace and upper-case; `None` if anything non-ASCII remains.

    Non-ASCII text is refused before upper-casing so that characters such as the long s, which
    `str.upper` turns into an ASCII letter, cannot pass as NHI letters.
    """
    stripped = value.strip()
    if not stripped.isascii():
        return None
    return stripped.upper()


def _has_correct_check_char(nhi: str) -> bool:
    """Whether a normalised NHI is well-formed in either form and its check character matches."""
    if _OLD_FORM.fullmatch(nhi):
        checksum = _weighted_sum(nhi[:6]) % 11
        if checksum == 0:
            return False
        return nhi[6] == str((11 - checksum) % 10)
    if _NEW_FORM.fullmatch(nhi):
        check_value = 24 - _weighted_sum(nhi[:6]) % 24
        return nhi[6] == _LETTERS[check_value - 1]
    return False


def nhi_status(value: str | None) -> NhiStatus:
    """Classify one value as VALID, TEST, INVALID or MISSING.

    `None` and values that are empty after stripping whitespace are MISSING. Otherwise the value
    is normalised (stripped, upper-cased) and is VALID or TEST exactly when it matches one of the
    two forms and carries the correct check character; TEST when it also starts with 'Z'.
    Anything else, including non-ASCII text, is INVALID. Raises `TypeError` (naming only the
    type) for anything that is neither `str` nor `None`.
    """
    if value is None:
        return NhiStatus.MISSING
    if not isinstance(value, str):
        raise TypeError(f"an NHI must be a str or None, not {type(value).__name__}")
    if not value.strip():
        return NhiStatus.MISSING
    nhi = _normalise(value)
    if nhi is None or not _has_correct_check_char(nhi):
        return NhiStatus.INVALID
    if nhi.startswith(_TEST_PREFIX):
        return NhiStatus.TEST
    return NhiStatus.VALID


def has_nhi_shape(value: str) -> bool:
    """Whether `value`, normalised, has the shape of an NHI in either form (three NHI letters,
    then digits and letters as the form says), whatever its check character."""
    nhi = _normalise(value)
    return nhi is not None and bool(_OLD_FORM.fullmatch(nhi) or _NEW_FORM.fullmatch(nhi))


def is_valid_nhi(value: str) -> bool:
    """Whether `value` is a well-formed NHI with a correct check character.

    Test NHIs (starting with 'Z') that are otherwise valid count as valid; empty values do not.
    """
    return nhi_status(value) in (NhiStatus.VALID, NhiStatus.TEST)


def nhi_normalised_sql(value: sql.Composable) -> sql.Composable:
    """SQL for `value` as text, normalised as `nhi_status` normalises it before matching.

    Surrounding whitespace (what `str.strip` removes) is trimmed and ASCII letters are
    upper-cased; anything else is kept, so non-ASCII text still fails both forms. NULL stays NULL.
    """
    return sql.SQL("translate(btrim(({})::text, {}), {}, {})").format(
        value, sql.Literal(_STRIPPED), sql.Literal(ascii_lowercase), sql.Literal(ascii_uppercase)
    )


def nhi_status_sql(normalised: sql.Composable) -> sql.Composable:
    """SQL giving, as text, the `NhiStatus` that `nhi_status` gives a value.

    `normalised` is that value passed through `nhi_normalised_sql` (computed once by the caller,
    as it is used several times here). The expression cannot raise for any input.
    """
    # a character's value: digits are absent from the letter table and vice versa ('0' -> 0);
    # mod() rather than %, which would read as a query parameter
    values = [
        sql.SQL("{weight} * (strpos('123456789', {char}) + strpos({letters}, {char}))").format(
            weight=sql.Literal(weight),
            char=sql.SQL("substr({}, {}, 1)").format(normalised, sql.Literal(position)),
            letters=sql.Literal(_LETTERS),
        )
        for position, weight in enumerate(_WEIGHTS, start=1)
    ]
    weighted_sum = sql.SQL("({})").format(sql.SQL(" + ").join(values))
    letter, digit = f"[{_LETTERS}]", "[0123456789]"
    return sql.SQL(
        "CASE WHEN {n} IS NULL OR {n} = '' THEN {missing} "
        "WHEN ({n} ~ {old_form} AND mod({sum}, 11) <> 0 "
        "AND substr({n}, 7, 1) = mod(11 - mod({sum}, 11), 10)::text) "
        "OR ({n} ~ {new_form} AND substr({n}, 7, 1) = substr({letters}, 24 - mod({sum}, 24), 1)) "
        "THEN CASE WHEN left({n}, 1) = {test_prefix} THEN {test} ELSE {valid} END "
        "ELSE {invalid} END"
    ).format(
        n=normalised,
        sum=weighted_sum,
        old_form=sql.Literal(f"^{letter}{{3}}{digit}{{4}}$"),
        new_form=sql.Literal(f"^{letter}{{3}}{digit}{{2}}{letter}{{2}}$"),
        letters=sql.Literal(_LETTERS),
        test_prefix=sql.Literal(_TEST_PREFIX),
        **{status.value: sql.Literal(status.value) for status in NhiStatus},
    )
