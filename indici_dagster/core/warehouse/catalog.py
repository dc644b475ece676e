"""The warehouse's catalog: the pipeline's own tables, the per-table locks, table shapes.

Work on one table is serialised with a row lock in `indici_staging.pipeline_locks` (which only
the writer can take, and waits at most `lock_timeout`). Tables and columns are only ever
created or added, never dropped.
"""

from collections.abc import Sequence

import psycopg2
import psycopg2.errors
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core import pipeline_names
from indici_dagster.core.db_errors import CleanError, ErrorKind, NamedOperationalError, quote_name
from indici_dagster.core.types.registry import TypeSpellingError, canonical, widens
from indici_dagster.core.warehouse import sql as statements
from indici_dagster.core.warehouse.audit import CREATE_AUDIT_TABLE, AuditEntry, write_audit_entries
from indici_dagster.core.warehouse.connections import Connections
from indici_dagster.core.warehouse.ddl_locks import run_ddl
from indici_dagster.core.warehouse.owner_ddl import (
    OwnerFunctionsMissingError,
    ensure_owner_functions,
)

DEFAULT_LOCK_TIMEOUT = "10min"
"""How long a load or upsert waits for its table's lock (and its rows) before it fails (and is
retried): longer than the pipeline's own longest hold of a table (a big upsert), far shorter than
forever. DDL waits far less (`ddl_locks.run_ddl`): a waiting DDL lock queues readers."""


_FUNCTIONS_LOCK = "indici:owner_functions"
"""The lock row installing the owner's DDL functions takes (never a table's name)."""


class LockTimeoutError(NamedOperationalError):
    """A lock was not granted within `lock_timeout`; infrastructure, so the step is retried."""


def ensure_catalog(connections: Connections, lock_timeout: str) -> None:
    """Create the schemas and the pipeline's own tables (audit log, ledger, row counts,
    locks; the daily audit summary in rpt) where they are missing; leave alone those another
    role owns.

    After `indici bootstrap` every one exists, owned by the owner role, and nothing is
    done. Without it (a database of the connecting role's own) that role creates them itself.
    Then the owner's DDL functions (`owner_ddl.py`), the only way the pipeline creates and
    widens its data tables: installed where this role owns `indici_staging`, else, if they are
    missing or out of date, `owner_ddl.OwnerFunctionsMissingError` says to run
    `indici bootstrap`. Concurrent calls need no lock to create: one that loses a race to
    create an object sees it exist and tries again. Raises `LockTimeoutError` if a lock it
    needs is not granted within `lock_timeout`.
    """
    for attempt in range(3):
        with connections.connection() as connection, connection.cursor() as cursor:
            cursor.execute(statements.SET_SESSION_LOCK_TIMEOUT, (lock_timeout,))
            try:
                _create_catalog(cursor)
                ensure_owner_functions(cursor, lambda: lock(cursor, _FUNCTIONS_LOCK, lock_timeout))
            except (
                psycopg2.errors.UniqueViolation,
                psycopg2.errors.DuplicateObject,
                psycopg2.errors.DuplicateTable,
            ):
                if attempt == 2:
                    raise
                continue  # a concurrent call created it first: look again
            except psycopg2.errors.LockNotAvailable:
                pass  # raised below, outside the handler
            else:
                connection.commit()
                return
        raise LockTimeoutError(
            f"the pipeline's catalog in schema {pipeline_names.STAGING_SCHEMA} stayed locked "
            f"for longer than lock_timeout ({lock_timeout})"
        )


def catalog_statements() -> list[tuple[str, sql.Composable]]:
    """(table, CREATE ... IF NOT EXISTS) for each of the pipeline's own tables in staging."""
    from indici_dagster.core.warehouse.ledger import CREATE_LEDGER_TABLE
    from indici_dagster.core.warehouse.pipeline_tables import CREATE_ROW_COUNTS_TABLE

    return [
        (pipeline_names.AUDIT_TABLE, CREATE_AUDIT_TABLE),
        (pipeline_names.LEDGER_TABLE, CREATE_LEDGER_TABLE),
        (pipeline_names.ROW_COUNTS_TABLE, CREATE_ROW_COUNTS_TABLE),
        (pipeline_names.LOCKS_TABLE, statements.CREATE_LOCKS_TABLE),
    ]


def rpt_catalog_statements() -> list[tuple[str, sql.Composable]]:
    """(table, CREATE ... IF NOT EXISTS) for each of the pipeline's own tables in rpt."""
    from indici_dagster.core.warehouse.pipeline_tables import CREATE_AUDIT_DAILY_TABLE

    return [(pipeline_names.AUDIT_DAILY_TABLE, CREATE_AUDIT_DAILY_TABLE)]


