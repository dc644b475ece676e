"""The pipeline's core: file names, rules, storage, Parquet reading and the Postgres warehouse.

Nothing in this package imports Dagster, so every piece can be used and tested on its own; the
Dagster assets, sensors and checks in the parent package are thin glue over it.
"""
