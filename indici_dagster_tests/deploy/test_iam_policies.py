"""The IAM policies in deploy/iam, attached to IAM users on a moto server that enforces IAM.

moto 5.2.5 authorizes requests once `settings.INITIAL_NO_AUTH_ACTION_COUNT` is reached; its
server sets that value through `POST /moto-api/reset-auth` (what `set_initial_no_auth_action_count`
uses in server mode). The server here is its own ThreadedMotoServer on 127.0.0.1, but moto keeps
one backend and one auth switch per process: buckets, table and users get unique names, auth is
switched on only while a test runs and restored (and everything deleted) afterwards.

What moto checks, and what it does not: S3 requests are matched against action and resource
(`arn:aws:s3:::bucket` / `.../key`), so bucket scoping is enforced. DynamoDB requests are matched
on the action only (moto authorizes them against resource `*`, so a statement scoped to a table
ARN would never match): the copy of the pipeline policy attached here has its DynamoDB resource
widened to `*`, and the shipped file's exact table ARN is checked statically instead.
"""

import contextlib
import fnmatch
import json
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
import yaml
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from dagster import DagsterInstance

from indici_dagster.core.infra.policies import POLICIES, PolicyNames
from indici_dagster.core.rules.model import parse_rules
from indici_dagster.core.settings import Settings
from indici_dagster_tests.support.cfn import EXAMPLE_PARAMETERS, Stack, load_template
from indici_dagster_tests.support.common import (
    TEST_RULES,
    TIMEZONE,
    build,
    execute_requests,
    parquet_bytes,
    query,
    tick,
)

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy"
IAM_DIR = DEPLOY_DIR / "iam"
LANDING, PARTITIONED, RULES_TABLE = "kpa-valentia", "kpa-indici-partitioned", "indici-rules"
RULES_TABLE_ARN = f"arn:aws:dynamodb:ap-southeast-2:123456789012:table/{RULES_TABLE}"
REGION = "us-east-1"
ADMIN_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def load_policy(name: str) -> dict[str, Any]:
    """A policy document from deploy/iam, parsed."""
    return json.loads((IAM_DIR / name).read_text(encoding="utf-8"))


def grants(policy: dict[str, Any], effect: str = "Allow") -> set[tuple[str, str]]:
    """Every (action, resource) pair a policy allows (or, with `effect="Deny"`, denies); fails
    on anything but plain Allow and Deny statements."""
    pairs: set[tuple[str, str]] = set()
    assert policy["Version"] == "2012-10-17"
    for statement in policy["Statement"]:
        assert statement["Effect"] in ("Allow", "Deny")
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource"}, statement
        if statement["Effect"] != effect:
            continue
        actions = statement["Action"]
        resources = statement["Resource"]
        for action in [actions] if isinstance(actions, str) else actions:
            for resource in [resources] if isinstance(resources, str) else resources:
                pairs.add((action, resource))
    return pairs


def test_valentia_policy_allows_only_listing_uploading_and_reading_landing():
    assert grants(load_policy("valentia-upload-policy.json")) == {
        ("s3:ListBucket", f"arn:aws:s3:::{LANDING}"),
        ("s3:PutObject", f"arn:aws:s3:::{LANDING}/*"),
        ("s3:GetObject", f"arn:aws:s3:::{LANDING}/*"),
    }


def test_pipeline_policy_allows_only_reading_landing_writing_partitioned_and_reading_rules():
    assert grants(load_policy("indici-pipeline-policy.json")) == {
        ("s3:ListBucket", f"arn:aws:s3:::{LANDING}"),
        ("s3:GetObject", f"arn:aws:s3:::{LANDING}/*"),
        ("s3:ListBucket", f"arn:aws:s3:::{PARTITIONED}"),
        ("s3:GetObject", f"arn:aws:s3:::{PARTITIONED}/*"),
        # the copies only (`<prefix>/dataset=<D>/date=<d>/<file>`): never the rules snapshot
        ("s3:PutObject", f"arn:aws:s3:::{PARTITIONED}/*dataset=*/date=*/*"),
        ("dynamodb:DescribeTable", RULES_TABLE_ARN),
        ("dynamodb:GetItem", RULES_TABLE_ARN),
        ("dynamodb:Query", RULES_TABLE_ARN),
        ("dynamodb:Scan", RULES_TABLE_ARN),
    }


