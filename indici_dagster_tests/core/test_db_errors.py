"""Database and library errors become messages built from names, and are sorted by who caused
them: the file's content, the infrastructure, or anything else. Real PostgreSQL errors, each
provoked with a marker value that no message may show."""

import contextlib
import io

import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indici_dagster.core.db_errors import (
    CleanError,
    ErrorKind,
    classify,
    copy_row,
    describe_database_error,
    describe_library_error,
    quote_name,
    sqlstate_kind,
)
from indici_dagster.core.settings import Settings
from indici_dagster.core.warehouse.catalog import LockTimeoutError

MARKER = "ZQXMARKERQZ"


@pytest.mark.parametrize(
    ("sqlstate", "kind"),
    [
        ("22P02", ErrorKind.CONTENT),  # invalid text representation
        ("22001", ErrorKind.CONTENT),  # value too long
        ("22021", ErrorKind.CONTENT),  # bad encoding
        ("23505", ErrorKind.CONTENT),  # unique violation
        ("54001", ErrorKind.CONTENT),  # nested too deep
        ("54011", ErrorKind.CONTENT),  # too many columns
        ("08006", ErrorKind.TRANSIENT),  # connection failure
        ("57P01", ErrorKind.TRANSIENT),  # admin shutdown
        ("53300", ErrorKind.TRANSIENT),  # too many connections
        ("40001", ErrorKind.TRANSIENT),  # serialization failure
        ("40P01", ErrorKind.TRANSIENT),  # deadlock
        ("55P03", ErrorKind.TRANSIENT),  # lock_timeout
        ("42501", ErrorKind.PERMANENT),  # insufficient privilege
        ("42P01", ErrorKind.PERMANENT),  # undefined table
        ("3F000", ErrorKind.PERMANENT),  # missing schema
        ("XX000", ErrorKind.PERMANENT),  # internal error
        (None, ErrorKind.TRANSIENT),  # the driver lost its connection
    ],
)
def test_each_sqlstate_is_content_transient_or_permanent(sqlstate, kind):
    assert sqlstate_kind(sqlstate) is kind


@contextlib.contextmanager
def cursor_on(dsn: str):
    with contextlib.closing(psycopg2.connect(dsn)) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE SCHEMA IF NOT EXISTS scratch; SET search_path = scratch")
            yield cursor


PROVOKED = {
    # what -> (statements, the last of which fails; what the message must say)
    "cast": (["SELECT %(v)s::bigint"], "SQLSTATE 22P02"),
    "nested too deep": (["SELECT (repeat('[', 100000) || %(v)s)::jsonb"], "SQLSTATE 54001"),
    "invalid json": (["SELECT ('{\"' || %(v)s || '\": nope')::json"], "SQLSTATE 22P02"),
    "unique violation": (
        ["CREATE TABLE t (v text UNIQUE)", "INSERT INTO t VALUES (%(v)s), (%(v)s)"],
        "unique violation (SQLSTATE 23505), table 'scratch.t', constraint 't_v_key'",
    ),
    "value too long": (
        ["CREATE TABLE t (v varchar(3))", "INSERT INTO t VALUES (%(v)s)"],
        "SQLSTATE 22001",
    ),
    "not null": (
        ["CREATE TABLE t (v text, w text NOT NULL)", "INSERT INTO t (v) VALUES (%(v)s)"],
        "column 'w', table 'scratch.t'",
    ),
    "out of range": (["SELECT (%(v)s || '9999999999999')::text::integer"], "SQLSTATE 22"),
    "check constraint": (
        ["CREATE TABLE t (v text CHECK (v = 'x'))", "INSERT INTO t VALUES (%(v)s)"],
        "check violation (SQLSTATE 23514)",
    ),
}


@pytest.mark.parametrize("what", list(PROVOKED))
def test_a_real_database_error_is_described_from_names_and_never_quotes_a_value(database, what):
    statements, expected = PROVOKED[what]
    value = MARKER if what != "out of range" else "7"
    with cursor_on(database) as cursor:
        cursor.execute("DROP TABLE IF EXISTS t")
        with pytest.raises(psycopg2.Error) as raised:
            for statement in statements:
                cursor.execute(statement, {"v": value})
    error = raised.value
    if what in ("cast", "invalid json", "unique violation", "check constraint"):
        assert MARKER in str(error)  # the driver's own text quotes it

    message = describe_database_error(error)

    assert MARKER not in message and "7999" not in message
    assert expected in message, message
    assert classify(error) is ErrorKind.CONTENT
    assert "\n" not in message


