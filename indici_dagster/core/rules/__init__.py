"""Transformation rules.

The model, where rules are stored (YAML, DynamoDB), snapshots and fingerprints.
"""
