"""crypto-platform: live Binance trades through Kafka into checked per-minute analytics."""

__version__ = "0.1.0"
