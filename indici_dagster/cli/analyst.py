"""`indici analyst rotate-key`: a new pseudonym key for the analyst's views."""

import argparse
import os
import sys

from indici_dagster.cli.admin_dsn import HELP as ADMIN_DSN_HELP
from indici_dagster.cli.admin_dsn import admin_dsn as admin_dsn_of
from indici_dagster.core.settings import Settings
from indici_dagster.core.warehouse.dsn import describe_dsn


def rotate_key(args: argparse.Namespace, settings: Settings) -> int:
    """Replace the pseudonym key (as an administrator): every analyst pseudonym changes at once.
    The new key comes from INDICI_PSEUDONYM_KEY, or is generated; it is never printed."""
    from indici_dagster.core.admin.bootstrap import BootstrapError
    from indici_dagster.core.admin.bootstrap import rotate_key as rotate

    admin_dsn = admin_dsn_of(args, settings)
    try:
        action = rotate(admin_dsn, os.environ.get("INDICI_PSEUDONYM_KEY") or None)
    except BootstrapError as error:
        print(f"rotate-key stopped, nothing changed: {error}", file=sys.stderr)
        return 1
    print(f"{action} in {describe_dsn(admin_dsn, 'INDICI_ADMIN_DSN')}")
    return 0


def add_analyst_commands(commands: argparse._SubParsersAction) -> None:
    """Add `analyst rotate-key` to the `indici` command."""
    analyst = commands.add_parser("analyst", help="the analyst role's pseudonym key")
    analyst_commands = analyst.add_subparsers(dest="analyst_command", required=True)
    rotate = analyst_commands.add_parser(
        "rotate-key",
        help="replace the pseudonym key: every pseudonym changes at once (as an administrator)",
    )
    rotate.add_argument("--admin-dsn", help=ADMIN_DSN_HELP)
    rotate.set_defaults(handler=rotate_key)
