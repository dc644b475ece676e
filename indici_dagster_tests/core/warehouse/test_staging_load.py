"""Loading single files into staging and windows into rpt, straight through the core, on Postgres."""

import contextlib
import io
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indici_dagster.core.db_errors import FileLoadError
from indici_dagster.core.filenames import parse_file_name
from indici_dagster.core.rules.model import parse_rule
from indici_dagster.core.steps.ingest import partition_key_of_file
from indici_dagster.core.warehouse.audit import Status
from indici_dagster_tests.support.common import TIMEZONE, parquet_bytes, query

NZ = ZoneInfo(TIMEZONE)

PATIENTS = parse_rule(
    {
        "dataset": "Patients",
        "primary_key": ["PatientID"],
        "columns": {
            "PatientID": "bigint",
            "NHINumber": "text",
            "FamilyName": "text",
            "UpdatedAt": "timestamp",
        },
    }
)


def load(warehouse, name, table, rule=PATIENTS):
    """Load one file, as the staging asset does (its bytes given as a table or column dict)."""
    return warehouse.load_file_into_staging(
        rule,
        parse_file_name(name, TIMEZONE),
        pq.ParquetFile(io.BytesIO(parquet_bytes(table))),
        run_id="r",
        source_key=name,
        source_etag="e",
    )


def audit(database, name, step="staging"):
    return query(
        database,
        "SELECT status, rows_read, rows_loaded, message FROM indici_staging.auditlog "
        "WHERE source_file = %s AND step = %s ORDER BY id",
        (name, step),
    )


def staged(database, columns="patient_id, family_name"):
    return query(
        database,
        f"SELECT {columns} FROM indici_staging.patients ORDER BY _source_file, _row_number",
    )


def staged_count(database, where="true"):
    return query(database, f"SELECT count(*) FROM indici_staging.patients WHERE {where}")[0][0]


def test_an_uncastable_value_names_column_type_and_row_but_not_the_value(warehouse, database):
    load(warehouse, "Patients_20261123_020000.parquet", {"PatientID": [1], "FamilyName": ["A"]})
    name = "Patients_20261124_020000.parquet"
    bad = {"PatientID": ["12", "x7", "13"], "FamilyName": ["B", "C", "D"]}

    with pytest.raises(FileLoadError) as raised:
        load(warehouse, name, bad)

    message = str(raised.value)
    assert "PatientID" in message
    assert "bigint" in message
    assert "row 2" in message
    assert "x7" not in message
    assert staged(database) == [(1, "A")]  # the earlier file only; nothing of this one
    ((status, rows_read, rows_loaded, logged),) = audit(database, name)
    assert (status, rows_read, rows_loaded) == ("error", 3, 0)
    assert "PatientID" in logged and "row 2" in logged and "x7" not in logged


def test_a_failed_reload_keeps_the_files_previous_rows(warehouse, database):
    name = "Patients_20261124_020000.parquet"
    load(warehouse, name, {"PatientID": ["1", "2"], "FamilyName": ["A", "B"]})

    with pytest.raises(FileLoadError):
        load(warehouse, name, {"PatientID": ["1", "2", "oops"], "FamilyName": ["A", "B", "C"]})

    assert staged(database) == [(1, "A"), (2, "B")]


def test_a_new_tables_first_load_and_later_loads_leave_every_range_indexed(warehouse, database):
    # (whether rows are written frozen is PostgreSQL's business, which autovacuum can change
    # at any moment; the benchmark measures its effect. This proves what a reader sees.)
    table = "indici_staging.patients"
    first = "Patients_20261123_020000.parquet"
    with pytest.raises(FileLoadError):
        load(warehouse, first, {"PatientID": ["1", "x"], "FamilyName": ["A", "B"]})
    assert query(database, "SELECT to_regclass(%s)", (table,)) == [(None,)]

    rows = 5000
    load(warehouse, first, {"PatientID": list(range(rows)), "FamilyName": ["Ng"] * rows})

    def unsummarized_ranges() -> int:
        # summarizing is idempotent: it returns how many ranges no load had summarized
        ((index,),) = query(
            database,
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass",
            (table,),
        )
        return query(database, "SELECT brin_summarize_new_values(%s::regclass)", (index,))[0][0]

    assert staged_count(database) == rows
    assert unsummarized_ranges() == 0

    load(warehouse, "Patients_20261124_020000.parquet", {"PatientID": [1], "FamilyName": ["B"]})

    assert staged_count(database) == rows + 1
    assert unsummarized_ranges() == 0


