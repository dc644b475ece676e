"""indici-dagster: daily indici Parquet extracts from S3 into PostgreSQL, with Dagster."""
