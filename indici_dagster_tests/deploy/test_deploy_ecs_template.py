"""The ECS deployment as a CloudFormation template (deploy/ecs/indici-ecs.yaml): cfn-lint passes
it offline, its task definitions are valid ECS requests (sent to moto), its roles are those of
deploy/iam/ (test_deploy_ecs_roles.py), its network lets each service reach only what it needs,
and its one-off tasks are those the guide runs."""

import json

import boto3
from cfnlint.api import lint

from indici_dagster_tests.support.cfn import (
    ACCOUNT,
    EXAMPLE_PARAMETERS,
    TEMPLATE,
    Stack,
    ecs_request,
    load_template,
)
from indici_dagster_tests.support.deploy import DEPLOY, REPO, load_yaml

ECS = DEPLOY / "ecs"
PARAMETERS = {k: v for k, v in EXAMPLE_PARAMETERS.items() if k != "ImageTag"}
IMAGE_TAG = EXAMPLE_PARAMETERS["ImageTag"]
DAGSTER_SERVICES = ("WebserverTaskDefinition", "DaemonTaskDefinition", "CodeLocationTaskDefinition")
ONE_OFF = ("BootstrapTaskDefinition", "RulesPushTaskDefinition", "DagsterAdminTaskDefinition")
INDICI_SETTINGS = {
    "INDICI_LANDING",
    "INDICI_PARTITIONED",
    "INDICI_RULES",
    "INDICI_TIMEZONE",
    "INDICI_START_DATE",
}


def stack(**parameters: str) -> Stack:
    return Stack(load_template(), {**PARAMETERS, "ImageTag": IMAGE_TAG, **parameters})


def container(stack_: Stack, task: str) -> dict:
    (definition,) = stack_.resources()[task]["ContainerDefinitions"]
    return definition


def environment(definition: dict) -> dict[str, str]:
    return {e["Name"]: e["Value"] for e in definition.get("Environment", [])}


def secrets(definition: dict) -> dict[str, str]:
    return {s["Name"]: s["ValueFrom"] for s in definition.get("Secrets", [])}


