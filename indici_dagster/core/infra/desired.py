"""What `indici infra` wants to exist: one `Aspect` per thing it sets, computed from the settings
and the command's options (pure: nothing here reaches AWS).

Each aspect's `desired` value is plain JSON-like data, shaped exactly as `core.infra.aws` reads
the current value back, so "no change" is plain equality.
"""

import re
from dataclasses import dataclass
from typing import Any

from indici_dagster.core.infra.policies import (
    POLICIES,
    PolicyNames,
    outcome_log_groups_arn,
    rules_table_arn,
)
from indici_dagster.core.outcome_groups import OUTCOMES, outcome_log_group
from indici_dagster.core.settings import (
    DYNAMODB_SCHEME,
    LANDING,
    PARTITIONED,
    RULES,
    S3_SCHEME,
    Settings,
)
from indici_dagster.core.storage.s3_storage import parse_s3_url

BUCKET, TABLE, POLICY, USER, LOG_GROUP = "bucket", "table", "policy", "user", "log group"
EXISTS, KEY, BILLING, PITR = "exists", "key", "billing", "point-in-time recovery"
PUBLIC_ACCESS, ENCRYPTION, VERSIONING = "public access block", "encryption", "versioning"
LIFECYCLE_PREFIX, DOCUMENT, ATTACHED, RETENTION = (
    "lifecycle rule ",
    "document",
    "policies",
    "retention",
)

VENDOR_USER = "valentia-import"
"""The vendor's IAM user; its access key is made by a person (`aws iam create-access-key`)."""
VENDOR_POLICY = "valentia-upload"
ARCHIVE_CLASS = "GLACIER"
"""The archive tier: S3 Glacier Flexible Retrieval (restores in minutes to hours)."""
LOG_RETENTION_DAYS = (
    *(1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827),
    *(2192, 2557, 2922, 3288, 3653),
)
"""The retention periods CloudWatch Logs accepts."""


class InfraError(RuntimeError):
    """`indici infra` cannot plan or apply; `str()` is one line naming the flag or resource."""


@dataclass(frozen=True)
class InfraOptions:
    """The options of `indici infra plan|apply`."""

    tiering_days: int = 30
    archive_days: int | None = None
    kms_key: str | None = None
    log_retention_days: int = 400


def check_options(options: InfraOptions) -> None:
    """Raise `InfraError` naming the flag when an option is out of range."""
    if options.tiering_days < 0:
        raise InfraError("--tiering-days must be 0 or more")
    if options.archive_days is not None and options.archive_days <= options.tiering_days:
        raise InfraError("--archive-days must be more than --tiering-days")
    if options.kms_key is not None and not re.fullmatch(
        r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+", options.kms_key
    ):
        raise InfraError(
            "--kms-key must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)"
        )
    if options.log_retention_days not in LOG_RETENTION_DAYS:
        allowed = ", ".join(map(str, LOG_RETENTION_DAYS))
        raise InfraError(f"--log-retention-days must be one CloudWatch accepts: {allowed}")


@dataclass(frozen=True)
class Names:
    """The resources the settings name."""

    landing_bucket: str
    landing_prefix: str
    partitioned_bucket: str
    partitioned_prefix: str
    rules_table: str
    log_prefix: str | None = None
    alert_topic: str | None = None


def names_from(settings: Settings) -> Names:
    """The buckets, prefixes and table of the settings; `InfraError` naming the variable when one
    is not on AWS (a local folder or a rules file has nothing to provision)."""
    for variable, value, scheme in (
        (LANDING, settings.landing, S3_SCHEME),
        (PARTITIONED, settings.partitioned, S3_SCHEME),
        (RULES, settings.rules or "", DYNAMODB_SCHEME),
    ):
        if not value.startswith(scheme):
            raise InfraError(
                f"{variable} is not {scheme}...: indici infra provisions S3 buckets and a "
                "DynamoDB rules table only"
            )
    landing_bucket, landing_prefix = parse_s3_url(settings.landing)
    partitioned_bucket, partitioned_prefix = parse_s3_url(settings.partitioned)
    table = (settings.rules or "")[len(DYNAMODB_SCHEME) :].rstrip("/")
    return Names(
        landing_bucket,
        landing_prefix,
        partitioned_bucket,
        partitioned_prefix,
        table,
        settings.cloudwatch_prefix,
        settings.alert_sns_topic,
    )


@dataclass(frozen=True)
class Aspect:
    """One thing `indici infra` sets on one resource, and the value it wants."""

    kind: str
    name: str
    setting: str
    desired: Any
    summary: str
    """The desired value for a person, e.g. `SSE-S3`."""

    @property
    def resource(self) -> str:
        """e.g. `bucket my-landing`."""
        return f"{self.kind} {self.name}"


