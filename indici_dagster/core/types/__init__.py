"""The column-type registry: built-in types, metadata columns and sample values."""
