"""Which failures a step retries: transient ones (network, throttling, a dropped connection).

Failures that no retry can fix (access denied, a missing bucket, a permission the database role
lacks, a rpt window whose rows break a constraint) fail the step at once with a clear message
instead of spending the backoff first. Database and Arrow errors leave the step only as a
message rebuilt from names (`core.db_errors`), never with their own text.
"""

import contextlib
import functools
import traceback
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

from botocore.exceptions import ClientError, NoCredentialsError
from dagster import (
    Backoff,
    DagsterError,
    Failure,
    Jitter,
    MetadataValue,
    RetryPolicy,
    RetryRequested,
)

from indici_dagster.core.db_errors import (
    CleanError,
    ErrorKind,
    classify,
    describe_library_error,
)
from indici_dagster.core.errors import (
    archived_code,
    is_permanent_storage_error,
    missing_resource_hint,
    storage_error_code,
)

P = ParamSpec("P")
R = TypeVar("R")

TRANSIENT_RETRY = RetryPolicy(
    max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)


@contextlib.contextmanager
def _failing_fast_on_permanent_errors() -> Iterator[None]:
    """Turn errors that retrying cannot fix into a non-retryable `Failure`; only transient ones
    (`core.db_errors.classify`) reach the retry policy."""
    try:
        yield
    except (Failure, RetryRequested, DagsterError):
        raise  # the framework's own, with messages the pipeline wrote
    except ClientError as error:
        if (code := archived_code(error)) is not None:  # handled per file where a file is read
            raise Failure(
                description=f"an object is archived in S3 ({code}): run `indici restore` for "
                "its dates, then replay them",
                allow_retries=False,
            ) from None
        if is_permanent_storage_error(error):
            operation = getattr(error, "operation_name", "an AWS call")
            remedy = missing_resource_hint(error) or "check the IAM policy and names"
            raise Failure(
                description=f"{operation} was refused ({storage_error_code(error)}); {remedy}",
                allow_retries=False,
            ) from None
        raise
    except NoCredentialsError:
        raise Failure(description="no AWS credentials found", allow_retries=False) from None
    except Exception as error:
        # rebuilt from names (the original text may quote values) and raised without it; the
        # frames (code, never values) stay visible as metadata
        message = describe_library_error(error)
        if classify(error) is ErrorKind.TRANSIENT:
            raise CleanError(message, ErrorKind.TRANSIENT) from None
        frames = "".join(traceback.format_tb(error.__traceback__))
        raise Failure(
            description=message,
            allow_retries=False,
            metadata={"frames": MetadataValue.text(frames)},
        ) from None


def fail_fast_on_permanent_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate an asset function: errors no retry can fix become a non-retryable `Failure`
    naming the cause (an AWS error code, a SQLSTATE); only transient ones reach the step's
    retry policy, and none leaves with its own text."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _failing_fast_on_permanent_errors():
            return fn(*args, **kwargs)

    return wrapper
