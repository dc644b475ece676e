"""The ECS template's one-off tasks do their job when run with exactly the command and the
environment the template gives them (secrets filled in as ECS would): `indici rules push` fills
a moto DynamoDB table from the image's rules file, `indici bootstrap` parses, and the pool-limit
task sets the limit through deploy/ecs/dagster.yaml in Dagster's PostgreSQL."""

import os
import shutil
import subprocess
import sys

import boto3
import pytest
import yaml

from indici_dagster import cli
from indici_dagster_tests.support.cfn import EXAMPLE_PARAMETERS, Stack, load_template
from indici_dagster_tests.support.deploy import (
    DEPLOY,
    REPO,
    dagster_pg_database,
    instance_from,
)


@pytest.fixture
def dagster_pg(admin_dsn, monkeypatch):
    yield from dagster_pg_database(admin_dsn, monkeypatch)


def task(name: str, **parameters: str) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Command, environment and secret references of a one-off task of the template."""
    stack = Stack(load_template(), {**EXAMPLE_PARAMETERS, **parameters})
    (container,) = stack.resources()[name]["ContainerDefinitions"]
    environment = {e["Name"]: e["Value"] for e in container.get("Environment", [])}
    secrets = {s["Name"]: s["ValueFrom"] for s in container.get("Secrets", [])}
    return [str(part) for part in container["Command"]], environment, secrets


def only(monkeypatch, environment: dict[str, str]) -> None:
    """The task's environment and nothing of the project's from the test process (the AWS
    endpoint and dummy credentials of moto stay)."""
    for name in list(os.environ):
        if name.startswith(("INDICI_", "DAGSTER_")):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)


def test_the_rules_push_task_fills_the_table_from_the_images_rules_file(
    moto_endpoint, monkeypatch, tmp_path
):
    command, environment, secrets = task("RulesPushTaskDefinition", RulesTable="indici-rules-1")
    assert secrets == {}  # it needs none
    region = environment["AWS_DEFAULT_REGION"]
    boto3.client("dynamodb", region_name=region).create_table(
        TableName="indici-rules-1",
        KeySchema=[{"AttributeName": "dataset", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "dataset", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    only(monkeypatch, environment)
    # the image's WORKDIR holds the package source (Dockerfile: COPY indici_dagster ./indici_dagster)
    workdir = tmp_path / "app"
    shutil.copytree(REPO / "indici_dagster", workdir / "indici_dagster")
    monkeypatch.chdir(workdir)
    assert command[0] == "indici"
    assert cli.main(command[1:]) == 0
    items = boto3.resource("dynamodb", region_name=region).Table("indici-rules-1").scan()["Items"]
    shipped = yaml.safe_load((REPO / "indici_dagster" / "rules.yaml").read_text())
    assert {i["dataset"] for i in items} == {rule["dataset"] for rule in shipped}


def test_the_bootstrap_task_command_is_one_the_cli_accepts_with_its_secrets():
    command, environment, secrets = task("BootstrapTaskDefinition")
    args = cli.build_parser().parse_args(command[1:])
    assert (args.writer, args.reader) == ("indici_writer", "indici_reader")
    assert args.admin_dsn is None  # the DSN arrives as INDICI_ADMIN_DSN, a secret
    assert set(secrets) == {"INDICI_ADMIN_DSN", "INDICI_WRITER_PASSWORD", "INDICI_READER_PASSWORD"}
    assert not any(name.startswith("INDICI_") for name in environment)


def test_the_pool_limit_task_sets_the_limit_in_dagsters_database(tmp_path, dagster_pg, monkeypatch):
    command, environment, secrets = task("DagsterAdminTaskDefinition", WarehousePoolLimit="3")
    assert set(secrets) == {"DAGSTER_PG_PASSWORD"}
    # the template's environment, with Dagster's database the test server (as ECS would give it)
    database = {k: os.environ[k] for k in os.environ if k.startswith("DAGSTER_PG_")}
    home = tmp_path / "ecs"
    instance_from(DEPLOY / "ecs" / "dagster.yaml", home).dispose()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("INDICI_", "DAGSTER_"))},
        **environment,
        **database,
        "DAGSTER_HOME": str(home),
        "PGSSLMODE": "disable",
    }
    assert command[:2] == ["dagster", "instance"]
    done = subprocess.run(
        [sys.executable, "-m", "dagster", *command[1:]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with instance_from(DEPLOY / "ecs" / "dagster.yaml", home) as instance:
        assert instance.event_log_storage.get_concurrency_info("indici_warehouse").slot_count == 3
