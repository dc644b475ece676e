"""Alerts: failed runs and quiet feeds, as audit rows, messages and SNS notifications."""