def env_references(node) -> set[str]:
    """Every `{env: NAME}` in a parsed YAML file."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(env_references(v) for v in node.values()), set())
    if isinstance(node, list):
        return set().union(*(env_references(v) for v in node), set())
    return set()


def _errors_and_warnings(text: str) -> list[str]:
    matches = lint(text, regions=["ap-southeast-2", "us-east-1"])
    return [
        f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches if m.rule.id[0] in "EW"
    ]


def test_cfn_lint_finds_no_error_and_no_warning_in_the_template():
    text = TEMPLATE.read_text(encoding="utf-8")
    assert _errors_and_warnings(text) == []
    # and it does find one: a reference to a parameter the template lacks
    broken = text.replace("!Ref LandingUri", "!Ref LandingBucketUri", 1)
    assert any(line.startswith("E") for line in _errors_and_warnings(broken))


def test_the_first_pass_creates_the_repository_and_no_task_or_service():
    first = Stack(load_template(), PARAMETERS)
    kinds = {r["Type"] for r in first.template["Resources"].values()}
    created = first.resources()
    assert "Repository" in created and "Cluster" in created and "DagsterDb" in created
    assert not first.resources("AWS::ECS::TaskDefinition")
    assert not first.resources("AWS::ECS::Service")
    assert {"AWS::ECS::TaskDefinition", "AWS::ECS::Service"} <= kinds
    assert created["Repository"]["ImageTagMutability"] == "IMMUTABLE"


def test_every_task_definition_is_a_valid_ecs_request_from_the_one_image(moto_endpoint):
    full = stack()
    image = f"{ACCOUNT}.dkr.ecr.ap-southeast-2.amazonaws.com/indici-dagster:{IMAGE_TAG}"
    definitions = full.resources("AWS::ECS::TaskDefinition")
    assert set(definitions) == set(DAGSTER_SERVICES) | set(ONE_OFF)
    ecs = boto3.client("ecs")
    for name, properties in definitions.items():
        ecs.register_task_definition(**ecs_request(properties))  # botocore checks the shape
        assert properties["RequiresCompatibilities"] == ["FARGATE"]
        (definition,) = properties["ContainerDefinitions"]
        assert definition["Image"] == image, name
        logs = definition["LogConfiguration"]
        assert logs["LogDriver"] == "awslogs"
        assert logs["Options"]["awslogs-group"] == "/ecs/indici-dagster"
        values = environment(definition)
        assert set(secrets(definition)).isdisjoint(values)
        assert {"DAGSTER_PG_PASSWORD", "INDICI_PG_DSN", "INDICI_ADMIN_DSN"}.isdisjoint(values)
        assert all(
            v.startswith(("arn:aws:secretsmanager:", "arn:aws:ssm:"))
            for v in secrets(definition).values()
        )
    services = full.resources("AWS::ECS::Service")
    assert set(services) == {"WebserverService", "DaemonService", "CodeLocationService"}
    for service in services.values():
        network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert network["AssignPublicIp"] == "DISABLED"
        assert network["Subnets"] == PARAMETERS["PrivateSubnetIds"].split(",")
    daemon = services["DaemonService"]
    assert int(daemon["DesiredCount"]) == 1
    assert daemon["DeploymentConfiguration"]["MaximumPercent"] == 100  # never two daemons


def test_each_dagster_process_gets_every_variable_the_instance_and_workspace_files_read():
    full = stack()
    instance = load_yaml(ECS / "dagster.yaml")
    launcher = instance["run_launcher"]["config"]
    needed = env_references(instance) | env_references(load_yaml(ECS / "workspace.yaml"))
    for name in (*DAGSTER_SERVICES, "DagsterAdminTaskDefinition"):
        definition = container(full, name)
        provided = set(environment(definition)) | set(secrets(definition))
        assert needed <= provided, (name, needed - provided)
        assert environment(definition)["DAGSTER_HOME"] == "/opt/dagster/ecs"
        assert "DAGSTER_PG_PASSWORD" in secrets(definition)
    daemon = environment(container(full, "DaemonTaskDefinition"))
    # the launcher copies these from the daemon's own environment into every run
    assert set(launcher["env_vars"]) <= set(daemon)
    roles = full.resources("AWS::IAM::Role")
    assert daemon["DAGSTER_ECS_RUN_ROLE_ARN"].endswith(f":role/{roles['RunRole']['RoleName']}")
    assert daemon["DAGSTER_ECS_RUN_ROLE_ARN"].endswith(":role/indici-dagster-task")
    code = container(full, "CodeLocationTaskDefinition")
    assert INDICI_SETTINGS <= set(environment(code)) and "INDICI_PG_DSN" in secrets(code)
    assert environment(code)["DAGSTER_CURRENT_IMAGE"] == code["Image"]
    assert environment(code)["INDICI_RULES"] == "dynamodb://indici-rules"
    args = code["Command"]
    assert args[:3] == ["dagster", "code-server", "start"]
    assert args[args.index("--module-name") + 1] == "indici_dagster.definitions"
    assert args[args.index("--port") + 1] == "4000"
    # the name the webserver and the daemon dial is the one Cloud Map gives the code server
    discovery = full.resources()["CodeLocationDiscovery"]
    host = environment(container(full, "WebserverTaskDefinition"))["DAGSTER_CODE_LOCATION_HOST"]
    assert host == f"{discovery['Name']}.{full.parameters['NamespaceName']}"


def test_the_one_off_tasks_bootstrap_push_the_rules_and_set_the_pool_limit():
    full = stack(WarehousePoolLimit="2")
    definitions = full.resources("AWS::ECS::TaskDefinition")
    roles = full.resources("AWS::IAM::Role")

    bootstrap = container(full, "BootstrapTaskDefinition")
    assert bootstrap["Command"][:2] == ["indici", "bootstrap"]
    assert set(secrets(bootstrap)) == {
        "INDICI_ADMIN_DSN",
        "INDICI_WRITER_PASSWORD",
        "INDICI_READER_PASSWORD",
    }
    # only its own execution role reads the administrator's secrets; it has no task role
    assert definitions["BootstrapTaskDefinition"]["ExecutionRoleArn"].endswith(
        roles["BootstrapExecutionRole"]["RoleName"]
    )
    assert "TaskRoleArn" not in definitions["BootstrapTaskDefinition"]
    admin_dsn = secrets(bootstrap)["INDICI_ADMIN_DSN"]
    readers = [n for n, r in roles.items() if admin_dsn in json.dumps(r["Policies"])]
    assert readers == ["BootstrapExecutionRole"]

    push = container(full, "RulesPushTaskDefinition")
    assert push["Command"] == ["indici", "rules", "push", "indici_dagster/rules.yaml"]
    assert (REPO / "indici_dagster" / "rules.yaml").is_file()  # WORKDIR /opt/dagster/app
    assert environment(push)["INDICI_RULES"] == "dynamodb://indici-rules"
    writers = [
        name
        for name, role in roles.items()
        if any(
            "dynamodb:BatchWriteItem" in statement["Action"]
            for policy in role.get("Policies", [])
            for statement in policy["PolicyDocument"]["Statement"]
        )
    ]
    assert writers == ["RulesPushRole"]
    assert definitions["RulesPushTaskDefinition"]["TaskRoleArn"].endswith(
        ":role/indici-dagster-rules-push"
    )

    admin = container(full, "DagsterAdminTaskDefinition")
    assert admin["Command"] == [
        "dagster",
        "instance",
        "concurrency",
        "set",
        "indici_warehouse",
        "2",
    ]
    assert "TaskRoleArn" not in definitions["DagsterAdminTaskDefinition"]
    # the network they are started in is an output, for `aws ecs run-task`
    network = full.outputs()["OneOffNetworkConfiguration"]
    assert network == (
        "awsvpcConfiguration={subnets=[subnet-0a1b2c3d,subnet-4e5f6a7b],"
        "securityGroups=[RunsSecurityGroup-id],assignPublicIp=DISABLED}"
    )


def _ingress(full: Stack, group: str) -> set[tuple[str, int]]:
    """(source group, port) of every rule letting traffic into `group`."""
    rules = [
        (r["SourceSecurityGroupId"], int(r["FromPort"]))
        for r in full.resources()[group].get("SecurityGroupIngress", [])
        if "SourceSecurityGroupId" in r
    ]
    for _name, rule in full.resources("AWS::EC2::SecurityGroupIngress").items():
        if rule["GroupId"] == f"{group}-id":
            rules.append((rule["SourceSecurityGroupId"], int(rule["FromPort"])))
    return set(rules)


def test_the_network_lets_each_service_reach_only_what_it_needs():
    full = stack()
    assert _ingress(full, "DagsterDbSecurityGroup") == {
        ("WebserverSecurityGroup-id", 5432),
        ("CodeLocationSecurityGroup-id", 5432),
        ("RunsSecurityGroup-id", 5432),
    }
    assert _ingress(full, "CodeLocationSecurityGroup") == {
        ("WebserverSecurityGroup-id", 4000),
        ("RunsSecurityGroup-id", 4000),
    }
    assert _ingress(full, "WebserverSecurityGroup") == {("LoadBalancerSecurityGroup-id", 3000)}
    warehouse = {
        (r["SourceSecurityGroupId"], int(r["FromPort"]))
        for r in full.resources("AWS::EC2::SecurityGroupIngress").values()
        if r["GroupId"] == PARAMETERS["WarehouseSecurityGroupId"]
    }
    assert warehouse == {("CodeLocationSecurityGroup-id", 5432), ("RunsSecurityGroup-id", 5432)}
    (ui,) = full.resources()["LoadBalancerSecurityGroup"]["SecurityGroupIngress"]
    assert ui["CidrIp"] == PARAMETERS["UiAllowedCidr"] and ui["FromPort"] == 80
    assert full.resources()["LoadBalancer"]["Scheme"] == "internal"
    https = stack(CertificateArn="arn:aws:acm:ap-southeast-2:123456789012:certificate/x")
    assert https.resources()["Listener"]["Protocol"] == "HTTPS"
    db = full.resources()["DagsterDb"]
    assert db["PubliclyAccessible"] is False and db["StorageEncrypted"] is True
    # the password: generated by Secrets Manager, handed to RDS by reference, never a value
    secret = full.resources()["DagsterDbSecret"]
    assert secret["GenerateSecretString"]["PasswordLength"] >= 32
    secret_arn = full.resolve({"Ref": "DagsterDbSecret"})
    assert db["MasterUserPassword"] == f"{{{{resolve:secretsmanager:{secret_arn}:SecretString}}}}"
    daemon = container(full, "DaemonTaskDefinition")
    assert secrets(daemon)["DAGSTER_PG_PASSWORD"] == secret_arn


def test_an_existing_dagster_database_is_used_by_name_and_secret_instead():
    existing = stack(
        DagsterDbHost="dagster-db.internal",
        DagsterDbPasswordSecretName="indici/dagster-pg-password",
    )
    assert "DagsterDb" not in existing.resources()
    daemon = container(existing, "DaemonTaskDefinition")
    assert environment(daemon)["DAGSTER_PG_HOST"] == "dagster-db.internal"
    secret = "arn:aws:secretsmanager:ap-southeast-2:123456789012:secret:indici/dagster-pg-password"
    assert secrets(daemon)["DAGSTER_PG_PASSWORD"] == secret
    assert environment(daemon)["DAGSTER_ECS_PG_PASSWORD_ARN"] == secret
    # a host without its secret is refused by the template's rule (CloudFormation checks it)
    (rule,) = existing.template["Rules"].values()
    assert existing.resolve(rule["RuleCondition"]) is True
    assert existing.resolve(rule["Assertions"][0]["Assert"]) is True
    assert (
        stack(DagsterDbHost="dagster-db.internal").resolve(rule["Assertions"][0]["Assert"]) is False
    )
