"""Read-only questions that asset checks, metadata and the CLI ask of the warehouse."""

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor  # noqa: N812 - the class, named as a type

from indici_dagster.core import pipeline_names
from indici_dagster.core.db_errors import CleanError, classify, describe_database_error
from indici_dagster.core.filenames import parse_file_name
from indici_dagster.core.pipeline_names import PIPELINE_TABLES, RPT_PIPELINE_TABLES
from indici_dagster.core.quality.nhi import NhiCounts, NhiStatus, nhi_normalised_sql, nhi_status_sql
from indici_dagster.core.rules.model import Rule
from indici_dagster.core.types.registry import METADATA_NAMES
from indici_dagster.core.warehouse import sql as statements
from indici_dagster.core.warehouse.catalog import existing_columns
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster.core.warehouse.row_counts import read_row_count

AUDIT = statements.qualified(pipeline_names.STAGING_SCHEMA, pipeline_names.AUDIT_TABLE)
FILE_HISTORY_COLUMNS = (
    "logged_at",
    "step",
    "status",
    "partition_key",
    "rows_read",
    "rows_loaded",
    "rows_inserted",
    "rows_updated",
    "rows_unchanged",
    "rows_rejected",
    "run_id",
    "source_key",
    "message",
)
"""The audit columns `indici audit` prints for a file, in order: every count included."""
_OF_FILES = sql.SQL("_source_ts BETWEEN %s AND %s AND _source_file = ANY(%s)")
"""Rows of some files; the timestamp bounds let the `_source_ts` index find them."""


@dataclass(frozen=True)
class StagedFile:
    """What one file's rows in staging hold, counted by Postgres (never a value)."""

    rows: int
    null_keys: int
    """Rows with a NULL primary-key column (always 0 for static rules)."""
    nhi: dict[str, NhiCounts] = field(default_factory=dict)
    """Statuses of each of the rule's NHI columns."""


