"""Hostile file content: no value of it ever leaves the process, and a bad file fails alone.

Every file here carries a distinctive marker in each of its columns and is built to make the
load fail in one way: a cast error, JSON nested too deep, invalid JSON, a unique violation (in
staging and in rpt, against an index a DBA added), too many new columns, a value too long,
a NUL byte and invalid UTF-8 in text. They go through the real sensor and Dagster job with a
persistent Dagster instance. Afterwards the marker must appear nowhere: not in the Dagster event
log (failures, retries and their error chains included), metadata, check results, Python logs,
console output, the audit log, the ledger or `indici audit`'s output. Meanwhile the good file of
the same dataset and date reaches rpt in the same run, and nothing is retried.
"""

import contextlib
import io
import json
import logging
from pathlib import Path

import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import DagsterEventType, DagsterInstance, serialize_value

from indici_dagster import cli
from indici_dagster.core.db_errors import FileLoadError
from indici_dagster.core.filenames import parse_file_name
from indici_dagster.core.rules.model import parse_rule
from indici_dagster.core.types.registry import METADATA_NAMES
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster.core.warehouse.staging_plan import (
    MAX_TABLE_COLUMNS,
    check_column_budget,
    plan_staging_columns,
)
from indici_dagster_tests.support.common import (
    TIMEZONE,
    build,
    execute_requests,
    make_settings,
    query,
    tick,
)

MARKER = "ZQXMARKERQZ"
"""A patient value no message may ever show (11 characters: it fits every text column)."""
MARKER_NUMBER = 918273645
"""The same for numeric columns (IDs are this plus a small offset)."""
MARKER_DIGITS = str(MARKER_NUMBER)[:8]

RULES = """
- dataset: Patients
  primary_key: [PatientID]
  columns:
    PatientID: bigint
    NHINumber: text
    FamilyName: text
    Initials: varchar(12)
    Notes: jsonb
"""
DAY_1, DAY_2, DAY_3 = "20261122", "20261123", "20261124"


def name(day: str, time: str) -> str:
    return f"Patients_{day}_{time}.parquet"


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def patients(rows: int, first_id: int = MARKER_NUMBER, **overrides: list | pa.Array) -> pa.Table:
    """`rows` rows with the marker in every column; `overrides` replace whole columns."""
    columns: dict[str, list | pa.Array] = {
        "PatientID": pa.array(range(first_id, first_id + rows), pa.int64()),
        "NHINumber": [MARKER] * rows,
        "FamilyName": [MARKER] * rows,
        "Initials": [f"{MARKER[:6]}{first_id % 1000:03d}{i:03d}" for i in range(rows)],
        "Notes": [json.dumps({"note": MARKER, "line": i}) for i in range(rows)],
    }
    columns.update(overrides)
    return pa.table(columns)


def invalid_utf8_strings(values: list[bytes]) -> pa.Array:
    """A string array holding bytes that are not UTF-8 (as a careless writer produces them)."""
    offsets = [0]
    for value in values:
        offsets.append(offsets[-1] + len(value))
    return pa.Array.from_buffers(
        pa.string(),
        len(values),
        [
            None,
            pa.py_buffer(pa.array(offsets, pa.int32()).buffers()[1]),
            pa.py_buffer(b"".join(values)),
        ],
    )


def with_extra_columns(table: pa.Table, count: int) -> pa.Table:
    """`table` with `count` more columns, named like a vendor's, holding the marker."""
    extra = {f"Extra{i:04d}": pa.array([MARKER] * table.num_rows) for i in range(count)}
    return pa.table({**table.to_pydict(), **extra})


