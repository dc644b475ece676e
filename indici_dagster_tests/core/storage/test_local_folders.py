"""The whole flow with local folders for landing and partitioned, the shipped rules and sample data."""

from datetime import date

from dagster import DagsterInstance

from indici_dagster.core.filenames import parse_file_name
from indici_dagster.core.rules.store import load_rules
from indici_dagster.core.sample.data import write_sample_files
from indici_dagster.core.settings import Settings
from indici_dagster.core.storage.local_storage import LocalStorage
from indici_dagster_tests.support.common import TIMEZONE, build, execute_requests, query, tick


def test_sample_files_in_local_folders_reach_every_layer_with_the_shipped_rules(tmp_path, database):
    landing, partitioned = tmp_path / "landing", tmp_path / "partitioned"
    rules = load_rules()
    landed = write_sample_files(
        LocalStorage(landing), rules, timezone=TIMEZONE, days=3, end_date=date(2026, 11, 24)
    )
    settings = Settings(
        landing=str(landing),
        partitioned=str(partitioned),
        rules=None,
        pg_dsn=database,
        timezone=TIMEZONE,
        start_date="2026-01-01",
    )
    defs = build(settings)

    with DagsterInstance.ephemeral() as instance:
        result = tick(defs, instance)
        assert [r.partition_key for r in result.run_requests] == [
            "2026-11-22",
            "2026-11-23",
            "2026-11-24",
        ]
        outcomes = execute_requests(defs, instance, result)
        assert [o.success for o in outcomes] == [True, True, True]
        # the README's "What you will see": the sample data's deliberate WARNs, and no others
        failed = {
            (o.dagster_run.tags["dagster/partition"], e.asset_key.to_user_string(), e.check_name)
            for o in outcomes
            for e in o.get_asset_check_evaluations()
            if not e.passed
        }
        assert failed == {
            ("2026-11-24", "indici/raw", "files_readable_and_not_empty"),
            *(
                (day, f"indici/staging/{dataset}", "nhi_numbers_valid")
                for day in ("2026-11-22", "2026-11-23", "2026-11-24")
                for dataset in ("Patients", "Immunisations")
            ),
        }
        assert not tick(defs, instance, result.cursor).run_requests

    for rule in rules.values():  # table and column names are validated identifiers
        ((rpt_rows,),) = query(database, f"SELECT count(*) FROM rpt.{rule.table}")
        if rule.is_static:
            assert rpt_rows > 0, rule.dataset
            continue
        key = ", ".join(rule.primary_key)
        present = " AND ".join(f"{k} IS NOT NULL" for k in rule.primary_key)
        ((keys,),) = query(
            database,
            f"SELECT count(*) FROM (SELECT DISTINCT {key} FROM indici_staging.{rule.table} "
            f"WHERE {present}) k",
        )
        assert rpt_rows == keys > 0, rule.dataset

    assert query(
        database,
        "SELECT dataset, partition_key FROM indici_staging.auditlog "
        "WHERE step = 'staging' AND status = 'empty'",
    ) == [("Medications", "2026-11-24")]
    assert query(
        database, "SELECT count(*) FROM indici_staging.auditlog WHERE status = 'error'"
    ) == [(0,)]
    assert query(database, "SELECT count(*) FROM rpt.ethnicity_code") == [(21,)]
    assert query(database, "SELECT count(*) FROM rpt.vaccine_code") == [(11,)]

    for key in landed:
        name = parse_file_name(key, TIMEZONE)
        copy = partitioned / f"dataset={name.dataset}" / f"date={name.partition_key}" / key
        assert copy.read_bytes() == (landing / key).read_bytes(), key
    copies = [p for p in partitioned.rglob("*") if p.is_file()]
    assert len(copies) == len(landed)
