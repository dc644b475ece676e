"""Asset keys, shared by the assets, the sensor and the tests."""

from dagster import AssetKey

RAW = AssetKey(["indici", "raw"])
PARTITIONED = AssetKey(["indici", "partitioned"])
AUDIT_SUMMARY = AssetKey(["indici", "audit_summary"])


def staging_key(dataset: str) -> AssetKey:
    """`indici/staging/<dataset>`."""
    return AssetKey(["indici", "staging", dataset])


def rpt_key(dataset: str) -> AssetKey:
    """`indici/rpt/<dataset>`."""
    return AssetKey(["indici", "rpt", dataset])