GOOD = name(DAY_2, "010000")
HOSTILE = {
    # file name -> (what it does, the table, what its audit message must say)
    name(DAY_2, "020000"): (
        "cast error",
        patients(2, PatientID=pa.array(["1", MARKER])),
        ["column 'PatientID'", "row 2"],
    ),
    name(DAY_2, "030000"): (
        "invalid JSON on the third row, after values holding newlines",
        patients(3, Notes=['{"a":\n"' + MARKER + '"}', '{"b":\n\n"' + MARKER + '"}', MARKER]),
        ["not valid JSON", "row 3", "column 'Notes'"],
    ),
    name(DAY_2, "040000"): (
        "JSON nested too deep",
        patients(2, Notes=['{"a": 1}', "[" * 100_000 + json.dumps(MARKER)]),
        ["JSON nested too deeply", "row 2", "column 'Notes'"],
    ),
    name(DAY_2, "050000"): (
        "a unique violation against an index a DBA added to staging",
        patients(2, Initials=[MARKER, MARKER]),
        ["unique violation (SQLSTATE 23505)", "row 2", "dba_unique_initials"],
    ),
    name(DAY_2, "060000"): (
        "too many new columns",
        with_extra_columns(patients(2), 60),
        ["would add 60 columns", "at most 50", "INDICI_MAX_NEW_COLUMNS"],
    ),
    name(DAY_2, "063000"): (
        "more columns than a table may hold",
        with_extra_columns(patients(2), 1_700),
        ["would add 1700 columns"],
    ),
    name(DAY_2, "070000"): (
        "a value too long for varchar(12)",
        patients(2, Initials=["ok", MARKER * 3]),
        ["SQLSTATE 22001", "row 2", "column 'Initials'"],
    ),
    name(DAY_2, "080000"): (
        "a NUL byte in text",
        patients(3, FamilyName=[MARKER, MARKER, f"{MARKER}\x00{MARKER}"]),
        ["SQLSTATE 22021", "row 3"],
    ),
    name(DAY_2, "090000"): (
        "invalid UTF-8 in text",
        patients(
            2, FamilyName=invalid_utf8_strings([MARKER.encode(), MARKER.encode() + b"\xff\xfe"])
        ),
        ["SQLSTATE 22021", "row 2"],
    ),
}
RPT_CLASH = name(DAY_3, "020000")
"""Two patients sharing one NHI, against a unique index a DBA added to rpt."""
RPT_GOOD = name(DAY_3, "010000")
"""A good file in the same rpt window."""


def land(folder: Path, file_name: str, table: pa.Table) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / file_name).write_bytes(parquet_bytes(table))


def run_everything_landed(defs, instance) -> list:
    return execute_requests(defs, instance, tick(defs, instance))


def admin_execute(dsn: str, statement: str) -> None:
    with contextlib.closing(psycopg2.connect(dsn)) as connection, connection.cursor() as cursor:
        cursor.execute(statement)
        connection.commit()


def everything_dagster_recorded(instance: DagsterInstance) -> str:
    """Every event of every run, serialised whole: messages, metadata, check results, and each
    failure's and retry's error with its cause and context chain."""
    texts = []
    for run in instance.get_runs():
        texts.append(serialize_value(run))
        texts.extend(serialize_value(entry) for entry in instance.all_logs(run.run_id))
    return "\n".join(texts)


def audit_rows(dsn: str, file_name: str, step: str) -> list[tuple]:
    return query(
        dsn,
        "SELECT status, rows_loaded, message FROM indici_staging.auditlog "
        "WHERE source_file = %s AND step = %s ORDER BY id",
        (file_name, step),
    )


def assert_marker_absent(text: str, where: str) -> None:
    assert MARKER not in text, where
    assert MARKER_DIGITS not in text, where
    assert MARKER[:6] not in text, where  # nor a message cut short inside it


