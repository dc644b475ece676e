"""What every `indici` command reads first: the project's settings from the environment and
from `.env`, as far as `.env` may give them."""

import contextlib
import io
import os
import stat
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from indici_dagster.cli.errors import CliError
from indici_dagster.core.embedded.server import embedded_dsn, paths_for
from indici_dagster.core.pipeline_names import AUDIT_LOG
from indici_dagster.core.settings import PG_DIR, PG_DSN, Settings
from indici_dagster.core.text import printable
from indici_dagster.core.warehouse.dsn import connect, describe_dsn

PROJECT_PREFIXES = ("INDICI_", "DAGSTER_PG_")
PROJECT_NAMES = frozenset(
    {
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "PGSSLMODE",
        "PGPASSFILE",
    }
)
"""The names `.env` may set besides `INDICI_*` and `DAGSTER_PG_*`: the AWS variables the README
names, libpq's TLS mode and passfile."""


def is_project_setting(name: str) -> bool:
    """Whether `.env` may set `name`: one of the project's settings."""
    return name.startswith(PROJECT_PREFIXES) or name in PROJECT_NAMES


@dataclass(frozen=True)
class ProjectEnv:
    """What `.env` gave: the settings applied, and the other names it holds (ignored)."""

    path: Path | None = None
    applied: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()


def read_env_file(path: Path) -> dict[str, str | None]:
    """The variables of `.env` at `path`, read only if it is a regular file of this user that
    no one else may write (a symlink too must be this user's); else a one-line `CliError`."""
    shown = printable(str(path))
    me = os.geteuid()
    link = path.lstat()
    no_follow = 0 if stat.S_ISLNK(link.st_mode) else os.O_NOFOLLOW  # not swapped for a link
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | no_follow)
    except OSError as error:
        raise CliError(f"cannot read {shown}: {error.strerror}") from None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise CliError(f"{shown} is not a regular file: refusing to read it")
        for owner in (link.st_uid, info.st_uid):
            if owner != me:
                raise CliError(
                    f"{shown} belongs to user id {owner}, not to you (user id {me}): refusing "
                    "to read it; a .env only you wrote can set the project's settings"
                )
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise CliError(
                f"{shown} is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}): "
                "refusing to read it; run chmod 600 .env"
            )
        content = handle.read()
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{shown} is not UTF-8 text: refusing to read it") from None
    return dotenv_values(stream=io.StringIO(text))


def load_project_env(
    folder: Path | None = None, environ: MutableMapping[str, str] = os.environ
) -> ProjectEnv:
    """Apply the project's settings from `.env` in `folder` (default: the current folder).

    Like `dagster dev`, a value in `.env` replaces the variable in the environment and a name
    without a value is skipped; unlike it, only the project's settings (`is_project_setting`)
    are applied, and a `.env` that is not this user's, or that others may write, is refused
    (`read_env_file`). The other names are returned as ignored, never applied.
    """
    path = (folder or Path.cwd()) / ".env"
    if (not path.exists() and not path.is_symlink()) or path.is_dir():
        return ProjectEnv()  # a folder named .env (often a virtualenv) is no settings file
    values = {name: value for name, value in read_env_file(path).items() if value is not None}
    applied = {name: value for name, value in values.items() if is_project_setting(name)}
    environ.update(applied)
    ignored = sorted(name for name in values if name not in applied)
    return ProjectEnv(path, tuple(sorted(applied)), tuple(ignored))


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
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (AUDIT_LOG,))
        present = cursor.fetchone()[0]
        connection.rollback()
    if not present:
        raise CliError(
            f"no audit log in {describe_dsn(dsn)}: nothing has been loaded into this database yet"
        )
