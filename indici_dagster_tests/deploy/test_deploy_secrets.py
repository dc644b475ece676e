"""No secret in any shipped deployment file: passwords are environment references, secrets are
named (Secrets Manager/SSM ARNs, Kubernetes Secrets), never written out."""

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from indici_dagster_tests.support.cfn import (
    EXAMPLE_PARAMETERS,
    TEMPLATE,
    Stack,
    ecs_request,
    load_template,
)
from indici_dagster_tests.support.deploy import DEPLOY, REPO, load_yaml

SHIPPED = sorted(
    [
        *DEPLOY.rglob("*.yaml"),
        *DEPLOY.rglob("*.json"),
        REPO / "dagster.yaml",
        REPO / "workspace.yaml",
    ]
)
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|DSN|PRIVATE|CREDENTIAL", re.IGNORECASE)
SECRET_TEXT = [
    re.compile(r"password\s*=", re.IGNORECASE),  # libpq key=value
    re.compile(r"://[^/\s:@]+:[^/\s@]+@"),  # user:password@host in a URL
    re.compile(r"\bA(KI|SI)A[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"aws_secret_access_key", re.IGNORECASE),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
]


def _load(path: Path):
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    if path == TEMPLATE:
        # what the stack creates, with the template's intrinsics resolved; the task definitions
        # in ECS's own (request) names, like the JSON and YAML files
        stack = Stack(load_template(), EXAMPLE_PARAMETERS)
        return {
            name: ecs_request(properties) if name.endswith("TaskDefinition") else properties
            for name, properties in stack.resources().items()
        }
    return load_yaml(path)


def _is_reference(value) -> bool:
    """An ARN for ECS to resolve when the task starts, or the variable that holds one."""
    if isinstance(value, dict):
        return set(value) == {"env"} and value["env"].endswith("_ARN")
    return bool(re.match(r"arn:aws:(secretsmanager|ssm):", value))


def _walk(node, trail=()) -> Iterator[tuple[tuple, object, object]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield trail, key, value
            yield from _walk(value, (*trail, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, (*trail, index))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_file_holds_no_secret_only_references(path):
    text = path.read_text(encoding="utf-8")
    for pattern in SECRET_TEXT:
        assert not pattern.search(text), f"{pattern.pattern} in {path.name}"
    for trail, key, value in _walk(_load(path)):
        # a password setting is an environment reference or, in the CloudFormation template, a
        # dynamic reference to a Secrets Manager secret (a flag or a length is no password)
        if isinstance(key, str) and re.search("password", key, re.IGNORECASE):
            assert (
                isinstance(value, bool | int)
                or value == {"env": "DAGSTER_PG_PASSWORD"}
                or re.fullmatch(
                    r"\{\{resolve:secretsmanager:arn:aws:[^{}]+:SecretString\}\}", value
                )
            ), (trail, key)
        # name/value environment entries (ECS `environment`, Kubernetes `env`) carry no secret
        if (
            key == "name"
            and isinstance(value, str)
            and trail
            and trail[-2:-1]
            in {
                ("environment",),
                ("env",),
            }
        ):
            # ...except the ARN of one, for the run launcher (DAGSTER_ECS_*_ARN)
            assert not SECRET_NAME.search(value) or value.endswith("_ARN"), (path.name, value)
        # a secret is a reference: an ARN for ECS to resolve when the task starts
        if key == "valueFrom":
            assert _is_reference(value), (path.name, value)
        # and a variable named like a secret holds only such a reference
        for entry in value if isinstance(value, list) else ():
            if isinstance(entry, dict) and SECRET_NAME.search(str(entry.get("name", ""))):
                assert "value" not in entry or _is_reference(entry["value"]), (path.name, entry)


def test_the_image_defines_no_secret_variable():
    for line in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.strip().upper().startswith(("ENV ", "ARG ")):
            assert not SECRET_NAME.search(line), line


def test_the_ui_shows_the_warehouse_variable_name_never_the_dsn_password(tmp_path, monkeypatch):
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    from indici_dagster.core.settings import Settings
    from indici_dagster.definitions import build_definitions

    password = "ui-Pa55-never-shown"
    (tmp_path / "landing").mkdir()
    monkeypatch.setenv("INDICI_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("INDICI_PARTITIONED", str(tmp_path / "partitioned"))
    monkeypatch.setenv("INDICI_PG_DSN", f"host=127.0.0.1 port=1 dbname=w password={password}")
    defs = build_definitions(Settings.from_env())
    # what the code server sends the webserver: every resource's configured values
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert password not in snapshot
    assert "INDICI_PG_DSN" in snapshot
