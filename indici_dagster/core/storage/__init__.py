"""Object storage: one interface for S3 and local folders, with the key checks both share."""
