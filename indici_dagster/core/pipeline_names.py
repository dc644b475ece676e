"""The pipeline's own names: its schemas, its tables and every relation it creates for itself, and
the relations a dataset's tables bring. Rules are checked against them (no dataset may take one),
and the warehouse's SQL is built from them."""

from indici_dagster.core.naming import validate_identifier

STAGING_SCHEMA = "indici_staging"
RPT_SCHEMA = "rpt"
AUDIT_TABLE = "auditlog"
LEDGER_TABLE = "landing_ledger"
ROW_COUNTS_TABLE = "table_row_counts"
LOCKS_TABLE = "pipeline_locks"
AUDIT_DAILY_TABLE = "indici_audit_daily"
"""`rpt.indici_audit_daily`: one row per date and dataset, what became of its files (the
`indici/audit_summary` asset); the reader may read it."""

AUDIT_LOG = f"{STAGING_SCHEMA}.{AUDIT_TABLE}"
"""The audit log's qualified name, as `to_regclass` takes it."""

PIPELINE_TABLES = frozenset({AUDIT_TABLE, LEDGER_TABLE, ROW_COUNTS_TABLE, LOCKS_TABLE})
"""The pipeline's own tables in `indici_staging`; no rule may name its table like one."""
RPT_PIPELINE_TABLES = frozenset({AUDIT_DAILY_TABLE})
"""The pipeline's own tables in `rpt`: not a dataset's, so no rule may name its table like one."""
PIPELINE_RELATIONS = (
    PIPELINE_TABLES
    | RPT_PIPELINE_TABLES
    | {
        f"{AUDIT_DAILY_TABLE}_pkey",
        f"{AUDIT_TABLE}_id_seq",
        f"{AUDIT_TABLE}_pkey",
        f"{AUDIT_TABLE}_source_file_idx",
        f"{AUDIT_TABLE}_run_idx",
        f"{LEDGER_TABLE}_pkey",
        f"{LEDGER_TABLE}_outcome_idx",
        f"{ROW_COUNTS_TABLE}_pkey",
        f"{LOCKS_TABLE}_pkey",
    }
)
"""Every relation (table, index, sequence) the pipeline creates for itself in `indici_staging`
and `rpt` (a test compares it with the catalog): a dataset's table must not take one of these
names."""


def staging_brin_index(table: str) -> str:
    """The name of a staging table's BRIN index on `_source_ts` (bounded to 63 bytes)."""
    return validate_identifier(f"{table[:45]}__source_ts_brin")


def dataset_relations(table: str) -> frozenset[str]:
    """The relations a dataset's tables bring besides themselves: the staging table's BRIN index
    and the name Postgres gives rpt's primary key index (a 63-byte name at most)."""
    return frozenset({staging_brin_index(table), f"{table[: 63 - len('_pkey')]}_pkey"})
