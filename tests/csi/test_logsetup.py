"""Registered secret values are masked in every formatted log line."""

from __future__ import annotations

import logging

from openfiles_csi.logsetup import RedactingFormatter, register_secret


def test_redaction() -> None:
    register_secret("very-secret-key", "ab")
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "got %s and ab", ("very-secret-key",), None
    )
    text = RedactingFormatter("%(message)s").format(record)
    assert text == "got *** and ab"  # values under 4 chars are not masked (too common)
