"""Outcome groups and events without AWS: every audit status has a group, a prefix follows
CloudWatch's log group rules, an event holds the audit row's fields only, and batches respect
put_log_events' limits."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from indici_dagster.core.outcome_groups import (
    OUTCOMES,
    outcome_log_group,
    outcome_of_status,
    parse_prefix,
)
from indici_dagster.core.outcomes.events import (
    MAX_BATCH_SPAN_MS,
    OutcomeEvent,
    batches,
    event_fields,
    outcome_event,
    outcome_events,
)
from indici_dagster.core.warehouse.audit import AuditEntry, Status, Step

NOW = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)


def test_every_audit_status_has_exactly_the_issues_group():
    assert {str(s): outcome_of_status(s) for s in Status} == {
        "success": "success",
        "static": "success",
        "empty": "empty",
        "error": "error",
        "no_rule": "error",
    }
    assert OUTCOMES == ("success", "empty", "error")
    with pytest.raises(ValueError, match="no CloudWatch outcome group"):
        outcome_of_status("run_failed")


@pytest.mark.parametrize("prefix", ["/indici", "/indici/prod", "/a.b_c-d#e", "/x"])
def test_a_log_group_prefix_is_accepted(prefix):
    assert parse_prefix(prefix) == prefix
    assert outcome_log_group(prefix, "empty") == f"{prefix}/empty"


@pytest.mark.parametrize(
    "prefix",
    [
        "indici",
        "/indici/",
        "/",
        "//indici",
        "/in dici",
        "/indici:x",
        "/indici*",
        "/é",
        "/" + "a" * 504,
    ],
)
def test_a_malformed_prefix_is_refused(prefix):
    with pytest.raises(ValueError):
        parse_prefix(prefix)


def test_an_unknown_outcome_has_no_group():
    with pytest.raises(ValueError, match="unknown outcome group"):
        outcome_log_group("/indici", "skipped")


def _entry(status: Status, message: str | None = "ok") -> AuditEntry:
    return AuditEntry(
        Step.STAGING,
        status,
        "Patients_20261124_020000.parquet",
        dataset="Patients",
        partition_key="2026-11-24",
        run_id="run-1",
        source_key="landing/Patients_20261124_020000.parquet",
        source_etag="etag",
        rows_read=3,
        rows_loaded=2,
        rows_rejected=1,
        message=message,
    )


def test_an_event_holds_the_audit_rows_fields_and_nothing_else():
    event = outcome_event("/indici", _entry(Status.NO_RULE), NOW)
    assert event.group == "/indici/error"
    assert event.timestamp == int(NOW.timestamp() * 1000)
    assert json.loads(event.message) == {
        "file": "Patients_20261124_020000.parquet",
        "dataset": "Patients",
        "partition": "2026-11-24",
        "step": "staging",
        "status": "no_rule",
        "run_id": "run-1",
        "rows_read": 3,
        "rows_loaded": 2,
        "rows_inserted": None,
        "rows_updated": None,
        "rows_unchanged": None,
        "rows_rejected": 1,
        "message": "ok",
    }
    assert set(event_fields(_entry(Status.ERROR))) == set(json.loads(event.message))


def test_an_overlong_message_is_replaced_not_cut():
    event = outcome_event("/indici", _entry(Status.ERROR, "x" * 300_000), NOW)
    assert json.loads(event.message)["message"] == "(message too long for CloudWatch)"


def test_events_are_grouped_and_sorted_by_time():
    later, earlier = NOW, NOW - timedelta(minutes=5)
    groups = outcome_events(
        "/indici",
        [
            (_entry(Status.SUCCESS), later),
            (_entry(Status.STATIC), earlier),
            (_entry(Status.EMPTY), NOW),
        ],
    )
    assert sorted(groups) == ["/indici/empty", "/indici/success"]
    assert [e.timestamp for e in groups["/indici/success"]] == sorted(
        e.timestamp for e in groups["/indici/success"]
    )


def _events(count: int, size: int = 10, step_ms: int = 1) -> list[OutcomeEvent]:
    return [OutcomeEvent("/indici/success", i * step_ms, "m" * size) for i in range(count)]


def test_batches_respect_the_event_count_limit():
    cut = batches(_events(25_001))
    assert [len(b) for b in cut] == [10_000, 10_000, 5_001]


def test_batches_respect_the_byte_limit():
    events = _events(10, size=200_000)  # 200,026 bytes each: five fit in 1 MiB
    cut = batches(events)
    assert [len(b) for b in cut] == [5, 5]
    assert all(sum(e.size for e in b) <= 1_048_576 for b in cut)


def test_batches_never_span_24_hours():
    events = _events(3, step_ms=MAX_BATCH_SPAN_MS // 2 + 1)
    assert [len(b) for b in batches(events)] == [2, 1]
    assert batches([]) == []
