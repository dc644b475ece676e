"""Alerts: the run-failure sensor and the per-dataset landing freshness check and sensor."""
