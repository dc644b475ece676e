"""The analyst's views: each rpt table as `rpt_analyst.<table>`, its NHI columns pseudonymised
and its other personal columns left out (the rule's `pii` marks), kept in step with the table.

Made only where `indici bootstrap --analyst` created the analyst schema, through the owner's
function `ensure_analyst_view` (the writer owns nothing), and only when the view differs from
what the rule and the table say, so an upsert usually reads the catalog and writes nothing.
"""

from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.pipeline_names import ANALYST_SCHEMA, RPT_SCHEMA, STAGING_SCHEMA
from indici_dagster.core.rules.docs import NHI_MARK
from indici_dagster.core.rules.model import Rule
from indici_dagster.core.types.registry import METADATA_NAMES
from indici_dagster.core.warehouse.catalog import existing_columns
from indici_dagster.core.warehouse.ddl_locks import run_ddl

VIEW_COMMENT = "indici analyst view; nhi: "
"""How `ensure_analyst_view` marks a view, followed by its pseudonymised columns."""

_STATE = """
SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = %(analyst)s),
       (SELECT pg_catalog.obj_description(c.oid, 'pg_class') FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(analyst)s AND c.relname = %(table)s),
       EXISTS (SELECT FROM pg_catalog.pg_proc p
               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
               WHERE n.nspname = %(rpt)s AND p.proname = %(as_of)s),
       EXISTS (SELECT FROM pg_catalog.pg_proc p
               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
               WHERE n.nspname = %(analyst)s AND p.proname = %(as_of)s)
"""
"""Read from the catalog by name: the writer has no USAGE on the analyst's schema."""


def analyst_columns(rule: Rule, table_columns: list[str]) -> tuple[list[str], list[str]]:
    """(the view's columns, those of them pseudonymised) for an rpt table with `table_columns`:
    every data column but those marked personal other than `nhi`, in table order."""
    marks = rule.pii_columns
    shown = [
        name
        for name in table_columns
        if name not in METADATA_NAMES and marks.get(name) in (None, NHI_MARK)
    ]
    return shown, [name for name in shown if marks.get(name) == NHI_MARK]


def ensure_analyst_view(cursor: Cursor, rule: Rule) -> bool:
    """Inside the caller's transaction: make `rpt_analyst.<table>` (and its `_as_of` where
    `rpt.<table>_as_of` exists) what the rule and the table say; True if it was (re)made.
    Does nothing where there is no analyst schema or no rpt table."""
    table = rule.table
    columns = list(existing_columns(cursor, RPT_SCHEMA, table))
    if not columns:
        return False
    shown, nhi = analyst_columns(rule, columns)
    cursor.execute(
        _STATE,
        {"analyst": ANALYST_SCHEMA, "rpt": RPT_SCHEMA, "table": table, "as_of": f"{table}_as_of"},
    )
    has_schema, comment, rpt_as_of, view_as_of = cursor.fetchone()
    if not has_schema or not shown:
        return False
    current = list(existing_columns(cursor, ANALYST_SCHEMA, table))
    if current == shown and comment == VIEW_COMMENT + ",".join(nhi) and rpt_as_of == view_as_of:
        return False
    run_ddl(
        cursor,
        f"SELECT {STAGING_SCHEMA}.ensure_analyst_view(%s, %s::text[], %s::text[])",
        (table, shown, nhi),
        table=f"{ANALYST_SCHEMA}.{table}",
    )
    return True
