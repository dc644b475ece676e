"""What `indici infra` tests share: unique names on the session's moto server, everything the
command stores read back in full (to compare before and after), and removing the fixed-name IAM
resources it creates (moto keeps one IAM backend for the whole process)."""

import contextlib
import functools
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from indici_dagster.core.infra.desired import OUTCOMES, VENDOR_USER, outcome_log_group
from indici_dagster.core.infra.policies import POLICIES, PolicyNames
from indici_dagster.core.settings import Settings

ACCOUNT = "123456789012"  # moto's


@dataclass(frozen=True)
class InfraNames:
    """Unique bucket, table and log-group names for one test."""

    landing: str
    partitioned: str
    table: str
    log_prefix: str

    @classmethod
    def fresh(cls) -> "InfraNames":
        """Names no other test uses."""
        suffix = uuid.uuid4().hex[:10]
        return cls(
            f"landing-{suffix}", f"partitioned-{suffix}", f"rules-{suffix}", f"/indici-{suffix}"
        )

    def settings(self) -> Settings:
        """Settings naming these resources (the warehouse is never reached)."""
        return Settings(
            landing=f"s3://{self.landing}/incoming",
            partitioned=f"s3://{self.partitioned}/indici",
            rules=f"dynamodb://{self.table}",
            pg_dsn="embedded",
            cloudwatch_prefix=self.log_prefix,
        )

    def environment(self) -> dict[str, str]:
        """The same as environment variables, with the CloudWatch prefix."""
        return {
            "INDICI_LANDING": f"s3://{self.landing}/incoming",
            "INDICI_PARTITIONED": f"s3://{self.partitioned}/indici",
            "INDICI_RULES": f"dynamodb://{self.table}",
            "INDICI_PG_DSN": "embedded",
            "INDICI_CLOUDWATCH_PREFIX": self.log_prefix,
        }


@functools.cache
def client(service: str) -> Any:
    """One boto3 client per service for the whole session (making them is slow)."""
    return boto3.client(service)


def _or_none(call: Any, **kwargs: Any) -> Any:
    try:
        response = call(**kwargs)
    except ClientError as error:
        return error.response["Error"]["Code"]
    response.pop("ResponseMetadata", None)
    return response


def stored_configuration(names: InfraNames) -> dict[str, Any]:
    """Everything `indici infra` sets, as stored (or the error code reading it)."""
    s3, dynamodb, iam, logs = map(client, ("s3", "dynamodb", "iam", "logs"))
    stored: dict[str, Any] = {}
    for bucket in (names.landing, names.partitioned):
        for call in (
            s3.get_bucket_encryption,
            s3.get_public_access_block,
            s3.get_bucket_versioning,
            s3.get_bucket_lifecycle_configuration,
        ):
            stored[f"{bucket} {call.__name__}"] = _or_none(call, Bucket=bucket)
    stored["table"] = _or_none(dynamodb.describe_table, TableName=names.table)
    stored["backups"] = _or_none(dynamodb.describe_continuous_backups, TableName=names.table)
    for policy in POLICIES:
        arn = f"arn:aws:iam::{ACCOUNT}:policy/{policy}"
        stored[policy] = _or_none(iam.get_policy, PolicyArn=arn)
        stored[f"{policy} versions"] = _or_none(iam.list_policy_versions, PolicyArn=arn)
    stored["user"] = _or_none(iam.get_user, UserName=VENDOR_USER)
    stored["user policies"] = _or_none(iam.list_attached_user_policies, UserName=VENDOR_USER)
    stored["log groups"] = _or_none(logs.describe_log_groups, logGroupNamePrefix=names.log_prefix)
    return stored


def remove_infra_iam() -> None:
    """Delete the vendor user and the generated policies, if present."""
    iam = client("iam")
    for policy in POLICIES:
        arn = f"arn:aws:iam::{ACCOUNT}:policy/{policy}"
        with contextlib.suppress(ClientError):
            iam.detach_user_policy(UserName=VENDOR_USER, PolicyArn=arn)
        with contextlib.suppress(ClientError):
            for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
                if not version["IsDefaultVersion"]:
                    iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
            iam.delete_policy(PolicyArn=arn)
    with contextlib.suppress(ClientError):
        for attached in iam.list_attached_user_policies(UserName=VENDOR_USER)["AttachedPolicies"]:
            iam.detach_user_policy(UserName=VENDOR_USER, PolicyArn=attached["PolicyArn"])
        iam.delete_user(UserName=VENDOR_USER)


def log_groups(names: InfraNames) -> list[str]:
    """The three outcome groups of `names`."""
    return [outcome_log_group(names.log_prefix, outcome) for outcome in OUTCOMES]


PLACEHOLDER_NAMES = PolicyNames(
    landing_bucket="kpa-valentia",
    partitioned_bucket="kpa-indici-partitioned",
    rules_table_arn="arn:aws:dynamodb:ap-southeast-2:123456789012:table/indici-rules",
)
"""The original pipeline's names: the tracked files of `deploy/iam/` are the policies for
them (an example account, kept out of the package and so out of the image)."""
