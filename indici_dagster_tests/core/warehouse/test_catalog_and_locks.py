"""The catalog without a lock: concurrent `ensure_catalog` calls on a database nobody bootstrapped
(a laptop's, the tests') both succeed, the loser of a race trying again."""

import contextlib
import threading

import psycopg2

from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster_tests.support.common import query
from indici_dagster_tests.support.sabotage import SABOTEUR, connect_admin, wait_for_backends


def test_concurrent_catalog_creation_takes_no_lock_and_both_callers_succeed(
    database: str, admin_database_dsn: str
):
    failures: list[BaseException] = []

    def ensure() -> None:
        try:
            Warehouse(database, "UTC").ensure_catalog()
        except BaseException as error:  # reported in the test's thread
            failures.append(error)

    # another caller is half-way through creating the catalog: its schema is not committed
    with contextlib.closing(psycopg2.connect(database, application_name=SABOTEUR)) as other:
        with other.cursor() as cursor:
            cursor.execute("CREATE SCHEMA indici_staging")
        racer = threading.Thread(target=ensure, daemon=True)
        racer.start()
        with contextlib.closing(connect_admin(admin_database_dsn)) as admin:
            wait_for_backends(admin, "CREATE SCHEMA%", waiting_for="row lock")
        other.commit()  # the waiting call now finds the schema taken, and looks again
        racer.join(60)
    assert not racer.is_alive() and not failures, failures
    tables = query(
        admin_database_dsn,
        "SELECT c.relname FROM pg_class c "
        "WHERE c.relnamespace = 'indici_staging'::regnamespace AND c.relkind = 'r' ORDER BY 1",
    )
    assert [name for (name,) in tables] == [
        "auditlog",
        "landing_ledger",
        "pipeline_locks",
        "table_row_counts",
    ]
    Warehouse(database, "UTC").ensure_catalog()  # and again: nothing to do, nothing fails
