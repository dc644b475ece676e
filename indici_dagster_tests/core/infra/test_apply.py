"""`indici infra` against the moto server: what apply stores, that plan and a second apply
change nothing (the stored configuration compared in full before and after), drift repaired,
others' lifecycle rules kept, conflicts refused before any change.

moto never runs lifecycle transitions: the rules are checked as stored."""

import functools
from collections.abc import Iterator

import pytest

from indici_dagster.core.infra.aws_apply import apply_changes
from indici_dagster.core.infra.aws_read import Clients, connect, read_current
from indici_dagster.core.infra.desired import (
    InfraError,
    InfraOptions,
    desired_aspects,
    names_from,
)
from indici_dagster.core.infra.plan import Change, describe_change, plan_changes
from indici_dagster.core.infra.policies import (
    POLICIES,
    PolicyNames,
    outcome_log_groups_arn,
    rules_table_arn,
)
from indici_dagster_tests.support.infra import (
    ACCOUNT,
    InfraNames,
    client,
    log_groups,
    remove_infra_iam,
    stored_configuration,
)

KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture
def names(moto_endpoint: str) -> Iterator[InfraNames]:
    remove_infra_iam()
    yield InfraNames.fresh()
    remove_infra_iam()


@functools.cache
def _clients() -> Clients:
    return connect("us-east-1")


def plan(names: InfraNames, options: InfraOptions = InfraOptions()) -> list[Change]:  # noqa: B008
    clients = _clients()
    settings_names = names_from(names.settings())
    aspects = desired_aspects(settings_names, options, clients.region, clients.account)
    return plan_changes(aspects, read_current(clients, aspects))


def apply(names: InfraNames, options: InfraOptions = InfraOptions()) -> list[str]:  # noqa: B008
    lines: list[str] = []
    apply_changes(_clients(), plan(names, options), lines.append)
    return lines


def test_apply_creates_everything_as_asked_and_stores_it(names):
    lines = apply(names, InfraOptions(tiering_days=10, archive_days=200, log_retention_days=90))
    assert "+ bucket " + names.landing + ": create" in lines
    s3, dynamodb = client("s3"), client("dynamodb")
    for bucket in (names.landing, names.partitioned):
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert block == dict.fromkeys(
            ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"),
            True,
        )
        (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=names.landing)["Status"] == "Enabled"
    assert s3.get_bucket_versioning(Bucket=names.partitioned).get("Status") is None
    (landing_rule,) = s3.get_bucket_lifecycle_configuration(Bucket=names.landing)["Rules"]
    assert landing_rule["Filter"] == {"Prefix": "incoming/"}
    assert landing_rule["Transitions"] == [
        {"Days": 10, "StorageClass": "INTELLIGENT_TIERING"},
        {"Days": 200, "StorageClass": "GLACIER"},
    ]
    assert "Expiration" not in landing_rule and "NoncurrentVersionExpiration" not in landing_rule
    (copies_rule,) = s3.get_bucket_lifecycle_configuration(Bucket=names.partitioned)["Rules"]
    assert copies_rule["Filter"] == {"Prefix": "indici/dataset="}
    table = dynamodb.describe_table(TableName=names.table)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "dataset", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "dataset", "AttributeType": "S"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    backups = dynamodb.describe_continuous_backups(TableName=names.table)
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"
    iam = client("iam")
    expected_names = PolicyNames(
        names.landing,
        names.partitioned,
        rules_table_arn("us-east-1", ACCOUNT, names.table),
        outcome_log_groups_arn=outcome_log_groups_arn("us-east-1", ACCOUNT, names.log_prefix),
    )
    for policy, build in POLICIES.items():
        arn = f"arn:aws:iam::{ACCOUNT}:policy/{policy}"
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        stored = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]
        assert stored["Document"] == build(expected_names)
    attached = iam.list_attached_user_policies(UserName="valentia-import")["AttachedPolicies"]
    assert [a["PolicyName"] for a in attached] == ["valentia-upload"]
    groups = client("logs").describe_log_groups(logGroupNamePrefix=names.log_prefix)
    assert {g["logGroupName"]: g["retentionInDays"] for g in groups["logGroups"]} == dict.fromkeys(
        log_groups(names), 90
    )


