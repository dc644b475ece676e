"""Retention: the scheduled job deleting old staging rows and Dagster runs (off unless set)."""
