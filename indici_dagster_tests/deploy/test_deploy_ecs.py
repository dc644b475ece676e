"""Runs on AWS ECS: deploy/ecs/ (the instance with dagster-aws's EcsRunLauncher, the task
definitions, the workspace). A run is launched through the shipped instance file against a moto
ECS; the RunTask call is intercepted (moto cannot run Fargate tasks) and inspected."""

import fnmatch
import json
import uuid

import boto3
import pytest
import yaml
from botocore.awsrequest import AWSResponse
from dagster import DagsterRunStatus
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_run_for_test
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.config_schema import ensure_workspace_config
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster_aws.ecs import EcsRunLauncher

from indici_dagster.definitions import INGEST_JOB
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
TASKS = ("webserver", "daemon", "code-location")
SECRET_NAMES = {"DAGSTER_PG_PASSWORD", "INDICI_PG_DSN"}
INDICI_SETTINGS = {
    "INDICI_LANDING",
    "INDICI_PARTITIONED",
    "INDICI_RULES",
    "INDICI_TIMEZONE",
    "INDICI_START_DATE",
}


@pytest.fixture
def dagster_pg(admin_dsn, monkeypatch):
    yield from dagster_pg_database(admin_dsn, monkeypatch)


def task_definition(name: str) -> dict:
    return json.loads((ECS / f"task-{name}.json").read_text(encoding="utf-8"))


def launcher_config() -> dict:
    return load_yaml(ECS / "dagster.yaml")["run_launcher"]["config"]


@pytest.fixture
def daemon_environment(tmp_path, monkeypatch, moto_endpoint):
    """The variables the daemon's task definition gives it (the launcher copies some to runs)."""
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
    return values


def intercept_run_task(launcher: EcsRunLauncher) -> tuple[list[dict], set[str]]:
    """Answer the launcher's RunTask calls here, after botocore has validated them; returns the
    list the RunTask parameters are appended to, and the set of every ECS call it makes."""
    calls: list[dict] = []
    operations: set[str] = set()

    def capture(params, **_):
        calls.append(json.loads(json.dumps(params)))

    def answer(model, params, **_):
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

    def record(model, **_):
        operations.add(f"ecs:{model.name}")

    launcher.ecs.meta.events.register("before-parameter-build.ecs", record)
    launcher.ecs.meta.events.register("before-parameter-build.ecs.RunTask", capture)
    launcher.ecs.meta.events.register("before-call.ecs.RunTask", answer)
    return calls, operations