def _create_catalog(cursor: Cursor) -> None:
    """Create the schemas and each pipeline table that is missing, or that this role owns (its
    statements are idempotent); skip a table another role owns (bootstrap's owner role)."""
    for schema in (pipeline_names.STAGING_SCHEMA, pipeline_names.RPT_SCHEMA):
        cursor.execute(statements.SCHEMA_EXISTS, (schema,))
        if cursor.fetchone() is None:
            cursor.execute(statements.create_schema(schema))
    owned = [(pipeline_names.STAGING_SCHEMA, t, s) for t, s in catalog_statements()]
    owned += [(pipeline_names.RPT_SCHEMA, t, s) for t, s in rpt_catalog_statements()]
    for schema, table, statement in owned:
        cursor.execute(statements.OWNS_RELATION, (statements.regclass_name(schema, table),))
        row = cursor.fetchone()
        if row is None and schema == pipeline_names.RPT_SCHEMA and not _owns_schema(cursor, schema):
            # a table added after the database was bootstrapped: only the owner may create it
            raise OwnerFunctionsMissingError(
                f"table {schema}.{table} is missing and this role may not create it: run "
                "`indici bootstrap` as an administrator"
            )
        if row is None or row[0]:
            run_ddl(cursor, statement, table=f"{schema}.{table}")


def _owns_schema(cursor: Cursor, schema: str) -> bool:
    cursor.execute(
        "SELECT pg_catalog.pg_has_role(nspowner, 'USAGE') FROM pg_catalog.pg_namespace "
        "WHERE nspname = %s",
        (schema,),
    )
    row = cursor.fetchone()
    return bool(row and row[0])


def write_audit(connections: Connections, entries: Sequence[AuditEntry]) -> None:
    """Write audit rows in a transaction (and on a connection) of their own."""
    with connections.connection() as connection, connection.cursor() as cursor:
        write_audit_entries(cursor, entries)
        connection.commit()


def lock(cursor: Cursor, name: str, timeout: str) -> None:
    """Serialise work on one table across processes until the transaction ends.

    Locks the table's row in `indici_staging.pipeline_locks`, which only the writer (and its
    owner role) may lock: unlike an advisory lock, no reader or other role can take it to stall
    the pipeline. Sets the transaction's `lock_timeout` to `timeout`, so this and every later
    statement of the transaction waits at most that long for a lock; this wait failing raises
    `LockTimeoutError` naming the table (infrastructure: the step is retried).
    """
    try:
        cursor.execute(statements.TAKE_LOCK, {"timeout": timeout, "name": name})
    except psycopg2.errors.LockNotAvailable:
        pass  # raised below, outside the handler: the database's text is not kept
    else:
        return
    raise LockTimeoutError(
        f"table {name}: the pipeline's lock on it was not granted within lock_timeout "
        f"({timeout}); another load or upsert of the table still holds it"
    )


def table_exists(cursor: Cursor, schema: str, table: str) -> bool:
    """Whether `schema.table` exists (as this transaction sees the catalog)."""
    cursor.execute(statements.TABLE_EXISTS, (statements.regclass_name(schema, table),))
    return bool(cursor.fetchone()[0])


def existing_columns(cursor: Cursor, schema: str, table: str) -> dict[str, str]:
    """Column name -> type (as Postgres spells it) of `schema.table`, in order; {} if absent."""
    cursor.execute(statements.TABLE_COLUMNS, (schema, table))
    return dict(cursor.fetchall())


def column_slots(cursor: Cursor, table: str) -> int:
    """Attribute numbers PostgreSQL has used for a staging table (dropped columns included: they
    count toward its 1,600-column limit); 0 if it does not exist."""
    cursor.execute(
        statements.COLUMN_SLOTS, (statements.regclass_name(pipeline_names.STAGING_SCHEMA, table),)
    )
    return int(cursor.fetchone()[0])


def add_missing_columns(
    cursor: Cursor, schema: str, table: str, columns: Sequence[tuple[str, str]]
) -> dict[str, str]:
    """Add to `schema.table` each of `columns` (name, type) it lacks; returns the columns it had."""
    existing = existing_columns(cursor, schema, table)
    for name, type_name in columns:
        if name not in existing:
            run_ddl(
                cursor,
                statements.add_column(schema, table, name, type_name),
                table=f"{schema}.{table}",
            )
    return existing


def check_rpt_types(cursor: Cursor, table: str) -> None:
    """Refuse (a `CleanError`, not retried) to apply staging rows to an rpt table one of whose
    columns cannot hold its staging column's type exactly, naming the column and both types.

    Staging's types never change (a file whose types differ fails its load), so a mismatch means
    rpt was altered by hand; rows are never cast into it with a loss.
    """
    staged = existing_columns(cursor, pipeline_names.STAGING_SCHEMA, table)
    reported = existing_columns(cursor, pipeline_names.RPT_SCHEMA, table)
    for name, rpt_type in reported.items():
        staging_type = staged.get(name)
        if staging_type is None or staging_type == rpt_type:
            continue
        try:
            holds = widens(canonical(staging_type), canonical(rpt_type))
        except TypeSpellingError:
            holds = False
        if not holds:
            raise CleanError(
                f"rpt.{table} column {quote_name(name)}: its type is {rpt_type} but staging's is "
                f"{staging_type}, which it cannot hold exactly; nothing of this window was "
                "applied (restore the rpt column's type)",
                ErrorKind.PERMANENT,
            )
