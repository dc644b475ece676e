"""Passwords and patient values never reach logs, metadata, exceptions or the audit log."""

import json

import psycopg2
import pyarrow as pa
import pytest
from dagster import DagsterInstance

from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster_tests.support.common import (
    build,
    execute_requests,
    make_settings,
    parquet_bytes,
    put_s3,
    query,
    tick,
)

PASSWORD = "Sup3r-Secret-Pa55"
PATIENT_VALUES = ("Tūhoe-Whakatāne", "ZZZ9876", "Very Private Person")


def _everything_dagster_recorded(instance: DagsterInstance) -> str:
    texts = []
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id):
            texts.append(entry.message or "")
            texts.append(repr(entry.dagster_event))
    return "\n".join(texts)


def test_a_failed_connection_names_the_server_but_not_the_password():
    # nothing listens on port 9 of loopback: the connection is refused at once
    warehouse = Warehouse(
        f"host=127.0.0.1 port=9 user=x password={PASSWORD} connect_timeout=2", "UTC"
    )
    with pytest.raises(psycopg2.OperationalError) as raised:
        with warehouse.connection():
            pass
    assert PASSWORD not in str(raised.value)
    assert str(raised.value) == (
        "cannot connect to host=127.0.0.1 port=9 user=x: connection refused"
    )


def test_no_password_or_patient_value_in_logs_metadata_or_audit(tmp_path, database, buckets):
    landing, partitioned = buckets
    # trust authentication ignores the password, so the pipeline runs with it in its DSN
    dsn = psycopg2.extensions.make_dsn(database, password=PASSWORD)
    good = {
        "PatientID": pa.array([1, 2], pa.int64()),
        "NHINumber": [PATIENT_VALUES[1], "ZZZ0016"],
        "FamilyName": [PATIENT_VALUES[0], PATIENT_VALUES[2]],
    }
    bad = {"PatientID": ["3", PATIENT_VALUES[2]], "FamilyName": [PATIENT_VALUES[0], "x"]}
    put_s3(landing, "Patients_20261124_020000.parquet", parquet_bytes(good))
    put_s3(landing, "Patients_20261124_030000.parquet", parquet_bytes(bad))
    defs = build(make_settings(tmp_path, dsn, landing, partitioned))
    with DagsterInstance.ephemeral() as instance:
        (outcome,) = execute_requests(defs, instance, tick(defs, instance))
        recorded = _everything_dagster_recorded(instance)
    assert not outcome.success  # the bad file fails the run, visibly
    assert "Patients_20261124_030000.parquet" in recorded
    audit = json.dumps(query(database, "SELECT * FROM indici_staging.auditlog"), default=str)
    ledger = json.dumps(query(database, "SELECT * FROM indici_staging.landing_ledger"), default=str)
    for secret in (PASSWORD, *PATIENT_VALUES):
        assert secret not in recorded
        assert secret not in audit
        assert secret not in ledger
    assert query(database, "SELECT family_name FROM rpt.patients ORDER BY patient_id") == [
        (PATIENT_VALUES[0],),
        (PATIENT_VALUES[2],),
    ]
