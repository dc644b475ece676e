"""Data quality: NHI validation and the read-only questions asset checks ask."""
