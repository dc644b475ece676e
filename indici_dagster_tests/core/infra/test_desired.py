"""What `indici infra` wants, and the plan against what exists (pure: no AWS)."""

import dataclasses
import json

import pytest

from indici_dagster.core.infra.desired import (
    ATTACHED,
    EXISTS,
    KEY,
    LOG_GROUP,
    TABLE,
    USER,
    InfraError,
    InfraOptions,
    Names,
    check_options,
    desired_aspects,
    lifecycle_rule,
    names_from,
    outcome_log_group,
)
from indici_dagster.core.infra.plan import aspect_key, describe_change, plan_changes
from indici_dagster.core.settings import Settings
from indici_dagster_tests.support.infra import PLACEHOLDER_NAMES

NAMES = Names("land", "incoming/", "part", "indici/", "rules", "/indici")


DEFAULTS = InfraOptions()


def _aspects(options: InfraOptions = DEFAULTS):
    return desired_aspects(NAMES, options, "ap-southeast-2", "123456789012")


def test_nothing_is_ever_set_to_expire_by_default_or_with_an_archive_tier():
    for options in (InfraOptions(), InfraOptions(tiering_days=7, archive_days=180)):
        text = json.dumps([a.desired for a in _aspects(options)])
        assert "Expiration" not in text and "NoncurrentVersionExpiration" not in text


def test_the_lifecycle_rule_tiers_after_the_days_given_and_archives_only_when_asked():
    assert lifecycle_rule("r", "in/", InfraOptions(), versioned=False)["Transitions"] == [
        {"Days": 30, "StorageClass": "INTELLIGENT_TIERING"}
    ]
    rule = lifecycle_rule("r", "in/", InfraOptions(tiering_days=5, archive_days=90), True)
    assert rule["Filter"] == {"Prefix": "in/"}
    assert rule["Transitions"] == [
        {"Days": 5, "StorageClass": "INTELLIGENT_TIERING"},
        {"Days": 90, "StorageClass": "GLACIER"},
    ]
    assert rule["NoncurrentVersionTransitions"] == [
        {"NoncurrentDays": 5, "StorageClass": "INTELLIGENT_TIERING"},
        {"NoncurrentDays": 90, "StorageClass": "GLACIER"},
    ]


def test_the_partitioned_rule_covers_the_copies_and_never_the_rules_snapshot():
    (rule,) = [a for a in _aspects() if a.setting == "lifecycle rule indici-partitioned"]
    assert rule.desired["Filter"] == {"Prefix": "indici/dataset="}
    assert not "indici/_indici/rules/t.json".startswith(rule.desired["Filter"]["Prefix"])


@pytest.mark.parametrize(
    ("options", "flag"),
    [
        (InfraOptions(tiering_days=-1), "--tiering-days"),
        (InfraOptions(tiering_days=30, archive_days=30), "--archive-days"),
        (InfraOptions(kms_key="alias/mine"), "--kms-key"),
        (InfraOptions(log_retention_days=42), "--log-retention-days"),
    ],
)
def test_a_bad_option_is_one_line_naming_its_flag(options, flag):
    with pytest.raises(InfraError, match=flag):
        check_options(options)


def test_the_three_outcome_groups_come_with_the_prefix_only():
    groups = [a.name for a in _aspects() if a.kind == LOG_GROUP]
    assert groups == ["/indici/success", "/indici/empty", "/indici/error"]
    assert groups[0] == outcome_log_group("/indici", "success")
    no_logs = Names("land", "", "part", "", "rules", None)
    assert not any(a.kind == LOG_GROUP for a in desired_aspects(no_logs, InfraOptions(), "r", "1"))


def test_a_location_not_on_aws_is_refused_naming_its_variable(tmp_path):
    settings = Settings(
        landing=str(tmp_path), partitioned="s3://part/x", rules=None, pg_dsn="embedded"
    )
    with pytest.raises(InfraError, match="INDICI_LANDING"):
        names_from(settings)


def test_a_table_keyed_otherwise_and_a_vendor_user_with_more_policies_are_conflicts():
    aspects = _aspects()
    current = {aspect_key(a): a.desired for a in aspects}
    assert plan_changes(aspects, current) == []
    (table_key,) = [a for a in aspects if (a.kind, a.setting) == (TABLE, KEY)]
    (user,) = [a for a in aspects if (a.kind, a.setting) == (USER, ATTACHED)]
    current[aspect_key(table_key)] = [["id", "HASH", "N"]]
    current[aspect_key(user)] = [*user.desired, "arn:aws:iam::aws:policy/AdministratorAccess"]
    changes = plan_changes(aspects, current)
    assert [describe_change(c)[:2] for c in changes] == ["! ", "! "]
    assert "AdministratorAccess" in describe_change(changes[1])


def test_an_absent_resource_is_created_before_its_settings():
    aspects = _aspects()
    changes = plan_changes(aspects, {})
    assert len(changes) == len(aspects)
    assert describe_change(changes[0]) == "+ bucket land: create"
    assert changes[0].aspect.setting == EXISTS


def test_the_policies_grant_outcome_logs_and_alerts_only_when_the_settings_ask():
    from indici_dagster.core.infra.policies import (
        code_location_policy,
        pipeline_policy,
    )

    def sids(document):
        return [statement["Sid"] for statement in document["Statement"]]

    assert "SendOutcomeEvents" not in sids(pipeline_policy(PLACEHOLDER_NAMES))
    assert "PublishAlerts" not in sids(code_location_policy(PLACEHOLDER_NAMES))
    topic = "arn:aws:sns:ap-southeast-2:123456789012:indici-alerts"
    groups = "arn:aws:logs:ap-southeast-2:123456789012:log-group:/indici/*"
    names = dataclasses.replace(
        PLACEHOLDER_NAMES, outcome_log_groups_arn=groups, alert_topic_arn=topic
    )
    runs, server = pipeline_policy(names), code_location_policy(names)
    assert "SendOutcomeEvents" in sids(runs) and "PublishAlerts" not in sids(runs)
    (publish,) = [s for s in server["Statement"] if s["Sid"] == "PublishAlerts"]
    assert (publish["Action"], publish["Resource"]) == (["sns:Publish"], topic)
    (send,) = [s for s in server["Statement"] if s["Sid"] == "SendOutcomeEvents"]
    assert send["Resource"] == groups
