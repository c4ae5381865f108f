"""Credentials never show: not in repr, not in scrubbed messages."""

from __future__ import annotations

import pytest

from openfiles_operator.credentials import Credentials, credentials_from_data


def test_repr_hides_every_value() -> None:
    creds = Credentials("AKIAEXAMPLE", "s3cr3t-value", "tok3n")
    text = repr(creds)
    for secret in ("AKIAEXAMPLE", "s3cr3t-value", "tok3n"):
        assert secret not in text


def test_scrub_removes_values_and_bounds_length() -> None:
    creds = Credentials("AKIAEXAMPLE", "s3cr3t-value")
    text = creds.scrub("denied for AKIAEXAMPLE using\n s3cr3t-value " + "x" * 1000)
    assert "AKIAEXAMPLE" not in text and "s3cr3t-value" not in text
    assert text.startswith("denied for *** using ***")
    assert len(text) <= 400 and "\n" not in text


def test_missing_keys_are_named() -> None:
    with pytest.raises(KeyError, match="secretAccessKey"):
        credentials_from_data({"accessKeyId": "a"})
    creds = credentials_from_data({"accessKeyId": "a", "secretAccessKey": "b",
                                   "sessionToken": "c"})
    assert (creds.access_key_id, creds.secret_access_key, creds.session_token) == ("a", "b", "c")