@pytest.mark.timeout(600)
def test_hostile_values_never_leave_the_process_and_each_bad_file_fails_alone(
    tmp_path, database, admin_database_dsn, monkeypatch, capfd, caplog
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("INDICI_PG_DSN", database)
    landing, partitioned = tmp_path / "landing", tmp_path / "partitioned"
    settings = make_settings(tmp_path, database, str(landing), str(partitioned), rules=RULES)
    defs = build(settings)
    (tmp_path / "dagster").mkdir()
    instance = DagsterInstance.local_temp(str(tmp_path / "dagster"))
    try:
        # day 1: a clean file creates the tables; then a DBA adds unique indexes to both
        land(landing, name(DAY_1, "010000"), patients(2, first_id=1, NHINumber=["a", "b"]))
        (first,) = run_everything_landed(defs, instance)
        assert first.success
        admin_execute(
            admin_database_dsn,
            "CREATE UNIQUE INDEX dba_unique_initials ON indici_staging.patients (initials);"
            "CREATE UNIQUE INDEX dba_unique_nhi ON rpt.patients (nhi_number)",
        )

        # day 2: a good file beside every hostile one; day 3: rows that break rpt's index
        land(landing, GOOD, patients(2, first_id=10, NHINumber=["c", "d"]))
        for file_name, (_, table, _) in HOSTILE.items():
            land(landing, file_name, table)
        land(landing, RPT_CLASH, patients(2, first_id=20))
        land(landing, RPT_GOOD, patients(2, first_id=30, NHINumber=["e", "f"]))
        day_2, day_3 = run_everything_landed(defs, instance)
        for file_name in [GOOD, *HOSTILE, RPT_CLASH, RPT_GOOD]:
            assert cli.main(["audit", file_name]) == 0
        recorded = everything_dagster_recorded(instance)
    finally:
        instance.dispose()

    # the marker is nowhere
    assert_marker_absent(recorded, "Dagster event log")
    audit_text = json.dumps(query(database, "SELECT * FROM indici_staging.auditlog"), default=str)
    assert_marker_absent(audit_text, "audit log")
    ledger = json.dumps(query(database, "SELECT * FROM indici_staging.landing_ledger"), default=str)
    assert_marker_absent(ledger, "ledger")
    printed = capfd.readouterr()
    assert "JSON nested too deeply" in printed.out  # `indici audit` printed
    assert_marker_absent(printed.out + printed.err, "console and `indici audit` output")
    logged = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''}" for record in caplog.records
    )
    assert_marker_absent(logged, "Python logging")

    # meanwhile the good files of each date reached rpt in the same run; the runs fail, visibly
    assert query(database, "SELECT patient_id FROM rpt.patients ORDER BY 1") == [
        (1,),
        (2,),
        (10,),
        (11,),
        (30,),
        (31,),
    ]
    assert not day_2.success and not day_3.success
    for result in (day_2, day_3):
        retried = [
            e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY
        ]
        assert retried == []
    assert audit_rows(database, GOOD, "rpt")[-1][0] == "success"
    assert audit_rows(database, RPT_GOOD, "rpt")[-1][0] == "success"
    for file_name, (what, _, expected) in HOSTILE.items():
        ((status, rows_loaded, message),) = audit_rows(database, file_name, "staging")
        assert (status, rows_loaded) == ("error", 0), what
        assert "content error, not retried" in message, (what, message)
        for fragment in expected:
            assert fragment in message, (what, message)
    (clash,) = audit_rows(database, RPT_CLASH, "rpt")
    assert clash[0] == "error"
    assert "unique violation (SQLSTATE 23505)" in clash[2] and "dba_unique_nhi" in clash[2]
    assert "content error, not retried" in clash[2]


# --------------------------------------------------------------------------------------------
# bounded drift: INDICI_MAX_NEW_COLUMNS per file, MAX_TABLE_COLUMNS per table


KEYED = parse_rule(
    {"dataset": "Patients", "primary_key": ["PatientID"], "columns": {"PatientID": "bigint"}}
)
STATIC = parse_rule({"dataset": "EthnicityCode"})


def load_into(warehouse: Warehouse, rule, file_name: str, table: pa.Table):
    return warehouse.load_file_into_staging(
        rule,
        parse_file_name(file_name, TIMEZONE),
        pq.ParquetFile(io.BytesIO(parquet_bytes(table))),
        run_id="r",
        source_key=file_name,
        source_etag="e",
    )


def keyed_file(extra: list[str], rows: int = 2) -> pa.Table:
    columns = {"PatientID": pa.array(range(rows), pa.int64())}
    columns.update({column: pa.nulls(rows, pa.string()) for column in extra})
    return pa.table(columns)


def staging_columns(dsn: str, table: str) -> list[str]:
    return [
        c
        for (c,) in query(
            dsn,
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "'indici_staging' AND table_name = %s ORDER BY ordinal_position",
            (table,),
        )
    ]


