"""What exists now, read through boto3 and shaped like `core.infra.desired`'s values.

Nothing here changes anything. A refused or failed read is an `InfraError` naming the resource,
the call and the AWS error code, never the service's message text.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import boto3
from botocore.exceptions import ClientError

from indici_dagster.core.errors import describe_storage_error, storage_error_code
from indici_dagster.core.infra.desired import (
    BILLING,
    BUCKET,
    ENCRYPTION,
    EXISTS,
    KEY,
    LIFECYCLE_PREFIX,
    LOG_GROUP,
    POLICY,
    PUBLIC_ACCESS,
    TABLE,
    USER,
    VERSIONING,
    Aspect,
    InfraError,
)
from indici_dagster.core.infra.plan import AspectKey, aspect_key

NOT_FOUND = frozenset(
    {
        "404",
        "NoSuchBucket",
        "NotFound",
        "ResourceNotFoundException",
        "NoSuchEntity",
        "ServerSideEncryptionConfigurationNotFoundError",
        "NoSuchPublicAccessBlockConfiguration",
        "NoSuchLifecycleConfiguration",
    }
)
"""Codes meaning "there is none": the resource or the configuration is absent."""
NEVER_EXPIRES = "never"
"""The retention of a log group that keeps its events forever."""


DENIED = frozenset({"AccessDenied", "AccessDeniedException", "403", "UnauthorizedOperation"})


def describe_failure(error: BaseException) -> str:
    """The failed call and its AWS code, and for a refusal that the caller's IAM permissions
    are what is missing."""
    described = describe_storage_error(error)
    if storage_error_code(error) in DENIED:
        return f"{described}: the caller's IAM permissions do not allow it"
    return described


@dataclass(frozen=True)
class Clients:
    """The boto3 clients `indici infra` uses, and the region and account they reach."""

    s3: Any
    dynamodb: Any
    iam: Any
    logs: Any
    region: str
    account: str


def connect(region: str | None) -> Clients:
    """Clients for `region` (None: boto3's configuration) and the caller's account id."""
    session = boto3.session.Session(region_name=region)
    if not session.region_name:
        raise InfraError("no AWS region: set AWS_DEFAULT_REGION (or AWS_REGION)")
    try:
        account = session.client("sts").get_caller_identity()["Account"]
    except ClientError as error:  # no credentials, no endpoint: the CLI's own one line
        raise InfraError(f"cannot tell the AWS account: {describe_failure(error)}") from None
    clients = [session.client(name) for name in ("s3", "dynamodb", "iam", "logs")]
    return Clients(*clients, region=session.region_name, account=account)


def _absent_if_missing(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except ClientError as error:
        if storage_error_code(error) in NOT_FOUND:
            return None
        raise


def _encryption(s3: Any, bucket: str) -> Any:
    response = s3.get_bucket_encryption(Bucket=bucket)
    rule = response["ServerSideEncryptionConfiguration"]["Rules"][0]
    default = rule.get("ApplyServerSideEncryptionByDefault", {})
    value = {"SSEAlgorithm": default.get("SSEAlgorithm")}
    if value["SSEAlgorithm"] == "aws:kms":
        value["KMSMasterKeyID"] = default.get("KMSMasterKeyID")
        value["BucketKeyEnabled"] = bool(rule.get("BucketKeyEnabled"))
    return value


def lifecycle_rules(s3: Any, bucket: str) -> list[dict[str, Any]]:
    """Every lifecycle rule of `bucket` (none: empty)."""
    read = _absent_if_missing(lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket))
    return list((read or {}).get("Rules", []))


def _lifecycle_rule(s3: Any, bucket: str, rule_id: str) -> Any:
    rule = next((r for r in lifecycle_rules(s3, bucket) if r.get("ID") == rule_id), None)
    if rule is not None and rule.get("Filter") == {}:  # how S3 may return the empty prefix
        rule = {**rule, "Filter": {"Prefix": ""}}
    return rule


def _bucket_setting(s3: Any, bucket: str, setting: str) -> Any:
    if setting == EXISTS:
        return _absent_if_missing(lambda: s3.head_bucket(Bucket=bucket)) is not None
    if setting == PUBLIC_ACCESS:
        read = s3.get_public_access_block(Bucket=bucket)
        return read["PublicAccessBlockConfiguration"]
    if setting == ENCRYPTION:
        return _encryption(s3, bucket)
    if setting == VERSIONING:
        return s3.get_bucket_versioning(Bucket=bucket).get("Status")
    return _lifecycle_rule(s3, bucket, setting.removeprefix(LIFECYCLE_PREFIX))


def _key(table: dict[str, Any]) -> list[list[str]]:
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    return [
        [k["AttributeName"], k["KeyType"], types.get(k["AttributeName"], "")]
        for k in table["KeySchema"]
    ]


def _table_setting(dynamodb: Any, table: str, setting: str) -> Any:
    description = dynamodb.describe_table(TableName=table)["Table"]
    if setting == EXISTS:
        return True
    if setting == KEY:
        return _key(description)
    if setting == BILLING:
        return description.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
    backups = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    return backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")


def policy_arn(clients: Clients, policy: str) -> str:
    """The ARN of the customer managed policy `policy` in the caller's account."""
    return f"arn:aws:iam::{clients.account}:policy/{policy}"


def _policy_document(clients: Clients, policy: str) -> Any:
    arn = policy_arn(clients, policy)
    version = clients.iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    read = clients.iam.get_policy_version(PolicyArn=arn, VersionId=version)
    document = read["PolicyVersion"]["Document"]
    return json.loads(unquote(document)) if isinstance(document, str) else document


def _attached(iam: Any, user: str) -> list[str]:
    iam.get_user(UserName=user)
    pages = iam.get_paginator("list_attached_user_policies").paginate(UserName=user)
    return sorted(p["PolicyArn"] for page in pages for p in page["AttachedPolicies"])


def _retention(logs: Any, group: str) -> Any:
    pages = logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=group)
    for page in pages:
        for found in page["logGroups"]:
            if found["logGroupName"] == group:
                return found.get("retentionInDays", NEVER_EXPIRES)
    return None


def read_aspect(clients: Clients, aspect: Aspect) -> Any:
    """The current value of `aspect`, shaped like its `desired`; None when absent."""
    kind, name, setting = aspect.kind, aspect.name, aspect.setting
    readers: dict[str, Callable[[], Any]] = {
        BUCKET: lambda: _bucket_setting(clients.s3, name, setting),
        TABLE: lambda: _table_setting(clients.dynamodb, name, setting),
        POLICY: lambda: _policy_document(clients, name),
        USER: lambda: _attached(clients.iam, name),
        LOG_GROUP: lambda: _retention(clients.logs, name),
    }
    return _absent_if_missing(readers[kind])


def read_current(clients: Clients, aspects: list[Aspect]) -> dict[AspectKey, Any]:
    """The current value of every aspect; the settings of an absent bucket or table are not
    read (absent). `InfraError` naming the resource and the refused call on any failure."""
    current: dict[AspectKey, Any] = {}
    missing: set[tuple[str, str]] = set()
    for aspect in aspects:
        if (aspect.kind, aspect.name) in missing:
            continue
        try:
            value = read_aspect(clients, aspect)
        except ClientError as error:
            raise InfraError(
                f"cannot read {aspect.resource} ({aspect.setting}): "
                f"{describe_failure(error)}; nothing was changed"
            ) from None
        if aspect.setting == EXISTS and not value:
            missing.add((aspect.kind, aspect.name))
        current[aspect_key(aspect)] = value
    return current
