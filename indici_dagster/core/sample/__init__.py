"""Made-up, deterministic sample files for a laptop trial."""
