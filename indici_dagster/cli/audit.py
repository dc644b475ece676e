"""`indici audit FILE`: every audit row of a file, with a header and every count, and what the
ledger holds for it. FILE is a bare name, a path (`landing/2026-01-02/<name>`) or an S3 URI."""

import argparse

from indici_dagster.cli.context import require_catalog, warehouse_dsn
from indici_dagster.cli.errors import CliError
from indici_dagster.core.filenames import base_name
from indici_dagster.core.quality.queries import FILE_HISTORY_COLUMNS, WarehouseQueries
from indici_dagster.core.settings import Settings
from indici_dagster.core.text import printable
from indici_dagster.core.warehouse.dsn import describe_dsn
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster.core.warehouse.ledger import LEDGER_COLUMNS, file_states


def file_name_of(given: str) -> str:
    """The file name `indici audit` looks up: the last segment of a path or S3 URI (the audit
    log and the ledger record files by name; each row shows its key)."""
    name = base_name(given.removeprefix("s3://"))
    if not name:
        raise CliError(f"{printable(given)} names a folder, not a file", exit_code=2)
    return name


def audit(args: argparse.Namespace, settings: Settings) -> int:
    """Print every audit row for a file, step by step, under a header naming each column
    (every count, `rows_unchanged` included), then its ledger rows and whether it still needs
    attention (read-only)."""
    name = file_name_of(args.file)
    dsn = warehouse_dsn(settings)
    require_catalog(dsn)
    warehouse = Warehouse(dsn, settings.timezone)
    rows = WarehouseQueries(warehouse).file_history(name)
    with warehouse.connection() as connection, connection.cursor() as cursor:
        states = file_states(cursor, name)  # what the ledger holds, attention included
    if not rows and not states:
        print(f"no audit rows for {printable(name)} in {describe_dsn(dsn)}")
        return 1
    if rows:
        print(" | ".join(FILE_HISTORY_COLUMNS))
    for row in rows:
        print(" | ".join("" if value is None else printable(str(value)) for value in row))
    if states:
        print(" | ".join(LEDGER_COLUMNS))
    for line in states:
        print(line)
    return 0


def add_audit_command(commands: argparse._SubParsersAction) -> None:
    """Add `indici audit FILE`."""
    history = commands.add_parser("audit", help="what happened to a file, step by step")
    history.add_argument(
        "file",
        help="file name, path or S3 URI, e.g. Patients_20261124_021503.parquet or "
        "s3://bucket/landing/Patients_20261124_021503.parquet",
    )
    history.set_defaults(handler=audit)
