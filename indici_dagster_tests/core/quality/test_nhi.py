"""NHI validation against hand-worked HISO 10046 examples and an independent re-implementation.

Letter values (A-Z without I and O):
    A1 B2 C3 D4 E5 F6 G7 H8 J9 K10 L11 M12 N13 P14 Q15 R16 S17 T18 U19 V20 W21 X22 Y23 Z24
Weights for the first six characters: 7 6 5 4 3 2.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indici_dagster.core.quality.nhi import (
    NhiCounts,
    NhiStatus,
    is_valid_nhi,
    nhi_status,
)

# --- Old form AAANNNC: checksum = sum mod 11 (0 -> invalid); check digit = (11 - checksum) mod 10
#
# JBX3656: J9*7=63  B2*6=12  X22*5=110  3*4=12  6*3=18  5*2=10
#          sum = 63+12+110+12+18+10 = 225; 225 = 11*20 + 5 -> checksum 5; 11-5 = 6 -> '6'
# EPT6335: E5*7=35  P14*6=84  T18*5=90  6*4=24  3*3=9  3*2=6
#          sum = 248; 248 = 11*22 + 6 -> 6; 11-6 = 5 -> '5'
# CGC2720: C3*7=21  G7*6=42  C3*5=15  2*4=8  7*3=21  2*2=4
#          sum = 111; 111 = 11*10 + 1 -> 1; 11-1 = 10 -> written as '0'
# ABC1235: A1*7=7  B2*6=12  C3*5=15  1*4=4  2*3=6  3*2=6
#          sum = 50; 50 = 11*4 + 6 -> 6; 11-6 = 5 -> '5'
# ABC1260: 7+12+15+4+6 = 44, 6*2=12 -> sum 56; 56 = 11*5 + 1 -> 1; 11-1 = 10 -> '0'
# ZZZ0016: Z24*7=168  Z24*6=144  Z24*5=120  0*4=0  0*3=0  1*2=2
#          sum = 434; 434 = 11*39 + 5 -> 5; 11-5 = 6 -> '6'   (test NHI)
# ZZZ0024: 168+144+120+0+0 = 432, 2*2=4 -> 436; 436 = 11*39 + 7 -> 7; 11-7 = 4 -> '4'   (test)
# ZAA0067: Z24*7=168  A1*6=6  A1*5=5  0*4=0  0*3=0  6*2=12
#          sum = 191; 191 = 11*17 + 4 -> 4; 11-4 = 7 -> '7'   (test NHI)
# ZAC5361: Z24*7=168  A1*6=6  C3*5=15  5*4=20  3*3=9  6*2=12
#          sum = 230; 230 = 11*20 + 10 -> 10; 11-10 = 1 -> '1'   (test NHI)
#
# Checksum 0 (no check digit can make these valid):
# ABC120_: 7+12+15+4+6 = 44, 0*2=0 -> sum 44; 44 = 11*4 + 0 -> checksum 0 -> invalid
# DAB823_: D4*7=28  A1*6=6  B2*5=10  8*4=32  2*3=6  3*2=6 -> sum 88 = 11*8 + 0 -> invalid
#
# --- New form AAANNAX: check letter = the letter valued 24 - (sum mod 24)
#
# ABC12DV: A1*7=7  B2*6=12  C3*5=15  1*4=4  2*3=6  D4*2=8
#          sum = 52; 52 = 24*2 + 4 -> 4; 24-4 = 20 -> 'V'
# ALU18KZ: A1*7=7  L11*6=66  U19*5=95  1*4=4  8*3=24  K10*2=20
#          sum = 216; 216 = 24*9 + 0 -> 0; 24-0 = 24 -> 'Z'
# ZZZ00AX: Z24*7=168  Z24*6=144  Z24*5=120  0*4=0  0*3=0  A1*2=2
#          sum = 434; 434 = 24*18 + 2 -> 2; 24-2 = 22 -> 'X'   (test NHI; so ZZZ00AC is invalid)
# ZHW58CN: Z24*7=168  H8*6=48  W21*5=105  5*4=20  8*3=24  C3*2=6
#          sum = 371; 371 = 24*15 + 11 -> 11; 24-11 = 13 -> 'N'   (test NHI)

VALID_OLD = ["JBX3656", "EPT6335", "CGC2720", "ABC1235", "ABC1260"]
VALID_NEW = ["ABC12DV", "ALU18KZ"]
TEST_OLD = ["ZZZ0016", "ZZZ0024", "ZAA0067", "ZAC5361"]
TEST_NEW = ["ZZZ00AX", "ZHW58CN"]


@pytest.mark.parametrize("nhi", VALID_OLD + VALID_NEW)
def test_hand_worked_valid_nhis(nhi):
    assert nhi_status(nhi) is NhiStatus.VALID
    assert is_valid_nhi(nhi)


@pytest.mark.parametrize("nhi", TEST_OLD + TEST_NEW)
def test_hand_worked_z_prefixed_valid_nhis_are_test(nhi):
    assert nhi_status(nhi) is NhiStatus.TEST
    assert is_valid_nhi(nhi)


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("JBX3656", "JBX3657"),
        ("JBX3656", "JBX3650"),
        ("CGC2720", "CGC2721"),
        ("ABC1235", "ABC1236"),
        ("ABC12DV", "ABC12DW"),
        ("ALU18KZ", "ALU18KY"),
        ("ABC12DV", "ABC12D5"),  # new-form prefix with a digit as check character
        ("ABC1235", "ABC123V"),  # old-form prefix with a letter as check character
    ],
)
def test_wrong_check_character_is_invalid(good, bad):
    assert is_valid_nhi(good)
    assert nhi_status(bad) is NhiStatus.INVALID
    assert not is_valid_nhi(bad)


@pytest.mark.parametrize("prefix", ["ABC120", "DAB823"])
def test_old_form_checksum_zero_is_invalid_for_every_check_digit(prefix):
    for digit in "0123456789":
        assert nhi_status(prefix + digit) is NhiStatus.INVALID


@pytest.mark.parametrize("nhi", ["jbx3656", "Jbx3656", "abc12dv", "alu18kZ"])
def test_lower_case_is_accepted(nhi):
    assert nhi_status(nhi) is NhiStatus.VALID


def test_lower_case_test_nhi_is_test():
    assert nhi_status("zzz00ax") is NhiStatus.TEST


@pytest.mark.parametrize("nhi", [" JBX3656", "JBX3656 ", "  abc12dv\t", "\nCGC2720\r\n"])
def test_surrounding_whitespace_is_accepted(nhi):
    assert nhi_status(nhi) is NhiStatus.VALID


@pytest.mark.parametrize("nhi", ["JBX 3656", "JBX-3656", "J BX3656"])
def test_inner_whitespace_or_punctuation_is_invalid(nhi):
    assert nhi_status(nhi) is NhiStatus.INVALID


@pytest.mark.parametrize(
    "nhi",
    [
        # I and O are never NHI letters, whatever the arithmetic would give.
        "IBX3656",
        "JOX3656",
        "JBO3656",
        "ibx3656",
        "ABC12IV",
        "ABC12OV",
        "ABC12DI",
        "ABC12DO",
    ],
)
def test_letters_i_and_o_are_rejected(nhi):
    assert nhi_status(nhi) is NhiStatus.INVALID


@pytest.mark.parametrize(
    "nhi", ["JBX365", "JBX36566", "JBX", "J", "ABC12D", "ABC12DVV", "JBX3656JBX3656"]
)
def test_wrong_length_is_invalid(nhi):
    assert nhi_status(nhi) is NhiStatus.INVALID


@pytest.mark.parametrize(
    "nhi",
    [
        "1BX3656",  # digit in letter position 1
        "J2X3656",  # digit in letter position 2
        "JB13656",  # digit in letter position 3
        "0000000",
        "JBXA656",  # letter in digit position 4
        "JBX3A56",  # letter in digit position 5
        "ABCD2DV",  # letter in digit position 4, new form
    ],
)
def test_characters_in_the_wrong_positions_are_invalid(nhi):
    assert nhi_status(nhi) is NhiStatus.INVALID


@pytest.mark.parametrize(
    "nhi",
    [
        "\uff2a\uff22\uff38\uff13\uff16\uff15\uff16",  # full-width JBX3656
        "JBX\u0969656",  # Devanagari digit three
        # long s, which str.upper turns into 'S'; SBX3655 itself is valid:
        # S17*7=119 B2*6=12 X22*5=110 3*4=12 6*3=18 5*2=10 -> 281 = 11*25 + 6; 11-6 = 5
        "\u017fBX3655",
    ],
)
def test_non_ascii_lookalikes_are_invalid(nhi):
    assert nhi_status(nhi) is NhiStatus.INVALID


def test_ascii_twin_of_the_long_s_lookalike_is_valid():
    assert "\u017fBX3655".upper() == "SBX3655"
    assert nhi_status("SBX3655") is NhiStatus.VALID


@pytest.mark.parametrize("value", [None, "", " ", "\t\n"])
def test_none_and_empty_are_missing(value):
    assert nhi_status(value) is NhiStatus.MISSING


def test_empty_is_not_valid():
    assert not is_valid_nhi("")


@pytest.mark.parametrize("nhi", ["ZZZ0017", "ZZZ00AC", "ZAA0066", "ZHW58CM"])
def test_z_prefixed_with_wrong_check_character_is_invalid(nhi):
    assert nhi_status(nhi) is NhiStatus.INVALID


def test_non_string_raises_without_echoing_the_value():
    with pytest.raises(TypeError) as raised:
        nhi_status(1234567)  # type: ignore[arg-type]
    assert "1234567" not in str(raised.value)


def test_status_values_are_plain_strings():
    assert [str(status) for status in NhiStatus] == ["valid", "test", "invalid", "missing"]


def test_counts_add_up_status_by_status():
    total = NhiCounts(valid=2, test=1) + NhiCounts(invalid=3, missing=4, valid=1)
    assert total == NhiCounts(valid=3, test=1, invalid=3, missing=4)
    assert total.total == 11
    assert NhiCounts().total == 0


# --- Property test against a deliberately plain, independent implementation -----------------

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ"
DIGITS = "0123456789"


def reference_value(char):
    if char in DIGITS:
        return DIGITS.index(char)
    return ALPHABET.index(char) + 1


def reference_check_char(prefix):
    """The check character for a six-character prefix, or None when the old form has none."""
    total = 0
    weight = 7
    for char in prefix:
        total = total + reference_value(char) * weight
        weight = weight - 1
    if prefix[5] in DIGITS:
        remainder = total % 11
        if remainder == 0:
            return None
        digit = 11 - remainder
        if digit == 10:
            digit = 0
        return DIGITS[digit]
    return ALPHABET[24 - total % 24 - 1]


letters = st.sampled_from(ALPHABET)
digits = st.sampled_from(DIGITS)
old_prefixes = st.tuples(letters, letters, letters, digits, digits, digits).map("".join)
new_prefixes = st.tuples(letters, letters, letters, digits, digits, letters).map("".join)
every_char = sorted(set(ALPHABET + DIGITS + "IO"))


@given(st.one_of(old_prefixes, new_prefixes))
def test_reference_check_char_is_the_only_one_accepted(prefix):
    expected = reference_check_char(prefix)
    for char in every_char:
        nhi = prefix + char
        if char == expected:
            want = NhiStatus.TEST if prefix.startswith("Z") else NhiStatus.VALID
            assert nhi_status(nhi) is want
            assert nhi_status(nhi.lower()) is want
            assert is_valid_nhi(f"  {nhi}  ")
        else:
            assert nhi_status(nhi) is NhiStatus.INVALID
            assert not is_valid_nhi(nhi)
