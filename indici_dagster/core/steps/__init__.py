"""The pipeline steps as plain functions (raw, partitioned, staging), callable without Dagster."""