def test_plan_changes_nothing_and_a_second_apply_has_no_changes_and_changes_nothing(names):
    before = stored_configuration(names)
    planned = plan(names)
    assert planned and stored_configuration(names) == before  # nothing created by plan
    apply(names)
    applied = stored_configuration(names)
    assert applied != before
    assert plan(names) == []
    assert apply(names) == []
    assert stored_configuration(names) == applied


def test_drift_is_planned_then_repaired_and_others_lifecycle_rules_stay(names):
    apply(names)
    s3, logs = client("s3"), client("logs")
    s3.put_bucket_versioning(Bucket=names.landing, VersioningConfiguration={"Status": "Suspended"})
    theirs = {
        "ID": "theirs",
        "Filter": {"Prefix": "elsewhere/"},
        "Status": "Enabled",
        "Transitions": [{"Days": 90, "StorageClass": "GLACIER"}],
    }
    ours = s3.get_bucket_lifecycle_configuration(Bucket=names.partitioned)["Rules"]
    s3.put_bucket_lifecycle_configuration(
        Bucket=names.partitioned, LifecycleConfiguration={"Rules": [*ours, theirs]}
    )
    logs.put_retention_policy(logGroupName=log_groups(names)[2], retentionInDays=1)
    drifted = stored_configuration(names)
    lines = [describe_change(change) for change in plan(names)]
    assert lines == [
        f"~ bucket {names.landing}: versioning: on (differs now)",
        f"~ log group {log_groups(names)[2]}: retention: 400 days (differs now)",
    ]
    assert stored_configuration(names) == drifted
    apply(names)
    assert plan(names) == []
    assert s3.get_bucket_versioning(Bucket=names.landing)["Status"] == "Enabled"
    rules = s3.get_bucket_lifecycle_configuration(Bucket=names.partitioned)["Rules"]
    assert theirs in rules and len(rules) == 2


def test_new_options_update_the_stored_rules_and_kms_encryption(names):
    apply(names)
    options = InfraOptions(tiering_days=30, archive_days=365, kms_key=KEY)
    lines = apply(names, options)
    assert any("encryption: SSE-KMS" in line for line in lines)
    s3 = client("s3")
    (rule,) = s3.get_bucket_encryption(Bucket=names.landing)["ServerSideEncryptionConfiguration"][
        "Rules"
    ]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": KEY,
    }
    (landing_rule,) = s3.get_bucket_lifecycle_configuration(Bucket=names.landing)["Rules"]
    assert landing_rule["Transitions"][-1] == {"Days": 365, "StorageClass": "GLACIER"}
    iam = client("iam")
    arn = f"arn:aws:iam::{ACCOUNT}:policy/indici-pipeline"
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]
    assert any(s["Sid"] == "UseBucketKey" for s in document["Document"]["Statement"])
    assert plan(names, options) == []


def test_a_policy_updated_more_often_than_iam_keeps_versions_still_applies(names):
    for days in range(1, 8):  # each kms key change is a new version of every policy
        key = KEY.replace("1234abcd", f"{days:04d}abcd")
        apply(names, InfraOptions(kms_key=key))
    arn = f"arn:aws:iam::{ACCOUNT}:policy/valentia-upload"
    assert len(client("iam").list_policy_versions(PolicyArn=arn)["Versions"]) == 5


def test_a_rules_table_keyed_otherwise_stops_apply_before_any_change(names):
    client("dynamodb").create_table(
        TableName=names.table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    before = stored_configuration(names)
    with pytest.raises(InfraError, match=f"nothing changed: table {names.table}: key: its key"):
        apply(names)
    assert stored_configuration(names) == before


def test_an_existing_provisioned_table_without_recovery_is_switched_and_keeps_its_rules(names):
    dynamodb = client("dynamodb")
    dynamodb.create_table(
        TableName=names.table,
        KeySchema=[{"AttributeName": "dataset", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "dataset", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
    )
    dynamodb.put_item(TableName=names.table, Item={"dataset": {"S": "Patients"}})
    table_lines = [
        describe_change(c) for c in plan(names) if c.aspect.resource == f"table {names.table}"
    ]
    assert table_lines == [
        f"~ table {names.table}: billing: on-demand (differs now)",
        f"~ table {names.table}: point-in-time recovery: on (differs now)",
    ]
    apply(names)
    table = dynamodb.describe_table(TableName=names.table)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert dynamodb.scan(TableName=names.table)["Items"] == [{"dataset": {"S": "Patients"}}]
    assert plan(names) == []
