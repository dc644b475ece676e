"""`printable`: text from files and keys shown on one line with every control made visible."""

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from indici_dagster.core.text import printable


def test_ansi_escapes_newlines_and_controls_become_visible_escapes():
    shown = printable("Pat\x1b[31mients\n_2026\r\t\x00\x7f\x9b.parquet")

    assert shown == "Pat\\x1b[31mients\\n_2026\\r\\t\\x00\\x7f\\u009b.parquet"


def test_bidi_overrides_zero_width_and_line_separators_are_escaped():
    assert printable("a\u202eb\u200bc\u2028d") == "a\\u202eb\\u200bc\\u2028d"


def test_bytes_that_are_not_utf8_show_as_byte_escapes():
    assert printable(b"Patients_\xff\xfe.parquet") == "Patients_\\xff\\xfe.parquet"
    assert printable(b"\x9b".decode("utf-8", "surrogateescape")) == "\\x9b"
    assert printable("\x9b") == "\\u009b"  # the C1 control itself, not the byte


def test_a_backslash_is_doubled_so_escapes_are_unambiguous():
    assert printable("a\\x1b") == "a\\\\x1b"
    assert printable("a\\x1b") != printable("a\x1b")


def test_letters_of_any_script_are_kept():
    assert printable("Whāngārei 北京 Ärzte") == "Whāngārei 北京 Ärzte"


def test_a_limit_cuts_the_escaped_text_and_says_how_much():
    assert printable("x" * 10, limit=4) == "xxxx...(+6 chars)"


@given(st.text())
def test_any_text_prints_as_one_line_without_control_characters(text):
    shown = printable(text)

    assert all(
        char == " " or not unicodedata.category(char).startswith(("C", "Z")) for char in shown
    )
    assert shown.isprintable()


@given(st.text(st.characters(exclude_categories=())), st.text(st.characters(exclude_categories=())))
def test_different_texts_print_differently(first, second):
    if first != second:
        assert printable(first) != printable(second)
