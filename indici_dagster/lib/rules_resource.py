"""The `rules` resource: the transformation rules, from a YAML file or a DynamoDB table.

The code location builds one pair of table assets per rule when it loads (`load_rules_resource`);
the sensor, the assets and their checks read the rules again from the resource when they run,
and never act on a rule other than the one they were built and requested under.
"""

from collections.abc import Iterable, Mapping
from typing import Any

import boto3
from botocore.config import Config
from dagster import DagsterLogManager, Failure, get_dagster_logger
from dagster_aws.utils import ResourceWithBoto3Configuration
from pydantic import Field

from indici_dagster.core.rules.fingerprints import (
    fingerprints,
    format_fingerprints,
    parse_fingerprints,
    rule_changes,
)
from indici_dagster.core.rules.model import Rule, RuleError
from indici_dagster.core.rules.snapshot import (
    LoadedRules,
    load_rules_or_snapshot,
    snapshot_places,
)
from indici_dagster.core.rules.snapshot_dir import local_snapshot_dir
from indici_dagster.core.rules.store import DYNAMODB_SCHEME, RulesUnavailableError, load_rules
from indici_dagster.core.settings import Settings
from indici_dagster.core.storage.base import Storage
from indici_dagster.core.storage.open_storage import open_storage
from indici_dagster.lib.pinned import Pin, PinnedResource, from_settings

RULES_FINGERPRINT_TAG = "indici/rules_fingerprint"
"""Run tag the sensor sets: the rule fingerprint of each dataset among the run's files."""


class RulesResource(ResourceWithBoto3Configuration, PinnedResource):
    """Transformation rules, one per dataset: a YAML file or a DynamoDB table.

    DynamoDB is reached with boto3 configured like dagster-aws's resources (region, endpoint,
    profile, retries) plus short timeouts. The last rule set read from DynamoDB is kept as a
    snapshot (`_indici/rules/<table>.json` in the partitioned location, and a copy in
    `.indici/rules/` next to the code location), which the code location loads from while
    DynamoDB cannot be reached. Every field is pinned to the deployment (`PinnedResource`):
    run config cannot point a run at other rules, another table or another endpoint.
    """

    location: str | None = Field(
        default=None,
        description="YAML rules file or `dynamodb://<table>` (INDICI_RULES); unset: the rules "
        "file shipped in the package.",
    )
    snapshot_location: str | None = Field(
        default=None,
        description="Where the snapshot of the last rule set read from DynamoDB is kept "
        "(INDICI_PARTITIONED), under `_indici/rules/`.",
    )
    local_snapshot_dir: str | None = Field(
        default=None,
        description="A local folder keeping a second snapshot copy (`<table>.json`), used when "
        "the partitioned location cannot be read either (INDICI_RULES_SNAPSHOT_DIR); unset: "
        "`$DAGSTER_HOME/indici/rules`, or `./.indici/rules` without DAGSTER_HOME.",
    )
    max_attempts: int = Field(default=3, description="Attempts per DynamoDB call, first included.")
    connect_timeout: float = Field(default=3.0, description="Seconds to wait for a connection.")
    read_timeout: float = Field(default=10.0, description="Seconds to wait for a response.")
    rule_set: str | None = Field(
        default=None,
        description="The rules this code location loaded: source, time, count and fingerprint; "
        "it starts with SNAPSHOT when DynamoDB could not be read at load.",
    )

    def _session_kwargs(self) -> dict[str, Any]:
        return dict(
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
            use_ssl=self.use_ssl,
            verify=self.verify,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
            config=Config(
                retries={"max_attempts": self.max_attempts, "mode": "standard"},
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
            ),
        )

    def dynamodb(self) -> Any:
        """A boto3 DynamoDB service resource for the rules table."""
        session = boto3.session.Session(profile_name=self.profile_name)
        return session.resource("dynamodb", **self._session_kwargs())

    def snapshot_storage(self) -> Storage | None:
        """The storage holding the shared snapshot, or None when none is configured."""
        if not self.snapshot_location:
            return None
        client = None
        if self.snapshot_location.startswith("s3://"):
            session = boto3.session.Session(profile_name=self.profile_name)
            client = session.client("s3", **self._session_kwargs())
        return open_storage(self.snapshot_location, client)

    def _is_dynamodb(self) -> bool:
        return bool(self.location) and str(self.location).startswith(DYNAMODB_SCHEME)

    def load(self) -> LoadedRules:
        """The rules as the code location loads them: from the store, else from the snapshot.

        Raises `RuleError` (one line) when there is nothing safe to load.
        """
        if not self._is_dynamodb():
            return load_rules_or_snapshot(self.location)
        places = snapshot_places(
            str(self.location),
            self.snapshot_storage(),
            local_snapshot_dir(self.local_snapshot_dir),
        )
        return load_rules_or_snapshot(self.location, self.dynamodb(), places)

    def current(self) -> dict[str, Rule]:
        """The rules in the store now (never a snapshot); raises `RuleError` naming the problem."""
        return load_rules(self.location, self.dynamodb() if self._is_dynamodb() else None)

    def rules_for_tick(self, built: Mapping[str, Rule], log: DagsterLogManager) -> dict[str, Rule]:
        """The current rules of the datasets the location has assets for, read at tick time.

        A rule added since the location loaded has no assets yet: its files wait (warned) until
        the location reloads. Raises `RuleError` when the store cannot be read or is invalid, so
        a tick never hands files over under rules it could not read.
        """
        current = self.current()
        names = set(built) | set(current)
        changed = rule_changes(fingerprints(built, names), current, names)
        if changed:
            log.warning(
                "rules changed since this code location loaded (reload it to show them): "
                + "; ".join(changed)
                + ". Files are requested under the current rules; those of a dataset whose "
                "rule was added wait for the reload."
            )
        return {d: rule for d, rule in current.items() if d in built}

    def require_unchanged(
        self,
        context: Any,
        built: Mapping[str, Rule],
        datasets: Iterable[str] | None = None,
    ) -> None:
        """Fail the step unless the current rules of `datasets` (default: all) are the ones its
        assets were built from and the ones its run was requested under (the sensor's tag).

        A run never silently acts under a rule other than the one it was requested with: it
        fails naming the dataset and the part that changed, never the rule's content.
        """
        try:
            current = self.current()
        except RulesUnavailableError as error:
            raise Failure(description=str(error), allow_retries=error.transient) from None
        except RuleError as error:
            raise Failure(description=str(error), allow_retries=False) from None
        names = set(built) | set(current) if datasets is None else set(datasets)
        tag = context.run.tags.get(RULES_FINGERPRINT_TAG)
        if tag is not None:
            try:
                requested = parse_fingerprints(tag)
            except RuleError as error:
                raise Failure(description=f"tag {RULES_FINGERPRINT_TAG}: {error}") from None
            changed = rule_changes(requested, current, names if datasets else requested)
            if changed:
                raise Failure(
                    description="rules changed since the sensor requested this run: "
                    + "; ".join(changed)
                    + ". Nothing was loaded under the new rules; launch a new run (or a "
                    "backfill) of these dates to load them with the current rules.",
                    allow_retries=False,
                )
        changed = rule_changes(fingerprints(built, names), current, names)
        if changed:
            raise Failure(
                description="rules changed since this code location loaded: "
                + "; ".join(changed)
                + ". Reload the code location, then launch the run again.",
                allow_retries=False,
            )


