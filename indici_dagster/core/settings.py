"""The pipeline's settings: environment variables with defaults that run on one laptop.

Every variable is one row of `VARIABLES` (name, field, default, parser, expected form). A value
that does not parse stops everything with one `SettingsError` line naming the variable and the
form it expects; no value is ever echoed (a DSN holds a password). To add a setting, add a
field to `Settings` and a row to `VARIABLES`.
"""

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2.extensions

from indici_dagster.core import alert_settings
from indici_dagster.core.outcome_groups import parse_prefix

LANDING = "INDICI_LANDING"
PARTITIONED = "INDICI_PARTITIONED"
RULES = "INDICI_RULES"
PG_DSN = "INDICI_PG_DSN"
TIMEZONE = "INDICI_TIMEZONE"
START_DATE = "INDICI_START_DATE"
PG_DIR = "INDICI_PG_DIR"
MAX_CONCURRENT = "INDICI_MAX_CONCURRENT"
MAX_NEW_COLUMNS = "INDICI_MAX_NEW_COLUMNS"
CLOUDWATCH_PREFIX = "INDICI_CLOUDWATCH_PREFIX"
RULES_SNAPSHOT_DIR = "INDICI_RULES_SNAPSHOT_DIR"
STAGING_RETENTION_DAYS = "INDICI_STAGING_RETENTION_DAYS"
RUN_RETENTION_DAYS = "INDICI_RUN_RETENTION_DAYS"
AWS_DEFAULT_REGION = "AWS_DEFAULT_REGION"
AWS_REGION = "AWS_REGION"

EMBEDDED = "embedded"
"""`INDICI_PG_DSN=embedded`: use the laptop server even with S3 locations."""
S3_SCHEME = "s3://"
DYNAMODB_SCHEME = "dynamodb://"


class SettingsError(ValueError):
    """A setting is missing or malformed; `str()` is one line naming the variable."""


def _location(value: str) -> str:
    """`s3://bucket[/prefix]` with a valid bucket name, or a local folder."""
    lowered = value.lower()
    if lowered.startswith("s3:") or lowered.startswith("s3a:") or lowered.startswith("s3n:"):
        if not value.startswith(S3_SCHEME):
            raise ValueError
        bucket = value[len(S3_SCHEME) :].split("/", 1)[0]
        if not is_bucket_name(bucket):
            raise ValueError
        return value
    if "://" in value:
        raise ValueError
    return value


