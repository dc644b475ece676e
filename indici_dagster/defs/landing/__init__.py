"""The landing sensor: what is new, one run per date, and how the runs it requested ended."""
