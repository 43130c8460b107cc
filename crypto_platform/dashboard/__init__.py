"""The live dashboard: a small read-only web server over the analytics database."""
