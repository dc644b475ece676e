"""The Dagster side, one folder per layer: `files/` (raw, partitioned), `tables/` (staging, rpt
and their checks) and `landing/` (the sensor that hands landed files to the job)."""
