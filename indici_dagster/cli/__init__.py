"""The `indici` command: rules, sample data, the audit trail, `doctor` and the laptop database."""

import argparse
import sys
from collections.abc import Sequence
from datetime import date

from indici_dagster.cli.admin_dsn import HELP as ADMIN_DSN_HELP
from indici_dagster.cli.admin_dsn import admin_dsn as admin_dsn_of
from indici_dagster.cli.analyst import add_analyst_commands
from indici_dagster.cli.audit import add_audit_command
from indici_dagster.cli.context import load_project_env, require_catalog, warehouse_dsn
from indici_dagster.cli.db import add_db_commands
from indici_dagster.cli.docs import add_docs_command
from indici_dagster.cli.doctor import doctor
from indici_dagster.cli.errors import CliError, OneLineArgumentParser, one_line
from indici_dagster.cli.history import add_history_commands
from indici_dagster.cli.infra import add_infra_commands
from indici_dagster.cli.restore import add_restore_command
from indici_dagster.cli.rules import add_rules_commands
from indici_dagster.cli.status import add_status_command
from indici_dagster.core.admin.bootstrap import DEFAULT_READER, DEFAULT_WRITER
from indici_dagster.core.admin.session_limits import (
    DEFAULT_READER_LIMITS,
    SessionLimitError,
    SessionLimits,
    parse_connection_limit,
    parse_duration,
)
from indici_dagster.core.naming import InvalidIdentifierError, validate_identifier
from indici_dagster.core.quality.queries import WarehouseQueries
from indici_dagster.core.rules.store import load_rules
from indici_dagster.core.sample.data import write_sample_files
from indici_dagster.core.settings import Settings, load_settings
from indici_dagster.core.storage.open_storage import open_storage
from indici_dagster.core.text import printable
from indici_dagster.core.warehouse.dsn import describe_dsn
from indici_dagster.core.warehouse.facade import Warehouse


def sample_data(args: argparse.Namespace, settings: Settings) -> int:
    """Write a few days of fake indici files into the landing location."""
    storage = open_storage(args.landing or settings.landing)
    keys = write_sample_files(
        storage,
        load_rules(settings.rules),
        timezone=settings.timezone,
        days=args.days,
        end_date=date.fromisoformat(args.end_date) if args.end_date else None,
    )
    print(f"wrote {len(keys)} files to {printable(storage.url)}")
    return 0


def recount(args: argparse.Namespace, settings: Settings) -> int:
    """Count staging and rpt tables in full and reset the row counts the pipeline keeps.

    Only needed after rows were changed by hand: every load and upsert keeps them exact.
    """
    dsn = warehouse_dsn(settings)
    require_catalog(dsn)
    warehouse = Warehouse(dsn, settings.timezone)
    existing = WarehouseQueries(warehouse).data_tables()
    for table in args.table:
        try:
            validate_identifier(table)
        except InvalidIdentifierError:
            raise CliError(f"{printable(table)} is not a valid table name") from None
        if table not in existing:
            raise CliError(f"no table {table} in indici_staging or rpt of {describe_dsn(dsn)}")
    for table in args.table or existing:
        counts = warehouse.recount_rows(table)
        print(" | ".join([table, *(f"{schema} {rows}" for schema, rows in counts.items())]))
    return 0


def bootstrap(args: argparse.Namespace, settings: Settings) -> int:
    """Create the least-privilege writer and reader roles and the schemas (as an administrator).

    The admin DSN comes from --admin-dsn or INDICI_ADMIN_DSN, the passwords (optional) from
    INDICI_WRITER_PASSWORD / INDICI_READER_PASSWORD; no password is ever printed. The reader's
    session limits come from --reader-idle-timeout, --reader-statement-timeout and
    --reader-connection-limit, checked before anything connects.
    """
    import os

    import psycopg2

    from indici_dagster.core.admin.bootstrap import BootstrapError, bootstrap_database

    reader_limits = _reader_limits(args)
    admin_dsn = admin_dsn_of(args, settings)
    try:
        actions = bootstrap_database(
            admin_dsn,
            writer=args.writer,
            reader=args.reader,
            writer_password=os.environ.get("INDICI_WRITER_PASSWORD") or None,
            reader_password=os.environ.get("INDICI_READER_PASSWORD") or None,
            reader_limits=reader_limits,
            analyst=args.analyst,
            analyst_password=os.environ.get("INDICI_ANALYST_PASSWORD") or None,
            pseudonym_key=os.environ.get("INDICI_PSEUDONYM_KEY") or None,
        )
    except BootstrapError as error:
        print(f"bootstrap stopped, nothing changed: {error}", file=sys.stderr)
        return 1
    except psycopg2.Error as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        print(f"bootstrap failed, nothing changed: {first}", file=sys.stderr)
        return 1
    for action in actions:
        print(action)
    print(f"bootstrapped {describe_dsn(admin_dsn, 'INDICI_ADMIN_DSN')}")
    return 0


