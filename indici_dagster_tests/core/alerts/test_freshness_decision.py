"""Which feeds are quiet: the newest landing per dataset against its rule's limit."""

from datetime import UTC, datetime, timedelta

from indici_dagster.core.alerts import freshness
from indici_dagster.core.rules.model import parse_rules
from indici_dagster.core.storage.base import StoredObject

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RULES = parse_rules(
    [
        {"dataset": "Patients"},
        {"dataset": "Invoices", "max_file_age_hours": 2},
        {"dataset": "EthnicityCode", "max_file_age_hours": 0},
        {"dataset": "Appointments"},
    ]
)


def landed(key: str, hours_ago: float, problem: str | None = None) -> StoredObject:
    return StoredObject(key, "etag", 1, NOW - timedelta(hours=hours_ago), problem)


def test_the_newest_landing_counts_not_the_newest_name():
    objects = [
        landed("Patients_20261124_020000.parquet", 40),
        # an old date re-sent today: the feed is alive
        landed("old/Patients_20260105_020000.parquet", 1),
        landed("Invoices_20261125_020000.parquet", 3),
        landed(".upload/Appointments_20261125_020000.parquet", 0, problem="hidden"),
        landed("notes.txt", 0),
    ]
    newest = freshness.newest_landings(objects, RULES, "Pacific/Auckland")
    assert newest["Patients"] == NOW - timedelta(hours=1)
    assert newest["Invoices"] == NOW - timedelta(hours=3)
    assert newest["Appointments"] is None

    results = {r.dataset: r for r in freshness.judge(RULES, newest, NOW)}
    assert not results["Patients"].stale
    assert results["Invoices"].stale and results["Invoices"].age_hours == 3
    assert results["Appointments"].stale  # nothing ever landed: never silently fine
    assert not results["EthnicityCode"].stale and not results["EthnicityCode"].checked


def test_an_alert_goes_out_once_per_dataset_that_turns_stale():
    newest = {"Patients": NOW - timedelta(hours=37), "Invoices": NOW, "Appointments": NOW}
    results = freshness.judge(RULES, newest, NOW)
    assert [r.dataset for r in freshness.newly_stale(results, [])] == ["Patients"]
    assert freshness.newly_stale(results, ["Patients"]) == []


def test_the_alert_text_names_dataset_times_and_limit_and_links_to_the_check():
    result = freshness.Freshness("Patients", 36, NOW - timedelta(hours=40), NOW)
    subject, body = freshness.alert_text(result, "https://ui.example", "indici/landing/Patients")
    assert subject == "indici: Patients feed quiet for 40 h"
    assert "Newest file landed: 2026-11-23 20:00:00Z (40.0 h ago)" in body
    assert "Limit: 36 h" in body
    assert "https://ui.example/assets/indici/landing/Patients?view=checks" in body
