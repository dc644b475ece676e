"""Exact row counts of the staging and rpt tables, kept by the writes that change them.

`count(*)` in Postgres reads the whole table, and staging only ever grows, so the count a
materialization reports would cost more every day. Instead every staging load and rpt upsert
adjusts `indici_staging.table_row_counts` in its own transaction, under the table's lock, by
exactly the rows it deleted and wrote. A table is counted once, the first time the pipeline
writes to it with no counter yet. Rows changed by hand are not seen: `indici recount` (or
deleting the table's counter row) counts again.
"""

from typing import Protocol

from psycopg2 import sql

from indici_dagster.core.pipeline_names import ROW_COUNTS_TABLE, STAGING_SCHEMA
from indici_dagster.core.warehouse.catalog import table_exists
from indici_dagster.core.warehouse.sql import qualified

ROW_COUNTS = qualified(STAGING_SCHEMA, ROW_COUNTS_TABLE)


class SqlCursor(Protocol):
    """What these functions need of a cursor (psycopg2's)."""

    def execute(self, query: sql.Composable | str, params: object = None) -> None: ...

    def fetchone(self) -> tuple | None: ...


def start_counting(cursor: SqlCursor, schema: str, table: str) -> None:
    """Make sure `schema.table` has a counter, counting the table now if it has none.

    Call inside a writing transaction that holds the table's lock, before its first change, so
    a count taken here does not include the changes the caller then adds.
    """
    cursor.execute(
        sql.SQL("SELECT 1 FROM {} WHERE table_schema = %s AND table_name = %s").format(ROW_COUNTS),
        (schema, table),
    )
    if cursor.fetchone() is None:
        set_row_count(cursor, schema, table, _count_rows(cursor, schema, table))


def add_to_row_count(cursor: SqlCursor, schema: str, table: str, change: int) -> None:
    """Adjust the counter of `schema.table` (started with `start_counting`) by `change` rows."""
    cursor.execute(
        sql.SQL(
            "UPDATE {} SET row_count = row_count + %s, counted_at = now() "
            "WHERE table_schema = %s AND table_name = %s"
        ).format(ROW_COUNTS),
        (change, schema, table),
    )


def set_row_count(cursor: SqlCursor, schema: str, table: str, rows: int) -> None:
    """Record that `schema.table` holds exactly `rows` rows."""
    cursor.execute(
        sql.SQL(
            "INSERT INTO {} (table_schema, table_name, row_count) VALUES (%s, %s, %s) "
            "ON CONFLICT (table_schema, table_name) "
            "DO UPDATE SET row_count = EXCLUDED.row_count, counted_at = now()"
        ).format(ROW_COUNTS),
        (schema, table, rows),
    )


def read_row_count(cursor: SqlCursor, schema: str, table: str) -> int:
    """Rows in `schema.table`: its counter, or a full count if it has none (0 if no table)."""
    cursor.execute(
        sql.SQL("SELECT row_count FROM {} WHERE table_schema = %s AND table_name = %s").format(
            ROW_COUNTS
        ),
        (schema, table),
    )
    row = cursor.fetchone()
    return int(row[0]) if row else _count_rows(cursor, schema, table)


def recount(cursor: SqlCursor, schema: str, table: str) -> int:
    """Count `schema.table` in full and reset its counter to that; returns the count.

    The caller holds the table's lock, so no load or upsert changes it meanwhile.
    """
    rows = _count_rows(cursor, schema, table)
    set_row_count(cursor, schema, table, rows)
    return rows


def _count_rows(cursor: SqlCursor, schema: str, table: str) -> int:
    if not table_exists(cursor, schema, table):
        return 0
    cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified(schema, table)))
    return int(cursor.fetchone()[0])
