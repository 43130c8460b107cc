"""Ingestion: Binance trades over WebSocket into Kafka, losing none; a local exchange."""