RULES_SNAPSHOTS = f"arn:aws:s3:::{PARTITIONED}/*_indici/rules/*"
"""The rules snapshot under any partitioned prefix (`<prefix>/_indici/rules/<table>.json`)."""


def test_code_location_policy_allows_only_listing_keeping_the_rules_snapshot_and_reading_rules():
    assert grants(load_policy("indici-code-location-policy.json")) == {
        ("s3:ListBucket", f"arn:aws:s3:::{LANDING}"),
        ("s3:ListBucket", f"arn:aws:s3:::{PARTITIONED}"),
        ("s3:GetObject", RULES_SNAPSHOTS),
        ("s3:PutObject", RULES_SNAPSHOTS),
        ("dynamodb:DescribeTable", RULES_TABLE_ARN),
        ("dynamodb:GetItem", RULES_TABLE_ARN),
        ("dynamodb:Query", RULES_TABLE_ARN),
        ("dynamodb:Scan", RULES_TABLE_ARN),
    }


def _matches(pattern: str, value: str) -> bool:
    """IAM's wildcard match (`*` any run of characters, `?` one), case-sensitive."""
    return fnmatch.fnmatchcase(value, pattern)


@pytest.mark.parametrize("snapshot", ["_indici/rules/t.json", "indici/_indici/rules/t.json"])
def test_only_the_code_location_policy_lets_a_role_write_the_rules_snapshot(snapshot):
    target = f"arn:aws:s3:::{PARTITIONED}/{snapshot}"
    writers = set()
    for path in sorted(IAM_DIR.glob("*.json")):
        policy = load_policy(path.name)
        allowed_here = any(
            _matches(action, "s3:PutObject") and _matches(resource, target)
            for action, resource in grants(policy)
        )
        denied_here = any(
            _matches(action, "s3:PutObject") and _matches(resource, target)
            for action, resource in grants(policy, "Deny")
        )
        if allowed_here and not denied_here:
            writers.add(path.name)
    assert writers == {"indici-code-location-policy.json"}
    # and the code server's ECS task runs as a role of its own, not the runs' role (the ECS
    # template; test_deploy_ecs_roles.py checks its roles grant what these files grant)
    stack = Stack(load_template(), EXAMPLE_PARAMETERS)
    code_location = stack.resources()["CodeLocationTaskDefinition"]
    (daemon,) = stack.resources()["DaemonTaskDefinition"]["ContainerDefinitions"]
    runs = yaml.safe_load((DEPLOY_DIR / "ecs" / "dagster.yaml").read_text())
    run_role = runs["run_launcher"]["config"]["task_definition"]["task_role_arn"]
    daemon_env = {e["Name"]: e["Value"] for e in daemon["Environment"]}
    assert code_location["TaskRoleArn"].endswith(":role/indici-dagster-code-location")
    assert daemon_env[run_role["env"]].endswith(":role/indici-dagster-task")


COPY = "indici/dataset=Patients/date=2026-11-24/b.parquet"
BIG_COPY = "indici/dataset=Patients/date=2026-11-24/big.parquet"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Keys:
    """An IAM user's access key."""

    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class World:
    """A moto server enforcing IAM, with buckets, a rules table and one user per policy."""

    endpoint: str
    landing: str
    partitioned: str
    table: str
    valentia: Keys
    pipeline: Keys
    code_location: Keys

    def client(self, service: str, keys: Keys | None = None) -> Any:
        """A boto3 client for this server, as `keys` (default: the unrestricted test keys)."""
        credentials = (
            {
                "aws_access_key_id": keys.access_key_id,
                "aws_secret_access_key": keys.secret_access_key,
            }
            if keys
            else ADMIN_KEYS
        )
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, **credentials)


