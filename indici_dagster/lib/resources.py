"""Dagster resources: thin configurable wrappers that hand the core its storage and warehouse.

Every field (locations, DSN, limits) is pinned to the deployment's settings, the ones the code
location loaded from its environment (`indici_dagster.lib.pinned`): a run whose config sets one
differently fails before any step reads or writes anything, naming the field, never the value.
"""

from dagster import Failure
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr

from indici_dagster.core.embedded.server import embedded_dsn
from indici_dagster.core.settings import EMBEDDED, Settings
from indici_dagster.core.storage.base import Storage
from indici_dagster.core.storage.open_storage import open_storage
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster.lib.pinned import Pin, PinnedResource, from_settings


class FileStorageResource(PinnedResource):
    """A file location: `s3://bucket/prefix` (through dagster-aws's S3 client) or a local folder."""

    location: str | None = None
    s3: S3Resource

    def get_storage(self) -> Storage:
        """The storage for `location`; S3 clients honour the standard AWS variables."""
        if self.location is None:
            raise Failure(description="the storage resource has no location", allow_retries=False)
        client = self.s3.get_client() if self.location.startswith("s3://") else None
        return open_storage(self.location, client)


_CATALOG_READY: set[str] = set()
"""DSNs whose catalog this process has ensured: the DDL runs once per process, not per tick."""


class WarehouseResource(PinnedResource):
    """The Postgres warehouse: `dsn`, or (unset or `embedded`) the server kept in `embedded_dir`.

    Whether the embedded server may be used is decided, and refused for S3 locations, by
    `Settings` when the code location loads.
    """

    dsn: str | None = None
    embedded_dir: str | None = None
    timezone: str | None = None
    max_new_columns: int | None = None
    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def get_warehouse(self) -> Warehouse:
        """A `Warehouse` with its catalog (schemas, audit log, ledger) in place (ensured once
        per process and DSN)."""
        if self._warehouse is None:
            # the `or` defaults serve only a resource built directly (tests), never a run's:
            # in a run, `PinnedResource.create_resource` filled every field from the deployment
            embedded = self.dsn is None or self.dsn == EMBEDDED
            dsn = embedded_dsn(self.embedded_dir or Settings.pg_dir) if embedded else self.dsn
            warehouse = Warehouse(
                dsn,
                self.timezone or Settings.timezone,
                max_new_columns=self.max_new_columns or Settings.max_new_columns,
            )
            if dsn not in _CATALOG_READY:
                warehouse.ensure_catalog()
                _CATALOG_READY.add(dsn)
            self._warehouse = warehouse
        return self._warehouse


def resource_pins(settings: Settings) -> dict[str, Pin]:
    """The storage and warehouse resources as `settings` configure them."""
    s3 = {"s3": S3Resource(max_attempts=10, region_name=settings.aws_region)}
    warehouse = from_settings(
        settings,
        {
            "dsn": "pg_dsn",
            "embedded_dir": "pg_dir",
            "timezone": "timezone",
            "max_new_columns": "max_new_columns",
        },
    )
    return {
        "landing": Pin(FileStorageResource, *from_settings(settings, {"location": "landing"}), s3),
        "partitioned": Pin(
            FileStorageResource, *from_settings(settings, {"location": "partitioned"}), s3
        ),
        "warehouse": Pin(WarehouseResource, *warehouse),
    }