def _reader_limits(args: argparse.Namespace) -> SessionLimits:
    """The reader's session limits from the bootstrap flags; a bad one is a one-line error
    naming its flag (exit 2)."""
    try:
        return SessionLimits(
            parse_duration(args.reader_idle_timeout, "--reader-idle-timeout"),
            parse_duration(args.reader_statement_timeout, "--reader-statement-timeout"),
            parse_connection_limit(args.reader_connection_limit, "--reader-connection-limit"),
        )
    except SessionLimitError as error:
        raise CliError(str(error), exit_code=2) from None


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = OneLineArgumentParser(prog="indici", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show a traceback on failure")
    parser.set_defaults(needs_settings=True)
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("doctor", help="check every setting and connection")
    check.set_defaults(handler=doctor, needs_settings=False)
    add_db_commands(commands)
    add_history_commands(commands)
    add_infra_commands(commands)

    add_rules_commands(commands)
    add_docs_command(commands)
    add_analyst_commands(commands)

    sample = commands.add_parser("sample-data", help="write fake indici files to landing")
    sample.add_argument("--landing", help="where to write (default: INDICI_LANDING)")
    sample.add_argument("--days", type=int, default=3, help="how many days of files")
    sample.add_argument("--end-date", help="last day, YYYY-MM-DD (default: yesterday)")
    sample.set_defaults(handler=sample_data)

    add_audit_command(commands)
    add_status_command(commands)
    add_restore_command(commands)

    counting = commands.add_parser(
        "recount", help="count tables in full after rows were changed by hand"
    )
    counting.add_argument("table", nargs="*", help="table names (default: every table)")
    counting.set_defaults(handler=recount)

    setup = commands.add_parser(
        "bootstrap", help="create least-privilege roles and schemas (run as an administrator)"
    )
    setup.add_argument("--admin-dsn", help=ADMIN_DSN_HELP)
    setup.add_argument("--writer", default=DEFAULT_WRITER, help="the pipeline's role")
    setup.add_argument("--reader", default=DEFAULT_READER, help="the reporting role (rpt only)")
    setup.add_argument(
        "--analyst",
        help="also an analyst role reading only rpt_analyst (NHI numbers pseudonymised); "
        "password from INDICI_ANALYST_PASSWORD, key from INDICI_PSEUDONYM_KEY or generated",
    )
    limits = DEFAULT_READER_LIMITS
    setup.add_argument(
        "--reader-idle-timeout",
        default=limits.idle_in_transaction_timeout,
        help="end a reader session idle in a transaction this long (default: %(default)s)",
    )
    setup.add_argument(
        "--reader-statement-timeout",
        default=limits.statement_timeout,
        help="cancel a reader statement running this long (default: %(default)s)",
    )
    setup.add_argument(
        "--reader-connection-limit",
        default=str(limits.connection_limit),
        help="reader sessions allowed at once (default: %(default)s)",
    )
    setup.set_defaults(handler=bootstrap)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `indici` command with the project's settings from the environment and `.env`
    (only the project's names, and only from a `.env` of this user that others cannot write).

    Any failure is one line on stderr and a non-zero exit; `--debug` shows the traceback.
    """
    args = build_parser().parse_args(argv)
    try:
        args.project_env = load_project_env()
        settings = load_settings() if args.needs_settings else None
        return args.handler(args, settings)
    except (Exception, KeyboardInterrupt) as error:
        if args.debug:
            raise
        message, code = one_line(error)
        print(f"indici: {message}", file=sys.stderr)
        return code
