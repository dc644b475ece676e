"""Open the storage a location names: an `s3://bucket/prefix` or a local folder.

Apart from the storage interface (`storage`), which both implementations build on: this module
alone knows them both.
"""

from typing import Any

from indici_dagster.core.storage.base import Storage
from indici_dagster.core.storage.local_storage import LocalStorage
from indici_dagster.core.storage.s3_storage import S3Storage


def open_storage(location: str, s3_client: Any = None) -> Storage:
    """Return the storage for `s3://bucket/prefix` or a local folder path."""
    if location.startswith("s3://"):
        if s3_client is None:
            import boto3  # only where S3 is used: a laptop's folder never loads it

            s3_client = boto3.client("s3")
        return S3Storage(location, s3_client)
    return LocalStorage(location)
