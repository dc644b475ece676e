"""Archived S3 objects: whether an object can be read now, and asking S3 to restore it.

An object in S3 Glacier Flexible Retrieval or Deep Archive (`StorageClass` `GLACIER`,
`DEEP_ARCHIVE`), or in an archive tier of Intelligent-Tiering (`ArchiveStatus`), cannot be read
until a restore completes. HeadObject says which: its `Restore` field is
`ongoing-request="true"` while a restore runs, and `ongoing-request="false", expiry-date=...`
once the temporary copy can be read.
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from indici_dagster.core.errors import storage_error_code

ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
"""Storage classes whose objects must be restored before a read (Glacier Instant Retrieval,
`GLACIER_IR`, is read directly)."""

TIERS = ("Standard", "Bulk", "Expedited")
"""Restore tiers S3 offers (Expedited: not for Deep Archive)."""


class ArchiveState(StrEnum):
    """Whether an object can be read now."""

    AVAILABLE = "available"
    """Not archived: readable."""
    RESTORED = "restored"
    """Archived, and a restored copy can be read until it expires."""
    RESTORING = "restoring"
    """Archived, and a restore is in progress."""
    ARCHIVED = "archived"
    """Archived, with no restore requested: unreadable."""


def archive_state(head: Mapping[str, Any]) -> ArchiveState:
    """The state of an object from its HeadObject response (pure)."""
    archived = head.get("StorageClass") in ARCHIVE_CLASSES or bool(head.get("ArchiveStatus"))
    if not archived:
        return ArchiveState.AVAILABLE
    restore = str(head.get("Restore") or "").replace(" ", "")
    if 'ongoing-request="true"' in restore:
        return ArchiveState.RESTORING
    if 'ongoing-request="false"' in restore:
        return ArchiveState.RESTORED
    return ArchiveState.ARCHIVED


def restore_request(head: Mapping[str, Any], days: int, tier: str) -> dict[str, Any]:
    """The RestoreRequest for an archived object: Intelligent-Tiering's archive tiers take no
    `Days` (the object moves back to a readable tier), the Glacier classes keep a temporary copy
    for `days`."""
    if head.get("ArchiveStatus"):
        return {"GlacierJobParameters": {"Tier": tier}}
    return {"Days": days, "GlacierJobParameters": {"Tier": tier}}


def request_restore(
    client: Any, bucket: str, key: str, head: Mapping[str, Any], days: int, tier: str
) -> ArchiveState:
    """Ask S3 to restore one archived object; returns its state afterwards (`RESTORING`, or
    `RESTORED`/`AVAILABLE` when S3 says it already is). Other refusals are raised."""
    try:
        response = client.restore_object(
            Bucket=bucket, Key=key, RestoreRequest=restore_request(head, days, tier)
        )
    except client.exceptions.ClientError as error:
        code = storage_error_code(error)
        if code == "RestoreAlreadyInProgress":
            return ArchiveState.RESTORING
        if code == "InvalidObjectState":  # no longer archived (moved to a readable tier)
            return ArchiveState.AVAILABLE
        raise
    # 202: restore started; 200: a restored copy already exists (its expiry was extended)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return ArchiveState.RESTORED if status == 200 else ArchiveState.RESTORING
