"""The owner's function that creates and widens a keyed dataset's history (`sync_history`).

The history of `rpt.<table>` is three objects, all owned by the owner role like the tables:
`rpt.<table>_past` (every version that is no longer current: rpt's columns, then `valid_from`
and `valid_to`, primary key `(key..., valid_from, _source_file)`, and a small partial index of
the versions whose `valid_to` is still to be set), the view `rpt.<table>_history` (`valid_from`,
`valid_to`, then rpt's columns: the current rows of rpt, `valid_to` null, and the past ones) and
the function `rpt.<table>_as_of(timestamptz)`. The current version is kept once, in rpt itself,
so a first load writes no history at all.

The function follows the rules of `owner_ddl.py`: names checked and quoted with `%I`, types
read from the rpt table's own catalog entry (which only the owner's functions create, from the
type registry), `search_path` pinned, a refusal raises 42501 naming no value. `_as_of` is a
plain SQL function (SECURITY INVOKER: the caller needs SELECT on rpt and `_past`) with a
SQL-standard body (`BEGIN ATOMIC`), so its names are bound when it is created, under the pinned
search_path, not when it is called; and it carries no SET clause, so the planner can inline it
and use the indexes for the caller's own filters.
"""

from indici_dagster.core.pipeline_names import RPT_SCHEMA
from indici_dagster.core.rules.model import MAX_HISTORY_TABLE
from indici_dagster.core.types.registry import METADATA_NAMES
from indici_dagster.core.warehouse.owner_ddl_checks import (
    IDENTIFIER_PATTERN,
    array_literal,
    check_keys,
    check_table,
    refuse,
)

HISTORY_FUNCTIONS = (("sync_history", "text, text[]"),)
"""(name, argument types) of the history's owner functions in `indici_staging`."""


def _owned(kind: str, name: str) -> str:
    """A condition: relation `rpt.<name>` exists and is not a `kind` the owner owns."""
    return f"""EXISTS (SELECT FROM pg_catalog.pg_class c
        WHERE c.oid = pg_catalog.to_regclass(pg_catalog.format('{RPT_SCHEMA}.%I', {name}))
          AND (c.relkind <> '{kind}' OR c.relowner <> (
              SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER)))"""


