"""Dagster resources: thin configurable wrappers that hand the core its storage and warehouse."""

import os

from dagster import ConfigurableResource, EnvVar
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr

from indici_dagster.core import settings as env
from indici_dagster.core.embedded import embedded_dsn
from indici_dagster.core.open_storage import open_storage
from indici_dagster.core.settings import EMBEDDED, Settings
from indici_dagster.core.storage import Storage
from indici_dagster.core.warehouse import Warehouse


class FileStorageResource(ConfigurableResource):
    """A file location: `s3://bucket/prefix` (through dagster-aws's S3 client) or a local folder."""

    location: str
    s3: S3Resource

    def get_storage(self) -> Storage:
        """The storage for `location`; S3 clients honour the standard AWS variables."""
        client = self.s3.get_client() if self.location.startswith("s3://") else None
        return open_storage(self.location, client)


_CATALOG_READY: set[str] = set()
"""DSNs whose catalog this process has ensured: the DDL runs once per process, not per tick."""


class WarehouseResource(ConfigurableResource):
    """The Postgres warehouse: `dsn`, or (unset or `embedded`) the server kept in `embedded_dir`.

    Whether the embedded server may be used is decided, and refused for S3 locations, by
    `Settings` when the code location loads.
    """

    dsn: str | None = None
    embedded_dir: str = Settings.pg_dir
    timezone: str = Settings.timezone
    max_new_columns: int = Settings.max_new_columns
    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def get_warehouse(self) -> Warehouse:
        """A `Warehouse` with its catalog (schemas, audit log, ledger) in place (ensured once
        per process and DSN)."""
        if self._warehouse is None:
            embedded = self.dsn is None or self.dsn == EMBEDDED
            dsn = embedded_dsn(self.embedded_dir) if embedded else self.dsn
            warehouse = Warehouse(dsn, self.timezone, max_new_columns=self.max_new_columns)
            if dsn not in _CATALOG_READY:
                warehouse.ensure_catalog()
                _CATALOG_READY.add(dsn)
            self._warehouse = warehouse
        return self._warehouse


def _from_env(name: str, value: str | None) -> str | EnvVar | None:
    """Reference the variable when `value` came from it, so the UI shows its name, not its value."""
    return EnvVar(name) if value and os.environ.get(name, "").strip() == value else value


def build_resources(settings: Settings) -> dict[str, ConfigurableResource]:
    """The resources every asset, check and sensor uses, configured from `settings`."""
    s3 = S3Resource(max_attempts=10, region_name=settings.aws_region)
    return {
        "landing": FileStorageResource(location=_from_env(env.LANDING, settings.landing), s3=s3),
        "partitioned": FileStorageResource(
            location=_from_env(env.PARTITIONED, settings.partitioned), s3=s3
        ),
        "warehouse": WarehouseResource(
            dsn=_from_env(env.PG_DSN, settings.pg_dsn),
            embedded_dir=settings.pg_dir,
            timezone=settings.timezone,
            max_new_columns=settings.max_new_columns,
        ),
    }