def attachable(name: str, landing: str, partitioned: str) -> str:
    """The policy of file `name` generated for these buckets (what `indici infra apply`
    creates; the tracked file is the same generator's output), as moto can enforce it."""
    build = POLICIES[name.removesuffix("-policy.json")]
    # moto matches DynamoDB requests against resource "*" only (see the module docstring)
    return json.dumps(build(PolicyNames(landing, partitioned, rules_table_arn="*")))


def _set_auth(endpoint: str, value: str) -> str:
    """Set the server's INITIAL_NO_AUTH_ACTION_COUNT ("0": enforce IAM); return the old one."""
    response = requests.post(f"{endpoint}/moto-api/reset-auth", data=value.encode(), timeout=10)
    response.raise_for_status()
    return response.json()["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]


@contextlib.contextmanager
def admin_access(endpoint: str) -> Iterator[None]:
    """Switch IAM enforcement off for a moment (to set things up with the test keys)."""
    _set_auth(endpoint, "inf")
    try:
        yield
    finally:
        _set_auth(endpoint, "0")


@pytest.fixture
def world() -> Iterator[World]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    previous = _set_auth(endpoint, "inf")
    suffix = uuid.uuid4().hex[:10]
    landing, partitioned, table = f"landing-{suffix}", f"partitioned-{suffix}", f"rules-{suffix}"
    nobody = Keys("", "")
    admin = World(endpoint, landing, partitioned, table, nobody, nobody, nobody)
    s3, iam, dynamodb = admin.client("s3"), admin.client("iam"), admin.client("dynamodb")
    users: list[tuple[str, str, str]] = []
    try:
        s3.create_bucket(Bucket=landing)
        s3.create_bucket(Bucket=partitioned)
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "dataset", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "dataset", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        rules = boto3.resource(
            "dynamodb", endpoint_url=endpoint, region_name=REGION, **ADMIN_KEYS
        ).Table(table)
        for rule in parse_rules(yaml.safe_load(TEST_RULES)).values():
            rules.put_item(Item=rule.to_dict())
        keys: dict[str, Keys] = {}
        for role, policy_file in (
            ("valentia", "valentia-upload-policy.json"),
            ("pipeline", "indici-pipeline-policy.json"),
            ("code_location", "indici-code-location-policy.json"),
        ):
            user = f"{role}-{suffix}"
            iam.create_user(UserName=user)
            document = attachable(policy_file, landing, partitioned)
            arn = iam.create_policy(PolicyName=user, PolicyDocument=document)["Policy"]["Arn"]
            iam.attach_user_policy(UserName=user, PolicyArn=arn)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            users.append((user, arn, key["AccessKeyId"]))
            keys[role] = Keys(key["AccessKeyId"], key["SecretAccessKey"])
        _set_auth(endpoint, "0")
        try:
            yield World(
                endpoint,
                landing,
                partitioned,
                table,
                keys["valentia"],
                keys["pipeline"],
                keys["code_location"],
            )
        finally:
            _set_auth(endpoint, "inf")
    finally:
        try:  # moto's backend outlives this server: leave nothing behind in it
            for bucket in (landing, partitioned):
                with contextlib.suppress(ClientError):
                    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                        s3.delete_object(Bucket=bucket, Key=item["Key"])
                    s3.delete_bucket(Bucket=bucket)
            with contextlib.suppress(ClientError):
                dynamodb.delete_table(TableName=table)
            for user, arn, key_id in users:
                iam.detach_user_policy(UserName=user, PolicyArn=arn)
                iam.delete_policy(PolicyArn=arn)
                iam.delete_access_key(UserName=user, AccessKeyId=key_id)
                iam.delete_user(UserName=user)
        finally:  # whatever happened, the rest of the session runs without IAM checks
            _set_auth(endpoint, previous)
            server.stop()


def allowed(call: Callable[[], object]) -> bool:
    """True if the call succeeds, False if IAM denies it; any other error is raised."""
    try:
        call()
    except ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 403 or error.response["Error"]["Code"] in ("AccessDenied", "403"):
            return False
        raise
    return True


def _seed(world: World) -> None:
    """One object in each bucket, put with the unrestricted test keys."""
    with admin_access(world.endpoint):
        s3 = world.client("s3")
        s3.put_object(Bucket=world.landing, Key="seed.parquet", Body=b"landed")
        s3.put_object(Bucket=world.partitioned, Key="seed.parquet", Body=b"copied")


def test_valentia_can_list_upload_and_read_landing_and_nothing_else(world: World):
    _seed(world)
    s3 = world.client("s3", world.valentia)
    dynamodb = world.client("dynamodb", world.valentia)
    landing, partitioned = world.landing, world.partitioned
    outcome = {
        "put landing": allowed(lambda: s3.put_object(Bucket=landing, Key="a.parquet", Body=b"1")),
        "list landing": allowed(lambda: s3.list_objects_v2(Bucket=landing)),
        "get landing": allowed(lambda: s3.get_object(Bucket=landing, Key="a.parquet")),
        "head landing": allowed(lambda: s3.head_object(Bucket=landing, Key="a.parquet")),
        "delete landing": allowed(lambda: s3.delete_object(Bucket=landing, Key="a.parquet")),
        "delete landing bucket": allowed(lambda: s3.delete_bucket(Bucket=landing)),
        "put landing bucket policy": allowed(
            lambda: s3.put_bucket_policy(Bucket=landing, Policy='{"Statement": []}')
        ),
        "list partitioned": allowed(lambda: s3.list_objects_v2(Bucket=partitioned)),
        "get partitioned": allowed(lambda: s3.get_object(Bucket=partitioned, Key="seed.parquet")),
        "put partitioned": allowed(
            lambda: s3.put_object(Bucket=partitioned, Key="b.parquet", Body=b"1")
        ),
        "list buckets": allowed(s3.list_buckets),
        "create bucket": allowed(lambda: s3.create_bucket(Bucket=f"{landing}-new")),
        "scan rules": allowed(lambda: dynamodb.scan(TableName=world.table)),
        "get rule": allowed(
            lambda: dynamodb.get_item(TableName=world.table, Key={"dataset": {"S": "Patients"}})
        ),
        "put rule": allowed(
            lambda: dynamodb.put_item(TableName=world.table, Item={"dataset": {"S": "X"}})
        ),
    }
    assert outcome == {
        "put landing": True,
        "list landing": True,
        "get landing": True,
        "head landing": True,
        "delete landing": False,
        "delete landing bucket": False,
        "put landing bucket policy": False,
        "list partitioned": False,
        "get partitioned": False,
        "put partitioned": False,
        "list buckets": False,
        "create bucket": False,
        "scan rules": False,
        "get rule": False,
        "put rule": False,
    }


def test_pipeline_can_read_landing_write_partitioned_and_read_rules_and_nothing_else(
    world: World,
):
    _seed(world)
    s3 = world.client("s3", world.pipeline)
    dynamodb = world.client("dynamodb", world.pipeline)
    landing, partitioned, table = world.landing, world.partitioned, world.table
    big = b"x" * (6 * 1024 * 1024)
    with admin_access(world.endpoint):
        world.client("s3").put_object(Bucket=landing, Key="big.parquet", Body=big)
    multipart = TransferConfig(multipart_threshold=1024 * 1024, multipart_chunksize=5 * 1024**2)
    patients = {"dataset": {"S": "Patients"}}
    outcome = {
        "list landing": allowed(lambda: s3.list_objects_v2(Bucket=landing)),
        "get landing": allowed(lambda: s3.get_object(Bucket=landing, Key="seed.parquet")),
        "head landing": allowed(lambda: s3.head_object(Bucket=landing, Key="seed.parquet")),
        "put landing": allowed(lambda: s3.put_object(Bucket=landing, Key="a.parquet", Body=b"1")),
        "delete landing": allowed(lambda: s3.delete_object(Bucket=landing, Key="seed.parquet")),
        "list partitioned": allowed(lambda: s3.list_objects_v2(Bucket=partitioned)),
        "put partitioned": allowed(lambda: s3.put_object(Bucket=partitioned, Key=COPY, Body=b"1")),
        "put elsewhere in partitioned": allowed(
            lambda: s3.put_object(Bucket=partitioned, Key="indici/other.json", Body=b"1")
        ),
        "get partitioned": allowed(lambda: s3.get_object(Bucket=partitioned, Key=COPY)),
        "head partitioned": allowed(lambda: s3.head_object(Bucket=partitioned, Key=COPY)),
        "copy landing to partitioned": allowed(
            lambda: s3.copy_object(
                Bucket=partitioned,
                Key=COPY.replace("b.parquet", "c.parquet"),
                CopySource={"Bucket": landing, "Key": "seed.parquet"},
            )
        ),
        "multipart copy landing to partitioned": allowed(
            lambda: s3.copy(
                {"Bucket": landing, "Key": "big.parquet"},
                partitioned,
                BIG_COPY,
                Config=multipart,
            )
        ),
        "delete partitioned": allowed(lambda: s3.delete_object(Bucket=partitioned, Key=COPY)),
        "list buckets": allowed(s3.list_buckets),
        "create bucket": allowed(lambda: s3.create_bucket(Bucket=f"{partitioned}-new")),
        "scan rules": allowed(lambda: dynamodb.scan(TableName=table, ConsistentRead=True)),
        "get rule": allowed(lambda: dynamodb.get_item(TableName=table, Key=patients)),
        "query rules": allowed(
            lambda: dynamodb.query(
                TableName=table,
                KeyConditionExpression="dataset = :d",
                ExpressionAttributeValues={":d": {"S": "Patients"}},
            )
        ),
        "describe rules table": allowed(lambda: dynamodb.describe_table(TableName=table)),
        "put rule": allowed(
            lambda: dynamodb.put_item(TableName=table, Item={"dataset": {"S": "X"}})
        ),
        "delete rule": allowed(lambda: dynamodb.delete_item(TableName=table, Key=patients)),
        "delete rules table": allowed(lambda: dynamodb.delete_table(TableName=table)),
        "list tables": allowed(dynamodb.list_tables),
    }
    assert outcome == {
        "list landing": True,
        "get landing": True,
        "head landing": True,
        "put landing": False,
        "delete landing": False,
        "list partitioned": True,
        "put partitioned": True,
        "put elsewhere in partitioned": False,
        "get partitioned": True,
        "head partitioned": True,
        "copy landing to partitioned": True,
        "multipart copy landing to partitioned": True,
        "delete partitioned": False,
        "list buckets": False,
        "create bucket": False,
        "scan rules": True,
        "get rule": True,
        "query rules": True,
        "describe rules table": True,
        "put rule": False,
        "delete rule": False,
        "delete rules table": False,
        "list tables": False,
    }
    assert world.client("s3", world.pipeline).head_object(Bucket=partitioned, Key=BIG_COPY)[
        "ContentLength"
    ] == len(big)


def test_only_the_code_location_writes_the_rules_snapshot_and_it_writes_nothing_else(
    world: World,
):
    _seed(world)
    snapshot = "indici/_indici/rules/t.json"
    code_location = world.client("s3", world.code_location)
    runs = world.client("s3", world.pipeline)
    landing, partitioned = world.landing, world.partitioned

    def put(s3: Any, bucket: str, key: str) -> bool:
        return allowed(lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"{}"))

    outcome = {
        "code location puts snapshot": put(code_location, partitioned, snapshot),
        "code location puts snapshot without prefix": put(
            code_location, partitioned, "_indici/rules/t.json"
        ),
        "code location reads snapshot": allowed(
            lambda: code_location.get_object(Bucket=partitioned, Key=snapshot)
        ),
        "code location lists landing": allowed(
            lambda: code_location.list_objects_v2(Bucket=landing)
        ),
        "code location lists partitioned": allowed(
            lambda: code_location.list_objects_v2(Bucket=partitioned)
        ),
        "code location puts a partitioned copy": put(
            code_location, partitioned, "indici/dataset=Patients/date=2026-11-24/P.parquet"
        ),
        "code location reads landing": allowed(
            lambda: code_location.get_object(Bucket=landing, Key="seed.parquet")
        ),
        "code location puts landing": put(code_location, landing, "a.parquet"),
        "code location deletes snapshot": allowed(
            lambda: code_location.delete_object(Bucket=partitioned, Key=snapshot)
        ),
        "run puts snapshot": put(runs, partitioned, snapshot),
        "run puts snapshot without prefix": put(runs, partitioned, "_indici/rules/t.json"),
        "run reads snapshot": allowed(lambda: runs.get_object(Bucket=partitioned, Key=snapshot)),
        "run puts a partitioned copy": put(
            runs, partitioned, "indici/dataset=Patients/date=2026-11-24/P.parquet"
        ),
        "valentia puts snapshot": put(world.client("s3", world.valentia), partitioned, snapshot),
    }
    assert outcome == {
        "code location puts snapshot": True,
        "code location puts snapshot without prefix": True,
        "code location reads snapshot": True,
        "code location lists landing": True,
        "code location lists partitioned": True,
        "code location puts a partitioned copy": False,
        "code location reads landing": False,
        "code location puts landing": False,
        "code location deletes snapshot": False,
        "run puts snapshot": False,
        "run puts snapshot without prefix": False,
        "run reads snapshot": True,
        "run puts a partitioned copy": True,
        "valentia puts snapshot": False,
    }


