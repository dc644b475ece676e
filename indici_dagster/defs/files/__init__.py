"""The file layers: `indici/raw` and `indici/partitioned`."""
