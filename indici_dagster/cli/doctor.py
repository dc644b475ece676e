"""`indici doctor`: every setting and every place the pipeline reaches, one line each."""

import argparse
import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from indici_dagster.cli.context import ProjectEnv
from indici_dagster.cli.errors import one_line
from indici_dagster.core.embedded.server import paths_for, role_dsn, server_status
from indici_dagster.core.errors import INFRA_APPLY
from indici_dagster.core.pipeline_names import AUDIT_LOG
from indici_dagster.core.rules.store import load_rules
from indici_dagster.core.settings import (
    AWS_DEFAULT_REGION,
    CLOUDWATCH_PREFIX,
    LANDING,
    PARTITIONED,
    PG_DSN,
    S3_SCHEME,
    VARIABLES,
    Settings,
    SettingsError,
    load_settings,
    parse_variable,
)
from indici_dagster.core.text import printable
from indici_dagster.core.warehouse.dsn import connect, describe_dsn

OK, WARN, FAIL = "ok", "warn", "FAIL"
_SHIPPED_RULES = "the shipped rules.yaml"
"""What an unset `INDICI_RULES` means: the only variable with neither a default nor an `unset`
text (every other one says what leaving it unset means)."""


@dataclass(frozen=True)
class Finding:
    """One line of the report: status, item, and what it found or what to fix."""

    status: str
    item: str
    detail: str


def _settings() -> Iterator[Finding]:
    for variable in VARIABLES:
        raw = os.environ.get(variable.name, "").strip()
        try:
            if raw:
                parse_variable(variable, raw)
        except SettingsError as error:
            yield Finding(FAIL, variable.name, str(error))
            continue
        if variable.name == PG_DSN:
            shown = (
                describe_dsn(raw) if raw and raw != "embedded" else raw or "unset (embedded server)"
            )
        elif variable.name == CLOUDWATCH_PREFIX and not raw:
            shown = "unset (no CloudWatch outcome events)"
        else:
            default = variable.unset or variable.default or _SHIPPED_RULES
            shown = printable(raw, limit=120) if raw else f"default ({default})"
        yield Finding(OK, variable.name, shown)


def _region(settings: Settings) -> Finding:
    uses_aws = any(
        location.startswith(S3_SCHEME) for location in (settings.landing, settings.partitioned)
    ) or (settings.rules or "").startswith("dynamodb://")
    if settings.aws_region:
        return Finding(OK, "AWS region", settings.aws_region)
    import boto3

    profile_region = boto3.session.Session().region_name
    if profile_region:
        return Finding(OK, "AWS region", f"{profile_region} (from the AWS profile)")
    if uses_aws:
        return Finding(FAIL, "AWS region", f"none: set {AWS_DEFAULT_REGION} (or AWS_REGION)")
    return Finding(OK, "AWS region", "not needed (no S3 or DynamoDB location)")


def _location(variable: str, location: str, settings: Settings, required: bool) -> Finding:
    name = "landing" if variable == LANDING else "partitioned"
    if location.startswith(S3_SCHEME):
        import boto3
        from botocore.exceptions import ClientError

        bucket, _, prefix = location[len(S3_SCHEME) :].partition("/")
        client = boto3.client("s3", region_name=settings.aws_region)
        try:
            client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket":
                return Finding(
                    FAIL,
                    name,
                    f"bucket {bucket} does not exist: create it with {INFRA_APPLY} or fix "
                    f"{variable}",
                )
            if code in ("AccessDenied", "AllAccessDisabled", "403"):
                return Finding(FAIL, name, f"access denied listing bucket {bucket}: see deploy/iam")
            return Finding(FAIL, name, one_line(error)[0])
        return Finding(OK, name, f"bucket {bucket} can be listed")
    folder = Path(location).expanduser().resolve()
    if folder.is_dir():
        return Finding(OK, name, f"folder {printable(str(folder))}")
    if folder.exists():
        return Finding(FAIL, name, f"{printable(str(folder))} is not a folder: fix {variable}")
    if required:
        return Finding(
            FAIL,
            name,
            f"folder {printable(str(folder))} does not exist: create it, run indici sample-data, "
            f"or fix {variable}",
        )
    return Finding(
        WARN, name, f"folder {printable(str(folder))} does not exist yet (first copy creates it)"
    )