def is_bucket_name(name: str) -> bool:
    """Whether `name` follows S3's rules for a general-purpose bucket name."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", name) or ".." in name:
        return False
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return not name.startswith(("xn--", "sthree-", "amzn-s3-demo-")) and not name.endswith(
            ("-s3alias", "--ol-s3", ".mrap", "--x-s3")
        )
    return False


def _rules(value: str) -> str:
    """`dynamodb://<table>`, or the path of an existing YAML file."""
    if value.startswith(DYNAMODB_SCHEME):
        table = value[len(DYNAMODB_SCHEME) :].rstrip("/")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", table):
            raise ValueError
        return value
    if "://" in value or not Path(value).expanduser().is_file():
        raise ValueError
    return value


def _dsn(value: str) -> str:
    """`embedded`, or a DSN libpq can parse (its error text is dropped: it quotes the DSN)."""
    if value == EMBEDDED:
        return value
    try:
        psycopg2.extensions.parse_dsn(value)
    except psycopg2.Error:
        raise ValueError from None
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ValueError, KeyError, OSError):
        raise ValueError from None
    return value


def _date(value: str) -> str:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError
    date.fromisoformat(value)
    return value


def _folder(value: str) -> str:
    if "://" in value:
        raise ValueError
    return value


def _positive_int(value: str) -> int:
    if not re.fullmatch(r"\d+", value) or int(value) < 1:
        raise ValueError
    return int(value)


def _region(value: str) -> str:
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d{1,2}", value):
        raise ValueError
    return value


@dataclass(frozen=True)
class Variable:
    """One environment variable: the `Settings` field it fills and how it is read."""

    name: str
    field: str
    default: str | None
    parse: Callable[[str], Any]
    expected: str
    unset: str | None = None
    """What leaving it unset means, when it has no default (for `indici doctor`)."""


VARIABLES: tuple[Variable, ...] = (
    Variable(
        LANDING, "landing", "./data/landing", _location, "s3://bucket[/prefix] or a local folder"
    ),
    Variable(
        PARTITIONED,
        "partitioned",
        "./data/partitioned",
        _location,
        "s3://bucket[/prefix] or a local folder",
    ),
    Variable(
        RULES, "rules", None, _rules, "dynamodb://<table> or the path of an existing YAML file"
    ),
    Variable(
        PG_DSN,
        "pg_dsn",
        None,
        _dsn,
        "a libpq DSN ('host=... dbname=... user=...') or postgresql:// URL, or 'embedded'",
    ),
    Variable(
        TIMEZONE,
        "timezone",
        "Pacific/Auckland",
        _timezone,
        "an IANA time zone such as Pacific/Auckland",
    ),
    Variable(START_DATE, "start_date", "2020-01-01", _date, "a date YYYY-MM-DD, not in the future"),
    Variable(PG_DIR, "pg_dir", "./.indici/pg", _folder, "a local folder"),
    Variable(MAX_CONCURRENT, "max_concurrent", "1", _positive_int, "a whole number, 1 or more"),
    Variable(MAX_NEW_COLUMNS, "max_new_columns", "50", _positive_int, "a whole number, 1 or more"),
    Variable(
        CLOUDWATCH_PREFIX,
        "cloudwatch_prefix",
        None,
        parse_prefix,
        "a CloudWatch log group prefix such as /indici ('/' first, none last)",
    ),
    Variable(
        alert_settings.ALERT_SNS_TOPIC,
        "alert_sns_topic",
        None,
        alert_settings.sns_topic_arn,
        alert_settings.SNS_TOPIC_EXPECTED,
        "no topic: nothing is sent",
    ),
    Variable(
        alert_settings.UI_URL,
        "ui_url",
        None,
        alert_settings.ui_url,
        alert_settings.UI_URL_EXPECTED,
        "no link in alerts",
    ),
    Variable(
        RULES_SNAPSHOT_DIR,
        "rules_snapshot_dir",
        None,
        _folder,
        "a local folder",
        "$DAGSTER_HOME/indici/rules, or ./.indici/rules without DAGSTER_HOME",
    ),
    *(  # retention (`defs/retention`): off unless set
        Variable(name, field, None, _positive_int, "a whole number of days, 1 or more", "off")
        for name, field in (
            (STAGING_RETENTION_DAYS, "staging_retention_days"),
            (RUN_RETENTION_DAYS, "run_retention_days"),
        )
    ),
)


def variable_for(field: str) -> Variable:
    """The row of `VARIABLES` that fills the `Settings` field `field`."""
    return next(variable for variable in VARIABLES if variable.field == field)


def parse_variable(variable: Variable, raw: str) -> Any:
    """`raw` parsed by `variable`, or a `SettingsError` naming it (never quoting the value)."""
    if any(not char.isprintable() for char in raw):
        raise SettingsError(
            f"{variable.name} holds control characters: expected {variable.expected}"
        )
    try:
        return variable.parse(raw)
    except ValueError:
        raise SettingsError(f"{variable.name} is not valid: expected {variable.expected}") from None


def aws_region(environ: Mapping[str, str]) -> str | None:
    """The AWS region from `AWS_DEFAULT_REGION` (what boto3 reads) or `AWS_REGION`.

    Both set to different regions is an error: boto3 would silently use one of them.
    """
    given = {name: environ.get(name, "").strip() for name in (AWS_DEFAULT_REGION, AWS_REGION)}
    regions = {value for value in given.values() if value}
    if len(regions) > 1:
        raise SettingsError(
            f"{AWS_DEFAULT_REGION} and {AWS_REGION} name different regions: set one of them"
        )
    if not regions:
        return None
    region = regions.pop()
    try:
        return _region(region)
    except ValueError:
        names = " / ".join(name for name, value in given.items() if value)
        raise SettingsError(
            f"{names} is not valid: expected an AWS region such as ap-southeast-2"
        ) from None


@dataclass(frozen=True)
class Settings:
    """Where files come from and go to, which rules apply, and which database receives them.

    Building one checks the settings against each other: the embedded server is used only when
    `INDICI_PG_DSN` is unset and both locations are local folders, or `INDICI_PG_DSN=embedded`.
    """

    landing: str = "./data/landing"
    partitioned: str = "./data/partitioned"
    rules: str | None = None
    """None: the rules file shipped in the package."""
    pg_dsn: str | None = None
    """None (unset, local folders only) or `embedded`: the embedded server kept in `pg_dir`."""
    timezone: str = "Pacific/Auckland"
    start_date: str = "2020-01-01"
    pg_dir: str = "./.indici/pg"
    max_concurrent: int = 1
    """Steps of one run executed at once; above 1, datasets load in parallel processes."""
    max_new_columns: int = 50
    """Columns the rule does not name that one file may add to its staging table."""
    cloudwatch_prefix: str | None = None
    """None: no CloudWatch outcome events; else audit rows also go to `<prefix>/<outcome>`."""
    alert_sns_topic: str | None = None
    """SNS topic ARN alerts are published to (failed runs, quiet feeds); None: none published."""
    ui_url: str | None = None
    """The Dagster UI's address, for links in alerts; None: alerts carry no link."""
    rules_snapshot_dir: str | None = None
    """The local rules snapshot folder; None: `core.rules.snapshot_dir.local_snapshot_dir`."""
    staging_retention_days: int | None = None
    run_retention_days: int | None = None
    """Retention (None: off): staging rows of applied files, and Dagster runs, older than this."""
    aws_region: str | None = None
    """From AWS_DEFAULT_REGION or AWS_REGION; None: boto3's own configuration (profile)."""
    from_environment: frozenset[str] = frozenset()
    """The `VARIABLES` whose value was read from the environment (not a default): the resources
    refer to those by name (`EnvVar`), so the UI shows the name, never the value."""

    def __post_init__(self) -> None:
        if self.pg_dsn is None:
            for name, location in ((LANDING, self.landing), (PARTITIONED, self.partitioned)):
                if location.startswith(S3_SCHEME):
                    raise SettingsError(
                        f"{PG_DSN} is unset but {name} is an S3 bucket: set {PG_DSN} to the "
                        f"warehouse's DSN (the embedded laptop server is used only with local "
                        f"folders, or with {PG_DSN}={EMBEDDED})"
                    )
        if _same_or_nested(self.landing, self.partitioned):
            raise SettingsError(
                f"{PARTITIONED} must not be {LANDING} or inside it (or contain it): "
                "expected two separate locations"
            )
        today = datetime.now(ZoneInfo(self.timezone)).date()
        if date.fromisoformat(self.start_date) > today:
            raise SettingsError(
                f"{START_DATE} is in the future: expected a date YYYY-MM-DD not after today "
                f"({today.isoformat()} in {self.timezone})"
            )

    @property
    def uses_embedded_server(self) -> bool:
        """Whether the warehouse is the embedded server in `pg_dir`."""
        return self.pg_dsn is None or self.pg_dsn == EMBEDDED

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read and check every `INDICI_*` variable; unset or empty ones take their defaults.

        Raises `SettingsError` (one line, naming the variable) for a malformed value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        given: set[str] = set()
        for variable in VARIABLES:
            raw = env.get(variable.name, "").strip()
            if raw:
                values[variable.field] = parse_variable(variable, raw)
                given.add(variable.name)
            elif variable.default is not None:
                values[variable.field] = variable.parse(variable.default)
        values["aws_region"] = aws_region(env)
        return cls(**values, from_environment=frozenset(given))


def _same_or_nested(first: str, second: str) -> bool:
    if first.startswith(S3_SCHEME) != second.startswith(S3_SCHEME):
        return False
    if first.startswith(S3_SCHEME):
        a, b = (location.rstrip("/") + "/" for location in (first, second))
        return a.startswith(b) or b.startswith(a)
    a, b = (Path(location).expanduser().resolve() for location in (first, second))
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def export_aws_region(settings: Settings, environ: Any = os.environ) -> None:
    """Make every boto3 client in this process use `settings.aws_region`.

    boto3 reads only `AWS_DEFAULT_REGION`; a region given as `AWS_REGION` alone is copied there.
    """
    if settings.aws_region and not environ.get(AWS_DEFAULT_REGION, "").strip():
        environ[AWS_DEFAULT_REGION] = settings.aws_region


def load_settings(environ: Any = os.environ) -> Settings:
    """The settings of this process, checked, with the AWS region exported for boto3."""
    settings = Settings.from_env(environ)
    export_aws_region(settings, environ)
    return settings
