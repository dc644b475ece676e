"""The DDL of the pipeline's own tables, apart from the code that uses them.

The catalog creates these tables (`catalog.catalog_statements`, `rpt_catalog_statements`), and
the modules that read and write them build on the catalog: their DDL lives here so that the
catalog imports none of them. Holds the row counts' table and the daily audit summary's (in
`rpt`, for the reader); the audit log's, the ledger's and the locks' DDL are still beside their
code (`audit`, `ledger`, `sql`), which imports no catalog.
"""

from psycopg2 import sql

from indici_dagster.core.pipeline_names import (
    AUDIT_DAILY_TABLE,
    ROW_COUNTS_TABLE,
    RPT_SCHEMA,
    STAGING_SCHEMA,
)
from indici_dagster.core.warehouse.sql import qualified

CREATE_ROW_COUNTS_TABLE = sql.SQL(
    """
    CREATE TABLE IF NOT EXISTS {counts} (
        table_schema text NOT NULL,
        table_name text NOT NULL,
        row_count bigint NOT NULL,
        counted_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (table_schema, table_name)
    )
    """
).format(counts=qualified(STAGING_SCHEMA, ROW_COUNTS_TABLE))
"""`indici_staging.table_row_counts`: one exact row count per staging and rpt table
(`row_counts`)."""

CREATE_AUDIT_DAILY_TABLE = sql.SQL(
    """
    CREATE TABLE IF NOT EXISTS {summary} (
        partition_key date NOT NULL,
        dataset text NOT NULL,
        files_received integer NOT NULL,
        files_loaded integer NOT NULL,
        files_empty integer NOT NULL,
        files_failed integer NOT NULL,
        files_no_rule integer NOT NULL,
        rows_read bigint NOT NULL,
        rows_loaded bigint NOT NULL,
        rows_inserted bigint NOT NULL,
        rows_updated bigint NOT NULL,
        rows_unchanged bigint NOT NULL,
        rows_rejected bigint NOT NULL,
        summarised_at timestamptz NOT NULL,
        PRIMARY KEY (partition_key, dataset)
    )
    """
).format(summary=qualified(RPT_SCHEMA, AUDIT_DAILY_TABLE))
"""`rpt.indici_audit_daily`: one row per date and dataset that had any file
(`audit_summary`); counts only, never a row value, so the reader may read it."""
