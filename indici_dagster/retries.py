"""Which failures a step retries: transient ones (network, throttling, a dropped connection).

Failures that no retry can fix (access denied, a missing bucket, a permission the database role
lacks) fail the step at once with a clear message naming the AWS error code or the database's
refusal, instead of spending the backoff first.
"""

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import psycopg2
import psycopg2.errors
from botocore.exceptions import ClientError, NoCredentialsError
from dagster import Backoff, Failure, Jitter, RetryPolicy

from indici_dagster.core.storage import (
    PERMANENT_STORAGE_ERRORS,
    is_permanent_storage_error,
    storage_error_code,
)

P = ParamSpec("P")
R = TypeVar("R")

TRANSIENT_RETRY = RetryPolicy(
    max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)

PERMANENT_S3_ERRORS = PERMANENT_STORAGE_ERRORS
"""AWS error codes no retry can fix (one list, kept with the storage code)."""


def _permanent_failure(error: BaseException) -> Failure | None:
    """The non-retryable `Failure` for an error no retry can fix, else None."""
    if isinstance(error, ClientError) and is_permanent_storage_error(error):
        operation = getattr(error, "operation_name", None) or "an AWS call"
        return Failure(
            description=f"{operation} was refused ({storage_error_code(error)}); check the IAM "
            "policy and the bucket names",
            allow_retries=False,
        )
    if isinstance(error, NoCredentialsError):
        return Failure(description="no AWS credentials found", allow_retries=False)
    if isinstance(error, psycopg2.errors.InsufficientPrivilege | psycopg2.errors.InvalidSchemaName):
        primary = (error.diag.message_primary or type(error).__name__).split(":")[0]
        return Failure(
            description=f"the database refused the pipeline's role: {primary}",
            allow_retries=False,
        )
    return None


def fail_fast_on_permanent_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate an asset function: errors no retry can fix become a non-retryable `Failure`
    naming the cause; every other error goes to the step's retry policy unchanged."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (ClientError, NoCredentialsError, psycopg2.Error) as error:
            failure = _permanent_failure(error)
            if failure is None:
                raise
            raise failure from None

    return wrapper
