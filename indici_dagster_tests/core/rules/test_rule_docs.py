"""Rules describe their datasets and columns and mark personal information (`pii`)."""

import pytest

from indici_dagster.cli import main
from indici_dagster.core.quality.pii import unmarked_pii
from indici_dagster.core.rules.docs import PII_MARKS, ColumnDoc, column_comment
from indici_dagster.core.rules.model import RuleError, parse_rule
from indici_dagster.core.rules.store import load_rules, shipped_rules_path

pytestmark = pytest.mark.unit


def keyed(**columns: object) -> dict:
    return {"dataset": "Patients", "primary_key": ["PatientID"], "columns": columns}


def test_long_form_columns_carry_a_description_and_a_pii_mark():
    rule = parse_rule(
        {
            **keyed(
                PatientID="bigint",
                NHINumber={"type": "text", "description": "The NHI", "pii": "nhi"},
                FamilyName={"type": "text", "pii": "name"},
            ),
            "description": "One row per patient.",
        }
    )

    assert rule.description == "One row per patient."
    assert rule.column("nhi_number").type == "text"
    assert rule.doc("nhi_number") == ColumnDoc("NHINumber", "The NHI", "nhi")
    assert rule.pii_columns == {"nhi_number": "nhi", "family_name": "name"}
    assert rule.nhi_columns == ("nhi_number",)  # the NHI checks still examine it
    assert rule.doc("patient_id") is None


def test_the_older_nhi_columns_list_still_loads_as_pii_nhi():
    old = parse_rule({**keyed(PatientID="bigint", NHINumber="text"), "nhi_columns": ["NHINumber"]})
    new = parse_rule(keyed(PatientID="bigint", NHINumber={"type": "text", "pii": "nhi"}))

    assert old == new
    assert old.to_dict()["columns"]["NHINumber"] == {"type": "text", "pii": "nhi"}
    assert "nhi_columns" not in old.to_dict()


def test_a_rule_round_trips_through_its_file_form():
    rule = parse_rule(
        {
            **keyed(
                PatientID="bigint",
                NHINumber={"type": "text", "description": "NHI", "pii": "nhi"},
            ),
            "description": "Patients.",
        }
    )
    assert parse_rule(rule.to_dict()) == rule
    # a column the rule says nothing else of keeps the short form
    assert rule.to_dict()["columns"]["PatientID"] == "bigint"


def test_a_static_rule_describes_and_marks_columns_it_gives_no_type():
    rule = parse_rule(
        {
            "dataset": "EthnicityCode",
            "description": "Code table.",
            "columns": {"Code": {"description": "The code"}, "Name": {"pii": "other"}},
        }
    )

    assert rule.is_static and rule.columns == ()
    assert rule.pii_columns == {"name": "other"}
    assert parse_rule(rule.to_dict()) == rule


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"dataset": "X", "description": 5}, "rule X: description must be text, not int"),
        ({"dataset": "X", "description": ["a"]}, "rule X: description must be text, not list"),
        (
            keyed(PatientID="bigint", NHINumber={"type": "text", "description": 1.5}),
            "rule Patients: column 'NHINumber': description must be text, not float",
        ),
        (
            keyed(PatientID="bigint", NHINumber={"type": "text", "pii": "secret"}),
            "rule Patients: column 'NHINumber': unknown pii mark 'secret' (allowed: "
            + ", ".join(PII_MARKS)
            + ")",
        ),
        (
            keyed(PatientID="bigint", NHINumber={"type": "text", "pii": True}),
            "rule Patients: column 'NHINumber': unknown pii mark (allowed:",
        ),
        (
            keyed(PatientID="bigint", NHINumber={"type": "text", "colour": "red"}),
            "rule Patients: column 'NHINumber': unknown fields ['colour']",
        ),
        (
            keyed(PatientID="bigint", NHINumber={"pii": "nhi"}),
            "rule Patients: column 'NHINumber' has no type",
        ),
        (
            {
                **keyed(PatientID="bigint", NHINumber={"type": "text", "pii": "name"}),
                "nhi_columns": ["NHINumber"],
            },
            "is in nhi_columns but marked pii: name",
        ),
    ],
)
def test_a_bad_description_or_mark_is_one_line_naming_rule_and_column(data, message):
    with pytest.raises(RuleError) as raised:
        parse_rule(data)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_shipped_rules_describe_every_dataset_and_mark_their_personal_columns():
    rules = load_rules(shipped_rules_path())

    assert all(rule.description for rule in rules.values())
    assert rules["Patients"].pii_columns == {
        "nhi_number": "nhi",
        "first_name": "name",
        "family_name": "name",
        "date_of_birth": "dob",
        "suburb": "address",
    }
    assert rules["Immunisations"].nhi_columns == ("nhi_number",)
    assert [w for rule in rules.values() for w in unmarked_pii(rule)] == []


