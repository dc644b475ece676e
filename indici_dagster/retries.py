"""Retry policy for failures that a later attempt can fix (database, S3 or network hiccups)."""

from dagster import Backoff, Jitter, RetryPolicy

TRANSIENT_RETRY = RetryPolicy(
    max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)
