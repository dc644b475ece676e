"""The owner's function that keeps the analyst's view of an rpt table (`ensure_analyst_view`).

It (re)creates `rpt_analyst.<table>` over `rpt.<table>` with only the columns the writer names
(data columns of the table: personal columns other than NHI are left out by the rules), each
NHI column as its keyed pseudonym, and `rpt_analyst.<table>_as_of(timestamptz)` over
`rpt.<table>_as_of` where that exists. The key is read from `indici_keys.pseudonym_key`, which
only the owner may read; the analyst's privileges come from bootstrap's default privileges in
`rpt_analyst` (`core/admin/analyst.py`). Follows `owner_ddl.py`'s rules: names checked and
quoted with `%I`, search_path pinned, a refusal raises 42501 naming no value.
"""

from indici_dagster.core.pipeline_names import (
    ANALYST_SCHEMA,
    KEYS_SCHEMA,
    PSEUDONYM_KEY_TABLE,
    RPT_SCHEMA,
)
from indici_dagster.core.types.registry import METADATA_NAMES
from indici_dagster.core.warehouse.owner_ddl_checks import (
    IDENTIFIER_PATTERN,
    SEARCH_PATH,
    array_literal,
    check_table,
    refuse,
)

ANALYST_FUNCTIONS = (("ensure_analyst_view", "text, text[], text[]"),)
"""(name, argument types) of the analyst's owner functions in `indici_staging`."""

PSEUDONYM_SQL = (
    "pg_catalog.encode(pg_catalog.sha256(k.outer_key || pg_catalog.sha256(k.inner_key || "
    "pg_catalog.convert_to(pg_catalog.upper(pg_catalog.btrim(t.%1$I::text)), 'UTF8'))), 'hex')"
)
"""HMAC-SHA256 of a column's normalised text (trimmed, upper-cased) under the deployment's key,
as hex: `k` is the key row (its HMAC inner and outer pads), `t` the rpt row. NULL stays NULL.
Built from PostgreSQL's own `sha256`, since the embedded server ships no pgcrypto."""


def _analyst_view_body() -> str:
    """`ensure_analyst_view`: (re)create `rpt_analyst.<table>` over `rpt.<table>` with just
    `view_columns` (data columns of the table), each of `nhi_columns` as its pseudonym, and
    `rpt_analyst.<table>_as_of(timestamptz)` over `rpt.<table>_as_of` where that exists.
    Returns false, doing nothing, where bootstrap made no analyst schema."""
    rpt, analyst, keys = RPT_SCHEMA, ANALYST_SCHEMA, f"{KEYS_SCHEMA}.{PSEUDONYM_KEY_TABLE}"
    metadata = sorted(METADATA_NAMES)
    pseudonym = PSEUDONYM_SQL.replace("'", "''")
    return f"""
DECLARE
    relation regclass;
    select_list text[] := ARRAY[]::text[];
    column_name text;
    as_of regprocedure;
BEGIN{check_table(rpt)}
    IF pg_catalog.to_regnamespace('{analyst}') IS NULL THEN
        RETURN false;
    END IF;
    relation := pg_catalog.to_regclass(pg_catalog.format('{rpt}.%I', target_table));
    IF relation IS NULL THEN
        {refuse("the table does not exist")}
    END IF;
    IF view_columns IS NULL OR nhi_columns IS NULL OR pg_catalog.cardinality(view_columns) = 0
       OR NOT nhi_columns <@ view_columns THEN
        {refuse("the view needs columns, and its NHI columns must be among them")}
    END IF;
    FOREACH column_name IN ARRAY view_columns LOOP
        IF column_name IS NULL OR column_name COLLATE "C" !~ '{IDENTIFIER_PATTERN}'
           OR column_name = ANY ({array_literal(metadata)})
           OR NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = relation
                          AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped) THEN
            {refuse("a view column is not a data column of the table")}
        END IF;
        IF column_name = ANY (nhi_columns) THEN
            select_list := select_list || pg_catalog.format('{pseudonym} AS %1$I', column_name);
        ELSE
            select_list := select_list || pg_catalog.format('t.%I', column_name);
        END IF;
    END LOOP;
    EXECUTE pg_catalog.format('DROP VIEW IF EXISTS {analyst}.%I CASCADE', target_table);
    EXECUTE pg_catalog.format('CREATE VIEW {analyst}.%I WITH (security_barrier) AS SELECT %s '
        'FROM {rpt}.%I AS t CROSS JOIN {keys} AS k', target_table,
        pg_catalog.array_to_string(select_list, ', '), target_table);
    EXECUTE pg_catalog.format('COMMENT ON VIEW {analyst}.%I IS %L', target_table,
        'indici analyst view; nhi: ' || pg_catalog.array_to_string(nhi_columns, ','));
    as_of := pg_catalog.to_regprocedure(
        pg_catalog.format('{rpt}.%I(timestamptz)', target_table || '_as_of'));
    IF as_of IS NOT NULL THEN
        EXECUTE pg_catalog.format('CREATE FUNCTION {analyst}.%I(at_time timestamptz) '
            'RETURNS SETOF {analyst}.%I LANGUAGE sql STABLE SECURITY DEFINER '
            'SET search_path = {SEARCH_PATH} AS %L', target_table || '_as_of', target_table,
            pg_catalog.format('SELECT %s FROM {rpt}.%I(at_time) AS t CROSS JOIN {keys} AS k',
                pg_catalog.array_to_string(select_list, ', '), target_table || '_as_of'));
    END IF;
    RETURN true;
END
"""


def analyst_bodies() -> dict[str, tuple[str, str, str]]:
    """name -> (parameters, return type, body) of each analyst owner function."""
    return {
        "ensure_analyst_view": (
            "target_table text, view_columns text[], nhi_columns text[]",
            "boolean",
            _analyst_view_body(),
        )
    }
