"""What a rule says about meaning: a dataset's description, and per column a description and a
mark for personal information (`pii`).

A rule's `columns` take a short form (`NHINumber: text`) or a long one
(`NHINumber: {type: text, description: "...", pii: nhi}`). Descriptions are free text written
by the rule's author, never data; they are still shown through `printable` wherever printed.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PII_MARKS = ("nhi", "name", "address", "contact", "dob", "other")
"""The kinds of personal information a column can be marked with."""
NHI_MARK = "nhi"
MAX_DESCRIPTION = 2000
"""Characters a description may hold (a paragraph, not a document)."""
COLUMN_FIELDS = frozenset({"type", "description", "pii"})

_PII_NAME_PATTERNS = (
    (re.compile(r"nhi", re.IGNORECASE), NHI_MARK),
    (re.compile(r"dob|dateofbirth|birth", re.IGNORECASE), "dob"),
    (re.compile(r"address|street|suburb|postcode|postal", re.IGNORECASE), "address"),
    (re.compile(r"phone|mobile|email", re.IGNORECASE), "contact"),
    (re.compile(r"name", re.IGNORECASE), "name"),
)
"""Name fragments that suggest personal information, in the order they are tried."""


class DocError(ValueError):
    """A description or `pii` mark that cannot be used; the message names what, never a value
    it did not recognise beyond the mark itself."""


@dataclass(frozen=True)
class ColumnDoc:
    """What a rule says about one column besides its type."""

    source: str
    """The column's name in the files."""
    description: str | None = None
    pii: str | None = None
    """One of `PII_MARKS`, or None for a column that holds no personal information."""


def parse_description(value: Any, what: str) -> str | None:
    """A description as given (None or text), stripped; raises `DocError` naming `what` if it
    is not text, or is longer than `MAX_DESCRIPTION` characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise DocError(f"{what}: description must be text, not {type(value).__name__}")
    text = value.strip()
    if len(text) > MAX_DESCRIPTION:
        raise DocError(f"{what}: description is longer than {MAX_DESCRIPTION} characters")
    return text or None


def parse_pii(value: Any, what: str) -> str | None:
    """A `pii` mark (one of `PII_MARKS`, case as written is not folded), or None; raises
    `DocError` naming `what` and the allowed marks for anything else."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in PII_MARKS:
        shown = value if isinstance(value, str) and value.isprintable() and len(value) <= 40 else ""
        mark = f" {shown!r}" if shown else ""
        raise DocError(f"{what}: unknown pii mark{mark} (allowed: {', '.join(PII_MARKS)})")
    return value


def parse_column_entry(source: str, value: Any, what: str) -> tuple[Any, ColumnDoc]:
    """Split a `columns` entry into (its type as written, or None; its `ColumnDoc`).

    The short form is the type itself; the long form a mapping of `type`, `description` and
    `pii`, each optional here (whether a type is required is the rule's decision).
    """
    if not isinstance(value, Mapping):
        return value, ColumnDoc(source)
    unknown = set(value) - COLUMN_FIELDS
    if unknown:
        raise DocError(f"{what}: unknown fields {sorted(map(str, unknown))}")
    return value.get("type"), ColumnDoc(
        source,
        parse_description(value.get("description"), what),
        parse_pii(value.get("pii"), what),
    )


def column_entry(type_name: str | None, doc: ColumnDoc | None) -> Any:
    """The rules-file form of a column: the bare type when nothing else is said, else the
    long form with only the fields that are set."""
    if doc is None or (doc.description is None and doc.pii is None):
        return type_name
    entry: dict[str, str] = {}
    if type_name is not None:
        entry["type"] = type_name
    if doc.description is not None:
        entry["description"] = doc.description
    if doc.pii is not None:
        entry["pii"] = doc.pii
    return entry


def pii_by_name(column: str) -> str | None:
    """The `pii` mark a column's name suggests (`NHINumber` -> nhi, `FamilyName` -> name,
    `DateOfBirth` -> dob), or None when its name suggests none."""
    for pattern, mark in _PII_NAME_PATTERNS:
        if pattern.search(column):
            return mark
    return None


def column_comment(doc: ColumnDoc | None) -> str | None:
    """The text of a column's `COMMENT ON COLUMN`: its description, then its PII mark
    (`PII: nhi`), or None when the rule says nothing of it."""
    if doc is None:
        return None
    parts = [doc.description] if doc.description else []
    if doc.pii:
        parts.append(f"PII: {doc.pii}")
    return " ".join(part if part.endswith(".") else f"{part}." for part in parts) or None
