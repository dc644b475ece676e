"""The pipeline's own names: its schemas, its tables and every relation it creates for itself, and
the relations a dataset's tables bring. Rules are checked against them (no dataset may take one),
and the warehouse's SQL is built from them."""

from indici_dagster.core.naming import validate_identifier

STAGING_SCHEMA = "indici_staging"
RPT_SCHEMA = "rpt"
ANALYST_SCHEMA = "rpt_analyst"
"""Views over rpt for the analyst role: NHI columns pseudonymised, other personal columns left
out (made only where `indici bootstrap --analyst` ran)."""
KEYS_SCHEMA = "indici_keys"
"""The pseudonym key's schema: only the owner role may use it."""
PSEUDONYM_KEY_TABLE = "pseudonym_key"
AUDIT_TABLE = "auditlog"
LEDGER_TABLE = "landing_ledger"
ROW_COUNTS_TABLE = "table_row_counts"
LOCKS_TABLE = "pipeline_locks"

AUDIT_LOG = f"{STAGING_SCHEMA}.{AUDIT_TABLE}"
"""The audit log's qualified name, as `to_regclass` takes it."""

PIPELINE_TABLES = frozenset({AUDIT_TABLE, LEDGER_TABLE, ROW_COUNTS_TABLE, LOCKS_TABLE})
"""The pipeline's own tables in `indici_staging`; no rule may name its table like one."""
PIPELINE_RELATIONS = PIPELINE_TABLES | {
    f"{AUDIT_TABLE}_id_seq",
    f"{AUDIT_TABLE}_pkey",
    f"{AUDIT_TABLE}_source_file_idx",
    f"{AUDIT_TABLE}_run_idx",
    f"{LEDGER_TABLE}_pkey",
    f"{LEDGER_TABLE}_outcome_idx",
    f"{ROW_COUNTS_TABLE}_pkey",
    f"{LOCKS_TABLE}_pkey",
}
"""Every relation (table, index, sequence) the pipeline creates for itself in `indici_staging`
(a test compares it with the catalog): a dataset's table must not take one of these names."""


def staging_brin_index(table: str) -> str:
    """The name of a staging table's BRIN index on `_source_ts` (bounded to 63 bytes)."""
    return validate_identifier(f"{table[:45]}__source_ts_brin")


def dataset_relations(table: str) -> frozenset[str]:
    """The relations a dataset's tables bring besides themselves: the staging table's BRIN index
    and the name Postgres gives rpt's primary key index (a 63-byte name at most)."""
    return frozenset({staging_brin_index(table), f"{table[: 63 - len('_pkey')]}_pkey"})
