"""Errors every part of core can name: the AWS error codes no retry can fix.

A botocore `ClientError` (S3, DynamoDB) is described by its operation and code only, never by
the service's message text. Kept apart from the storage interface, so that the S3 storage, the
error classification (`db_errors`) and the steps' retry policy import it without a cycle.
"""

PERMANENT_STORAGE_ERRORS = frozenset(
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
"""AWS error codes that no retry can fix: the step fails at once, naming the code."""


def storage_error_code(error: BaseException) -> str | None:
    """The AWS error code of a botocore `ClientError` (e.g. `AccessDenied`), else None."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    return str(response.get("Error", {}).get("Code", "")) or None


def is_permanent_storage_error(error: BaseException) -> bool:
    """True for refusals no retry can fix (access denied, no such bucket, bad credentials)."""
    return storage_error_code(error) in PERMANENT_STORAGE_ERRORS


def describe_storage_error(error: BaseException) -> str:
    """One line naming the failed call and its AWS error code (or the error's class), never
    the service's message text."""
    code = storage_error_code(error)
    if code is None:
        return type(error).__name__
    operation = getattr(error, "operation_name", None) or "an AWS call"
    return f"{operation} failed ({code})"


ARCHIVED_STORAGE_ERRORS = frozenset({"InvalidObjectState", "ObjectNotInActiveTierError"})
"""AWS error codes of an object in an archive tier (S3 Glacier Flexible Retrieval, Deep
Archive, Intelligent-Tiering's archive tiers): GetObject answers `InvalidObjectState`,
CopyObject `ObjectNotInActiveTierError`. Only a restore (`indici restore`) makes it readable."""


class ArchivedObjectError(RuntimeError):
    """An object that cannot be read until it is restored from its archive tier."""

    def __init__(self, code: str = "InvalidObjectState") -> None:
        super().__init__(f"archived in S3 ({code})")
        self.code = code


def archived_code(error: BaseException) -> str | None:
    """The archive error code of `error` (`InvalidObjectState`, `ObjectNotInActiveTierError`)
    when it says the object is archived, else None."""
    if isinstance(error, ArchivedObjectError):
        return error.code
    code = storage_error_code(error)
    return code if code in ARCHIVED_STORAGE_ERRORS else None


def archived_message(code: str, dataset: str, partition_key: str) -> str:
    """The audit message of an archived file: what it is, and the command that restores it.

    `dataset` and `partition_key` come from a parsed file name (letters, digits, a date)."""
    return (
        f"archived in S3 ({code}): run `indici restore --from {partition_key} --to "
        f"{partition_key} --dataset {dataset}`, then replay the date (backfill it) once the "
        "restore completes; this file failed alone, not retried"
    )


INFRA_APPLY = "indici infra apply"
"""The command that creates the buckets, the rules table and the policies the settings name."""
MISSING_RESOURCE_CODES = frozenset({"NoSuchBucket", "ResourceNotFoundException"})
"""AWS error codes of a bucket or table that does not exist."""


def missing_resource_hint(error: BaseException) -> str | None:
    """`create it with indici infra apply` when `error` says a bucket or table does not exist,
    else None."""
    if storage_error_code(error) in MISSING_RESOURCE_CODES:
        return f"create it with {INFRA_APPLY}"
    return None
