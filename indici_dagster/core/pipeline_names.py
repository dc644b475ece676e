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


def history_view(table: str) -> str:
    """`<table>_history`: the view of every version of a keyed rpt table's rows."""
    return validate_identifier(f"{table}_history")


def history_past(table: str) -> str:
    """`<table>_past`: the table of the versions of rpt's rows that are no longer current."""
    return validate_identifier(f"{table}_past")


def as_of_function(table: str) -> str:
    """`<table>_as_of`: the function returning rpt's business columns as they stood at a time."""
    return validate_identifier(f"{table}_as_of")


def history_relations(table: str) -> frozenset[str]:
    """The relations of a keyed dataset's history (view, table of past versions, its indexes);
    the owner's `sync_history` names the indexes the same way."""
    past = history_past(table)
    return frozenset({history_view(table), past, f"{past[:58]}_pkey", f"{past[:54]}_open_idx"})


def dataset_relations(table: str) -> frozenset[str]:
    """The relations a dataset's tables bring besides themselves: the staging table's BRIN index,
    the name Postgres gives rpt's primary key index (a 63-byte name at most) and, for a table
    name short enough to have one, its history's relations."""
    names = {staging_brin_index(table), f"{table[: 63 - len('_pkey')]}_pkey"}
    if len(table) <= 63 - len("_history"):
        names |= history_relations(table)
    return frozenset(names)
