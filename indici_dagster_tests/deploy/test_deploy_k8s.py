"""Runs on Kubernetes: deploy/k8s/values.yaml for the official dagster/dagster Helm chart, with
this project's image as the user-code deployment and the K8sRunLauncher."""

from indici_dagster_tests.support.deploy import DEPLOY, REPO, load_yaml

VALUES = DEPLOY / "k8s" / "values.yaml"
INDICI_SETTINGS = {
    "INDICI_LANDING",
    "INDICI_PARTITIONED",
    "INDICI_RULES",
    "INDICI_TIMEZONE",
    "INDICI_START_DATE",
}


def deployment() -> dict:
    (only,) = load_yaml(VALUES)["dagster-user-deployments"]["deployments"]
    return only


def test_the_user_code_deployment_is_this_image_serving_the_definitions_module():
    values = load_yaml(VALUES)
    assert values["dagster-user-deployments"]["enabled"] is True
    user_code = deployment()
    assert user_code["image"]["repository"].endswith("/indici-dagster")
    assert user_code["image"]["tag"] not in {"", "latest"}
    args = user_code["codeServerArgs"]
    assert args[args.index("--module-name") + 1] == "indici_dagster.definitions"
    assert user_code["port"] == 4000
    assert "EXPOSE 4000" in (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert user_code["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert user_code["podSecurityContext"]["runAsNonRoot"] is True
    assert user_code["podSecurityContext"]["runAsUser"] == 10001  # the image's USER
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    # the code server and the runs reach S3 and DynamoDB through the same IAM role (IRSA)
    role = "eks.amazonaws.com/role-arn"
    user_code_role = values["dagster-user-deployments"]["serviceAccount"]["annotations"][role]
    assert user_code_role == values["serviceAccount"]["annotations"][role]


def test_settings_are_named_and_secrets_come_from_kubernetes_secrets_never_inline():
    values = load_yaml(VALUES)
    user_code = deployment()
    environment = {e["name"]: e.get("value") for e in user_code["env"]}
    assert INDICI_SETTINGS <= set(environment)
    assert all(environment[name] for name in INDICI_SETTINGS)
    # the warehouse DSN and Dagster's password are never values here
    assert "INDICI_PG_DSN" not in environment
    assert not any("PASSWORD" in name for name in environment)
    warehouse_secret = {"name": "indici-warehouse"}
    assert warehouse_secret in user_code["envSecrets"]
    assert warehouse_secret in values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]
    # DAGSTER_PG_PASSWORD: the chart reads it from this Secret into every Dagster container
    assert values["global"]["postgresqlSecretName"] == "dagster-postgresql-secret"
    assert values["generatePostgresqlPasswordSecret"] is False
    postgres = values["postgresql"]
    assert postgres["enabled"] is False
    assert "postgresqlPassword" not in postgres
    assert postgres["postgresqlScheme"] == "postgresql+psycopg2"
    assert postgres["postgresqlHost"] and postgres["postgresqlUsername"]


def test_the_helm_instance_settings_match_the_production_instance_file():
    values, instance = load_yaml(VALUES), load_yaml(DEPLOY / "dagster.yaml")
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]
    assert values["retention"]["enabled"] is True
    assert (
        values["retention"]["sensor"]["purgeAfterDays"]
        == instance["retention"]["sensor"]["purge_after_days"]
    )
    assert values["telemetry"] == instance["telemetry"] == {"enabled": False}
    assert values["computeLogManager"]["type"] == instance["compute_logs"]["class"]