def test_the_row_number_of_a_bad_value_counts_rows_not_lines(warehouse):
    # newlines inside values must not shift the reported row (binary COPY counts tuples)
    table = {"PatientID": ["1", "2", "3x"], "FamilyName": ["line\nbreak", "two\nlines\n", "C"]}

    with pytest.raises(FileLoadError, match=r"row 3\b"):
        load(warehouse, "Patients_20261124_020000.parquet", table)


def test_whole_floats_load_into_an_integer_column(warehouse, database):
    # as pandas writes an integer column with gaps
    table = {
        "PatientID": pa.array([1.0, 2.0**53, None, -3.0], pa.float64()),
        "FamilyName": ["A", "B", "C", "D"],
    }
    load(warehouse, "Patients_20261124_020000.parquet", table)

    assert staged(database, "patient_id, family_name") == [
        (1, "A"),
        (9007199254740992, "B"),
        (None, "C"),
        (-3, "D"),
    ]


def test_a_fractional_float_in_an_integer_column_fails_naming_its_row(warehouse, database):
    name = "Patients_20261124_020000.parquet"
    table = {"PatientID": pa.array([1.0, 1.5, None], pa.float64()), "FamilyName": ["A", "B", "C"]}

    with pytest.raises(FileLoadError) as raised:
        load(warehouse, name, table)

    assert "PatientID" in str(raised.value)
    assert "row 2" in str(raised.value)
    assert "1.5" not in str(raised.value)
    assert [a[0] for a in audit(database, name)] == ["error"]


def test_binary_strings_load_into_a_text_column_when_they_are_utf8(warehouse, database):
    # as Impala writes strings: BYTE_ARRAY without the UTF8 annotation
    table = {"PatientID": [1, 2], "FamilyName": pa.array(["Kōrero".encode(), None], pa.binary())}
    load(warehouse, "Patients_20261124_020000.parquet", table)
    assert staged(database) == [(1, "Kōrero"), (2, None)]


def test_binary_that_is_not_utf8_fails_a_text_column_naming_column_and_row(warehouse, database):
    name = "Patients_20261124_020000.parquet"
    bad = pa.array([b"A", b"B", b"\xff\xfeZ"], pa.binary())
    with pytest.raises(FileLoadError) as raised:
        load(warehouse, name, {"PatientID": [1, 2, 3], "FamilyName": bad})

    assert "FamilyName" in str(raised.value) and "row 3" in str(raised.value)
    assert [a[0] for a in audit(database, name)] == ["error"]
    assert query(database, "SELECT to_regclass('indici_staging.patients')") == [(None,)]


def test_loading_a_file_twice_leaves_its_rows_once_numbered_and_stamped(warehouse, database):
    name = "Patients_20261124_150000.parquet"
    table = {"PatientID": [5, 6, 7, 5], "FamilyName": ["A", "B", "C", "A2"]}

    first = load(warehouse, name, table)
    second = load(warehouse, name, table)

    assert (first.status, first.rows_read, first.rows_loaded) == (Status.SUCCESS, 4, 4)
    assert second == first
    assert staged(database, "_row_number, patient_id, family_name, _source_ts, _run_id") == [
        (1, 5, "A", datetime(2026, 11, 24, 15, 0, tzinfo=NZ), "r"),
        (2, 6, "B", datetime(2026, 11, 24, 15, 0, tzinfo=NZ), "r"),
        (3, 7, "C", datetime(2026, 11, 24, 15, 0, tzinfo=NZ), "r"),
        (4, 5, "A2", datetime(2026, 11, 24, 15, 0, tzinfo=NZ), "r"),
    ]
    assert [a[0] for a in audit(database, name)] == ["success", "success"]


def test_an_extra_column_is_added_and_a_missing_rule_column_loads_as_null(warehouse, database):
    load(
        warehouse, "Patients_20261123_020000.parquet", {"PatientID": [1], "NHINumber": ["ZZZ0001"]}
    )
    name = "Patients_20261124_020000.parquet"
    table = {"PatientID": [2], "FamilyName": ["B"], "ClinicName": ["Ōtautahi"]}

    result = load(warehouse, name, table)

    assert result.extra_columns == ("ClinicName",)
    assert result.missing_columns == ("NHINumber", "UpdatedAt")
    assert staged(database, "patient_id, nhi_number, family_name, clinic_name") == [
        (1, "ZZZ0001", None, None),
        (2, None, "B", "Ōtautahi"),
    ]
    ((status, _, rows_loaded, message),) = audit(database, name)
    assert (status, rows_loaded) == ("success", 1)
    assert "ClinicName" in message
    assert "NHINumber" in message


