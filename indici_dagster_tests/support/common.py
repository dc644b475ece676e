"""Helpers shared by the tests: Parquet files, test settings, and driving the sensor."""

import io
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import boto3
import psycopg2
import psycopg2.extensions
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from dagster import DagsterInstance, Definitions, SensorResult, build_sensor_context
from psycopg2 import sql

from indici_dagster.core.rules.model import parse_rules
from indici_dagster.core.settings import Settings
from indici_dagster.core.storage.s3_storage import parse_s3_url
from indici_dagster.definitions import INGEST_JOB, build_definitions

TIMEZONE = "Pacific/Auckland"

TEST_RULES = """
- dataset: Patients
  primary_key: [PatientID]
  columns:
    PatientID: bigint
    NHINumber: text
    FamilyName: text
    DateOfBirth: date
    UpdatedAt: timestamp
- dataset: InvoiceLines
  primary_key: [InvoiceID, LineNumber]
  columns:
    InvoiceID: bigint
    LineNumber: integer
    Amount: numeric(12,2)
- dataset: EthnicityCode
"""


PATIENTS = parse_rules(yaml.safe_load(TEST_RULES))["Patients"]
"""The Patients rule of TEST_RULES."""


def patients_table(rows: list[tuple[int, str]]) -> pa.Table:
    """A Patients file's rows, in the shape of TEST_RULES, from (PatientID, FamilyName) pairs."""
    return pa.table(
        {
            "PatientID": pa.array([r[0] for r in rows], pa.int64()),
            "NHINumber": [f"ZZZ{r[0]:04d}" for r in rows],
            "FamilyName": [r[1] for r in rows],
            "DateOfBirth": pa.array([date(1980, 1, r[0] % 28 + 1) for r in rows], pa.date32()),
            "UpdatedAt": pa.array([datetime(2026, 11, 22, 9, 30)] * len(rows), pa.timestamp("us")),
        }
    )


def patients(rows: list[tuple[int, str]]) -> bytes:
    """`patients_table` as Parquet bytes."""
    return parquet_bytes(patients_table(rows))


def parquet_bytes(table: pa.Table | dict) -> bytes:
    """Serialise a table (or a column dict) as Parquet."""
    if isinstance(table, dict):
        table = pa.table(table)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def put_s3(url: str, name: str, data: bytes) -> None:
    """Upload `data` as `name` under an s3:// URL's prefix."""
    bucket, prefix = parse_s3_url(url)
    boto3.client("s3").put_object(Bucket=bucket, Key=prefix + name, Body=data)


def s3_keys(url: str) -> list[str]:
    """Every key under an s3:// URL, relative to its prefix."""
    bucket, prefix = parse_s3_url(url)
    pages = (
        boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    )
    return sorted(o["Key"][len(prefix) :] for page in pages for o in page.get("Contents", []))


def make_settings(
    tmp_path: Path, dsn: str, landing: str, partitioned: str, rules: str = TEST_RULES
) -> Settings:
    """Settings for a test: its own rules file, database and locations."""
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(rules)
    return Settings(
        landing=landing,
        partitioned=partitioned,
        rules=str(rules_path),
        pg_dsn=dsn,
        timezone=TIMEZONE,
        start_date="2026-01-01",
    )


def tick(defs: Definitions, instance: DagsterInstance, cursor: str | None = None) -> SensorResult:
    """Evaluate the landing sensor once, as the daemon would."""
    sensor = defs.resolve_sensor_def("indici_landing_sensor")
    with build_sensor_context(
        instance=instance, definitions=defs, cursor=cursor, resources=defs.resources
    ) as context:
        return sensor.evaluate_tick(context)


def execute_requests(
    defs: Definitions,
    instance: DagsterInstance,
    result: SensorResult,
    order: Sequence[int] | None = None,
) -> list:
    """Execute the sensor's run requests in process, in the given order; returns the results."""
    job = defs.resolve_job_def(INGEST_JOB)
    requests = result.run_requests or []
    outcomes = []
    for index in order if order is not None else range(len(requests)):
        request = requests[index]
        outcomes.append(
            job.execute_in_process(
                partition_key=request.partition_key,
                asset_selection=list(request.asset_selection),
                # as the daemon creates them: its run-key look-up finds them by these tags
                tags={k: v for k, v in daemon_tags(request).items() if k != "dagster/partition"},
                instance=instance,
                raise_on_error=False,
            )
        )
    return outcomes


def daemon_tags(request) -> dict[str, str]:
    """The tags the sensor daemon gives a run it creates for `request`."""
    return {
        **request.tags,
        "dagster/run_key": request.run_key,
        "dagster/sensor_name": "indici_landing_sensor",
        "dagster/partition": request.partition_key,
    }


def store_requests(defs: Definitions, instance: DagsterInstance, result: SensorResult) -> list:
    """Store the tick's requests as the daemon does (runs created, not yet launched), after
    the daemon's own run-key check; returns the runs created."""
    from dagster import DagsterRunStatus
    from dagster._daemon.sensor import fetch_existing_runs

    existing = fetch_existing_runs(instance, _SensorName(), result.run_requests or [])
    job = defs.resolve_job_def(INGEST_JOB)
    return [
        instance.create_run_for_job(
            job_def=job, status=DagsterRunStatus.NOT_STARTED, tags=daemon_tags(request)
        )
        for request in result.run_requests or []
        if request.run_key not in existing
    ]


class _SensorName:
    """What the daemon's run-key look-up reads of a sensor for runs without a code origin."""

    name = "indici_landing_sensor"


def query(dsn: str, statement: str, params: Sequence | None = None) -> list[tuple]:
    """Run one read-only query and return its rows."""
    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall()
    finally:
        connection.close()


def build(settings: Settings) -> Definitions:
    """The project's definitions for these settings."""
    return build_definitions(settings)


def row_counters(dsn: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(kept counter, full count(*)) of every table the pipeline keeps a row counter for."""
    counters = query(
        dsn, "SELECT table_schema, table_name, row_count FROM indici_staging.table_row_counts"
    )
    return {
        (schema, table): (rows, query(dsn, f'SELECT count(*) FROM "{schema}"."{table}"')[0][0])
        for schema, table, rows in counters
    }


def create_writer_database(cursor: psycopg2.extensions.cursor, name: str, role: str) -> None:
    """Create database `name` (as an administrator): `role` may connect and create schemas in
    it, and nobody else may do anything."""
    database, writer = sql.Identifier(name), sql.Identifier(role)
    cursor.execute(sql.SQL("CREATE DATABASE {}").format(database))
    cursor.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
    cursor.execute(sql.SQL("GRANT CONNECT, CREATE ON DATABASE {} TO {}").format(database, writer))
