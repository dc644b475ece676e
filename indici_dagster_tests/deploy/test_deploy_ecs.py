"""Runs on AWS ECS: deploy/ecs/ (the instance with dagster-aws's EcsRunLauncher, the workspace).
A run is launched through the shipped instance file, with the environment the ECS template gives
the daemon, from inside a (simulated) daemon task: the ECS task metadata endpoint is a local HTTP
server, the daemon's network interface lives in moto's EC2, and the DescribeTasks and RunTask
calls are intercepted (moto cannot run Fargate tasks) and inspected."""

import contextlib
import fnmatch
import http.server
import json
import threading
import uuid

import boto3
import pytest
import yaml
from botocore.awsrequest import AWSResponse
from dagster import DagsterRunStatus
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_run_for_test
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster_aws.ecs import EcsRunLauncher

from indici_dagster.definitions import INGEST_JOB
from indici_dagster_tests.support.cfn import EXAMPLE_PARAMETERS, Stack, load_template
from indici_dagster_tests.support.common import TEST_RULES
from indici_dagster_tests.support.deploy import (
    DAGSTER_PASSWORD,
    DEPLOY,
    REPO,
    dagster_pg_database,
    instance_from,
    load_yaml,
)

ECS = DEPLOY / "ecs"
IMAGE = "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/indici-dagster:1.0.0"
WAREHOUSE_PASSWORD = "warehouse-Pa55-never-inline"
SECRET_NAMES = {"DAGSTER_PG_PASSWORD", "INDICI_PG_DSN"}
INDICI_SETTINGS = {
    "INDICI_LANDING",
    "INDICI_PARTITIONED",
    "INDICI_RULES",
    "INDICI_TIMEZONE",
    "INDICI_START_DATE",
}
DAEMON_TASK = "arn:aws:ecs:us-east-1:123456789012:task/indici/0daemon0000000000"


@pytest.fixture
def dagster_pg(admin_dsn, monkeypatch):
    yield from dagster_pg_database(admin_dsn, monkeypatch)


def launcher_config() -> dict:
    return load_yaml(ECS / "dagster.yaml")["run_launcher"]["config"]


def the_stack() -> Stack:
    return Stack(load_template(), EXAMPLE_PARAMETERS)


def daemon_container(stack: Stack) -> dict:
    (container,) = stack.resources()["DaemonTaskDefinition"]["ContainerDefinitions"]
    return container