def _rules(settings: Settings) -> Finding:
    rules = load_rules(settings.rules)
    source = printable(settings.rules) if settings.rules else _SHIPPED_RULES
    return Finding(OK, "rules", f"{len(rules)} valid rules from {source}")


def _warehouse(settings: Settings) -> Finding:
    if settings.uses_embedded_server:
        paths = paths_for(settings.pg_dir)
        if not paths.has_cluster:
            return Finding(
                WARN,
                "warehouse",
                f"embedded server not created yet in {paths.data_dir} (the first run creates it)",
            )
        if not server_status(paths.data_dir).running:
            return Finding(
                OK,
                "warehouse",
                f"embedded server in {paths.data_dir}, stopped (starts when needed)",
            )
        dsn = role_dsn(paths.data_dir, "writer")  # checks it as it runs: restarts nothing
    else:
        dsn = settings.pg_dsn or ""
    with (
        contextlib.closing(connect(dsn, connect_timeout=5)) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "SELECT current_setting('server_version'), to_regclass(%s) IS NOT NULL", (AUDIT_LOG,)
        )
        version, catalog = cursor.fetchone()
        connection.rollback()
    tables = "audit log present" if catalog else "no audit log yet (the first run creates it)"
    return Finding(
        OK, "warehouse", f"connected to {describe_dsn(dsn)}, PostgreSQL {version}, {tables}"
    )


def _alert_topic(settings: Settings) -> Finding:
    from indici_dagster.core.alerts.sns import topic_problem

    if settings.alert_sns_topic is None:
        return Finding(OK, "alerts", "no SNS topic set: failed runs and quiet feeds are audited")
    problem = topic_problem(settings.alert_sns_topic)
    return Finding(FAIL, "alerts", problem) if problem else Finding(OK, "alerts", "topic exists")


def _safely(item: str, check: Callable[[], Finding]) -> Finding:
    try:
        return check()
    except Exception as error:  # every failure becomes a line
        return Finding(FAIL, item, one_line(error)[0])


def _env_file(project_env: ProjectEnv) -> Iterator[Finding]:
    if project_env.path is None:
        yield Finding(OK, ".env", f"none in {printable(str(Path.cwd()))} (environment only)")
        return
    count = len(project_env.applied)
    yield Finding(OK, ".env", f"{count} variables from {printable(str(project_env.path))}")
    if project_env.ignored:
        names = ", ".join(printable(name, limit=60) for name in project_env.ignored)
        yield Finding(
            WARN,
            ".env",
            f"ignored, not project settings: {names} (dagster dev still loads every name "
            "in .env into its own processes: remove them)",
        )


def diagnose(project_env: ProjectEnv | None = None) -> list[Finding]:
    """Every check, in order; checks that need valid settings are skipped when they are not.

    `.env` is reported by the names it gave, and the names it holds that indici ignored (never
    a value)."""
    findings = [*_env_file(project_env or ProjectEnv()), *_settings()]
    try:
        settings = load_settings()
    except SettingsError as error:
        if not any(finding.status == FAIL for finding in findings):
            findings.append(Finding(FAIL, "settings", str(error)))
        return [*findings, Finding(WARN, "other checks", "skipped: fix the settings above first")]
    return [
        *findings,
        _safely("AWS region", lambda: _region(settings)),
        _safely("landing", lambda: _location(LANDING, settings.landing, settings, True)),
        _safely(
            "partitioned", lambda: _location(PARTITIONED, settings.partitioned, settings, False)
        ),
        _safely("rules", lambda: _rules(settings)),
        _safely("warehouse", lambda: _warehouse(settings)),
        _safely("alerts", lambda: _alert_topic(settings)),
    ]


def doctor(args: argparse.Namespace, settings: None) -> int:
    """Print one line per check; exit 1 if any failed."""
    findings = diagnose(getattr(args, "project_env", None))
    width = max(len(finding.item) for finding in findings)
    for finding in findings:
        print(f"{finding.status:<4}  {finding.item:<{width}}  {finding.detail}")
    failed = sum(finding.status == FAIL for finding in findings)
    print(f"{failed} problem(s)" if failed else "everything checked is in order")
    return 1 if failed else 0
