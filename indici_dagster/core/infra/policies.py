"""The IAM policy documents of the three principals that touch the buckets and the rules table.

One function per policy builds its document from the names (`PolicyNames`); `indici infra`
creates the managed policies from them, and the files in `deploy/iam/` are their output for the
original pipeline's names (the tests' `PLACEHOLDER_NAMES`: no account is written into the
package), checked by a test, never kept by hand.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VERSION = "2012-10-17"
RULES_READS = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"]


@dataclass(frozen=True)
class PolicyNames:
    """What the policies grant access to."""

    landing_bucket: str
    partitioned_bucket: str
    rules_table_arn: str
    kms_key_arn: str | None = None
    """The buckets' SSE-KMS key (`--kms-key`): each principal encrypts and decrypts with it."""
    outcome_log_groups_arn: str | None = None
    """`arn:aws:logs:<region>:<account>:log-group:<INDICI_CLOUDWATCH_PREFIX>/*`, when set: the
    runs and the code server (the sensors) send audit rows there."""
    alert_topic_arn: str | None = None
    """`INDICI_ALERT_SNS_TOPIC`, when set: the code server's sensors publish alerts to it."""


def rules_table_arn(region: str, account: str, table: str) -> str:
    """The ARN of DynamoDB table `table` in `region` of `account`."""
    return f"arn:aws:dynamodb:{region}:{account}:table/{table}"


def outcome_log_groups_arn(region: str, account: str, prefix: str) -> str:
    """The ARN pattern of the outcome log groups (and their streams) under `prefix`."""
    return f"arn:aws:logs:{region}:{account}:log-group:{prefix}/*"


_SEND_OUTCOMES = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]


def _outcomes(names: PolicyNames) -> list[dict[str, Any]]:
    if not names.outcome_log_groups_arn:
        return []
    return [_statement("SendOutcomeEvents", list(_SEND_OUTCOMES), names.outcome_log_groups_arn)]


def _bucket(name: str) -> str:
    return f"arn:aws:s3:::{name}"


def _statement(sid: str, actions: str | list[str], resources: str | list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def _document(names: PolicyNames, statements: list[dict[str, Any]]) -> dict[str, Any]:
    if names.kms_key_arn:  # SSE-KMS: reading needs Decrypt, writing GenerateDataKey
        statements.append(
            _statement("UseBucketKey", ["kms:Decrypt", "kms:GenerateDataKey"], names.kms_key_arn)
        )
    return {"Version": VERSION, "Statement": statements}


def valentia_upload_policy(names: PolicyNames) -> dict[str, Any]:
    """The vendor's upload policy: list the landing bucket, put and get its objects; nothing
    else (no delete, no other bucket, no DynamoDB)."""
    landing = _bucket(names.landing_bucket)
    return _document(
        names,
        [
            _statement("ListLandingBucket", "s3:ListBucket", landing),
            _statement(
                "UploadAndReadBackLandedFiles", ["s3:PutObject", "s3:GetObject"], f"{landing}/*"
            ),
        ],
    )


def pipeline_policy(names: PolicyNames) -> dict[str, Any]:
    """The runs' least-privilege policy: read landing, read partitioned, write only the
    partitioned copies (never the rules snapshot), read the rules table; no delete anywhere;
    with `INDICI_CLOUDWATCH_PREFIX`, send outcome events to its groups only."""
    landing, partitioned = _bucket(names.landing_bucket), _bucket(names.partitioned_bucket)
    return _document(
        names,
        [
            _statement("ListBuckets", "s3:ListBucket", [landing, partitioned]),
            _statement("ReadLandedFiles", "s3:GetObject", f"{landing}/*"),
            _statement(
                "CheckPartitionedCopiesAndReadRulesSnapshot", "s3:GetObject", f"{partitioned}/*"
            ),
            _statement(
                "WritePartitionedCopies", "s3:PutObject", f"{partitioned}/*dataset=*/date=*/*"
            ),
            _statement("ReadTransformationRules", list(RULES_READS), names.rules_table_arn),
            *_outcomes(names),
        ],
    )


def code_location_policy(names: PolicyNames) -> dict[str, Any]:
    """The code server's policy: list both buckets, keep the rules snapshot (get and put under
    `*_indici/rules/*` of partitioned only), read the rules table; with the settings that ask
    for them, send the sensors' outcome events and publish alerts to the one topic."""
    landing, partitioned = _bucket(names.landing_bucket), _bucket(names.partitioned_bucket)
    return _document(
        names,
        [
            _statement("ListBuckets", "s3:ListBucket", [landing, partitioned]),
            _statement(
                "KeepRulesSnapshot",
                ["s3:GetObject", "s3:PutObject"],
                f"{partitioned}/*_indici/rules/*",
            ),
            _statement("ReadTransformationRules", list(RULES_READS), names.rules_table_arn),
            *_outcomes(names),
            *(
                [_statement("PublishAlerts", ["sns:Publish"], names.alert_topic_arn)]
                if names.alert_topic_arn
                else []
            ),
        ],
    )


POLICIES: dict[str, Callable[[PolicyNames], dict[str, Any]]] = {
    "valentia-upload": valentia_upload_policy,
    "indici-pipeline": pipeline_policy,
    "indici-code-location": code_location_policy,
}
"""Each managed policy's name (`deploy/iam/<name>-policy.json`) and the function building it."""


def policy_file_name(policy: str) -> str:
    """The file in `deploy/iam/` holding policy `policy`."""
    return f"{policy}-policy.json"


def render_policy(document: dict[str, Any]) -> str:
    """A policy document as the text of its `deploy/iam/` file (2-space JSON, one final
    newline): the same document always renders to the same text."""
    return json.dumps(document, indent=2) + "\n"


def write_policy_files(folder: str | Path, names: PolicyNames) -> list[Path]:
    """Write every policy for `names` into `folder` (with the tests' placeholder names: the
    tracked `deploy/iam/` files); returns the files written."""
    written = []
    for policy, build in POLICIES.items():
        path = Path(folder) / policy_file_name(policy)
        path.write_text(render_policy(build(names)), encoding="utf-8")
        written.append(path)
    return written
