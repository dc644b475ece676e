"""Audit rows sent on to CloudWatch Logs, one JSON event each, in the three outcome groups."""
