"""The SQL form of the NHI classification agrees with `nhi_status` on every value, in Postgres.

The asset check counts a partition's NHI statuses inside the database with `nhi_status_sql`;
`nhi_status` (hand-checked in test_nhi.py) is the definition it must match exactly.
"""

import contextlib
import random

import psycopg2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg2 import sql

from indici_dagster.core.quality.nhi import (
    _STRIPPED,
    nhi_normalised_sql,
    nhi_status,
    nhi_status_sql,
)
from indici_dagster_tests.core.quality.test_nhi import (
    ALPHABET,
    DIGITS,
    TEST_NEW,
    TEST_OLD,
    VALID_NEW,
    VALID_OLD,
    reference_check_char,
)

LOOKALIKES = "\u017f\u212a\u0131\u0130\uff21\uff11\u0969\u200b\u00e9"
"""Long s, Kelvin sign, dotless i, dotted I, full-width A and 1, Devanagari 3, zero-width space."""

CLASSIFY = sql.SQL(
    "SELECT {} FROM (SELECT ordinality, {} AS n FROM unnest(%s::text[]) WITH ORDINALITY v "
    "OFFSET 0) normalised ORDER BY ordinality"
).format(nhi_status_sql(sql.Identifier("n")), nhi_normalised_sql(sql.Identifier("v")))


@pytest.fixture(scope="module")
def cursor(admin_dsn):
    with contextlib.closing(psycopg2.connect(admin_dsn)) as connection:
        with connection.cursor() as cursor:
            yield cursor


def classify_in_postgres(cursor, values: list[str | None]) -> list[str]:
    cursor.execute(CLASSIFY, (values,))
    return [status for (status,) in cursor.fetchall()]


def test_strip_set_is_exactly_what_python_strips():
    assert set(_STRIPPED) == {chr(c) for c in range(0x110000) if chr(c).isspace()}


def corpus() -> list[str | None]:
    """Every check character after many prefixes of both forms, in every disguise."""
    rng = random.Random(10046)
    values: list[str | None] = [None, "", " ", "\u3000", "Z", "ZZZ", "\u2028JBX3656\u2029"]
    values += VALID_OLD + VALID_NEW + TEST_OLD + TEST_NEW
    for _ in range(600):
        letters = [rng.choice(ALPHABET + "IO") for _ in range(4)]
        digits = [rng.choice(DIGITS) for _ in range(3)]
        old = "".join(letters[:3] + digits)
        new = "".join(letters[:3] + digits[:2] + letters[3:])
        for prefix in (old, new):
            expected = None if set(prefix) & {"I", "O"} else reference_check_char(prefix)
            for char in {expected or "0", *rng.sample(ALPHABET + DIGITS + "IO", 4)}:
                nhi = prefix + char
                pad = rng.choice(_STRIPPED)
                position = rng.randrange(7)
                values += [
                    nhi,
                    nhi.lower(),
                    f"{pad}{nhi}{pad}",
                    nhi[:position] + rng.choice(LOOKALIKES) + nhi[position + 1 :],
                    nhi[:position] + pad + nhi[position:],
                    nhi + rng.choice(DIGITS + ALPHABET),
                    nhi[:6],
                ]
    return values


def test_postgres_classifies_every_disguise_as_nhi_status_does(cursor):
    values = corpus()
    expected = [str(nhi_status(v)) for v in values]
    assert len(set(expected)) == 4  # the corpus reaches every status
    assert classify_in_postgres(cursor, values) == expected


nhi_like = st.text(
    alphabet=st.one_of(
        st.sampled_from(ALPHABET + ALPHABET.lower() + DIGITS + "IOio" + LOOKALIKES + _STRIPPED),
        st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
    ),
    max_size=10,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), nhi_like), min_size=1, max_size=40))
def test_postgres_agrees_with_nhi_status_on_arbitrary_text(cursor, values):
    assert classify_in_postgres(cursor, values) == [str(nhi_status(v)) for v in values]
