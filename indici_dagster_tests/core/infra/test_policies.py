"""The IAM policies in deploy/iam are the generator's output, not a hand-kept copy."""

import json
from pathlib import Path

import pytest

from indici_dagster.core.infra.policies import (
    POLICIES,
    PolicyNames,
    policy_file_name,
    render_policy,
    write_policy_files,
)
from indici_dagster_tests.support.infra import PLACEHOLDER_NAMES

IAM_DIR = Path(__file__).resolve().parents[3] / "deploy" / "iam"
KEY = "arn:aws:kms:ap-southeast-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_each_tracked_policy_file_is_exactly_the_generated_document(policy):
    tracked = (IAM_DIR / policy_file_name(policy)).read_text(encoding="utf-8")
    assert tracked == render_policy(POLICIES[policy](PLACEHOLDER_NAMES)), (
        f"deploy/iam/{policy_file_name(policy)} differs from its generator: regenerate it"
    )


def test_writing_the_policy_files_again_gives_the_tracked_files(tmp_path):
    for written in write_policy_files(tmp_path, PLACEHOLDER_NAMES):
        assert written.read_bytes() == (IAM_DIR / written.name).read_bytes()


def test_every_data_policy_in_deploy_iam_has_a_generator():
    data_files = {
        path.name
        for path in IAM_DIR.glob("*.json")
        if "arn:aws:s3:::" in path.read_text(encoding="utf-8")
    }
    assert data_files == {policy_file_name(policy) for policy in POLICIES}


def test_the_generated_policies_name_the_given_buckets_and_table_only():
    names = PolicyNames("my-landing", "my-partitioned", "arn:aws:dynamodb:r:1:table/my-rules")
    for build in POLICIES.values():
        text = json.dumps(build(names))
        assert "kpa-" not in text and "indici-rules" not in text
        assert "my-landing" in text


def test_a_kms_key_lets_every_principal_encrypt_and_decrypt_with_that_key_only():
    names = PolicyNames("my-landing", "my-partitioned", "arn:aws:dynamodb:r:1:table/t", KEY)
    for build in POLICIES.values():
        kms = [s for s in build(names)["Statement"] if s["Sid"] == "UseBucketKey"]
        assert kms == [
            {
                "Sid": "UseBucketKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": KEY,
            }
        ]
        without = build(PolicyNames("my-landing", "my-partitioned", "arn:t"))
        assert not any("kms" in json.dumps(s) for s in without["Statement"])
