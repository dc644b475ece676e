"""Run config cannot move data: every resource field is the deployment's, whatever a run says.

Each field set differently in a run's config fails the run before it reads or writes anything,
naming the field, never the value; a config equal to the deployment runs; a partial config
never drops the configured DSN (Dagster fills a partly given resource config with the fields'
class defaults, not with the values bound in `Definitions`).
"""

import contextlib
import uuid
from pathlib import Path

import psycopg2
import pytest
from dagster import DagsterEventType, DagsterInstance
from dagster._serdes import serialize_value
from psycopg2 import sql

from indici_dagster.definitions import INGEST_JOB
from indici_dagster.lib.pinned import (
    Deployment,
    Pin,
    PinnedResource,
    config_fields,
    pin_resources,
    refusal,
)
from indici_dagster_tests.conftest import WRITER_ROLE
from indici_dagster_tests.support.common import (
    TEST_RULES,
    build,
    create_writer_database,
    make_settings,
    patients,
    query,
    tick,
)

MARKER = "zq7runcfg"
DATE = "2026-11-23"
FILE = "Patients_20261123_020000.parquet"


@pytest.fixture
def other_database(admin_dsn: str, database: str):
    """DSN of a second database the writer could load into; its DSN carries the marker."""
    name = f"indici_other_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    with contextlib.closing(admin), admin.cursor() as cursor:
        create_writer_database(cursor, name, WRITER_ROLE)
    yield psycopg2.extensions.make_dsn(
        admin_dsn, dbname=name, user=WRITER_ROLE, application_name=MARKER
    )
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    with contextlib.closing(admin), admin.cursor() as cursor:
        cursor.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def project(tmp_path: Path, database: str, monkeypatch):
    """One landed Patients file in a local landing folder; the run's working folder is tmp."""
    monkeypatch.chdir(tmp_path)
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / FILE).write_bytes(patients([(1, "A1"), (2, "B1")]))
    settings = make_settings(tmp_path, database, str(landing), str(tmp_path / "partitioned"))
    return build(settings)


def refused_values(elsewhere: Path, other_dsn: str) -> dict[str, object]:
    """A value per field (`resource.field`), each pointing somewhere the deployment does not."""
    return {
        "landing.location": str(elsewhere / "landing"),
        "partitioned.location": str(elsewhere / "partitioned"),
        "warehouse.dsn": other_dsn,
        "warehouse.embedded_dir": str(elsewhere / "pg"),
        "warehouse.timezone": "UTC",
        "warehouse.max_new_columns": 3,
        "rules.location": str(elsewhere.parent / f"rules-{MARKER}.yaml"),  # valid rules
        "rules.snapshot_location": str(elsewhere / "snapshot"),
        "rules.local_snapshot_dir": str(elsewhere / "local"),
        "rules.endpoint_url": f"http://127.0.0.1:1/{MARKER}",
        "rules.region_name": "ap-southeast-2",
        "rules.profile_name": MARKER,
        "rules.aws_access_key_id": MARKER,
        "rules.aws_secret_access_key": MARKER,
        "rules.aws_session_token": MARKER,
        "rules.use_ssl": False,
        "rules.verify": False,
        "rules.max_attempts": 9,
        "rules.connect_timeout": 30.0,
        "rules.read_timeout": 60.0,
        "rules.rule_set": MARKER,
        "outcomes.prefix": f"/elsewhere-{MARKER}",
        "outcomes.region": "ap-southeast-2",
        "io_manager.base_dir": str(elsewhere / "io"),
    }


FIELDS = list(refused_values(Path("elsewhere"), "dsn"))


def run(defs, instance: DagsterInstance, resources: dict):
    job = defs.resolve_job_def(INGEST_JOB)
    return job.execute_in_process(
        partition_key=DATE,
        run_config={"resources": resources},
        instance=instance,
        raise_on_error=False,
    )


def event_log(instance: DagsterInstance, run_id: str) -> str:
    return "\n".join(serialize_value(entry) for entry in instance.all_logs(run_id))


def pipeline_schemas(dsn: str) -> list[tuple]:
    return query(
        dsn,
        "SELECT nspname FROM pg_namespace WHERE nspname IN ('indici_staging', 'rpt') ORDER BY 1",
    )


def assert_refused_before_anything(result, instance, field: str) -> None:
    """The run failed naming `field`, never the marker, and no step did any work."""
    assert not result.success
    log = event_log(instance, result.run_id)
    assert f"run config sets {field}" in log
    assert MARKER not in log
    assert not result.get_step_success_events()
    events = {entry.dagster_event.event_type for entry in instance.all_logs(result.run_id)}
    assert DagsterEventType.ASSET_MATERIALIZATION not in events
    assert DagsterEventType.STEP_OUTPUT not in events


