"""Dagster resources: thin configurable wrappers that hand the core its storage and warehouse.

Every field of these resources (locations, DSN, limits) is pinned to the deployment's settings,
the ones the code location loaded from its environment. Run config cannot change them: a run
whose config sets a field differently fails before any step reads or writes anything, naming
the field (`warehouse.dsn`), never the value. A field the run config leaves out takes the
deployment's value: Dagster fills a partly given resource config with the fields' class
defaults, not with the bound values, so no field here may default to anything that could be
mistaken for a setting (they default to None, "the deployment's").
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    ConfigurableResource,
    EnvVar,
    Failure,
    InitResourceContext,
    ResourceDependency,
)
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr
from pydantic_core import PydanticUndefined

from indici_dagster.core.embedded import embedded_dsn
from indici_dagster.core.settings import EMBEDDED, Settings, variable_for
from indici_dagster.core.storage import Storage, open_storage
from indici_dagster.core.text import printable
from indici_dagster.core.warehouse import Warehouse


@dataclass(frozen=True, repr=False)
class Deployment:
    """The deployment's value of every config field of every pinned resource.

    It reaches each resource as a nested resource dependency, which has no config schema: run
    config cannot reach it. Its repr shows no value (a DSN holds a password).
    """

    key: str
    """The resource key of the resource holding this copy."""
    values: Mapping[str, Mapping[str, Any]]
    """Resource key -> field -> the deployment's value."""
    variables: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Resource key -> field -> the environment variable it comes from."""

    def __repr__(self) -> str:
        return f"Deployment({self.key!r})"


class PinnedResource(ConfigurableResource):
    """A resource whose config fields are the deployment's settings, whatever the run says."""

    deployment: ResourceDependency[Deployment | None] = None

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Fail (not retried) before anything is read or written when the run's config sets any
        field of any resource differently from the deployment, naming the fields."""
        deployment = self.deployment
        if deployment is None:
            raise Failure(
                description=f"resource {type(self).__name__} is not bound to the deployment's "
                "settings; build it through indici_dagster.definitions",
                allow_retries=False,
            )
        own = {name: getattr(self, name) for name in config_fields(type(self))}
        changed = set(run_config_changes(context, deployment))
        changed.update(
            f"{deployment.key}.{name}" for name in _changes(own, deployment, deployment.key)
        )
        if changed:
            raise Failure(description=refusal(sorted(changed), deployment), allow_retries=False)

    def create_resource(self, context: InitResourceContext) -> Any:
        """This resource with exactly the deployment's values (a field the run config left out
        is None here until now)."""
        if self.deployment is None:
            return self
        return self.model_copy(update=dict(self.deployment.values[self.deployment.key]))


def config_fields(cls: type[ConfigurableResource]) -> list[str]:
    """The fields of `cls` that run config can set (not `deployment` nor nested resources,
    which Dagster marks as resource dependencies)."""
    return [
        name
        for name, info in cls.model_fields.items()
        if name != "deployment" and "resource_dependency" not in info.metadata
    ]


def _differs(value: Any, pinned: Any, from_env: bool = False) -> bool:
    """Whether `value` (None: left out, so the deployment's) is not the deployment's `pinned`.

    Strings compare as the settings read them (stripped); a value from `{env: VAR}` in run
    config compares as text."""
    if value is None:
        return False
    if from_env or (isinstance(value, str) and isinstance(pinned, str)):
        return str(value).strip() != ("" if pinned is None else str(pinned).strip())
    if isinstance(value, bool) or isinstance(pinned, bool):
        return value is not pinned
    return value != pinned


def _changes(values: Mapping[str, Any], deployment: Deployment, key: str) -> list[str]:
    pinned = deployment.values.get(key, {})
    changed = []
    for name, value in values.items():
        from_env = isinstance(value, Mapping) and set(value) == {"env"}
        if from_env:
            value = os.environ.get(str(value["env"]))
            if value is None:
                changed.append(name)
                continue
        if name not in pinned or _differs(value, pinned[name], from_env):
            changed.append(name)
    return changed


def run_config_changes(context: InitResourceContext, deployment: Deployment) -> list[str]:
    """`key.field` of every resource field the run's config sets differently from the
    deployment (any field of a resource that is not pinned, such as `io_manager`).

    Every pinned resource checks the whole run config, so the run fails in its first step
    whichever resources that step uses. A sensor has no run config: nothing to check.
    """
    run = context.dagster_run
    blocks = (run.run_config or {}).get("resources") if run is not None else None
    changed: list[str] = []
    for key, block in (blocks or {}).items():
        config = block.get("config") if isinstance(block, Mapping) else block
        if config is None or config == {}:
            continue
        if not isinstance(config, Mapping):
            changed.append(f"{key}.config")
        elif key not in deployment.values:
            changed.extend(f"{key}.{name}" for name, value in config.items() if value is not None)
        else:
            changed.extend(f"{key}.{name}" for name in _changes(config, deployment, key))
    return changed


def refusal(fields: list[str], deployment: Deployment) -> str:
    """One line naming the refused fields and their variables; never a value."""
    names = []
    for name in fields:
        key, _, attribute = name.partition(".")
        variable = deployment.variables.get(key, {}).get(attribute)
        names.append(printable(name, 80) + (f" ({variable})" if variable else ""))
    return (
        "run config sets " + ", ".join(names) + " differently from the deployment: locations, "
        "the DSN and limits come only from the environment; remove them from the run config"
    )


@dataclass(frozen=True)
class Pin:
    """One resource as the deployment configures it."""

    cls: type[PinnedResource]
    values: Mapping[str, Any]
    """Config field -> the deployment's value; fields left out take their class default."""
    variables: Mapping[str, str] = field(default_factory=dict)
    """Config field -> the environment variable its value was read from (bound as `EnvVar`)."""
    nested: Mapping[str, Any] = field(default_factory=dict)
    """Nested resources (not configurable by run config)."""

    def complete_values(self) -> dict[str, Any]:
        """Every config field's value; refuses a class default that a partly given run config
        would silently put in place of the deployment's value."""
        values = {}
        for name in config_fields(self.cls):
            default = self.cls.model_fields[name].default
            value = self.values.get(name, default)
            if value is PydanticUndefined:
                raise ValueError(f"{self.cls.__name__}.{name} has no deployment value")
            if default not in (None, PydanticUndefined) and _differs(default, value):
                raise ValueError(f"{self.cls.__name__}.{name} must default to None")
            values[name] = value
        return values


def pin_resources(pins: Mapping[str, Pin]) -> dict[str, PinnedResource]:
    """The resources, each holding the deployment's values of all of them; a field read from
    the environment is bound by name (`EnvVar`), so the UI shows the name, not the value."""
    values = {key: pin.complete_values() for key, pin in pins.items()}
    variables = {key: dict(pin.variables) for key, pin in pins.items()}
    resources = {}
    for key, pin in pins.items():
        bound = {
            name: _env_var(pin.variables[name], value) if name in pin.variables else value
            for name, value in values[key].items()
        }
        deployment = Deployment(key, values, variables)
        resources[key] = pin.cls(**bound, **pin.nested, deployment=deployment)
    return resources


def _env_var(name: str, value: Any) -> Any:
    if isinstance(value, bool):
        return value
    return EnvVar.int(name) if isinstance(value, int) else EnvVar(name)


def from_settings(settings: Settings, fields: Mapping[str, str]) -> tuple[dict, dict]:
    """(values, variables) of resource fields filled from `Settings` fields (resource field ->
    settings field); variables only for those the environment set."""
    values = {name: getattr(settings, source) for name, source in fields.items()}
    variables = {
        name: variable_for(source).name
        for name, source in fields.items()
        if variable_for(source).name in settings.from_environment
    }
    return values, variables


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