def test_the_row_comes_from_the_copy_line_of_the_table_and_nothing_a_value_can_forge():
    context = (
        'JSON data, line 1: {"a": line 7\n'
        'COPY patients, line 12, column notes: "x\nCOPY patients, line 99, column nhi"\n'
        "COPY patients, line 98"
    )
    assert copy_row(context, "patients") == (12, "notes")
    assert copy_row(context, "other") is None
    assert copy_row("JSON data, line 1: x", "patients") is None
    assert copy_row("COPY patients, line 3", "patients") == (3, None)


def test_names_from_files_are_escaped_and_bounded():
    hostile = "Name\x1b[31m\nRED\x00" + "x" * 500
    shown = quote_name(hostile)
    assert "\x1b" not in shown and "\n" not in shown and "\x00" not in shown
    assert "\\x1b" in shown and "\\n" in shown
    assert len(shown) < 120 and "(514 characters)" in shown
    assert quote_name("FamilyName") == "'FamilyName'"


def test_arrow_errors_keep_their_class_and_known_damage_phrases_but_never_their_text():
    try:
        pa.array([MARKER]).cast(pa.int64())
    except pa.ArrowInvalid as error:
        assert MARKER in str(error)
        assert describe_library_error(error) == "ArrowInvalid"
        assert classify(error) is ErrorKind.CONTENT
    with pytest.raises(pa.ArrowInvalid) as raised:
        pq.ParquetFile(io.BytesIO(b"not parquet " * 10))
    assert describe_library_error(raised.value) == "ArrowInvalid: Parquet magic bytes not found"


def test_a_clean_error_keeps_its_kind_and_message():
    error = CleanError("rpt.patients: unique violation (SQLSTATE 23505)", ErrorKind.CONTENT)
    assert classify(error) is ErrorKind.CONTENT
    assert describe_library_error(error) == str(error)


def test_a_connection_error_without_sqlstate_keeps_only_known_driver_phrases():
    lost = psycopg2.OperationalError("server closed the connection unexpectedly\n\tThis ...")
    assert describe_database_error(lost) == "server closed the connection unexpectedly"
    odd = psycopg2.OperationalError(f"something about {MARKER}")
    assert describe_database_error(odd) == "the database connection failed (OperationalError)"
    assert classify(lost) is ErrorKind.TRANSIENT


def test_a_lock_timeout_keeps_its_message_and_is_retried():
    # the pipeline's own lock error names the table and the timeout, never a value: it reaches
    # the step's failure as it is (it once read "the database connection failed (...)")
    error = LockTimeoutError(
        "table patients: the pipeline's lock on it was not granted within lock_timeout (10min); "
        "another load or upsert of the table still holds it"
    )
    assert describe_library_error(error) == str(error)
    assert classify(error) is ErrorKind.TRANSIENT


def test_max_new_columns_is_read_from_its_variable_with_a_default_of_50():
    assert Settings.from_env({}).max_new_columns == 50
    assert Settings.from_env({"INDICI_MAX_NEW_COLUMNS": "7"}).max_new_columns == 7


def test_storage_and_other_errors_are_sorted_by_who_caused_them_and_described_by_class():
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    def client_error(code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": MARKER}}, "GetObject")

    assert classify(client_error("SlowDown")) is ErrorKind.TRANSIENT
    assert classify(client_error("AccessDenied")) is ErrorKind.PERMANENT
    assert describe_library_error(client_error("AccessDenied")) == "GetObject failed (AccessDenied)"
    unreachable = EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    assert classify(unreachable) is ErrorKind.TRANSIENT
    assert "127.0.0.1:9" in describe_library_error(unreachable)
    assert classify(NoCredentialsError()) is ErrorKind.PERMANENT
    assert classify(ConnectionResetError()) is ErrorKind.TRANSIENT
    assert classify(OSError("Couldn't deserialize thrift")) is ErrorKind.CONTENT
    assert classify(MemoryError()) is ErrorKind.CONTENT  # the same bytes blow up again
    bug = KeyError(MARKER)
    assert classify(bug) is ErrorKind.PERMANENT  # a fault no retry is known to fix
    assert describe_library_error(bug) == "KeyError"
