"""INDICI_ALERT_SNS_TOPIC and INDICI_UI_URL: checked with the other settings and by doctor."""

import pytest

from indici_dagster.cli import main
from indici_dagster.core.settings import Settings, SettingsError

TOPIC = "arn:aws:sns:ap-southeast-2:123456789012:indici-alerts"


def test_well_formed_values_are_kept_and_unset_means_no_alerts():
    settings = Settings.from_env(
        {"INDICI_ALERT_SNS_TOPIC": TOPIC, "INDICI_UI_URL": "https://dagster.example.org/"}
    )
    assert settings.alert_sns_topic == TOPIC
    assert settings.ui_url == "https://dagster.example.org"
    unset = Settings.from_env({})
    assert (unset.alert_sns_topic, unset.ui_url) == (None, None)


@pytest.mark.parametrize(
    "topic",
    [
        "indici-alerts",
        "arn:aws:sqs:ap-southeast-2:123456789012:indici-alerts",
        "arn:aws:sns:ap-southeast-2:12345:indici-alerts",
        "arn:aws:sns:nowhere:123456789012:indici-alerts",
        "arn:aws:sns:ap-southeast-2:123456789012:indici alerts",
        "arn:aws:sns:ap-southeast-2:123456789012:",
        "https://sns.ap-southeast-2.amazonaws.com/secret-topic",
    ],
)
def test_a_malformed_topic_stops_the_settings_with_one_line_naming_the_variable(topic):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"INDICI_ALERT_SNS_TOPIC": topic})
    message = str(caught.value)
    assert message.startswith("INDICI_ALERT_SNS_TOPIC is not valid: expected an SNS topic ARN")
    assert topic not in message and "\n" not in message


@pytest.mark.parametrize(
    "url",
    [
        "dagster.example.org",
        "ftp://dagster.example.org",
        "https://user:secret@dagster.example.org",
        "https://dagster.example.org/?token=secret",
        "https://dagster.example.org/#runs",
        "https://",
        "https://dagster.example.org:port",
    ],
)
def test_a_malformed_ui_url_stops_the_settings_with_one_line_naming_the_variable(url):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"INDICI_UI_URL": url})
    message = str(caught.value)
    assert message.startswith("INDICI_UI_URL is not valid: expected an http(s) URL")
    assert "secret" not in message


def test_doctor_reports_a_malformed_topic_and_url(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INDICI_ALERT_SNS_TOPIC", "not-an-arn")
    monkeypatch.setenv("INDICI_UI_URL", "javascript:alert(1)")
    assert main(["doctor"]) != 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "INDICI_ALERT_SNS_TOPIC" in line]
    assert lines and "FAIL" in lines[0] and "not-an-arn" not in out
    assert any("FAIL" in line and "INDICI_UI_URL" in line for line in out.splitlines())


def test_doctor_says_when_the_topic_does_not_exist(moto_endpoint, monkeypatch, capsys, tmp_path):
    from indici_dagster_tests.support.sns import missing_topic_arn, subscribed_topic

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INDICI_ALERT_SNS_TOPIC", missing_topic_arn())
    main(["doctor"])
    (line,) = [line for line in capsys.readouterr().out.splitlines() if " alerts " in line]
    assert line.startswith("FAIL") and "INDICI_ALERT_SNS_TOPIC names an SNS topic that does" in line

    monkeypatch.setenv("INDICI_ALERT_SNS_TOPIC", subscribed_topic().topic_arn)
    main(["doctor"])
    (line,) = [line for line in capsys.readouterr().out.splitlines() if " alerts " in line]
    assert line.startswith("ok") and "topic exists" in line
