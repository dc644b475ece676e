"""The binary COPY wire format: Arrow batches encoded for PostgreSQL."""
