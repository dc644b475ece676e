"""What every `indici` command reads first: the same configuration `dagster dev` reads."""

import contextlib
import os
from collections.abc import MutableMapping
from pathlib import Path

from dotenv import dotenv_values

from indici_dagster.cli.errors import CliError
from indici_dagster.core.dsn import connect, describe_dsn
from indici_dagster.core.embedded import embedded_dsn, paths_for
from indici_dagster.core.settings import PG_DIR, PG_DSN, Settings


def load_project_env(
    folder: Path | None = None, environ: MutableMapping[str, str] = os.environ
) -> list[str]:
    """Apply `.env` in `folder` (default: the current folder) exactly as `dagster dev` does.

    `dagster dev` reads `.env` from the folder it runs in with python-dotenv and sets every
    variable it names, over a value already in the environment (dagster/_cli/utils.py,
    `_inject_local_env_file`); variables without a value are skipped. Returns the names set.
    """
    path = (folder or Path.cwd()) / ".env"
    if not path.is_file():
        return []
    values = {name: value for name, value in dotenv_values(path).items() if value is not None}
    environ.update(values)
    return sorted(values)


def warehouse_dsn(settings: Settings) -> str:
    """The warehouse's DSN for a command; never creates a new, empty embedded server.

    An embedded server whose data exists but is stopped is started (its data is what the
    command wants to see); a missing one is a `CliError` saying where it looked.
    """
    if not settings.uses_embedded_server:
        return settings.pg_dsn  # type: ignore[return-value]
    paths = paths_for(settings.pg_dir)
    if not paths.has_cluster:
        raise CliError(
            f"no database: the embedded server's folder {paths.data_dir} ({PG_DIR}) holds none, "
            f"so nothing has been loaded on this machine yet (run dagster dev, or set {PG_DSN} "
            "to the warehouse)"
        )
    return embedded_dsn(paths.data_dir)


def require_catalog(dsn: str) -> None:
    """Fail with one line unless the database holds the pipeline's audit log (read-only)."""
    with (
        contextlib.closing(connect(dsn, connect_timeout=5)) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT to_regclass('indici_staging.auditlog') IS NOT NULL")
        present = cursor.fetchone()[0]
        connection.rollback()
    if not present:
        raise CliError(
            f"no audit log in {describe_dsn(dsn)}: nothing has been loaded into this database yet"
        )