def test_a_file_adds_at_most_max_new_columns_counted_against_the_table_not_the_rule(database):
    warehouse = Warehouse(database, TIMEZONE, max_new_columns=3)
    warehouse.ensure_catalog()
    first, second, third = (name(day, "020000") for day in ("20261121", "20261122", "20261123"))

    load_into(warehouse, KEYED, first, keyed_file(["A1", "A2", "A3"]))
    # the same three again, and two more: two are new
    load_into(warehouse, KEYED, second, keyed_file(["A1", "A2", "A3", "B1", "B2"]))
    with pytest.raises(FileLoadError, match="would add 4 columns the rule does not name"):
        load_into(warehouse, KEYED, third, keyed_file(["C1", "C2", "C3", "C4"]))

    assert [c for c in staging_columns(database, "patients") if not c.startswith("_")] == [
        "patient_id",
        "a1",
        "a2",
        "a3",
        "b1",
        "b2",
    ]
    ((status, message),) = query(
        database,
        "SELECT status, message FROM indici_staging.auditlog WHERE source_file = %s",
        (third,),
    )
    assert status == "error" and "at most 3" in message and "INDICI_MAX_NEW_COLUMNS" in message


def test_a_table_never_grows_past_the_ceiling_whatever_the_limit_per_file(database):
    warehouse = Warehouse(database, TIMEZONE, max_new_columns=5_000)
    warehouse.ensure_catalog()
    # patient_id, 5 metadata columns: 994 more reach the ceiling exactly
    room = MAX_TABLE_COLUMNS - 1 - len(METADATA_NAMES)
    over, fits = name("20261121", "020000"), name("20261122", "020000")

    with pytest.raises(FileLoadError, match=f"at most {MAX_TABLE_COLUMNS} are allowed"):
        load_into(warehouse, KEYED, over, keyed_file([f"X{i:04d}" for i in range(room + 1)]))
    assert query(database, "SELECT to_regclass('indici_staging.patients')") == [(None,)]
    load_into(warehouse, KEYED, fits, keyed_file([f"X{i:04d}" for i in range(room)]))

    assert len(staging_columns(database, "patients")) == MAX_TABLE_COLUMNS
    assert MAX_TABLE_COLUMNS < 1600


def test_a_static_datasets_first_snapshot_defines_its_table_then_drift_is_bounded(database):
    warehouse = Warehouse(database, TIMEZONE, max_new_columns=3)
    warehouse.ensure_catalog()
    first = pa.table({f"Code{i}": ["x"] for i in range(20)})
    load_into(warehouse, STATIC, "EthnicityCode_20261121_020000.parquet", first)
    grown = first.append_column("New1", pa.array(["y"])).append_column("New2", pa.array(["y"]))
    load_into(warehouse, STATIC, "EthnicityCode_20261122_020000.parquet", grown)
    for i in range(4):
        grown = grown.append_column(f"More{i}", pa.array(["z"]))

    with pytest.raises(FileLoadError, match="would add 4 columns"):
        load_into(warehouse, STATIC, "EthnicityCode_20261123_020000.parquet", grown)


@pytest.mark.parametrize(
    ("existing", "slots", "new", "max_new", "refused"),
    [
        (["patient_id"], 6, 50, 50, None),
        (["patient_id"], 6, 51, 50, "would add 51 columns"),
        (["patient_id"], 900, 50, 50, None),  # 900 slots: dropped columns keep theirs
        (["patient_id"], 951, 50, 50, "would have 1001 columns"),
        ([], 0, 995, 5_000, "would have 1001 columns"),
    ],
)
def test_the_column_budget_counts_new_drift_and_every_attribute_slot(
    existing, slots, new, max_new, refused
):
    plan = plan_staging_columns(KEYED, keyed_file([f"N{i}" for i in range(new)]).schema)
    if refused is None:
        check_column_budget(plan, existing, slots, max_new)
    else:
        with pytest.raises(FileLoadError, match=refused):
            check_column_budget(plan, existing, slots, max_new)
