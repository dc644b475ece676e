"""The rules' descriptions as `COMMENT ON TABLE` and `COMMENT ON COLUMN` on the data tables,
so `\\d+` and BI tools show what a table and column hold and which columns are personal.

The comments of the pipeline's data tables come from the rules (and, for the metadata columns,
from the type registry): a comment set by hand is replaced at the next load. They are written
through the owner's function `comment_data_table` (the writer owns no table), and only when
they differ from what the table has, so a load usually reads the catalog and writes nothing.
"""

from collections.abc import Mapping

from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core.naming import validate_identifier
from indici_dagster.core.pipeline_names import RPT_SCHEMA, STAGING_SCHEMA
from indici_dagster.core.rules.docs import column_comment
from indici_dagster.core.rules.model import Rule
from indici_dagster.core.types.registry import METADATA_DESCRIPTIONS

_LAYERS = {
    STAGING_SCHEMA: "every row of every file loaded, with the file it came from",
    RPT_SCHEMA: "the current version of each key (newest file wins)",
}
_STATIC_RPT = "the rows of the newest file (a code table, replaced by each new file)"
HISTORY_SUFFIX = "_history"
PAST_SUFFIX = "_past"
_HISTORY_COLUMNS = {
    "valid_from": "When this version became current: the timestamp of the file that brought it.",
    "valid_to": "When the next version replaced it; null while it is current.",
}

_CURRENT = """
SELECT pg_catalog.obj_description(c.oid, 'pg_class'),
       pg_catalog.array_agg(a.attname ORDER BY a.attnum),
       pg_catalog.array_agg(pg_catalog.col_description(c.oid, a.attnum) ORDER BY a.attnum)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.oid = pg_catalog.to_regclass(%s)
GROUP BY c.oid
"""


def table_comment(rule: Rule, schema: str, table: str) -> str:
    """The comment of a data table of `rule`: its dataset, what the layer holds, and the
    rule's description."""
    if table == f"{rule.table}{HISTORY_SUFFIX}" and schema == RPT_SCHEMA:
        layer = "every version of each key, valid from valid_from until valid_to"
    elif table == f"{rule.table}{PAST_SUFFIX}" and schema == RPT_SCHEMA:
        layer = "the versions of each key that are no longer current (history's store)"
    elif rule.is_static and schema == RPT_SCHEMA:
        layer = _STATIC_RPT
    else:
        layer = _LAYERS[schema]
    about = f" {rule.description}" if rule.description else ""
    return f"indici {rule.dataset}: {layer}.{about}"


def column_comments(rule: Rule, columns: list[str]) -> dict[str, str | None]:
    """column -> its comment (None: none), for each of `columns` of a table of `rule`."""
    return {
        name: column_comment(rule.doc(name))
        or METADATA_DESCRIPTIONS.get(name)
        or _HISTORY_COLUMNS.get(name)
        for name in columns
    }


def _differs(current: Mapping[str, str | None], wanted: Mapping[str, str | None]) -> bool:
    return any(current.get(name) != comment for name, comment in wanted.items())


def ensure_history_comments(cursor: Cursor, rule: Rule) -> None:
    """`ensure_comments` for a keyed dataset's history view and its store, where they exist."""
    for suffix in (HISTORY_SUFFIX, PAST_SUFFIX):
        ensure_comments(cursor, rule, RPT_SCHEMA, f"{rule.table}{suffix}")


def ensure_comments(cursor: Cursor, rule: Rule, schema: str, table: str) -> bool:
    """Inside the caller's transaction: give `schema.table` the rule's comments where it has
    others; True if anything was written. Nothing is written for a table that does not exist."""
    regclass = sql.Identifier(schema, validate_identifier(table)).as_string(cursor)
    cursor.execute(_CURRENT, (regclass,))
    row = cursor.fetchone()
    if row is None:
        return False
    current_table, names, current = row
    wanted_table = table_comment(rule, schema, table)
    wanted = column_comments(rule, list(names))
    if current_table == wanted_table and not _differs(
        dict(zip(names, current, strict=True)), wanted
    ):
        return False
    cursor.execute(
        sql.SQL("SELECT {}(%s, %s, %s, %s::text[], %s::text[])").format(
            sql.Identifier(STAGING_SCHEMA, "comment_data_table")
        ),
        (schema, table, wanted_table, list(wanted), list(wanted.values())),
    )
    return True
