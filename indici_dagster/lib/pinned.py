"""Pinning resource fields to the deployment's settings, out of reach of run config.

Dagster lets a run's config override any field of a bound resource, and fills a partly given
resource config with the fields' class defaults, not with the bound values: a run config
setting only `warehouse.max_new_columns` used to reset `dsn` to None (the embedded server in
the run's working folder). Here every resource holds the deployment's value of every field of
every resource (`Deployment`, a nested dependency without config schema), checks the whole
run config in `setup_for_execution`, and hands its user the deployment's values. Pinned
fields default to None, "the deployment's", so a field a run config leaves out changes nothing.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster import ConfigurableResource, EnvVar, Failure, InitResourceContext, ResourceDependency
from pydantic_core import PydanticUndefined

from indici_dagster.core.settings import Settings, variable_for
from indici_dagster.core.text import printable


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
