"""Reading Parquet safely.

Footers, memory-bounded record batches, and value ranges PostgreSQL can hold.
"""
