"""The checks every owner's DDL function starts with, as PL/pgSQL text: shared by `owner_ddl.py`,
`owner_history_ddl.py` and `owner_analyst_ddl.py`. Constants of this package, never input."""

from indici_dagster.core.pipeline_names import PIPELINE_RELATIONS, RPT_SCHEMA, STAGING_SCHEMA

SEARCH_PATH = "pg_catalog, pg_temp"
"""The search_path every function of the pipeline runs with."""
IDENTIFIER_PATTERN = "^[a-z_][a-z0-9_]{0,62}$"
"""`core/naming.py`'s identifier rule, as a PostgreSQL regular expression."""


def array_literal(values: object) -> str:
    """`ARRAY['a', 'b']` of constants of this package (never input: they hold no quote)."""
    items = list(values)  # type: ignore[call-overload]
    if any("'" in item for item in items):
        raise ValueError("a constant of the owner's functions holds a quote")
    return "ARRAY[" + ", ".join(f"'{item}'" for item in items) + "]::text[]"


def refuse(what: str) -> str:
    """The statement raising 42501 with `what` (a constant holding no quote or percent sign)."""
    if "'" in what or "%" in what:
        raise ValueError("a refusal message holds a quote or a percent sign")
    return f"RAISE EXCEPTION 'indici: {what}' USING ERRCODE = 'insufficient_privilege';"


def check_table(schema: str | None) -> str:
    """Statements refusing a schema other than the pipeline's and a table name that is not a
    plain identifier or is one of the pipeline's own relations."""
    check_schema = (
        f"""
    IF target_schema IS NULL OR target_schema NOT IN ('{STAGING_SCHEMA}', '{RPT_SCHEMA}') THEN
        {refuse("the schema must be indici_staging or rpt")}
    END IF;"""
        if schema is None
        else ""
    )
    return f"""{check_schema}
    IF target_table IS NULL OR target_table COLLATE "C" !~ '{IDENTIFIER_PATTERN}'
       OR target_table = ANY ({array_literal(sorted(PIPELINE_RELATIONS))}) THEN
        {refuse("the table name is not the identifier of a data table")}
    END IF;"""


def check_keys(array: str) -> str:
    """Statements refusing a primary-key column of `array` that is not an identifier, and
    collecting each, quoted, into `keys`."""
    return f"""
    FOREACH key_column IN ARRAY {array} LOOP
        IF key_column IS NULL OR key_column COLLATE "C" !~ '{IDENTIFIER_PATTERN}' THEN
            {refuse("a primary-key column is not an identifier")}
        END IF;
        keys := keys || pg_catalog.format('%I', key_column);
    END LOOP;"""
