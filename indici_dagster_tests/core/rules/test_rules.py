from pathlib import Path

import pytest

from indici_dagster.core import pipeline_names
from indici_dagster.core.pipeline_names import PIPELINE_TABLES
from indici_dagster.core.rules.model import (
    Column,
    RuleError,
    canonical_type,
    parse_rule,
    parse_rules,
)
from indici_dagster.core.rules.store import (
    load_rules,
    read_rules_file,
    shipped_rules_path,
    write_rules_file,
)
from indici_dagster.core.types.registry import METADATA_NAMES


def keyed(dataset="AppointmentMedications", **overrides):
    rule = {
        "dataset": dataset,
        "primary_key": "AppointmentMedicationID",
        "columns": {
            "AppointmentMedicationID": "INT8",
            "PatientID": "bigint",
            "NHINumber": "varchar(40)",
            "Dose": "numeric(12, 2)",
        },
    }
    rule.update(overrides)
    return rule


def test_default_table_is_snake_case_of_dataset():
    assert parse_rule(keyed()).table == "appointment_medications"


def test_explicit_table_is_kept():
    assert parse_rule(keyed(table="medication_lines")).table == "medication_lines"


def test_column_names_are_snake_cased_and_keep_their_source_name():
    rule = parse_rule(keyed())
    assert [c.name for c in rule.columns] == [
        "appointment_medication_id",
        "patient_id",
        "nhi_number",
        "dose",
    ]
    assert rule.column("nhi_number") == Column("NHINumber", "nhi_number", "varchar(40)")
    assert rule.primary_key == ("appointment_medication_id",)


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("INT8", "bigint"),
        ("bigint", "bigint"),
        ("Integer", "integer"),
        ("numeric(12, 2)", "numeric(12,2)"),
        ("DECIMAL ( 12 )", "numeric(12)"),
        ("varchar(40)", "varchar(40)"),
        ("character  varying(40)", "varchar(40)"),
        ("varchar", "text"),
        ("timestamp with time zone", "timestamptz"),
        ("float", "double precision"),
    ],
)
def test_types_are_canonicalised(written, canonical):
    assert canonical_type(written) == canonical


@pytest.mark.parametrize(
    "type_name",
    [
        "bigint; drop table x",
        "text[]",
        "money",
        "varchar(40) collate x",
        "numeric(2,5)",
        "varchar(0)",
        "",
        None,
    ],
)
def test_unsupported_type_is_rejected_naming_the_column(type_name):
    with pytest.raises(RuleError, match="'PatientID'"):
        parse_rule(keyed(columns={"AppointmentMedicationID": "bigint", "PatientID": type_name}))


def test_primary_key_must_be_a_rule_column():
    with pytest.raises(RuleError, match="'ClinicID' is not in columns"):
        parse_rule(keyed(primary_key=["AppointmentMedicationID", "ClinicID"]))


def test_composite_key_keeps_its_written_order():
    rule = parse_rule(
        {
            "dataset": "InvoiceLines",
            "primary_key": ["InvoiceID", "InvoiceLineNo"],
            "columns": {
                "InvoiceLineNo": "integer",
                "Amount": "numeric(12,2)",
                "InvoiceID": "bigint",
            },
        }
    )
    assert rule.primary_key == ("invoice_id", "invoice_line_no")
    assert rule.to_dict()["primary_key"] == ["InvoiceID", "InvoiceLineNo"]


def test_rule_without_columns_or_key_is_static():
    rule = parse_rule({"dataset": "Providers"})
    assert rule.is_static
    assert rule.table == "providers"
    assert rule.primary_key == ()
    assert not parse_rule(keyed()).is_static


def test_columns_without_primary_key_are_rejected():
    with pytest.raises(RuleError, match="needs a primary_key"):
        parse_rule(keyed(primary_key=None))


def test_primary_key_without_columns_is_rejected():
    with pytest.raises(RuleError, match="not in columns"):
        parse_rule({"dataset": "Patients", "primary_key": "PatientID"})


def test_duplicate_dataset_is_rejected():
    with pytest.raises(RuleError, match="AppointmentMedications: defined twice"):
        parse_rules([keyed(), keyed(table="other_table")])


def test_two_datasets_on_one_table_are_rejected():
    with pytest.raises(RuleError, match="'shared' is already used by Patients"):
        parse_rules([{"dataset": "Patients", "table": "shared"}, keyed(table="shared")])


def test_parse_rules_reports_every_problem():
    with pytest.raises(RuleError) as raised:
        parse_rules([{"dataset": "1Bad"}, keyed(primary_key=None), {"dataset": "Providers"}])
    assert "'1Bad'" in str(raised.value)
    assert "needs a primary_key" in str(raised.value)


