"""Postgres identifiers derived from indici names: snake_case conversion and validation."""

import re

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_ACRONYM_BOUNDARY = re.compile(r"([A-Z]+)([A-Z][a-z])")
_WORD_BOUNDARY = re.compile(r"([a-z0-9])([A-Z])")
_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")


class InvalidIdentifierError(ValueError):
    """A name cannot be used as a Postgres identifier."""


def snake_case(name: str) -> str:
    """Return the snake_case form of an indici name.

    `AppointmentMedicationID` -> `appointment_medication_id`, `NHINumber` -> `nhi_number`.
    The result is not validated; see `to_identifier`.
    """
    text = _SEPARATORS.sub("_", name.strip())
    text = _ACRONYM_BOUNDARY.sub(r"\1_\2", text)
    text = _WORD_BOUNDARY.sub(r"\1_\2", text)
    return re.sub(r"_+", "_", text).strip("_").lower()


def validate_identifier(identifier: str) -> str:
    """Return `identifier` unchanged if it is a plain lower-case Postgres identifier.

    Guarantees the result matches `[a-z_][a-z0-9_]*`, is at most 63 bytes and so is never
    truncated or case-folded by Postgres; raises `InvalidIdentifierError` otherwise.
    """
    if not _IDENTIFIER.fullmatch(identifier):
        raise InvalidIdentifierError(
            f"{identifier!r} is not a valid identifier: use lower-case letters, digits and "
            "underscores, starting with a letter or underscore, at most 63 characters"
        )
    return identifier


def to_identifier(name: str) -> str:
    """Return the validated snake_case identifier for an indici name."""
    return validate_identifier(snake_case(name))