def test_awkward_strings_nulls_and_timestamps_survive_exactly(warehouse, database):
    texts = [
        'she said "hi", then left',
        "comma, separated",
        "line one\nline two\r\n",
        "Māori · Kōrero 🙂 ",
        "",
        None,
        "\\N",
        "NULL",
    ]
    stamps = [
        datetime(2026, 11, 23, 21, 30, tzinfo=UTC),  # NZDT: +13
        datetime(2026, 6, 30, 21, 30, tzinfo=UTC),  # NZST: +12
        None,
        datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
        None,
        None,
        None,
        None,
    ]
    table = {
        "PatientID": pa.array(range(1, 9), pa.int64()),
        "FamilyName": texts,
        "UpdatedAt": pa.array(stamps, pa.timestamp("us", tz="UTC")),
    }
    load(warehouse, "Patients_20261124_020000.parquet", table)

    assert staged(database, "family_name, updated_at") == [
        ('she said "hi", then left', datetime(2026, 11, 24, 10, 30)),
        ("comma, separated", datetime(2026, 7, 1, 9, 30)),
        ("line one\nline two\r\n", None),
        ("Māori · Kōrero 🙂 ", datetime(2026, 1, 1, 13, 0, 0, 123456)),
        ("", None),
        (None, None),
        ("\\N", None),
        ("NULL", None),
    ]
    assert staged_count(database, "family_name = ''") == 1
    assert staged_count(database, "family_name IS NULL") == 1


def test_a_naive_timestamp_with_a_null_loads_as_written(warehouse, database):
    table = {
        "PatientID": [1, 2],
        "UpdatedAt": pa.array([datetime(2026, 11, 24, 9, 5, 1), None], pa.timestamp("ms")),
        "BirthDate": pa.array([date(1980, 2, 29), None], pa.date32()),
    }
    load(warehouse, "Patients_20261124_020000.parquet", table)

    assert staged(database, "updated_at, birth_date") == [
        (datetime(2026, 11, 24, 9, 5, 1), date(1980, 2, 29)),
        (None, None),
    ]


def test_an_empty_file_is_reported_empty_and_audited(warehouse, database):
    name = "Patients_20261124_020000.parquet"
    table = pa.table(
        {"PatientID": pa.array([], pa.int64()), "FamilyName": pa.array([], pa.string())}
    )

    result = load(warehouse, name, table)

    assert (result.status, result.rows_read, result.rows_loaded) == (Status.EMPTY, 0, 0)
    assert [a[:3] for a in audit(database, name)] == [("empty", 0, 0)]


def upsert(warehouse, day=date(2026, 11, 24)):
    start = datetime(day.year, day.month, day.day, tzinfo=NZ)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=NZ)
    return warehouse.upsert_window_into_rpt(
        PATIENTS,
        start,
        end,
        run_id="r",
        partition_key_of=lambda name: partition_key_of_file(name, TIMEZONE),
    )


def test_files_with_the_same_timestamp_tie_break_by_row_number_then_file_name(warehouse, database):
    underscored = "Patients_20261124_020000.parquet"
    compact = "Patients_20261124020000.parquet"
    assert (
        parse_file_name(underscored, TIMEZONE).source_ts
        == parse_file_name(compact, TIMEZONE).source_ts
    )
    load(warehouse, underscored, {"PatientID": [1, 2, 3], "FamilyName": ["U1", "U2", "U3"]})
    load(warehouse, compact, {"PatientID": [2, 1, 3], "FamilyName": ["C2", "C1", "C3"]})

    upsert(warehouse)

    # key 3 is row 3 in both files: the file name decides, in the database's own ordering
    ((later_name,),) = query(
        database, "SELECT max(f) FROM unnest(%s::text[]) f", ([underscored, compact],)
    )
    later_value = "U3" if later_name == underscored else "C3"
    assert query(
        database, "SELECT patient_id, family_name, _source_file FROM rpt.patients ORDER BY 1"
    ) == [
        (1, "C1", compact),  # row 2 beats row 1
        (2, "U2", underscored),  # row 2 beats row 1
        (3, later_value, later_name),
    ]


