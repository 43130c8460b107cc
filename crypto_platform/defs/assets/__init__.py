"""The platform's assets, one module per layer: raw trades, analytics, compaction."""