def _sync_body() -> str:
    rpt = RPT_SCHEMA
    metadata = array_literal(METADATA_NAMES)
    return f"""
DECLARE
    keys text[] := ARRAY[]::text[];
    key_column text;
    rpt_table oid;
    past text := target_table || '_past';
    view_name text := target_table || '_history';
    function_name text := target_table || '_as_of';
    column_name text;
    column_type text;
    columns text[] := ARRAY[]::text[];
    results text[] := ARRAY[]::text[];
    business text[] := ARRAY[]::text[];
    changed boolean := false;
BEGIN{check_table(rpt)}
    IF pg_catalog.length(target_table) > {MAX_HISTORY_TABLE} THEN
        {refuse("the table name is too long to have a history")}
    END IF;
    IF primary_key IS NULL OR pg_catalog.cardinality(primary_key) = 0 THEN
        {refuse("a history needs the primary key of its table")}
    END IF;{check_keys("primary_key")}
    rpt_table := pg_catalog.to_regclass(pg_catalog.format('{rpt}.%I', target_table));
    IF rpt_table IS NULL OR NOT EXISTS (
        SELECT FROM pg_catalog.pg_constraint k WHERE k.conrelid = rpt_table AND k.contype = 'p'
          AND ARRAY(SELECT pg_catalog.format('%I', a.attname)
                    FROM pg_catalog.unnest(k.conkey) WITH ORDINALITY AS u (attnum, position)
                    JOIN pg_catalog.pg_attribute a
                      ON a.attrelid = rpt_table AND a.attnum = u.attnum
                    ORDER BY u.position) = keys) THEN
        {refuse("the rpt table does not exist or has another primary key")}
    END IF;
    IF {_owned("r", "past")} OR {_owned("v", "view_name")} OR EXISTS (
        SELECT FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = '{rpt}' AND p.proname = function_name
          AND p.proowner <> (SELECT r.oid FROM pg_catalog.pg_roles r
                             WHERE r.rolname = CURRENT_USER)) THEN
        {refuse("a history name is taken by an object of another kind or owner")}
    END IF;
    IF pg_catalog.to_regclass(pg_catalog.format('{rpt}.%I', past)) IS NULL THEN
        EXECUTE pg_catalog.format('CREATE TABLE {rpt}.%I (LIKE {rpt}.%I, '
            'valid_from timestamptz NOT NULL, valid_to timestamptz, '
            'CONSTRAINT %I PRIMARY KEY (%s, valid_from, _source_file))', past, target_table,
            pg_catalog.left(past, 58) || '_pkey', pg_catalog.array_to_string(keys, ', '));
        EXECUTE pg_catalog.format('CREATE INDEX %I ON {rpt}.%I (%s) WHERE valid_to IS NULL',
            pg_catalog.left(past, 54) || '_open_idx', past,
            pg_catalog.array_to_string(keys, ', '));
        changed := true;
    END IF;
    FOR column_name, column_type IN
        SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)
        FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = rpt_table AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
    LOOP
        IF column_name COLLATE "C" !~ '{IDENTIFIER_PATTERN}'
           OR column_name IN ('valid_from', 'valid_to') THEN
            {refuse("an rpt column name cannot be placed in its history")}
        END IF;
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute b
            WHERE b.attrelid = pg_catalog.to_regclass(pg_catalog.format('{rpt}.%I', past))
              AND b.attname = column_name AND b.attnum > 0 AND NOT b.attisdropped) THEN
            EXECUTE pg_catalog.format('ALTER TABLE {rpt}.%I ADD COLUMN %I %s', past,
                column_name, column_type);
            changed := true;
        END IF;
        columns := columns || pg_catalog.format('%I', column_name);
        IF NOT column_name = ANY ({metadata}) THEN
            business := business || pg_catalog.format('%I', column_name);
            results := results || pg_catalog.format('%I %s', column_name, column_type);
        END IF;
    END LOOP;
    IF changed OR pg_catalog.to_regclass(pg_catalog.format('{rpt}.%I', view_name)) IS NULL
       OR pg_catalog.to_regprocedure(
           pg_catalog.format('{rpt}.%I(timestamptz)', function_name)) IS NULL
       OR ARRAY(SELECT pg_catalog.format('%I', a.attname) FROM pg_catalog.pg_attribute a
                WHERE a.attrelid = pg_catalog.to_regclass(
                          pg_catalog.format('{rpt}.%I', view_name))
                  AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
          IS DISTINCT FROM ARRAY['valid_from', 'valid_to'] || columns THEN
        EXECUTE pg_catalog.format('CREATE OR REPLACE VIEW {rpt}.%I AS '
            'SELECT r._source_ts AS valid_from, NULL::timestamptz AS valid_to, %s FROM {rpt}.%I r '
            'UNION ALL SELECT p.valid_from, p.valid_to, %s FROM {rpt}.%I p', view_name,
            'r.' || pg_catalog.array_to_string(columns, ', r.'), target_table,
            'p.' || pg_catalog.array_to_string(columns, ', p.'), past);
        EXECUTE pg_catalog.format('DROP FUNCTION IF EXISTS {rpt}.%I(timestamptz)', function_name);
        EXECUTE pg_catalog.format('CREATE FUNCTION {rpt}.%I(timestamptz) RETURNS TABLE (%s) '
            'LANGUAGE sql STABLE BEGIN ATOMIC '
            'SELECT %s FROM {rpt}.%I r WHERE r._source_ts <= $1 UNION ALL '
            'SELECT %s FROM {rpt}.%I p WHERE p.valid_from <= $1 AND p.valid_to > $1; END',
            function_name, pg_catalog.array_to_string(results, ', '),
            'r.' || pg_catalog.array_to_string(business, ', r.'), target_table,
            'p.' || pg_catalog.array_to_string(business, ', p.'), past);
        changed := true;
    END IF;
    RETURN changed;
END
"""


def history_bodies() -> dict[str, tuple[str, str, str]]:
    """name -> (parameters, return type, body) of the history's owner functions."""
    return {"sync_history": ("target_table text, primary_key text[]", "boolean", _sync_body())}