def test_columns_named_like_personal_information_and_unmarked_are_warned_about():
    rule = parse_rule(
        keyed(
            PatientID="bigint",
            NHINumber="text",
            FamilyName="text",
            DateOfBirth="date",
            HomeAddress="text",
            MedicineName={"type": "text", "description": "The medicine's name"},
            FirstName={"type": "text", "pii": "name"},
        )
    )

    warnings = unmarked_pii(rule)

    assert [w.split("'")[1] for w in warnings] == [
        "NHINumber",
        "FamilyName",
        "DateOfBirth",
        "HomeAddress",
    ]  # MedicineName is described (judged not personal), FirstName is marked
    assert "add `pii: nhi`" in warnings[0] and "add `pii: dob`" in warnings[2]


def test_nhi_shaped_sample_values_are_warned_about_without_quoting_them():
    rule = parse_rule(keyed(PatientID="bigint", Reference={"type": "text", "description": "x"}))
    values = ["ZZZ0016", "ZAA0067", "zaa0067", None, ""]  # check digits right or wrong

    warnings = unmarked_pii(rule, {"Reference": values, "PatientID": [1, 2]})

    assert warnings == [
        "rule Patients: column 'Reference' holds NHI-shaped values in the sample but is not "
        "marked `pii: nhi`"
    ]
    assert not any(value and value in w for w in warnings for value in values)
    assert unmarked_pii(rule, {"Reference": ["hello", "world", "ZZZ0016"]}) == []


def test_rules_validate_prints_the_warnings_and_still_succeeds(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- dataset: Patients\n  primary_key: [PatientID]\n"
        "  columns: {PatientID: bigint, NHINumber: text}\n"
    )

    assert main(["rules", "validate", str(rules)]) == 0

    out = capsys.readouterr()
    assert "warning: rule Patients: column 'NHINumber' looks like personal information" in out.err
    assert "1 rules are valid, 1 warning(s)" in out.out


def test_a_column_comment_is_its_description_then_its_mark():
    assert column_comment(ColumnDoc("N", "The NHI", "nhi")) == "The NHI. PII: nhi."
    assert column_comment(ColumnDoc("N", None, "dob")) == "PII: dob."
    assert column_comment(ColumnDoc("N", "Given name.")) == "Given name."
    assert column_comment(None) is None


def test_rules_validate_looks_for_nhi_numbers_in_a_sample_file(tmp_path, capsys, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.chdir(tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- dataset: Patients\n  primary_key: [PatientID]\n"
        "  columns: {PatientID: bigint, Ref: {type: text, description: A reference}}\n"
    )
    sample = tmp_path / "Patients_20261124_040920.parquet"
    pq.write_table(pa.table({"PatientID": [1, 2], "Ref": ["ZZZ0016", "ZAA0067"]}), sample)

    assert main(["rules", "validate", str(rules), "--sample", str(sample)]) == 0
    err = capsys.readouterr().err
    assert "column 'Ref' holds NHI-shaped values in the sample" in err
    assert "ZZZ0016" not in err

    assert main(["rules", "validate", str(rules), "--sample", str(tmp_path / "x.parquet")]) == 1
    assert "--sample" in capsys.readouterr().err
