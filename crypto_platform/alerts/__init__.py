"""Alerting: evaluate the rules over new minutes, store each firing once, tell a webhook."""