@pytest.fixture
def daemon_environment(tmp_path, monkeypatch, moto_endpoint):
    """The variables the ECS template gives the daemon's task (the launcher reads its own
    settings from them and copies some to runs); the pipeline's locations are local folders."""
    stack_env = {e["Name"]: e["Value"] for e in daemon_container(the_stack())["Environment"]}
    for key, value in stack_env.items():
        if key.startswith("DAGSTER_ECS_"):
            monkeypatch.setenv(key, value)
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES)
    (tmp_path / "landing").mkdir()
    values = {
        "INDICI_LANDING": str(tmp_path / "landing"),
        "INDICI_PARTITIONED": str(tmp_path / "partitioned"),
        "INDICI_RULES": str(rules),
        "INDICI_TIMEZONE": "Pacific/Auckland",
        "INDICI_START_DATE": "2026-01-01",
        "INDICI_PG_DSN": f"host=127.0.0.1 port=1 dbname=w user=u password={WAREHOUSE_PASSWORD}",
        "PGSSLMODE": "disable",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return {**stack_env, **values}


@contextlib.contextmanager
def task_metadata_endpoint(cluster: str, task_arn: str):
    """ECS's task metadata endpoint (v4) of the daemon's task, on 127.0.0.1."""

    class Metadata(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(
                {"Cluster": cluster, "TaskARN": task_arn}
                if self.path.endswith("/task")
                else {"Name": "daemon"}
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v4/daemon"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def daemon_task(moto_endpoint, monkeypatch):
    """The daemon's own Fargate task: a network interface in a moto subnet and security group,
    its metadata endpoint, and what DescribeTasks says about it."""
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(
        GroupName=f"runs-{uuid.uuid4().hex[:6]}", Description="runs", VpcId=vpc
    )["GroupId"]
    eni = ec2.create_network_interface(SubnetId=subnet, Groups=[group])["NetworkInterface"]
    described = {
        "taskArn": DAEMON_TASK,
        "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/indici",
        "launchType": "FARGATE",
        "lastStatus": "RUNNING",
        "attachments": [
            {
                "type": "ElasticNetworkInterface",
                "details": [
                    {"name": "subnetId", "value": subnet},
                    {"name": "networkInterfaceId", "value": eni["NetworkInterfaceId"]},
                ],
            }
        ],
    }
    with task_metadata_endpoint("indici", DAEMON_TASK) as uri:
        monkeypatch.setenv("ECS_CONTAINER_METADATA_URI_V4", uri)
        yield {"subnet": subnet, "group": group, "described": described}


def intercept_ecs(launcher: EcsRunLauncher, daemon: dict) -> tuple[list[dict], set[str]]:
    """Answer the launcher's RunTask and DescribeTasks calls here, after botocore has validated
    them (DescribeTasks: the daemon's own task); returns the list the RunTask parameters are
    appended to, and the set of every ECS and EC2 call it makes."""
    calls: list[dict] = []
    operations: set[str] = set()

    def capture(params, **_):
        calls.append(json.loads(json.dumps(params)))

    def answer_run(model, params, **_):
        response = {
            "tasks": [
                {
                    "taskArn": "arn:aws:ecs:us-east-1:123456789012:task/indici/0123456789abcdef",
                    "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/indici",
                    "lastStatus": "PROVISIONING",
                }
            ],
            "failures": [],
        }
        return AWSResponse("https://ecs.invalid", 200, {}, None), response

    def answer_describe(model, params, **_):
        request = json.loads(params["body"])  # the serialized request
        assert request["tasks"] == [DAEMON_TASK] and request["cluster"] == "indici"
        return AWSResponse("https://ecs.invalid", 200, {}, None), {
            "tasks": [daemon["described"]],
            "failures": [],
        }

    def record(service):
        def recorder(model, **_):
            operations.add(f"{service}:{model.name}")

        return recorder

    launcher.ecs.meta.events.register("before-parameter-build.ecs", record("ecs"))
    launcher.ec2.meta.client.meta.events.register("before-parameter-build.ec2", record("ec2"))
    launcher.ecs.meta.events.register("before-parameter-build.ecs.RunTask", capture)
    launcher.ecs.meta.events.register("before-call.ecs.RunTask", answer_run)
    launcher.ecs.meta.events.register("before-call.ecs.DescribeTasks", answer_describe)
    return calls, operations


def launch_through_ecs_instance(home, daemon: dict):
    """Launch one run of the ingest job through deploy/ecs/dagster.yaml, from a code location
    whose image is IMAGE; returns the RunTask parameters, the AWS calls made, and the run."""
    instance = instance_from(ECS / "dagster.yaml", home)
    launcher = instance.run_launcher
    assert isinstance(launcher, EcsRunLauncher)
    calls, operations = intercept_ecs(launcher, daemon)
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="indici_dagster.definitions", working_directory=str(REPO)),
        location_name="indici",
        container_image=IMAGE,
    )
    with (
        instance,
        WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget([origin])) as workspace,
    ):
        context = workspace.create_request_context()
        location = context.get_code_location("indici")
        job = location.get_repository("__repository__").get_full_job(INGEST_JOB)
        run = create_run_for_test(
            instance,
            job_name=INGEST_JOB,
            remote_job_origin=job.get_remote_origin(),
            job_code_origin=job.get_python_origin(),
            tags={"dagster/partition": "2026-11-23"},
        )
        instance.launch_run(run.run_id, context)
        launched = instance.get_run_by_id(run.run_id)
    (call,) = calls
    return call, operations, launched


