"""Assets by layer: files (`raw`, `partitioned`) and tables (`staging`, `rpt`)."""
