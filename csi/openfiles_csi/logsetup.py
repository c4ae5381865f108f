"""Logging for the long-running commands, with a filter that masks secret values.

Secrets are kept out of messages by construction; the filter is a second line of
defence for values registered at run time (the credentials a request carried).
"""

from __future__ import annotations

import logging
import sys
import threading

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(*values: str) -> None:
    """Mask these values in every later log line (values shorter than 4 chars are ignored)."""
    with _lock:
        _secrets.update(v for v in values if len(v) >= 4)


def redact(text: str) -> str:
    with _lock:
        for value in _secrets:
            text = text.replace(value, "***")
    return text


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
