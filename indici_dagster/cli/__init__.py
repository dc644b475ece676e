"""The `indici` command: rules, sample data, the audit trail, `doctor` and the laptop database."""

import argparse
import sys
from collections.abc import Sequence
from datetime import date

from indici_dagster.cli.context import load_project_env, require_catalog, warehouse_dsn
from indici_dagster.cli.db import add_db_commands
from indici_dagster.cli.doctor import doctor
from indici_dagster.cli.errors import CliError, OneLineArgumentParser, one_line
from indici_dagster.cli.infra import add_infra_commands
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
from indici_dagster.core.rules.model import parse_rules
from indici_dagster.core.rules.store import (
    DYNAMODB_SCHEME,
    load_rules,
    read_dynamodb_rules,
    read_rules_file,
    write_dynamodb_rules,
    write_rules_file,
)
from indici_dagster.core.sample.data import write_sample_files
from indici_dagster.core.settings import Settings, load_settings
from indici_dagster.core.storage.open_storage import open_storage
from indici_dagster.core.text import printable
from indici_dagster.core.warehouse.dsn import describe_dsn
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster.core.warehouse.ledger import file_states


def _rules_location(settings: Settings, given: str | None) -> str | None:
    return given or settings.rules


def _dynamodb_table(settings: Settings, given: str | None) -> str:
    if given:
        return given
    if settings.rules and settings.rules.startswith(DYNAMODB_SCHEME):
        return settings.rules[len(DYNAMODB_SCHEME) :]
    raise CliError("name the DynamoDB table with --table or set INDICI_RULES=dynamodb://<table>")


def rules_validate(args: argparse.Namespace, settings: Settings) -> int:
    """Check a rules file (or table) and list its datasets."""
    rules = load_rules(_rules_location(settings, args.path))
    for rule in rules.values():
        kind = "static" if rule.is_static else f"key ({', '.join(rule.primary_key)})"
        dataset, table = printable(rule.dataset), printable(rule.table)
        print(f"{dataset:<28} -> {table:<28} {len(rule.columns):>3} columns, {printable(kind)}")
    print(f"{len(rules)} rules are valid")
    return 0


def rules_push(args: argparse.Namespace, settings: Settings) -> int:
    """Validate a rules file, then copy it into DynamoDB."""
    rules = parse_rules(read_rules_file(args.path))
    table = _dynamodb_table(settings, args.table)
    count = write_dynamodb_rules(rules, table, replace=args.replace)
    print(f"pushed {count} rules to DynamoDB table {table}")
    return 0


def rules_pull(args: argparse.Namespace, settings: Settings) -> int:
    """Copy the rules in DynamoDB into a YAML file (validated first)."""
    table = _dynamodb_table(settings, args.table)
    rules = parse_rules(read_dynamodb_rules(table))
    write_rules_file(rules, args.output)
    print(f"pulled {len(rules)} rules from DynamoDB table {table} into {args.output}")
    return 0


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


def audit(args: argparse.Namespace, settings: Settings) -> int:
    """Print every audit row for a file, step by step, and whether it still needs attention
    (read-only)."""
    dsn = warehouse_dsn(settings)
    require_catalog(dsn)
    warehouse = Warehouse(dsn, settings.timezone)
    rows = WarehouseQueries(warehouse).file_history(args.file)
    with warehouse.connection() as connection, connection.cursor() as cursor:
        states = file_states(cursor, args.file)  # what the ledger holds, attention included
    if not rows and not states:
        print(f"no audit rows for {printable(args.file)} in {describe_dsn(dsn)}")
        return 1
    for row in rows:
        print(" | ".join("" if value is None else printable(str(value)) for value in row))
    for line in states:
        print(line)
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
    admin_dsn = args.admin_dsn or os.environ.get("INDICI_ADMIN_DSN", "").strip()
    if not admin_dsn:
        raise CliError("give the administrator's DSN with --admin-dsn or INDICI_ADMIN_DSN")
    try:
        actions = bootstrap_database(
            admin_dsn,
            writer=args.writer,
            reader=args.reader,
            writer_password=os.environ.get("INDICI_WRITER_PASSWORD") or None,
            reader_password=os.environ.get("INDICI_READER_PASSWORD") or None,
            reader_limits=reader_limits,
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
    add_infra_commands(commands)

    rules = commands.add_parser("rules", help="check and copy transformation rules")
    rule_commands = rules.add_subparsers(dest="rules_command", required=True)
    validate = rule_commands.add_parser("validate", help="check a rules file or table")
    validate.add_argument("path", nargs="?", help="YAML file or dynamodb://table")
    validate.set_defaults(handler=rules_validate)
    push = rule_commands.add_parser("push", help="copy a YAML rules file into DynamoDB")
    push.add_argument("path", help="YAML rules file")
    push.add_argument("--table", help="DynamoDB table (default: from INDICI_RULES)")
    push.add_argument("--replace", action="store_true", help="delete rules not in the file")
    push.set_defaults(handler=rules_push)
    pull = rule_commands.add_parser("pull", help="copy the rules in DynamoDB into a YAML file")
    pull.add_argument("--table", help="DynamoDB table (default: from INDICI_RULES)")
    pull.add_argument("--output", "-o", default="rules.yaml", help="file to write")
    pull.set_defaults(handler=rules_pull)

    sample = commands.add_parser("sample-data", help="write fake indici files to landing")
    sample.add_argument("--landing", help="where to write (default: INDICI_LANDING)")
    sample.add_argument("--days", type=int, default=3, help="how many days of files")
    sample.add_argument("--end-date", help="last day, YYYY-MM-DD (default: yesterday)")
    sample.set_defaults(handler=sample_data)

    history = commands.add_parser("audit", help="what happened to a file, step by step")
    history.add_argument("file", help="file name, e.g. Patients_20261124_021503.parquet")
    history.set_defaults(handler=audit)

    counting = commands.add_parser(
        "recount", help="count tables in full after rows were changed by hand"
    )
    counting.add_argument("table", nargs="*", help="table names (default: every table)")
    counting.set_defaults(handler=recount)

    setup = commands.add_parser(
        "bootstrap", help="create least-privilege roles and schemas (run as an administrator)"
    )
    setup.add_argument("--admin-dsn", help="administrator's DSN (default: INDICI_ADMIN_DSN)")
    setup.add_argument("--writer", default=DEFAULT_WRITER, help="the pipeline's role")
    setup.add_argument("--reader", default=DEFAULT_READER, help="the reporting role (rpt only)")
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
