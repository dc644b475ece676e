"""After the timed part: what a contender left in its tables (row counts, md5 over every column)."""

import contextlib
from typing import Any

from benchmarks import project
from benchmarks.constants import TABLE
from benchmarks.util import connect


def fingerprint(dsn: str, schema: str, table: str, order: str) -> dict[str, Any]:
    """Row count and an md5 over every data column (plus _source_file, _row_number), in order."""
    from psycopg2 import sql

    names = [name for _, name, _ in project.rule_columns()] + ["_source_file", "_row_number"]
    with contextlib.closing(connect(dsn)) as connection, connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.execute(
            sql.SQL(
                "SELECT count(*), md5(string_agg(md5(t::text), '' ORDER BY {order})) "
                "FROM (SELECT {cols} FROM {schema}.{table}) t"
            ).format(
                order=sql.SQL(", ").join(sql.Identifier(c) for c in order.split(",")),
                cols=sql.SQL(", ").join(map(sql.Identifier, names)),
                schema=sql.Identifier(schema),
                table=sql.Identifier(table),
            )
        )
        count, digest = cursor.fetchone()
    return {"rows": count, "md5": digest}


def table_counts(dsn: str) -> dict[str, int]:
    """Rows in the pipeline's staging and rpt tables (after the timed part: a sanity check)."""
    counts = {}
    with contextlib.closing(connect(dsn)) as connection, connection.cursor() as cursor:
        for schema in ("indici_staging", "rpt"):
            cursor.execute(f"SELECT count(*) FROM {schema}.{TABLE}")
            counts[schema] = cursor.fetchone()[0]
    return counts
