"""Alerts published to SNS (a moto server) arrive at a subscribed SQS queue; a missing topic is
one line naming INDICI_ALERT_SNS_TOPIC."""

from indici_dagster.core.alerts.sns import publish_alert, topic_problem
from indici_dagster_tests.support.sns import missing_topic_arn, received, subscribed_topic


def test_a_published_alert_arrives_at_the_subscribed_queue(moto_endpoint):
    topic = subscribed_topic()
    assert topic_problem(topic.topic_arn) is None
    assert publish_alert(topic.topic_arn, "indici: test", "line one\nline two") is None
    assert received(topic.queue_url) == [("indici: test", "line one\nline two")]


def test_a_missing_topic_is_one_line_naming_the_variable(moto_endpoint):
    arn = missing_topic_arn()
    problem = publish_alert(arn, "indici: test", "body")
    assert problem is not None
    assert problem.startswith("INDICI_ALERT_SNS_TOPIC names an SNS topic that does not exist")
    assert "\n" not in problem and arn not in problem
    # it named `indici infra apply`, which creates no SNS topic
    assert "aws sns create-topic" in problem and "infra apply" not in problem
    doctor_line = topic_problem(arn)
    assert doctor_line is not None and doctor_line.startswith("INDICI_ALERT_SNS_TOPIC names")


def test_an_unreachable_sns_is_one_line_not_an_exception(moto_endpoint, monkeypatch):
    import socket

    with socket.socket() as probe:  # a closed port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    problem = publish_alert(missing_topic_arn(), "indici: test", "body")
    assert problem is not None and "could not be reached" in problem
