"""Read-only questions over the analytics database: the `crypto-platform query` commands."""
