"""An SNS topic on the moto server with an SQS queue subscribed, and reading what arrived."""

import json
import uuid
from dataclasses import dataclass

import boto3


@dataclass(frozen=True)
class Subscribed:
    """A topic and the queue that receives its messages."""

    topic_arn: str
    queue_url: str


def subscribed_topic() -> Subscribed:
    """A new SNS topic with a new SQS queue subscribed to it (on the moto server)."""
    suffix = uuid.uuid4().hex[:8]
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic_arn = sns.create_topic(Name=f"indici-alerts-{suffix}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"indici-alerts-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return Subscribed(topic_arn, queue_url)


def received(queue_url: str) -> list[tuple[str, str]]:
    """(subject, message) of every notification waiting in the queue, removing them."""
    sqs = boto3.client("sqs")
    messages = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            envelope = json.loads(message["Body"])
            messages.append((envelope.get("Subject", ""), envelope["Message"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def missing_topic_arn() -> str:
    """The ARN of a topic that does not exist (well formed, on the moto server's account)."""
    return f"arn:aws:sns:us-east-1:123456789012:indici-missing-{uuid.uuid4().hex[:8]}"
