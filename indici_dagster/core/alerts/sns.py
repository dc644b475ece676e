"""Publishing an alert to the SNS topic `INDICI_ALERT_SNS_TOPIC` names.

A publish that fails never stops what raised the alert (the audit row is written first, and is
the record): it comes back as one line naming the variable and the AWS error code, never the
service's message text.
"""

from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from indici_dagster.core.alert_settings import ALERT_SNS_TOPIC
from indici_dagster.core.errors import storage_error_code

_MISSING_TOPIC_CODES = frozenset({"NotFound", "NotFoundException"})
_REFUSED_CODES = frozenset({"AuthorizationError", "AccessDenied", "AccessDeniedException"})
_CREATE_IT = (
    "create it (`aws sns create-topic --name <name>`; `indici infra` does not manage SNS topics) "
    "and subscribe the people to alert, or correct the variable"
)


def publish_alert(topic_arn: str, subject: str, body: str, client: Any = None) -> str | None:
    """Publish one message (`subject`, `body`) to `topic_arn`; returns None once SNS accepted
    it, else one line saying why it was not sent (missing topic, access refused, unreachable).

    `client` is a boto3 SNS client (default: one from the environment).
    """
    try:
        (client or boto3.client("sns")).publish(TopicArn=topic_arn, Subject=subject, Message=body)
    except ClientError as error:
        code = storage_error_code(error) or type(error).__name__
        if code in _MISSING_TOPIC_CODES:
            return (
                f"{ALERT_SNS_TOPIC} names an SNS topic that does not exist ({code}): {_CREATE_IT}; "
                "the alert was not sent"
            )
        if code in _REFUSED_CODES:
            return (
                f"publishing to the SNS topic {ALERT_SNS_TOPIC} names was refused ({code}): grant "
                "the pipeline sns:Publish on it; the alert was not sent"
            )
        return f"publishing to the SNS topic {ALERT_SNS_TOPIC} names failed ({code}); not sent"
    except BotoCoreError as error:
        return (
            f"the SNS topic {ALERT_SNS_TOPIC} names could not be reached "
            f"({type(error).__name__}); the alert was not sent"
        )
    return None


def topic_problem(topic_arn: str, client: Any = None) -> str | None:
    """None when the topic exists and its attributes can be read, else one line why not (the
    same wording as a failed publish); for `indici doctor`."""
    try:
        (client or boto3.client("sns")).get_topic_attributes(TopicArn=topic_arn)
    except ClientError as error:
        code = storage_error_code(error) or type(error).__name__
        if code in _MISSING_TOPIC_CODES:
            return (
                f"{ALERT_SNS_TOPIC} names an SNS topic that does not exist ({code}): {_CREATE_IT}"
            )
        return f"the SNS topic {ALERT_SNS_TOPIC} names cannot be read ({code})"
    except BotoCoreError as error:
        return (
            f"the SNS topic {ALERT_SNS_TOPIC} names could not be reached ({type(error).__name__})"
        )
    return None
