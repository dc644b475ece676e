"""`indici infra plan|apply` as a person runs it, against the moto server: the lines printed,
"no changes" the second time, nothing changed by plan, one line for a bad flag, a location
that is not on AWS, and missing AWS permissions (moto enforcing IAM, as
`deploy/test_iam_policies.py` does)."""

import contextlib
import json
import os
import re
from collections.abc import Iterator

import pytest
import requests

from indici_dagster.cli import main
from indici_dagster.core.infra.policies import PolicyNames, valentia_upload_policy
from indici_dagster_tests.support.infra import (
    InfraNames,
    client,
    remove_infra_iam,
    stored_configuration,
)

INDICI_VARIABLES = [name for name in os.environ if name.startswith("INDICI_")]


@pytest.fixture
def names(moto_endpoint, tmp_path, monkeypatch) -> Iterator[InfraNames]:
    """Fresh names in the environment, in a folder of the test's own."""
    for name in INDICI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    remove_infra_iam()
    fresh = InfraNames.fresh()
    for name, value in fresh.environment().items():
        monkeypatch.setenv(name, value)
    yield fresh
    remove_infra_iam()


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip()


def test_plan_prints_the_changes_and_makes_none(names, capsys):
    before = stored_configuration(names)
    assert main(["infra", "plan", "--archive-days", "180"]) == 0
    out = capsys.readouterr().out
    assert f"+ bucket {names.landing}: create" in out
    assert f"+ bucket {names.landing}: versioning: on" in out
    assert "Intelligent-Tiering after 30 days, GLACIER after 180 days, nothing deleted" in out
    assert f"+ table {names.table}: point-in-time recovery: on" in out
    assert f"+ log group {names.log_prefix}/error: retention: 400 days" in out
    assert "+ user valentia-import: policies: only valentia-upload" in out
    assert out.rstrip().endswith("nothing changed: run indici infra apply to make them")
    assert stored_configuration(names) == before


def test_apply_twice_says_no_changes_the_second_time_and_changes_nothing(names, capsys):
    assert main(["infra", "apply", "--log-retention-days", "365"]) == 0
    first = capsys.readouterr().out
    assert "applied" in first and f"+ table {names.table}: create" in first
    applied = stored_configuration(names)
    assert main(["infra", "apply", "--log-retention-days", "365"]) == 0
    second = capsys.readouterr().out.splitlines()
    assert second[1:] == ["no changes"]
    assert stored_configuration(names) == applied
    assert main(["infra", "plan", "--log-retention-days", "365"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["no changes"]


def test_a_bad_flag_is_one_line_and_exit_2(names, capsys):
    assert main(["infra", "apply", "--log-retention-days", "42"]) == 2
    assert "--log-retention-days" in _one_error_line(capsys)
    with pytest.raises(SystemExit) as raised:
        main(["infra", "plan", "--tiering-days", "soon"])
    assert raised.value.code == 2


def test_a_local_landing_folder_is_refused_naming_the_variable(
    names, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("INDICI_LANDING", str(tmp_path))
    assert main(["infra", "plan"]) == 1
    assert "INDICI_LANDING is not s3://" in _one_error_line(capsys)


def _set_auth(endpoint: str, value: str) -> str:
    response = requests.post(f"{endpoint}/moto-api/reset-auth", data=value.encode(), timeout=10)
    response.raise_for_status()
    return response.json()["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]


def test_missing_aws_permissions_are_one_line_naming_the_call_and_change_nothing(
    names, moto_endpoint, monkeypatch, capsys
):
    iam = client("iam")
    user = f"narrow-{names.table}"
    iam.create_user(UserName=user)
    document = valentia_upload_policy(PolicyNames(names.landing, names.partitioned, "*"))
    arn = iam.create_policy(PolicyName=user, PolicyDocument=json.dumps(document))["Policy"]["Arn"]
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    client("s3").create_bucket(Bucket=names.landing)
    before = stored_configuration(names)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    previous = _set_auth(moto_endpoint, "0")
    try:
        code = main(["infra", "apply"])
    finally:
        _set_auth(moto_endpoint, previous)
        with contextlib.suppress(Exception):
            iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
            iam.detach_user_policy(UserName=user, PolicyArn=arn)
            iam.delete_policy(PolicyArn=arn)
            iam.delete_user(UserName=user)
    assert code == 1
    line = _one_error_line(capsys)
    # moto refuses the HeadBucket (a 403 has no body: no code but the status)
    assert line.startswith(f"indici: cannot read bucket {names.landing} (exists): HeadBucket")
    assert "the caller's IAM permissions do not allow it" in line
    assert line.endswith("nothing was changed")
    assert stored_configuration(names) == before


def test_a_conflict_is_marked_by_plan_with_exit_1_and_apply_changes_nothing(names, capsys):
    client("dynamodb").create_table(
        TableName=names.table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    before = stored_configuration(names)
    assert main(["infra", "plan"]) == 1
    assert f"! table {names.table}: key: its key is not dataset (string)" in capsys.readouterr().out
    assert main(["infra", "apply"]) == 1
    assert _one_error_line(capsys).startswith(f"indici: nothing changed: table {names.table}: key")
    assert stored_configuration(names) == before


def test_a_refusal_while_applying_says_how_far_it_got_and_apply_continues_later(
    names, moto_endpoint, monkeypatch, capsys
):
    iam = client("iam")
    user = f"half-{names.table}"
    reads = ["s3:Get*", "s3:List*", "s3:Head*", "dynamodb:Describe*", "iam:Get*", "iam:List*"]
    allowed = [*reads, "logs:Describe*", "sts:GetCallerIdentity", "s3:CreateBucket"]
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": allowed, "Resource": "*"}],
    }
    iam.create_user(UserName=user)
    arn = iam.create_policy(PolicyName=user, PolicyDocument=json.dumps(document))["Policy"]["Arn"]
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    with monkeypatch.context() as narrow:
        narrow.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        narrow.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        previous = _set_auth(moto_endpoint, "0")
        try:
            code = main(["infra", "apply"])
        finally:
            _set_auth(moto_endpoint, previous)
            with contextlib.suppress(Exception):
                iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
                iam.detach_user_policy(UserName=user, PolicyArn=arn)
                iam.delete_policy(PolicyArn=arn)
                iam.delete_user(UserName=user)
    assert code == 1
    captured = capsys.readouterr()
    assert f"+ bucket {names.landing}: create" in captured.out  # made before the refusal
    line = captured.err.strip()
    assert "\n" not in line
    # moto authorizes only some bucket settings (it lets PutBucketEncryption by): the first
    # it refuses is the landing bucket's versioning
    assert line.startswith(f"indici: bucket {names.landing}: versioning: on failed: ")
    assert "PutBucketVersioning failed (AccessDenied)" in line
    assert re.search(r"; [1-9]\d* of \d+ changes made, run indici infra apply again", line)
    assert main(["infra", "apply"]) == 0  # with the administrator's keys: the rest
    capsys.readouterr()
    assert main(["infra", "apply"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["no changes"]