def fingerprint_tags(rules: Mapping[str, Rule], datasets: Iterable[str]) -> dict[str, str]:
    """The run tag recording the rules `datasets` are requested under (`-` for no rule)."""
    return {RULES_FINGERPRINT_TAG: format_fingerprints(fingerprints(rules, datasets))}


def load_code_location_rules(settings: Settings) -> LoadedRules:
    """Load the rules for a code location from the store, else from the snapshot.

    Logs a warning when the rules come from the snapshot (DynamoDB unreachable) or could not
    be kept as one (a debug line only when the local folder is read-only); raises `RuleError`
    with one line when there is nothing safe to load.
    """
    loaded = RulesResource(
        location=settings.rules,
        snapshot_location=settings.partitioned,
        local_snapshot_dir=settings.rules_snapshot_dir,
    ).load()
    log = get_dagster_logger("indici_dagster.rules")
    if loaded.from_snapshot is not None:
        log.warning(f"rules: {loaded.summary()}")
    if loaded.snapshot_problem:
        log.warning(f"rules snapshot: {loaded.snapshot_problem}")
    if loaded.snapshot_note:  # a read-only folder: only the local second copy is missing
        log.debug(f"rules snapshot, local copy not kept: {loaded.snapshot_note}")
    return loaded


def rules_pin(settings: Settings, loaded: LoadedRules) -> Pin:
    """The `rules` resource as the deployment configures it, describing what was loaded; its
    other fields (AWS client options) are the class defaults, pinned too."""
    values, variables = from_settings(
        settings,
        {
            "location": "rules",
            "snapshot_location": "partitioned",
            "local_snapshot_dir": "rules_snapshot_dir",
        },
    )
    return Pin(RulesResource, {**values, "rule_set": loaded.summary()}, variables)
