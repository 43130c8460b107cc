"""librdkafka's own log lines, through Python logging with repeats filtered.

Every client (producer, consumers, admin) passes :func:`librdkafka_logger` as its ``logger``:
without it librdkafka prints each failed connection attempt to stderr, several lines a second
while a broker is away, burying the one error message that says what to do.
"""

from __future__ import annotations

import logging
import time

ERROR_LOG_INTERVAL_S = 10.0  # the same transient error is logged at most this often


class _RepeatFilter(logging.Filter):
    """librdkafka logs every failed connection attempt: drop those (the error callback reports
    them), and keep one line per facility and interval of the rest."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[tuple[int, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        facility = record.getMessage().split(" ", 1)[0]
        if facility == "FAIL":  # the error callback reports these, with their meaning
            return False
        key = (record.levelno, facility)
        now = time.monotonic()
        if now - self._last.get(key, -ERROR_LOG_INTERVAL_S) < ERROR_LOG_INTERVAL_S:
            return False
        self._last[key] = now
        return True


def librdkafka_logger() -> logging.Logger:
    """The logger for librdkafka's own messages, repeats filtered (every client uses it: a broker
    that is away makes each client print several lines a second otherwise)."""
    logger = logging.getLogger("crypto_platform.librdkafka")
    if not any(isinstance(f, _RepeatFilter) for f in logger.filters):
        logger.addFilter(_RepeatFilter())
    return logger
