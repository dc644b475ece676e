"""The DDL of the pipeline's own tables in `indici_staging`, apart from the code that uses them.

The catalog creates these tables (`catalog.catalog_statements`), and the modules that read and
write them build on the catalog: their DDL lives here so that the catalog imports none of them.
Holds the row counts' table; the audit log's, the ledger's and the locks' DDL are still beside
their code (`audit`, `ledger`, `sql`), which imports no catalog.
"""

from psycopg2 import sql

from indici_dagster.core.pipeline_names import ROW_COUNTS_TABLE, STAGING_SCHEMA
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
