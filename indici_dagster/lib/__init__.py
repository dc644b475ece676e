"""Dagster glue shared by every layer of `defs/`: asset keys, partitions, resources (pinned to the
deployment), the rules resource, step failure handling and the executor."""