def _encryption(kms_key: str | None) -> tuple[dict[str, Any], str]:
    if kms_key:
        return {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key, "BucketKeyEnabled": True}, (
            "SSE-KMS"
        )
    return {"SSEAlgorithm": "AES256"}, "SSE-S3"


def lifecycle_rule(rule_id: str, prefix: str, options: InfraOptions, versioned: bool) -> dict:
    """The lifecycle rule for the objects under `prefix`: Intelligent-Tiering after
    `tiering_days`, the archive tier after `archive_days` (if set); never an expiration. An
    unfinished multipart upload's parts (never an object) are removed after a day."""
    transitions = [{"Days": options.tiering_days, "StorageClass": "INTELLIGENT_TIERING"}]
    if options.archive_days is not None:
        transitions.append({"Days": options.archive_days, "StorageClass": ARCHIVE_CLASS})
    rule: dict[str, Any] = {
        "ID": rule_id,
        "Filter": {"Prefix": prefix},
        "Status": "Enabled",
        "Transitions": transitions,
    }
    if versioned:  # a replaced version is tiered like the current one, never deleted
        rule["NoncurrentVersionTransitions"] = [
            # S3 wants a noncurrent version at least a day old
            {"NoncurrentDays": max(1, t["Days"]), "StorageClass": t["StorageClass"]}
            for t in transitions
        ]
    rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": 1}
    return rule


def _lifecycle_summary(options: InfraOptions) -> str:
    archive = f", {ARCHIVE_CLASS} after {options.archive_days} days" if options.archive_days else ""
    return f"Intelligent-Tiering after {options.tiering_days} days{archive}, nothing deleted"


def desired_aspects(names: Names, options: InfraOptions, region: str, account: str) -> list[Aspect]:
    """Every aspect `indici infra` manages, in the order it applies them (a resource's `exists`
    before its settings, a policy before the user it is attached to)."""
    aspects: list[Aspect] = []
    encryption, encryption_summary = _encryption(options.kms_key)
    blocked = dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    for bucket in dict.fromkeys((names.landing_bucket, names.partitioned_bucket)):
        aspects += [
            Aspect(BUCKET, bucket, EXISTS, True, "created"),
            Aspect(BUCKET, bucket, PUBLIC_ACCESS, blocked, "all public access blocked"),
            Aspect(BUCKET, bucket, ENCRYPTION, encryption, encryption_summary),
        ]
    aspects.append(Aspect(BUCKET, names.landing_bucket, VERSIONING, "Enabled", "on"))
    summary = _lifecycle_summary(options)
    for bucket, rule_id, prefix, versioned in (
        (names.landing_bucket, "indici-landing", names.landing_prefix, True),
        # the copies only: the rules snapshot beside them must stay readable at once
        (
            names.partitioned_bucket,
            "indici-partitioned",
            names.partitioned_prefix + "dataset=",
            False,
        ),
    ):
        rule = lifecycle_rule(rule_id, prefix, options, versioned)
        aspects.append(Aspect(BUCKET, bucket, LIFECYCLE_PREFIX + rule_id, rule, summary))
    table = names.rules_table
    aspects += [
        Aspect(TABLE, table, EXISTS, True, "created"),
        Aspect(TABLE, table, KEY, [["dataset", "HASH", "S"]], "key dataset (string)"),
        Aspect(TABLE, table, BILLING, "PAY_PER_REQUEST", "on-demand"),
        Aspect(TABLE, table, PITR, "ENABLED", "on"),
    ]
    policy_names = PolicyNames(
        names.landing_bucket,
        names.partitioned_bucket,
        rules_table_arn(region, account, table),
        options.kms_key,
        outcome_log_groups_arn(region, account, names.log_prefix) if names.log_prefix else None,
        names.alert_topic,
    )
    for policy, build in POLICIES.items():
        aspects.append(Aspect(POLICY, policy, DOCUMENT, build(policy_names), "generated"))
    vendor_arn = f"arn:aws:iam::{account}:policy/{VENDOR_POLICY}"
    aspects.append(Aspect(USER, VENDOR_USER, ATTACHED, [vendor_arn], f"only {VENDOR_POLICY}"))
    if names.log_prefix:
        for outcome in OUTCOMES:
            group = outcome_log_group(names.log_prefix, outcome)
            days = options.log_retention_days
            aspects.append(Aspect(LOG_GROUP, group, RETENTION, days, f"{days} days"))
    return aspects
