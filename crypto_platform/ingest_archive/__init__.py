"""``crypto-platform import-archive``: Binance's daily trade dumps into the lake and analytics."""
