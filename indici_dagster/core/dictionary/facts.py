"""What the warehouse says of a dataset's tables: their columns, row counts and newest file."""

from dataclasses import dataclass
from datetime import datetime

from indici_dagster.core.filenames import try_parse_file_name
from indici_dagster.core.pipeline_names import AUDIT_LOG, RPT_SCHEMA, STAGING_SCHEMA
from indici_dagster.core.rules.model import Rule
from indici_dagster.core.warehouse.audit import Status, Step
from indici_dagster.core.warehouse.catalog import existing_columns
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster.core.warehouse.row_counts import read_row_count

_LOADED_FILES = (
    f"SELECT DISTINCT source_file FROM {AUDIT_LOG} "
    "WHERE dataset = %s AND step = %s AND status = ANY(%s)"
)
"""The files of a dataset that loaded into staging."""
_LOADED = [Status.SUCCESS.value, Status.STATIC.value]


@dataclass(frozen=True)
class TableFacts:
    """One table as the warehouse holds it; `columns` empty when it does not exist yet."""

    schema: str
    table: str
    columns: tuple[tuple[str, str], ...] = ()
    rows: int = 0

    @property
    def exists(self) -> bool:
        """Whether the table exists."""
        return bool(self.columns)


@dataclass(frozen=True)
class DatasetFacts:
    """A dataset's tables (staging, rpt, and any more, such as rpt history) and its newest
    loaded file."""

    tables: tuple[TableFacts, ...] = ()
    newest_file: str | None = None
    newest_ts: datetime | None = None


def dataset_facts(
    warehouse: Warehouse, rule: Rule, tables: tuple[tuple[str, str], ...] = ()
) -> DatasetFacts:
    """The facts of `rule`'s staging and rpt tables (and of `tables`, more (schema, table)
    pairs), read in one read-only transaction; row counts from the counters the pipeline
    keeps, so no table is scanned."""
    wanted = ((STAGING_SCHEMA, rule.table), (RPT_SCHEMA, rule.table), *tables)
    with warehouse.connection() as connection, connection.cursor() as cursor:
        found = []
        for schema, table in wanted:
            columns = tuple(existing_columns(cursor, schema, table).items())
            rows = read_row_count(cursor, schema, table) if columns else 0
            found.append(TableFacts(schema, table, columns, rows))
        cursor.execute(_LOADED_FILES, (rule.dataset, Step.STAGING.value, _LOADED))
        names = [name for (name,) in cursor.fetchall()]
        connection.rollback()
    newest = max(
        (parsed for name in names if (parsed := try_parse_file_name(name, warehouse.timezone))),
        key=lambda parsed: (parsed.source_ts, parsed.file_name),
        default=None,
    )
    if newest is None:
        return DatasetFacts(tuple(found))
    return DatasetFacts(tuple(found), newest.file_name, newest.source_ts)
