import pytest

from indici_dagster.core.naming import (
    InvalidIdentifierError,
    snake_case,
    to_identifier,
    validate_identifier,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("DateOfBirth", "date_of_birth"),
        ("InvoiceLineNo", "invoice_line_no"),
        ("Patients", "patients"),
    ],
)
def test_camel_case_splits_before_each_capital(name, expected):
    assert snake_case(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("PatientID", "patient_id"),
        ("AppointmentMedicationID", "appointment_medication_id"),
        ("ID", "id"),
    ],
)
def test_trailing_acronym_becomes_one_word(name, expected):
    assert snake_case(name) == expected


def test_acronym_followed_by_word_splits_before_last_capital():
    assert snake_case("NHINumber") == "nhi_number"
    assert snake_case("PatientNHINumber") == "patient_nhi_number"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Date Of Birth", "date_of_birth"),
        ("NHI-Number", "nhi_number"),
        ("  Patient  ID  ", "patient_id"),
        ("Invoice--Line No", "invoice_line_no"),
        ("Patient_ID", "patient_id"),
    ],
)
def test_spaces_hyphens_and_underscores_become_one_underscore(name, expected):
    assert snake_case(name) == expected


def test_digits_stay_with_the_word_before_them():
    assert snake_case("Address1Line") == "address1_line"
    assert snake_case("HbA1c") == "hb_a1c"


def test_snake_case_name_is_unchanged():
    assert snake_case("appointment_medication_id") == "appointment_medication_id"


@pytest.mark.parametrize("identifier", ["patient_id", "_run_id", "a", "x1", "a" * 63])
def test_validate_identifier_returns_plain_lower_case_identifier_unchanged(identifier):
    assert validate_identifier(identifier) == identifier


@pytest.mark.parametrize(
    "identifier",
    [
        "PatientID",
        "patient_ID",
        "1patient",
        '"patients"',
        "patients'",
        "patients; drop table x",
        "pätient",
        "patient id",
        "patient-id",
        "patient_id\n",
        "",
        "a" * 64,
    ],
)
def test_validate_identifier_rejects_anything_postgres_would_quote_fold_or_truncate(identifier):
    with pytest.raises(InvalidIdentifierError):
        validate_identifier(identifier)


def test_to_identifier_returns_validated_snake_case():
    assert to_identifier("AppointmentMedicationID") == "appointment_medication_id"


@pytest.mark.parametrize("name", ["1stVisit", "---", "", "Long" * 16])
def test_to_identifier_rejects_names_without_a_valid_snake_case_form(name):
    with pytest.raises(InvalidIdentifierError):
        to_identifier(name)
