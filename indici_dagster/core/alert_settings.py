"""The alert settings' names and forms: the SNS topic alerts go to, the UI links point at.

Kept apart from `settings` (which lists them among every other variable) so the alerts' own
modules name them without importing the whole settings table.
"""

import re
from urllib.parse import urlsplit

ALERT_SNS_TOPIC = "INDICI_ALERT_SNS_TOPIC"
UI_URL = "INDICI_UI_URL"

SNS_TOPIC_EXPECTED = "an SNS topic ARN, arn:aws:sns:<region>:<12-digit account>:<topic name>"
UI_URL_EXPECTED = "an http(s) URL of the Dagster UI, such as https://dagster.example.org"

_TOPIC_ARN = re.compile(
    r"arn:aws(-[a-z]+)*:sns:[a-z]{2}(-[a-z]+)+-\d{1,2}:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?"
)


def sns_topic_arn(value: str) -> str:
    """`value` when it has the shape of an SNS topic ARN (partition, region, account, name);
    raises `ValueError` otherwise. Whether the topic exists is known only when publishing."""
    if not _TOPIC_ARN.fullmatch(value):
        raise ValueError
    return value


def ui_url(value: str) -> str:
    """`value` without a trailing `/` when it is an http(s) URL with a host and neither
    credentials, a query nor a fragment (links are built as `<url>/runs/<run id>`); raises
    `ValueError` otherwise."""
    try:
        parts = urlsplit(value)
        port = parts.port  # raises for a port that is not a number
    except ValueError:
        raise ValueError from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError
    if parts.username or parts.password or parts.query or parts.fragment or " " in value:
        raise ValueError
    if port == 0:
        raise ValueError
    return value.rstrip("/")
