import re
from collections import defaultdict
from datetime import date

import pyarrow.parquet as pq
import pytest

from indici_dagster.core.filenames import parse_file_name
from indici_dagster.core.rules.store import load_rules
from indici_dagster.core.sample.data import nhi_number, write_sample_files
from indici_dagster.core.storage.local_storage import LocalStorage

ZONE = "Pacific/Auckland"
END = date(2026, 11, 24)


@pytest.fixture(scope="module")
def rules():
    return load_rules()


@pytest.fixture(scope="module")
def sample(rules, tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    keys = write_sample_files(LocalStorage(root), rules, timezone=ZONE, end_date=END)
    return root, keys, {key: pq.read_table(root / key) for key in keys}


def _key(rule, row):
    return tuple(row[rule.column(name).source] for name in rule.primary_key)


def test_every_dataset_gets_a_file_on_each_of_the_three_days(rules, sample):
    _, keys, _ = sample
    days = defaultdict(set)
    for key in keys:
        parsed = parse_file_name(key, ZONE)
        days[parsed.dataset].add(parsed.partition_key)
    assert set(days) == set(rules)
    assert all(d == {"2026-11-22", "2026-11-23", "2026-11-24"} for d in days.values())


def test_file_names_use_both_forms_and_parse_to_their_dataset(sample):
    _, keys, _ = sample
    assert keys == sorted(keys)
    for key in keys:
        assert parse_file_name(key, ZONE).dataset == key.split("_")[0]
    assert any(re.fullmatch(r"\w+_\d{8}_\d{6}\.parquet", key) for key in keys)
    assert any(re.fullmatch(r"[A-Za-z]+_\d{14}\.parquet", key) for key in keys)


def test_exactly_one_file_is_empty_and_it_keeps_the_full_schema(rules, sample):
    _, _, tables = sample
    empty = [key for key, table in tables.items() if table.num_rows == 0]
    assert len(empty) == 1
    rule = rules[parse_file_name(empty[0], ZONE).dataset]
    assert tables[empty[0]].column_names == [c.source for c in rule.columns]


def test_keyed_files_hold_exactly_the_rule_source_columns(rules, sample):
    _, _, tables = sample
    for key, table in tables.items():
        rule = rules[parse_file_name(key, ZONE).dataset]
        if not rule.is_static:
            assert table.column_names == [c.source for c in rule.columns], key


def test_arrow_types_follow_the_rule_types(rules, sample):
    _, _, tables = sample
    patients = next(t for k, t in tables.items() if k.startswith("Patients_"))
    lines = next(t for k, t in tables.items() if k.startswith("InvoiceLines_"))
    assert str(patients.schema.field("PatientID").type) == "int64"
    assert str(patients.schema.field("DateOfBirth").type) == "date32[day]"
    assert str(patients.schema.field("EnrolledAt").type) == "timestamp[us]"
    assert str(patients.schema.field("LastModifiedAt").type) == "timestamp[us, tz=UTC]"
    assert str(lines.schema.field("UnitPrice").type) == "decimal128(12, 2)"
    assert str(lines.schema.field("Quantity").type) == "double"


def test_later_days_update_keys_from_day_one_and_add_new_ones(rules, sample):
    _, _, tables = sample
    for dataset in ("Patients", "InvoiceLines"):
        rule = rules[dataset]
        by_day = defaultdict(set)
        for key, table in tables.items():
            parsed = parse_file_name(key, ZONE)
            if parsed.dataset == dataset:
                by_day[parsed.partition_key] |= {_key(rule, r) for r in table.to_pylist()}
        first, *later = (by_day[day] for day in sorted(by_day))
        assert all(keys & first for keys in later), dataset
        assert all(keys - first for keys in later), dataset


def test_second_same_day_file_changes_rows_of_the_first(rules, sample):
    _, keys, tables = sample
    rule = rules["Appointments"]
    last_day = [k for k in keys if k.startswith("Appointments_20261124")]
    assert len(last_day) == 2
    earlier, later = ({_key(rule, r): r for r in tables[k].to_pylist()} for k in last_day)
    shared = earlier.keys() & later.keys()
    assert shared
    assert all(earlier[k] != later[k] for k in shared)


def test_references_point_at_generated_parents(sample):
    _, _, tables = sample

    def values(prefix, column):
        return {v for k, t in tables.items() if k.startswith(prefix) for v in t[column].to_pylist()}

    assert values("Appointments_", "PatientID") <= values("Patients_", "PatientID")
    assert values("InvoiceLines_", "InvoiceID") <= values("Invoices_", "InvoiceID")


def test_data_has_nulls_and_awkward_text(sample):
    _, _, tables = sample
    appointments = next(t for k, t in tables.items() if k.startswith("Appointments_"))
    assert appointments["ArrivedAt"].null_count > 0
    text = {
        v for t in tables.values() for c in t.column_names for v in t[c].to_pylist()
        if isinstance(v, str)
    }  # fmt: skip
    assert any("\n" in v for v in text)
    assert any('"' in v and "," in v for v in text)
    assert "Ngāti Porou" in text
    assert "Whanganui-a-Tara" in text


def test_nhi_numbers_are_nhi_shaped_and_mostly_test_range(sample):
    _, _, tables = sample
    nhis = {
        v
        for k, t in tables.items()
        if k.startswith("Patients_")
        for v in t["NHINumber"].to_pylist()
    }
    assert nhis and all(re.fullmatch(r"[A-HJ-NP-Z]{3}\d{4}", n) for n in nhis)
    assert sum(n.startswith("Z") for n in nhis) > len(nhis) / 2
    assert all(_nhi_check_digit_ok(n) for n in nhis)
    assert len({nhi_number(n) for n in range(1000, 3000)}) == 2000


def _nhi_check_digit_ok(nhi):
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    values = [letters.index(c) + 1 for c in nhi[:3]] + [int(d) for d in nhi[3:6]]
    remainder = sum(v * w for v, w in zip(values, [7, 6, 5, 4, 3, 2], strict=True)) % 11
    return remainder != 0 and (11 - remainder) % 10 == int(nhi[6])


def test_same_seed_writes_identical_bytes_and_another_seed_does_not(rules, sample, tmp_path):
    root, keys, _ = sample
    again = write_sample_files(LocalStorage(tmp_path / "a"), rules, timezone=ZONE, end_date=END)
    assert again == keys
    assert all((tmp_path / "a" / k).read_bytes() == (root / k).read_bytes() for k in keys)
    other = write_sample_files(
        LocalStorage(tmp_path / "b"), rules, timezone=ZONE, end_date=END, seed=1
    )
    patients = next(k for k in other if k.startswith("Patients_"))
    assert (tmp_path / "b" / patients).read_bytes() != (root / patients).read_bytes()