def test_a_run_launched_through_the_ecs_instance_is_a_fargate_task_with_secret_references_only(
    tmp_path, moto_endpoint, dagster_pg, daemon_environment, daemon_task
):
    # a secret tagged `dagster`: the launcher's default would mount it into every run
    boto3.client("secretsmanager").create_secret(
        Name=f"unrelated-team-secret-{uuid.uuid4().hex[:8]}",
        SecretString="not-for-indici",
        Tags=[{"Key": "dagster", "Value": "true"}],
    )
    call, operations, launched = launch_through_ecs_instance(tmp_path / "dagster_home", daemon_task)
    assert launched.status == DagsterRunStatus.STARTING
    assert {"ecs:RegisterTaskDefinition", "ecs:RunTask"} <= operations
    assert launched.tags["ecs/task_arn"].endswith("/0123456789abcdef")

    # RunTask: the daemon's own cluster, subnet and security group (no value in the file),
    # Fargate, the run's command in container `run`
    assert call["cluster"] == "indici" and call["launchType"] == "FARGATE"
    network = call["networkConfiguration"]["awsvpcConfiguration"]
    assert network == {
        "subnets": [daemon_task["subnet"]],
        "securityGroups": [daemon_task["group"]],
        "assignPublicIp": "DISABLED",
    }
    (override,) = call["overrides"]["containerOverrides"]
    assert override["name"] == "run"
    assert override["command"][:3] == ["dagster", "api", "execute_run"]
    assert {"key": "dagster/run_id", "value": launched.run_id} in call["tags"]

    # the task definition the launcher registered for it (stored by moto): the roles, log group
    # and secret references the stack put into the daemon's environment
    ecs = boto3.client("ecs")
    registered = ecs.describe_task_definition(taskDefinition=call["taskDefinition"])
    definition = registered["taskDefinition"]
    config = launcher_config()
    env = daemon_environment
    assert definition["requiresCompatibilities"] == ["FARGATE"]
    assert definition["executionRoleArn"] == env["DAGSTER_ECS_EXECUTION_ROLE_ARN"]
    assert definition["executionRoleArn"].endswith(":role/indici-dagster-execution")
    assert definition["taskRoleArn"] == env["DAGSTER_ECS_RUN_ROLE_ARN"]
    assert definition["taskRoleArn"].endswith(":role/indici-dagster-task")
    (container,) = definition["containerDefinitions"]
    assert container["name"] == "run" and container["image"] == IMAGE
    logs = container["logConfiguration"]
    assert logs["logDriver"] == "awslogs"
    assert logs["options"]["awslogs-group"] == env["DAGSTER_ECS_LOG_GROUP"] == "/ecs/indici-dagster"
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert set(environment) == set(config["env_vars"]) | {"DAGSTER_RUN_JOB_NAME"}
    assert INDICI_SETTINGS <= set(environment)
    assert environment["DAGSTER_PG_HOST"] and environment["INDICI_LANDING"]
    assert SECRET_NAMES.isdisjoint(environment)
    assert container["secrets"] == [
        {"name": "DAGSTER_PG_PASSWORD", "valueFrom": env["DAGSTER_ECS_PG_PASSWORD_ARN"]},
        {"name": "INDICI_PG_DSN", "valueFrom": env["DAGSTER_ECS_WAREHOUSE_DSN_ARN"]},
    ]  # references only; nothing tagged

    # no secret value anywhere in what goes to AWS (the command carries env references)
    sent = json.dumps([call, registered])
    assert DAGSTER_PASSWORD not in sent
    assert WAREHOUSE_PASSWORD not in sent and "not-for-indici" not in sent
    # the run's instance reads the password from its own environment (the ECS secret)
    instance_ref = json.loads(override["command"][3])["instance_ref"]
    run_storage = yaml.safe_load(instance_ref["run_storage_data"]["config_yaml"])
    assert run_storage["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}


@pytest.mark.parametrize(
    "missing",
    ["DAGSTER_ECS_EXECUTION_ROLE_ARN", "DAGSTER_ECS_RUN_ROLE_ARN", "DAGSTER_ECS_LOG_GROUP"],
)
def test_without_its_variables_the_ecs_launcher_refuses_to_start(missing, monkeypatch):
    from dagster._serdes.config_class import ConfigurableClassData

    for name in ("DAGSTER_ECS_EXECUTION_ROLE_ARN", "DAGSTER_ECS_RUN_ROLE_ARN"):
        monkeypatch.setenv(name, f"arn:aws:iam::123456789012:role/{name.lower()}")
    monkeypatch.setenv("DAGSTER_ECS_LOG_GROUP", "/ecs/indici-dagster")
    monkeypatch.delenv(missing)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    launcher = load_yaml(ECS / "dagster.yaml")["run_launcher"]
    data = ConfigurableClassData(
        launcher["module"], launcher["class"], yaml.dump(launcher["config"])
    )
    with pytest.raises(Exception, match=missing):
        data.rehydrate(EcsRunLauncher)


def test_the_ecs_instance_is_the_production_instance_plus_the_ecs_run_launcher():
    base, ecs = load_yaml(DEPLOY / "dagster.yaml"), load_yaml(ECS / "dagster.yaml")
    launcher = ecs.pop("run_launcher")
    assert ecs == base
    assert (launcher["module"], launcher["class"]) == ("dagster_aws.ecs", "EcsRunLauncher")
    config = launcher["config"]
    assert config["secrets_tag"] is None
    assert {s["name"] for s in config["secrets"]} == SECRET_NAMES
    # the network is the daemon's own, never a value in the file
    assert config["use_current_ecs_task_config"] is True and "run_task_kwargs" not in config


def allowed(grants, action: str, resource: str) -> bool:
    return any(
        action in actions and any(fnmatch.fnmatchcase(resource, r) for r in resources)
        for actions, resources in grants
    )


def template_grants(role: str) -> list[tuple[set[str], list[str]]]:
    """(actions, resources) of each statement of a role of the ECS template."""
    resolved = the_stack().resources("AWS::IAM::Role")[role]
    grants = []
    for policy in resolved["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow" and "NotAction" not in statement
            actions, resources = statement["Action"], statement["Resource"]
            grants.append(
                (
                    {actions} if isinstance(actions, str) else set(actions),
                    [resources] if isinstance(resources, str) else resources,
                )
            )
    return grants


def test_the_daemon_role_allows_every_call_the_run_launcher_makes_and_no_more(
    tmp_path, moto_endpoint, dagster_pg, daemon_environment, daemon_task
):
    _, operations, _ = launch_through_ecs_instance(tmp_path / "dagster_home", daemon_task)
    assert {"ecs:DescribeTasks", "ec2:DescribeNetworkInterfaces"} <= operations
    grants = template_grants("DaemonRole")
    granted = set().union(*(actions for actions, _ in grants))
    # launching (seen above), watching and terminating runs (EcsRunLauncher source)
    needed = operations | {"ecs:DescribeTasks", "ecs:StopTask", "ecs:TagResource"}
    assert needed <= granted
    assert granted - needed == {"logs:GetLogEvents", "iam:PassRole"}
    account_region = "arn:aws:ecs:ap-southeast-2:123456789012"
    assert allowed(grants, "ecs:RunTask", f"{account_region}:task-definition/run_0a1b_2c3d:7")
    assert not allowed(grants, "ecs:RunTask", f"{account_region}:task-definition/other:1")
    assert allowed(grants, "ecs:DescribeTasks", f"{account_region}:task/indici/0daemon0000000000")
    env = daemon_environment
    for role in (env["DAGSTER_ECS_EXECUTION_ROLE_ARN"], env["DAGSTER_ECS_RUN_ROLE_ARN"]):
        assert allowed(grants, "iam:PassRole", role)
    log_group = env["DAGSTER_ECS_LOG_GROUP"]
    assert allowed(
        grants,
        "logs:GetLogEvents",
        f"arn:aws:logs:ap-southeast-2:123456789012:log-group:{log_group}:log-stream:run/x",
    )


def test_the_webserver_role_only_watches_and_stops_run_tasks():
    (grant,) = template_grants("WebserverRole")
    assert grant == (
        {"ecs:DescribeTasks", "ecs:StopTask"},
        ["arn:aws:ecs:ap-southeast-2:123456789012:task/indici/*"],
    )