def launch_through_ecs_instance(home):
    """Launch one run of the ingest job through deploy/ecs/dagster.yaml, from a code location
    whose image is IMAGE; returns the RunTask parameters, the ECS calls made, and the run."""
    instance = instance_from(ECS / "dagster.yaml", home)
    launcher = instance.run_launcher
    assert isinstance(launcher, EcsRunLauncher)
    calls, operations = intercept_run_task(launcher)
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
    tmp_path, moto_endpoint, dagster_pg, daemon_environment
):
    # a secret tagged `dagster`: the launcher's default would mount it into every run
    boto3.client("secretsmanager").create_secret(
        Name=f"unrelated-team-secret-{uuid.uuid4().hex[:8]}",
        SecretString="not-for-indici",
        Tags=[{"Key": "dagster", "Value": "true"}],
    )
    call, operations, launched = launch_through_ecs_instance(tmp_path / "dagster_home")
    assert launched.status == DagsterRunStatus.STARTING
    assert {"ecs:RegisterTaskDefinition", "ecs:RunTask"} <= operations
    assert launched.tags["ecs/task_arn"].endswith("/0123456789abcdef")

    # RunTask: the shipped cluster and network, Fargate, the run's command in container `run`
    assert call["cluster"] == "indici" and call["launchType"] == "FARGATE"
    network = call["networkConfiguration"]["awsvpcConfiguration"]
    assert network["assignPublicIp"] == "DISABLED" and network["subnets"]
    (override,) = call["overrides"]["containerOverrides"]
    assert override["name"] == "run"
    assert override["command"][:3] == ["dagster", "api", "execute_run"]
    assert {"key": "dagster/run_id", "value": launched.run_id} in call["tags"]

    # the task definition the launcher registered for it (stored by moto)
    ecs = boto3.client("ecs")
    registered = ecs.describe_task_definition(taskDefinition=call["taskDefinition"])
    definition = registered["taskDefinition"]
    config = launcher_config()
    assert definition["requiresCompatibilities"] == ["FARGATE"]
    assert definition["executionRoleArn"] == config["task_definition"]["execution_role_arn"]
    assert definition["taskRoleArn"] == config["task_definition"]["task_role_arn"]
    (container,) = definition["containerDefinitions"]
    assert container["name"] == "run" and container["image"] == IMAGE
    logs = container["logConfiguration"]
    assert logs["logDriver"] == "awslogs"
    assert logs["options"]["awslogs-group"] == "/ecs/indici-dagster"
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert set(environment) == set(config["env_vars"]) | {"DAGSTER_RUN_JOB_NAME"}
    assert INDICI_SETTINGS <= set(environment)
    assert environment["DAGSTER_PG_HOST"] and environment["INDICI_LANDING"]
    assert SECRET_NAMES.isdisjoint(environment)
    assert container["secrets"] == config["secrets"]  # references only; nothing tagged
    assert {s["name"] for s in container["secrets"]} == SECRET_NAMES

    # no secret value anywhere in what goes to AWS (the command carries env references)
    sent = json.dumps([call, registered])
    assert DAGSTER_PASSWORD not in sent
    assert WAREHOUSE_PASSWORD not in sent and "not-for-indici" not in sent
    # the run's instance reads the password from its own environment (the ECS secret)
    instance_ref = json.loads(override["command"][3])["instance_ref"]
    run_storage = yaml.safe_load(instance_ref["run_storage_data"]["config_yaml"])
    assert run_storage["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}


def test_the_ecs_instance_is_the_production_instance_plus_the_ecs_run_launcher():
    base, ecs = load_yaml(DEPLOY / "dagster.yaml"), load_yaml(ECS / "dagster.yaml")
    launcher = ecs.pop("run_launcher")
    assert ecs == base
    assert (launcher["module"], launcher["class"]) == ("dagster_aws.ecs", "EcsRunLauncher")
    assert launcher["config"]["secrets_tag"] is None
    assert {s["name"] for s in launcher["config"]["secrets"]} == SECRET_NAMES


def test_task_definitions_are_valid_requests_with_awslogs_and_secrets_by_reference(
    moto_endpoint,
):
    ecs = boto3.client("ecs")
    daemon_env: set[str] = set()
    for name in TASKS:
        task = task_definition(name)
        ecs.register_task_definition(**task)  # botocore validates the request's shape
        assert task["requiresCompatibilities"] == ["FARGATE"]
        (container,) = task["containerDefinitions"]
        assert container["image"] == IMAGE
        options = container["logConfiguration"]["options"]
        assert container["logConfiguration"]["logDriver"] == "awslogs"
        assert options["awslogs-group"] == "/ecs/indici-dagster"
        environment = {e["name"]: e["value"] for e in container["environment"]}
        secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
        assert environment["DAGSTER_HOME"] == "/opt/dagster/ecs"
        assert {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_USER"} <= set(
            environment
        )
        assert "DAGSTER_PG_PASSWORD" in secrets
        assert SECRET_NAMES.isdisjoint(environment)
        assert all(
            v.startswith(("arn:aws:secretsmanager:", "arn:aws:ssm:")) for v in secrets.values()
        )
        if name == "daemon":
            daemon_env = set(environment)
        if name == "code-location":
            assert INDICI_SETTINGS <= set(environment) and "INDICI_PG_DSN" in secrets
            assert environment["DAGSTER_CURRENT_IMAGE"] == IMAGE
            args = container["command"]
            assert args[:3] == ["dagster", "code-server", "start"]
            assert args[args.index("--module-name") + 1] == "indici_dagster.definitions"
            assert args[args.index("--port") + 1] == "4000"
            assert container["portMappings"][0]["containerPort"] == 4000
        else:
            assert "/opt/dagster/ecs/workspace.yaml" in container["command"]
    # the launcher copies these from the daemon's own environment into every run
    assert set(launcher_config()["env_vars"]) <= daemon_env


def test_the_ecs_workspace_reaches_the_code_server_over_grpc_on_its_port():
    workspace = load_yaml(ECS / "workspace.yaml")
    ensure_workspace_config(workspace, str(ECS / "workspace.yaml"))
    ((kind, server),) = workspace["load_from"][0].items()
    assert kind == "grpc_server"
    assert server["port"] == 4000 and server["host"]
    # the Dockerfile bakes both files where the task definitions' DAGSTER_HOME points
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "COPY deploy/ecs/dagster.yaml deploy/ecs/workspace.yaml /opt/dagster/ecs/" in dockerfile


def policy_grants(name: str) -> list[tuple[set[str], list[str]]]:
    """(actions, resources) of each Allow statement of a policy in deploy/iam."""
    policy = json.loads((DEPLOY / "iam" / name).read_text(encoding="utf-8"))
    grants = []
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and "NotAction" not in statement
        actions, resources = statement["Action"], statement["Resource"]
        grants.append(
            (
                {actions} if isinstance(actions, str) else set(actions),
                [resources] if isinstance(resources, str) else resources,
            )
        )
    return grants


def allowed(grants, action: str, resource: str) -> bool:
    return any(
        action in actions and any(fnmatch.fnmatchcase(resource, r) for r in resources)
        for actions, resources in grants
    )


def test_the_daemon_policy_allows_every_ecs_call_the_run_launcher_makes_and_no_more(
    tmp_path, moto_endpoint, dagster_pg, daemon_environment
):
    _, operations, _ = launch_through_ecs_instance(tmp_path / "dagster_home")
    grants = policy_grants("dagster-daemon-policy.json")
    granted = set().union(*(actions for actions, _ in grants))
    # launching (seen above), watching and terminating runs (EcsRunLauncher source)
    needed = operations | {"ecs:DescribeTasks", "ecs:StopTask", "ecs:TagResource"}
    assert needed <= granted
    assert granted - needed == {"logs:GetLogEvents", "iam:PassRole"}
    account_region = "arn:aws:ecs:ap-southeast-2:123456789012"
    assert allowed(grants, "ecs:RunTask", f"{account_region}:task-definition/run_0a1b_2c3d:7")
    assert not allowed(grants, "ecs:RunTask", f"{account_region}:task-definition/other:1")
    definition = launcher_config()["task_definition"]
    for role in (definition["execution_role_arn"], definition["task_role_arn"]):
        assert allowed(grants, "iam:PassRole", role)
    log_group = definition["log_group"]
    assert allowed(
        grants,
        "logs:GetLogEvents",
        f"arn:aws:logs:ap-southeast-2:123456789012:log-group:{log_group}:log-stream:run/x",
    )


def test_the_execution_role_policy_reads_exactly_the_secrets_the_tasks_reference():
    grants = policy_grants("dagster-execution-policy.json")
    references = {s["valueFrom"] for s in launcher_config()["secrets"]}
    for name in TASKS:
        (container,) = task_definition(name)["containerDefinitions"]
        references |= {s["valueFrom"] for s in container["secrets"]}
    for reference in references:
        if ":secretsmanager:" in reference:  # Secrets Manager appends a 6-character suffix
            assert allowed(grants, "secretsmanager:GetSecretValue", reference + "-AbC123")
        else:
            assert allowed(grants, "ssm:GetParameters", reference)
    assert sum(len(resources) for _, resources in grants) == len(references)


def test_the_webserver_policy_only_watches_and_stops_run_tasks():
    (grant,) = policy_grants("dagster-webserver-policy.json")
    assert grant == (
        {"ecs:DescribeTasks", "ecs:StopTask"},
        ["arn:aws:ecs:ap-southeast-2:123456789012:task/indici/*"],
    )