def test_every_field_of_every_resource_is_among_the_refused_ones(project):
    fields = {
        f"{key}.{name}"
        for key, resource in project.resources.items()
        if isinstance(resource, PinnedResource)
        for name in config_fields(type(resource))
    }

    assert fields
    assert fields | {"io_manager.base_dir"} == set(FIELDS)


@pytest.mark.parametrize("field", FIELDS)
def test_a_run_config_setting_a_field_differently_fails_before_anything_naming_it(
    field, project, tmp_path, database, other_database
):
    elsewhere = tmp_path / f"elsewhere-{MARKER}"
    (tmp_path / f"rules-{MARKER}.yaml").write_text(TEST_RULES)
    key, _, name = field.partition(".")
    value = refused_values(elsewhere, other_database)[field]

    with DagsterInstance.ephemeral() as instance:
        result = run(project, instance, {key: {"config": {name: value}}})

        assert_refused_before_anything(result, instance, field)
    assert not elsewhere.exists()
    assert not (tmp_path / "partitioned").exists()
    assert not (tmp_path / ".indici").exists()  # no embedded server in the working folder
    assert pipeline_schemas(database) == []
    assert pipeline_schemas(other_database) == []


def test_a_config_equal_to_the_deployment_runs(project, tmp_path, database):
    deployment = project.resources["warehouse"].deployment
    equal = {key: {"config": dict(values)} for key, values in deployment.values.items()}
    equal["warehouse"]["config"]["dsn"] = f"  {database}  "  # as the settings read it: stripped

    with DagsterInstance.ephemeral() as instance:
        assert run(project, instance, equal).success

    assert query(database, "SELECT patient_id FROM rpt.patients ORDER BY 1") == [(1,), (2,)]


def test_a_partial_config_equal_to_the_deployment_keeps_the_configured_dsn(
    project, tmp_path, database
):
    with DagsterInstance.ephemeral() as instance:
        result = run(project, instance, {"warehouse": {"config": {"max_new_columns": 50}}})

        assert result.success
    # before: the omitted dsn became None and the run loaded into a new embedded server here
    assert query(database, "SELECT patient_id FROM rpt.patients ORDER BY 1") == [(1,), (2,)]
    assert not (tmp_path / ".indici").exists()


def test_a_value_taken_from_another_environment_variable_is_refused(
    project, tmp_path, database, other_database, monkeypatch
):
    monkeypatch.setenv("INDICI_TEST_OTHER_DSN", other_database)
    config = {"warehouse": {"config": {"dsn": {"env": "INDICI_TEST_OTHER_DSN"}}}}

    with DagsterInstance.ephemeral() as instance:
        result = run(project, instance, config)

        assert_refused_before_anything(result, instance, "warehouse.dsn")
    assert pipeline_schemas(other_database) == []
    assert pipeline_schemas(database) == []


def test_the_sensor_gets_the_deployment_s_resources(project, database):
    with DagsterInstance.ephemeral() as instance:
        result = tick(project, instance)

    assert [r.partition_key for r in result.run_requests] == [DATE]


def test_a_config_referring_to_the_deployment_s_own_variable_runs(project, database, monkeypatch):
    monkeypatch.setenv("INDICI_PG_DSN", database)  # how the launchpad shows an EnvVar field
    config = {"warehouse": {"config": {"dsn": {"env": "INDICI_PG_DSN"}}}}

    with DagsterInstance.ephemeral() as instance:
        assert run(project, instance, config).success


def test_the_refusal_is_one_line_naming_fields_and_variables_never_values():
    deployment = Deployment(
        "warehouse",
        {"warehouse": {"dsn": f"host=db password={MARKER}", "max_new_columns": 50}},
        {"warehouse": {"dsn": "INDICI_PG_DSN"}},
    )

    message = refusal(["warehouse.dsn", "warehouse.max_new_columns"], deployment)

    assert message.startswith(
        "run config sets warehouse.dsn (INDICI_PG_DSN), warehouse.max_new_columns differently"
    )
    assert "\n" not in message
    assert MARKER not in message
    assert MARKER not in repr(deployment)


def test_a_resource_field_defaulting_to_a_setting_is_refused_when_definitions_are_built():
    class Careless(PinnedResource):
        dsn: str | None = None
        max_new_columns: int = 50  # a partial run config would put 50 in place of the setting

    with pytest.raises(ValueError, match=r"Careless.max_new_columns must default to None"):
        pin_resources({"careless": Pin(Careless, {"dsn": "x", "max_new_columns": 7})})
