"""The ECS template's roles are deploy/iam/'s principals: resolved with deploy/iam/'s placeholder
names, each role's statements grant exactly what its policy file grants (deploy/iam/README.md
names the pairs), and the execution roles read exactly the secrets the tasks reference."""

import json

import pytest

from indici_dagster_tests.support.cfn import (
    EXAMPLE_PARAMETERS,
    FULL_ARN_SUFFIX,
    Stack,
    load_template,
)
from indici_dagster_tests.support.deploy import DEPLOY, load_yaml

PLACEHOLDERS = {
    **EXAMPLE_PARAMETERS,
    # deploy/iam/dagster-execution-policy.json names a secret of its own for the password
    "DagsterDbHost": "dagster-db.internal",
    "DagsterDbPasswordSecretName": "indici/dagster-pg-password",
}
# template role -> (role name, deploy/iam policy file)
PRINCIPALS = {
    "ExecutionRole": ("indici-dagster-execution", "dagster-execution-policy.json"),
    "RunRole": ("indici-dagster-task", "indici-pipeline-policy.json"),
    "CodeLocationRole": ("indici-dagster-code-location", "indici-code-location-policy.json"),
    "DaemonRole": ("indici-dagster-daemon", "dagster-daemon-policy.json"),
    "WebserverRole": ("indici-dagster-webserver", "dagster-webserver-policy.json"),
}
# Granted by the template beyond the policy file, and why: the run launcher takes each run's
# subnet and security groups from the daemon's own task (use_current_ecs_task_config).
BEYOND_THE_FILES = {
    "DaemonRole": {(frozenset({"ec2:DescribeNetworkInterfaces"}), frozenset({"*"}))}
}


def _as_set(value) -> frozenset[str]:
    return frozenset([value] if isinstance(value, str) else value)


def grants(statements: list[dict]) -> set[tuple[frozenset[str], frozenset[str]]]:
    """(actions, resources) of each Allow statement."""
    assert all(s["Effect"] == "Allow" and "NotAction" not in s for s in statements)
    return {(_as_set(s["Action"]), _as_set(s["Resource"])) for s in statements}


def role_grants(role: dict) -> set[tuple[frozenset[str], frozenset[str]]]:
    statements = [
        statement
        for policy in role.get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    return grants(statements)


@pytest.mark.parametrize("logical", sorted(PRINCIPALS))
def test_each_role_of_the_template_grants_what_its_deploy_iam_policy_grants(logical):
    roles = Stack(load_template(), PLACEHOLDERS).resources("AWS::IAM::Role")
    name, policy_file = PRINCIPALS[logical]
    assert roles[logical]["RoleName"] == name
    policy = json.loads((DEPLOY / "iam" / policy_file).read_text(encoding="utf-8"))
    expected = grants(policy["Statement"]) | BEYOND_THE_FILES.get(logical, set())
    assert role_grants(roles[logical]) == expected


def test_the_iam_readme_names_each_principal_with_its_policy_and_template_role():
    readme = (DEPLOY / "iam" / "README.md").read_text(encoding="utf-8")
    for logical, (name, policy_file) in PRINCIPALS.items():
        assert policy_file in readme and name in readme and logical in readme, logical
    for extra in ("BootstrapExecutionRole", "RulesPushRole"):
        assert extra in readme


def test_only_the_code_location_role_may_write_the_rules_snapshot():
    roles = Stack(load_template(), PLACEHOLDERS).resources("AWS::IAM::Role")
    snapshot = "arn:aws:s3:::kpa-indici-partitioned/indici/_indici/rules/indici-rules.json"
    copy = "arn:aws:s3:::kpa-indici-partitioned/indici/dataset=Patients/date=2026-11-24/a.parquet"

    def may_put(role: dict, key: str) -> bool:
        import fnmatch

        return any(
            "s3:PutObject" in actions and any(fnmatch.fnmatchcase(key, r) for r in resources)
            for actions, resources in role_grants(role)
        )

    assert [n for n, r in roles.items() if may_put(r, snapshot)] == ["CodeLocationRole"]
    assert [n for n, r in roles.items() if may_put(r, copy)] == ["RunRole"]


@pytest.mark.parametrize(
    "database",
    [
        {},  # the stack's own RDS database, its password in a secret the stack generates
        {"DagsterDbHost": "db.internal", "DagsterDbPasswordSecretName": "team/dagster-db"},
    ],
)
def test_the_execution_roles_read_exactly_the_secrets_the_tasks_reference(database):
    parameters = {k: v for k, v in PLACEHOLDERS.items() if not k.startswith("DagsterDb")}
    full = Stack(load_template(), {**parameters, **database})
    roles = full.resources("AWS::IAM::Role")
    readable: dict[str, set[str]] = {}
    for name in ("ExecutionRole", "BootstrapExecutionRole"):
        resources = set().union(*(r for _, r in role_grants(roles[name])))
        readable[f"arn:aws:iam::123456789012:role/{roles[name]['RoleName']}"] = resources
    launcher = load_yaml(DEPLOY / "ecs" / "dagster.yaml")["run_launcher"]["config"]
    for definition in full.resources("AWS::ECS::TaskDefinition").values():
        (container,) = definition["ContainerDefinitions"]
        references = {s["ValueFrom"] for s in container.get("Secrets", [])}
        if container["Name"] == "daemon":  # what it hands each run (dagster.yaml's references)
            environment = {e["Name"]: e["Value"] for e in container["Environment"]}
            references |= {environment[s["valueFrom"]["env"]] for s in launcher["secrets"]}
        allowed = readable[definition["ExecutionRoleArn"]]
        for reference in references:
            if ":secretsmanager:" in reference and not reference.endswith(FULL_ARN_SUFFIX):
                # named, not the full ARN: the real ARN ends in a suffix Secrets Manager adds
                assert f"{reference}-*" in allowed, reference
            else:
                assert reference in allowed, reference
    # and nothing else
    everything = set().union(*readable.values())
    assert (
        len(everything)
        == len(readable["arn:aws:iam::123456789012:role/indici-dagster-execution"]) + 3
    )
