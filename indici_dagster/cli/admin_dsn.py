"""The administrator's DSN of `indici bootstrap` and `indici analyst rotate-key`.

`--admin-dsn` or `INDICI_ADMIN_DSN`; the word `embedded` names the laptop database's superuser
(as `indici db psql --role superuser` logs in), so bootstrapping an analyst on the laptop needs
no hand-built DSN: its socket folder and passfile are indici's to find.
"""

import argparse
import os

from indici_dagster.cli.context import warehouse_dsn
from indici_dagster.cli.errors import CliError
from indici_dagster.core.embedded.server import role_dsn
from indici_dagster.core.settings import PG_DSN, Settings

ADMIN_DSN = "INDICI_ADMIN_DSN"
EMBEDDED = "embedded"
HELP = f"administrator's DSN (default: {ADMIN_DSN}; '{EMBEDDED}': the laptop database's superuser)"


def admin_dsn(args: argparse.Namespace, settings: Settings) -> str:
    """The DSN to administer the warehouse with: `--admin-dsn`, else `INDICI_ADMIN_DSN`; for
    `embedded`, the laptop server's superuser (a stopped server with data is started, a missing
    one is never created). Raises `CliError` when neither is given, or for `embedded` while
    `INDICI_PG_DSN` names another warehouse."""
    given = (args.admin_dsn or os.environ.get(ADMIN_DSN, "")).strip()
    if not given:
        raise CliError(
            f"give the administrator's DSN with --admin-dsn or {ADMIN_DSN} "
            f"('{EMBEDDED}' for the laptop database)"
        )
    if given != EMBEDDED:
        return given
    if not settings.uses_embedded_server:
        raise CliError(
            f"--admin-dsn {EMBEDDED} names the laptop database, but {PG_DSN} names another "
            "warehouse: give that warehouse's administrator DSN"
        )
    warehouse_dsn(settings)  # starts a stopped server, never creates an empty one
    return role_dsn(settings.pg_dir, "superuser")