class WarehouseQueries:
    """Read-only questions the asset checks and metadata ask of the warehouse."""

    def __init__(self, warehouse: Warehouse) -> None:
        self._warehouse = warehouse

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Cursor]:
        """A cursor on a connection of its own; a database error leaves as a `CleanError`
        rebuilt from names (a query's error text could quote a value)."""
        with self._warehouse.connection() as connection:  # connecting says what failed itself
            try:
                with connection.cursor() as cursor:
                    yield cursor
            except psycopg2.Error as error:
                raise CleanError(describe_database_error(error), classify(error)) from None

    def _all(
        self, query: sql.Composable | str, params: object = None, *, hash_aggregate: bool = False
    ) -> list[tuple]:
        with self._cursor() as cursor:
            if hash_aggregate:
                # a freshly loaded table has no statistics yet, so the planner guesses a handful
                # of rows and picks a sort; sorting a million text values costs seconds
                cursor.execute("SET LOCAL enable_sort = off")
            cursor.execute(query, params)
            return cursor.fetchall()

    def _files(self, file_names: Sequence[str]) -> tuple:
        stamps = [parse_file_name(name, self._warehouse.timezone).source_ts for name in file_names]
        return min(stamps), max(stamps), list(file_names)

    def table_columns(self, schema: str, table: str) -> list[tuple[str, str]]:
        """(name, type) of each column of `schema.table`, in order; empty if it does not exist."""
        with self._cursor() as cursor:
            return list(existing_columns(cursor, schema, table).items())

    def data_tables(self) -> list[str]:
        """Names of the dataset tables in staging or rpt (not the pipeline's own, nor a
        history's table of past versions), sorted."""
        rows = self._all(
            "SELECT DISTINCT c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname IN (%s, %s) AND c.relkind IN ('r', 'p') "
            "AND NOT c.relname = ANY(%s) AND NOT (c.relname LIKE '%%\\_past' AND EXISTS ("
            "SELECT FROM pg_class v WHERE v.relnamespace = n.oid AND v.relkind = 'v' "
            "AND v.relname = left(c.relname, -5) || '_history')) ORDER BY 1",
            (
                pipeline_names.STAGING_SCHEMA,
                pipeline_names.RPT_SCHEMA,
                sorted(PIPELINE_TABLES | RPT_PIPELINE_TABLES),
            ),
        )
        return [name for (name,) in rows]

    def row_count(self, schema: str, table: str) -> int:
        """Rows in `schema.table` (0 if it does not exist), from the counter its writes keep."""
        with self._cursor() as cursor:
            return read_row_count(cursor, schema, table)

    def staged_files(self, rule: Rule, file_names: Sequence[str]) -> dict[str, StagedFile]:
        """Rows, rows with a NULL key and NHI statuses of each of these files, in one scan.

        Files with no rows in staging are absent. Everything is counted inside Postgres; no
        value leaves it.
        """
        if not file_names or not self.table_columns(pipeline_names.STAGING_SCHEMA, rule.table):
            return {}
        any_null = (
            sql.SQL(" OR ").join(
                sql.SQL("{} IS NULL").format(sql.Identifier(k)) for k in rule.primary_key
            )
            if rule.primary_key
            else sql.SQL("false")
        )
        nhi = [sql.Identifier(column) for column in rule.nhi_columns]
        normalised = [sql.Identifier(f"_nhi_{i}") for i in range(len(nhi))]
        # an NHI column repeats the same patients, so each distinct value is classified once
        per_value = sql.SQL(
            "SELECT _source_file, {normalised}count(*) AS _rows, "
            "count(*) FILTER (WHERE {any_null}) AS _null_keys "
            "FROM {table} WHERE {files} GROUP BY {groups}"
        ).format(
            normalised=sql.SQL("").join(
                sql.SQL("{} AS {}, ").format(nhi_normalised_sql(column), alias)
                for column, alias in zip(nhi, normalised, strict=True)
            ),
            any_null=any_null,
            table=statements.qualified(pipeline_names.STAGING_SCHEMA, rule.table),
            files=_OF_FILES,
            groups=sql.SQL(", ").join([sql.Identifier("_source_file"), *nhi]),
        )
        query = sql.SQL(
            "SELECT _source_file, {statuses}sum(_rows)::bigint, sum(_null_keys)::bigint "
            "FROM ({per_value}) per_value GROUP BY {groups}"
        ).format(
            statuses=sql.SQL("").join(
                sql.SQL("{}, ").format(nhi_status_sql(n)) for n in normalised
            ),
            per_value=per_value,
            groups=sql.SQL(", ").join(sql.SQL(str(i)) for i in range(1, len(nhi) + 2)),
        )
        files: dict[str, StagedFile] = {}
        counted = self._all(query, self._files(file_names), hash_aggregate=True)
        for name, *column_statuses, rows, null_keys in counted:
            seen = files.get(name) or StagedFile(0, 0, {c: NhiCounts() for c in rule.nhi_columns})
            files[name] = StagedFile(
                seen.rows + rows,
                seen.null_keys + null_keys,
                {
                    column: seen.nhi[column] + NhiCounts(**{NhiStatus(status).value: rows})
                    for column, status in zip(rule.nhi_columns, column_statuses, strict=True)
                },
            )
        return files

    def enforced_primary_key(self, schema: str, table: str) -> tuple[str, ...]:
        """The columns of the valid primary-key constraint on `schema.table`, in key order."""
        rows = self._all(
            "SELECT a.attname FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position) ON true "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
            "WHERE n.nspname = %s AND c.relname = %s AND i.indisprimary AND i.indisvalid "
            "ORDER BY k.position",
            (schema, table),
        )
        return tuple(name for (name,) in rows)

    def primary_key_problems(self, rule: Rule) -> tuple[int, int]:
        """(rows sharing a key with another row, rows with a NULL key column) in `rpt.<table>`.

        When Postgres enforces exactly the rule's key as the table's primary key, there can be
        neither, and the table is not scanned; otherwise every row is checked.
        """
        if rule.is_static or not self.table_columns(pipeline_names.RPT_SCHEMA, rule.table):
            return 0, 0
        if self.enforced_primary_key(pipeline_names.RPT_SCHEMA, rule.table) == rule.primary_key:
            return 0, 0
        key = sql.SQL(", ").join(sql.Identifier(k) for k in rule.primary_key)
        any_null = sql.SQL(" OR ").join(
            sql.SQL("{} IS NULL").format(sql.Identifier(k)) for k in rule.primary_key
        )
        query = sql.SQL(
            "SELECT coalesce(sum(n) FILTER (WHERE n > 1), 0), "
            "coalesce(sum(n) FILTER (WHERE has_null), 0) FROM ("
            "SELECT count(*) AS n, bool_or({any_null}) AS has_null FROM {rpt} GROUP BY {key}) k"
        ).format(
            any_null=any_null,
            rpt=statements.qualified(pipeline_names.RPT_SCHEMA, rule.table),
            key=key,
        )
        duplicates, nulls = self._all(query)[0]
        return int(duplicates), int(nulls)

    def audit_errors(self, run_id: str, dataset: str, step: str) -> list[tuple[str, str]]:
        """(file, message) of each file whose latest audit row of this run, for a dataset and
        step, is an error: a retried step that then loaded a file supersedes its interrupted try.
        """
        return self._all(
            sql.SQL(
                "SELECT source_file, message FROM (SELECT DISTINCT ON (source_file) id, "
                "source_file, status, message FROM {} WHERE run_id = %s AND dataset = %s "
                "AND step = %s ORDER BY source_file, id DESC) latest "
                "WHERE status = 'error' ORDER BY id"
            ).format(
                statements.qualified(pipeline_names.STAGING_SCHEMA, pipeline_names.AUDIT_TABLE)
            ),
            (run_id, dataset, step),
        )

    def file_history(self, file_name: str) -> list[tuple]:
        """Every audit row for a file (by base name or key), oldest first: the columns of
        `FILE_HISTORY_COLUMNS`, in that order."""
        return self._all(
            sql.SQL(
                "SELECT {} FROM {} WHERE source_file = %s OR source_key = %s ORDER BY id"
            ).format(
                sql.SQL(", ").join(map(sql.Identifier, FILE_HISTORY_COLUMNS)),
                statements.qualified(pipeline_names.STAGING_SCHEMA, pipeline_names.AUDIT_TABLE),
            ),
            (file_name, file_name),
        )

    def columns_not_in_rule(self, rule: Rule) -> list[str]:
        """Staging columns that came from files but that the rule does not name (schema drift)."""
        if rule.is_static:
            return []
        named = {c.name for c in rule.columns} | set(METADATA_NAMES)
        return [
            name
            for name, _ in self.table_columns(pipeline_names.STAGING_SCHEMA, rule.table)
            if name not in named
        ]

    def latest_audit_by_file(self, dataset: str, step: str, file_names: Sequence[str]) -> dict:
        """The newest audit row of `step` for each of these files of `dataset`, by file name.

        Each value maps column name to value (`status`, `rows_read`, `rows_loaded`,
        `rows_inserted`, `rows_updated`, `rows_unchanged`, `rows_rejected`).
        """
        if not file_names:
            return {}
        columns = [
            "status",
            "rows_read",
            "rows_loaded",
            "rows_inserted",
            "rows_updated",
            "rows_unchanged",
            "rows_rejected",
        ]
        rows = self._all(
            sql.SQL(
                "SELECT DISTINCT ON (source_file) source_file, {} FROM {} "
                "WHERE dataset = %s AND step = %s AND source_file = ANY(%s) "
                "ORDER BY source_file, id DESC"
            ).format(sql.SQL(", ").join(sql.Identifier(c) for c in columns), AUDIT),
            (dataset, step, list(file_names)),
        )
        return {row[0]: dict(zip(columns, row[1:], strict=True)) for row in rows}
