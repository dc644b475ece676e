"""Which failures a step retries: transient ones (network, throttling, a dropped connection).

Failures that no retry can fix (access denied, a missing bucket, a permission the database role
lacks) fail the step at once with a clear message instead of spending the backoff first.
"""

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

import psycopg2
import psycopg2.errors
from botocore.exceptions import ClientError, NoCredentialsError
from dagster import Backoff, Failure, Jitter, RetryPolicy

P = ParamSpec("P")
R = TypeVar("R")

TRANSIENT_RETRY = RetryPolicy(
    max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)

PERMANENT_S3_ERRORS = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "NoSuchBucket",
        "403",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
    }
)


@contextlib.contextmanager
def fail_fast_on_permanent_errors() -> Iterator[None]:
    """Turn errors that retrying cannot fix into a non-retryable `Failure`."""
    try:
        yield
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in PERMANENT_S3_ERRORS:
            operation = getattr(error, "operation_name", "an AWS call")
            raise Failure(
                description=f"{operation} was refused ({code}); check the IAM policy and names",
                allow_retries=False,
            ) from None
        raise
    except NoCredentialsError:
        raise Failure(description="no AWS credentials found", allow_retries=False) from None
    except (psycopg2.errors.InsufficientPrivilege, psycopg2.errors.InvalidSchemaName) as error:
        primary = (error.diag.message_primary or type(error).__name__).split(":")[0]
        raise Failure(
            description=f"the database refused the pipeline's role: {primary}",
            allow_retries=False,
        ) from None


def fails_fast_on_permanent_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of `fail_fast_on_permanent_errors`, for asset functions."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with fail_fast_on_permanent_errors():
            return fn(*args, **kwargs)

    return wrapper