def test_pipeline_runs_end_to_end_with_only_its_policy(
    world: World, database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    valentia_upload = world.client("s3", world.valentia)  # valentia's own keys, as in production
    files = {
        "incoming/Patients_20261124_020000.parquet": parquet_bytes(
            {"PatientID": [1, 2], "NHINumber": ["ZZZ0001", "ZZZ0002"], "FamilyName": ["A", "B"]}
        ),
        "incoming/EthnicityCode_20261124_010000.parquet": parquet_bytes(
            {"EthnicityCode": [11], "Description": ["NZ European"]}
        ),
    }
    for key, data in files.items():
        valentia_upload.put_object(Bucket=world.landing, Key=key, Body=data)

    # the code location (load, sensor ticks) reaches AWS only with its role's keys, the runs
    # only with theirs
    def act_as(keys: Keys) -> None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys.access_key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys.secret_access_key)
        # boto3's default session keeps the credentials it first found: start a fresh one
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)

    monkeypatch.setenv("AWS_ENDPOINT_URL", world.endpoint)
    act_as(world.code_location)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)  # the local rules snapshot copy stays in the test's folder
    settings = Settings(
        landing=f"s3://{world.landing}/incoming",
        partitioned=f"s3://{world.partitioned}/indici",
        rules=f"dynamodb://{world.table}",
        pg_dsn=database,
        timezone=TIMEZONE,
        start_date="2026-01-01",
    )
    defs = build(settings)
    with DagsterInstance.ephemeral() as instance:
        result = tick(defs, instance)
        assert [r.partition_key for r in result.run_requests] == ["2026-11-24"]
        act_as(world.pipeline)
        assert all(r.success for r in execute_requests(defs, instance, result))
        act_as(world.code_location)
        assert not tick(defs, instance, result.cursor).run_requests
    assert query(database, "SELECT patient_id, family_name FROM rpt.patients ORDER BY 1") == [
        (1, "A"),
        (2, "B"),
    ]
    pipeline_s3 = world.client("s3", world.pipeline)
    copied = pipeline_s3.list_objects_v2(Bucket=world.partitioned)["Contents"]
    assert sorted(o["Key"] for o in copied) == [
        f"indici/_indici/rules/{world.table}.json",  # the rules snapshot, kept at load
        "indici/dataset=EthnicityCode/date=2026-11-24/EthnicityCode_20261124_010000.parquet",
        "indici/dataset=Patients/date=2026-11-24/Patients_20261124_020000.parquet",
    ]
    # and it left landing exactly as Valentia uploaded it
    landed = valentia_upload.list_objects_v2(Bucket=world.landing)["Contents"]
    assert sorted(o["Key"] for o in landed) == sorted(files)
