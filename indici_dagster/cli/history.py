"""`indici as-of TABLE TIME` and `indici history rebuild TABLE`: rpt as it stood at any time.

`as-of` reads `rpt.<table>_as_of(time)` (the business columns, one row per key that had a
version then) and prints it as CSV, or writes it to a CSV or Parquet file. `history rebuild`
rebuilds a table's history from staging (`core.warehouse.history.rebuild_history`).
"""

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from indici_dagster.cli.context import require_catalog, warehouse_dsn
from indici_dagster.cli.errors import CliError
from indici_dagster.core.naming import InvalidIdentifierError, validate_identifier
from indici_dagster.core.pipeline_names import RPT_SCHEMA, as_of_function
from indici_dagster.core.rules.model import Rule
from indici_dagster.core.rules.store import load_rules
from indici_dagster.core.settings import Settings
from indici_dagster.core.text import printable
from indici_dagster.core.warehouse import history, history_sql
from indici_dagster.core.warehouse.catalog import DEFAULT_LOCK_TIMEOUT
from indici_dagster.core.warehouse.connections import Connections
from indici_dagster.core.warehouse.dsn import describe_dsn

BATCH = 10_000
"""Rows fetched from the server at a time (a server-side cursor: memory stays flat)."""

AS_OF_FORMS = "YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS][+HH:MM]"


def parse_as_of(text: str, timezone: str) -> datetime:
    """The as-of time a user typed: an ISO 8601 date (its start, 00:00) or date-time; without
    an offset it is wall-clock time in the pipeline's zone, as file names are. Raises
    `CliError` (exit 2) naming the argument and the forms it takes, never echoing it."""
    zone = ZoneInfo(timezone)
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=zone)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(
            f"the as-of TIME is not a date or date-time: use {AS_OF_FORMS} "
            f"(without an offset, in {timezone})",
            exit_code=2,
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _rule_of_table(settings: Settings, table: str) -> Rule:
    try:
        validate_identifier(table)
    except InvalidIdentifierError:
        raise CliError(f"{printable(table)} is not a valid table name", exit_code=2) from None
    rules = load_rules(settings.rules)
    for rule in rules.values():
        if rule.table == table:
            return rule
    raise CliError(
        f"no rule writes table {table} (the rules name the tables: indici rules validate)"
    )


def _plain(value: Any) -> Any:
    """A value as CSV and Parquet take it: json (dict, list) as its text."""
    return json.dumps(value) if isinstance(value, dict | list) else value


def _write_csv(out: TextIO, names: Sequence[str], batches: Iterator[list[tuple]]) -> int:
    writer = csv.writer(out)
    writer.writerow(names)
    count = 0
    for rows in batches:
        writer.writerows([[_plain(v) for v in row] for row in rows])
        count += len(rows)
    return count


def _write_parquet(path: Path, names: Sequence[str], batches: Iterator[list[tuple]]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: list[list[Any]] = [[] for _ in names]
    for rows in batches:
        for row in rows:
            for column, value in zip(columns, row, strict=True):
                column.append(_plain(value))
    table = pa.table({name: pa.array(values) for name, values in zip(names, columns, strict=True)})
    pq.write_table(table, path)
    return table.num_rows


def as_of(args: argparse.Namespace, settings: Settings) -> int:
    """Print `rpt.<table>` as it stood at TIME as CSV, or write it to --csv or --parquet FILE."""
    when = parse_as_of(args.time, settings.timezone)
    rule = _rule_of_table(settings, args.table)
    if rule.is_static:
        raise CliError(f"rule {rule.dataset}: a static dataset has no history")
    dsn = warehouse_dsn(settings)
    require_catalog(dsn)
    connections = Connections(dsn, settings.timezone)
    with connections.connection() as connection:
        with connection.cursor() as cursor:
            note = history.kept_off_note(cursor, rule)
            if not rule.history:
                raise CliError(note or f"rule {rule.dataset}: history: false, so no history")
            cursor.execute(
                "SELECT to_regprocedure(%s) IS NOT NULL",
                (f"{RPT_SCHEMA}.{as_of_function(rule.table)}(timestamptz)",),
            )
            if not cursor.fetchone()[0]:
                raise CliError(
                    f"no rpt.{as_of_function(rule.table)} in {describe_dsn(dsn)}: no file of "
                    f"{rule.dataset} has reached rpt yet"
                )
        with connection.cursor(name="indici_as_of") as cursor:
            cursor.itersize = BATCH
            cursor.execute(history_sql.select_as_of(rule.table, rule.primary_key), (when,))
            first = cursor.fetchmany(BATCH)
            names = [column.name for column in cursor.description]

            def batches() -> Iterator[list[tuple]]:
                rows = first
                while rows:
                    yield rows
                    rows = cursor.fetchmany(BATCH)

            if args.parquet or args.csv:
                target = Path(args.parquet or args.csv)
                partial = target.with_name(f".{target.name}.partial")
                if args.parquet:
                    count = _write_parquet(partial, names, batches())
                else:
                    with partial.open("w", newline="", encoding="utf-8") as out:
                        count = _write_csv(out, names, batches())
                os.replace(partial, target)
                print(
                    f"wrote {count} rows of rpt.{rule.table} as of {when.isoformat()} to {target}"
                )
            else:
                _write_csv(sys.stdout, names, batches())
        connection.rollback()
    return 0


def history_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild a table's history from staging, in one transaction."""
    rule = _rule_of_table(settings, args.table)
    dsn = warehouse_dsn(settings)
    require_catalog(dsn)
    try:
        rebuilt = history.rebuild_history(
            Connections(dsn, settings.timezone), rule, lock_timeout=DEFAULT_LOCK_TIMEOUT
        )
    except history.NoHistoryError as error:
        raise CliError(str(error)) from None
    print(
        f"rebuilt rpt.{rule.table}_history from staging: {rebuilt.current_rows} current rows "
        f"and {rebuilt.past_versions} past versions"
    )
    return 0


def add_history_commands(commands: argparse._SubParsersAction) -> None:
    """`indici as-of ...` and `indici history rebuild ...`."""
    at = commands.add_parser("as-of", help="an rpt table as it stood at a time (CSV or Parquet)")
    at.add_argument("table", help="the rpt table, e.g. patients")
    at.add_argument("time", help=f"{AS_OF_FORMS}; without an offset, in the pipeline's zone")
    out = at.add_mutually_exclusive_group()
    out.add_argument("--csv", metavar="FILE", help="write CSV to FILE (default: print it)")
    out.add_argument("--parquet", metavar="FILE", help="write Parquet to FILE")
    at.set_defaults(handler=as_of)

    kept = commands.add_parser("history", help="the history of rpt tables")
    kept_commands = kept.add_subparsers(dest="history_command", required=True)
    rebuild = kept_commands.add_parser(
        "rebuild", help="rebuild a table's history from staging, in one transaction"
    )
    rebuild.add_argument("table", help="the rpt table, e.g. patients")
    rebuild.set_defaults(handler=history_rebuild)
