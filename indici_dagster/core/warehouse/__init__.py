"""PostgreSQL.

Connections, the catalog and the owner's DDL functions, the audit log and landing ledger,
staging loads and rpt upserts.
"""