def test_rows_with_a_null_key_are_staged_but_kept_out_of_rpt_and_counted(warehouse, database):
    name = "Patients_20261124_020000.parquet"
    load(
        warehouse,
        name,
        {"PatientID": pa.array([1, None, 3, None], pa.int64()), "FamilyName": list("ABCD")},
    )

    (result,) = upsert(warehouse)

    assert staged_count(database) == 4
    assert query(database, "SELECT patient_id, family_name FROM rpt.patients ORDER BY 1") == [
        (1, "A"),
        (3, "C"),
    ]
    assert (result.source_file, result.rows_staged, result.rows_rejected) == (name, 4, 2)
    assert (result.rows_inserted, result.rows_updated, result.rows_unchanged) == (2, 0, 0)
    assert query(
        database,
        "SELECT status, rows_rejected, partition_key FROM indici_staging.auditlog WHERE step = 'rpt'",
    ) == [("success", 2, "2026-11-24")]


def test_a_first_load_an_emptied_rpt_and_a_repeat_count_the_same_rows_by_the_same_rules(
    warehouse, database
):
    # three ways into rpt: a table created by this upsert (its key is built after the insert),
    # an existing table someone emptied (plain insert), and a table with rows (ON CONFLICT)
    older, newer = "Patients_20261124_010000.parquet", "Patients_20261124_020000.parquet"
    load(
        warehouse,
        older,
        {"PatientID": pa.array([1, 2, None, 3], pa.int64()), "FamilyName": list("ABCD")},
    )
    load(warehouse, newer, {"PatientID": pa.array([2, 4], pa.int64()), "FamilyName": list("EF")})
    first_load = {
        older: (4, 1, 2, 0, 1),  # key 2 is superseded by the newer file
        newer: (2, 0, 2, 0, 0),
    }
    expected_rpt = [(1, "A", older), (2, "E", newer), (3, "D", older), (4, "F", newer)]

    def applied():
        return {
            r.source_file: (
                r.rows_staged,
                r.rows_rejected,
                r.rows_inserted,
                r.rows_updated,
                r.rows_unchanged,
            )
            for r in upsert(warehouse)
        }

    def rpt_rows():
        return query(
            database, "SELECT patient_id, family_name, _source_file FROM rpt.patients ORDER BY 1"
        )

    assert applied() == first_load
    assert rpt_rows() == expected_rpt
    assert query(
        database,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'rpt.patients'::regclass AND contype = 'p'",
    ) == [("PRIMARY KEY (patient_id)",)]

    with contextlib.closing(psycopg2.connect(database)) as connection, connection:
        connection.cursor().execute("DELETE FROM rpt.patients")
    assert applied() == first_load
    assert rpt_rows() == expected_rpt

    assert applied() == {older: (4, 1, 0, 0, 3), newer: (2, 0, 0, 0, 2)}
    assert rpt_rows() == expected_rpt
    assert query(
        database, "SELECT rows_inserted FROM indici_staging.auditlog WHERE step = 'rpt' ORDER BY id"
    ) == [(2,), (2,), (2,), (2,), (0,), (0,)]


def test_a_window_only_applies_files_dated_inside_it(warehouse, database):
    load(
        warehouse, "Patients_20261123_235959.parquet", {"PatientID": [1], "FamilyName": ["before"]}
    )
    load(warehouse, "Patients_20261124_000000.parquet", {"PatientID": [2], "FamilyName": ["first"]})
    load(warehouse, "Patients_20261125_000000.parquet", {"PatientID": [3], "FamilyName": ["after"]})

    results = upsert(warehouse)

    assert [r.source_file for r in results] == ["Patients_20261124_000000.parquet"]
    assert query(database, "SELECT patient_id FROM rpt.patients") == [(2,)]


VISITS_WITH_UUID = parse_rule(
    {
        "dataset": "Patients",
        "primary_key": ["PatientID"],
        "columns": {"PatientID": "bigint", "VisitGuid": "uuid", "Minutes": "integer"},
    }
)


def test_a_uuid_column_loads_through_binary_copy_and_its_errors_name_the_row(warehouse, database):
    name = "Patients_20261124_020000.parquet"
    guid = "0b7e4c5e-8f5a-4c1e-9d0a-2f3c4b5a6d7e"
    result = load(
        warehouse,
        name,
        {"PatientID": [1, 2], "VisitGuid": [guid, None], "Minutes": [1.0, 2.0]},
        VISITS_WITH_UUID,
    )
    assert result.rows_loaded == 2
    assert staged(database, "patient_id, visit_guid::text, minutes") == [(1, guid, 1), (2, None, 2)]

    # a value the file decoder refuses (raised while COPY reads) still names its row
    with pytest.raises(FileLoadError, match="row 3"):
        load(
            warehouse,
            name,
            {"PatientID": [1, 2, 3], "VisitGuid": [guid] * 3, "Minutes": [1.0, 2.0, 2.5]},
            VISITS_WITH_UUID,
        )
    assert staged_count(database) == 2  # the failed reload kept the file's earlier rows