def test_source_column_named_like_a_metadata_column_cannot_land_on_it():
    # snake_case strips leading underscores, so `_source_file` becomes `source_file`
    rule = parse_rule(keyed(columns={"AppointmentMedicationID": "bigint", "_source_file": "text"}))
    assert {c.name for c in rule.columns}.isdisjoint(METADATA_NAMES)


def test_two_source_columns_with_one_snake_name_are_rejected():
    columns = {"AppointmentMedicationID": "bigint", "PatientID": "bigint", "Patient_ID": "bigint"}
    with pytest.raises(RuleError, match="'PatientID' and 'Patient_ID' both map to 'patient_id'"):
        parse_rule(keyed(columns=columns))


@pytest.mark.parametrize("table", ["x; drop", "Patients", '"patients"', "patients\n", "1x"])
def test_table_name_that_is_not_a_plain_identifier_is_rejected(table):
    with pytest.raises(RuleError, match="table"):
        parse_rule(keyed(table=table))


@pytest.mark.parametrize(
    "table", ["auditlog", "landing_ledger", "table_row_counts", "pipeline_locks", "_state"]
)
def test_reserved_table_names_are_rejected(table):
    with pytest.raises(RuleError, match="reserved"):
        parse_rule(keyed(table=table))


def test_every_table_of_the_pipeline_itself_is_reserved():
    assert {
        pipeline_names.AUDIT_TABLE,
        pipeline_names.LEDGER_TABLE,
        pipeline_names.ROW_COUNTS_TABLE,
        pipeline_names.LOCKS_TABLE,
    } == (PIPELINE_TABLES)


@pytest.mark.parametrize("dataset", ["", "1Patients", "Patient_IDs", "Pa tients", "x; drop"])
def test_dataset_that_cannot_appear_in_a_file_name_is_rejected(dataset):
    with pytest.raises(RuleError, match="dataset"):
        parse_rule({"dataset": dataset})


def test_unknown_rule_field_is_rejected():
    with pytest.raises(RuleError, match="unknown fields"):
        parse_rule(keyed(primary_keys=["AppointmentMedicationID"]))


@pytest.mark.parametrize(
    "data",
    [
        keyed(),
        keyed(table="med_lines", nhi_columns=["NHINumber"]),
        keyed(history=False),
        {"dataset": "Providers"},
        {"dataset": "Practices", "table": "practice_snapshot"},
    ],
)
def test_to_dict_round_trips_through_parse_rule(data):
    rule = parse_rule(data)
    assert parse_rule(rule.to_dict()) == rule


def test_rules_file_round_trips_through_yaml(tmp_path: Path):
    rules = parse_rules(
        [
            keyed(nhi_columns="NHINumber"),
            {"dataset": "Providers"},
            {
                "dataset": "InvoiceLines",
                "primary_key": ["InvoiceID", "InvoiceLineNo"],
                "columns": {"InvoiceID": "bigint", "InvoiceLineNo": "int"},
            },
        ]
    )
    path = tmp_path / "rules.yaml"
    write_rules_file(rules, path)
    assert parse_rules(read_rules_file(path)) == rules
    assert load_rules(path) == rules


def test_shipped_rules_cover_the_core_datasets():
    assert shipped_rules_path().is_file(), "indici_dagster/rules.yaml is missing"
    rules = load_rules()
    keyed_rules = {name: rule for name, rule in rules.items() if not rule.is_static}
    assert len(keyed_rules) >= 8
    assert {
        "Patients",
        "Appointments",
        "AppointmentMedications",
        "Medications",
        "Diagnoses",
        "Immunisations",
        "Invoices",
        "InvoiceLines",
        "Providers",
    } <= set(keyed_rules)
    assert len(keyed_rules["InvoiceLines"].primary_key) >= 2
    assert any(rule.is_static for rule in rules.values())


def test_history_is_on_unless_a_rule_turns_it_off():
    assert parse_rule(keyed()).history is True
    assert parse_rule(keyed(history=False)).history is False
    assert "history" not in parse_rule(keyed()).to_dict()


@pytest.mark.parametrize("value", ["no", 0, None, "false"])
def test_history_that_is_not_true_or_false_is_rejected_naming_the_rule(value):
    with pytest.raises(
        RuleError, match=r"^rule AppointmentMedications: history must be true or false$"
    ):
        parse_rule(keyed(history=value))


def test_a_table_name_too_long_for_its_history_is_rejected_unless_history_is_off():
    table = "t" * 56
    with pytest.raises(RuleError, match="too long for its history"):
        parse_rule(keyed(table=table))
    assert parse_rule(keyed(table=table, history=False)).table == table


def test_turning_history_off_changes_the_rule_sets_fingerprint():
    from indici_dagster.core.rules.fingerprints import rule_set_fingerprint

    on, off = parse_rules([keyed()]), parse_rules([keyed(history=False)])
    assert rule_set_fingerprint(on) != rule_set_fingerprint(off)
