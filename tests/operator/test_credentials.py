"""Credentials never show: not in repr, not in scrubbed messages."""

from __future__ import annotations

import json

import pytest

from openfiles_contracts.store import StoreSpecError
from openfiles_operator.credentials import Credentials, credentials_from_data


def test_repr_hides_every_value() -> None:
    creds = Credentials({"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "s3cr3t-value",
                         "sessionToken": "tok3n"})
    text = repr(creds)
    for secret in ("AKIAEXAMPLE", "s3cr3t-value", "tok3n"):
        assert secret not in text


def test_scrub_removes_values_and_bounds_length() -> None:
    creds = Credentials({"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "s3cr3t-value"})
    text = creds.scrub("denied for AKIAEXAMPLE using\n s3cr3t-value " + "x" * 1000)
    assert "AKIAEXAMPLE" not in text and "s3cr3t-value" not in text
    assert text.startswith("denied for *** using ***")
    assert len(text) <= 400 and "\n" not in text


def test_scrub_removes_a_whole_key_before_its_parts() -> None:
    key = json.dumps({"client_email": "sa@p", "private_key": "PEM-LINE"})
    text = Credentials({"serviceAccountKey": key}).scrub(f"bad key {key}")
    assert text == "bad key ***"


def test_missing_keys_are_named() -> None:
    with pytest.raises(StoreSpecError, match="secretAccessKey"):
        credentials_from_data({"accessKeyId": "a"})
    creds = credentials_from_data({"accessKeyId": "a", "secretAccessKey": "b",
                                   "sessionToken": "c"})
    assert [creds.get(k) for k in ("accessKeyId", "secretAccessKey", "sessionToken")] == [
        "a", "b", "c"]


@pytest.mark.parametrize(("scheme", "data", "message"), [
    ("gs", {}, "no key serviceAccountKey"),
    ("gs", {"serviceAccountKey": "PEM-LINE"}, "not JSON"),
    ("az", {"accountName": "acct"}, "no key accountKey or sasToken"),
    ("az", {"sasToken": "PEM-LINE"}, "not a SAS token"),
    ("az", {"accessKeyId": "a", "secretAccessKey": "PEM-LINE"}, "not taken by a az://"),
])
def test_each_store_names_its_missing_or_malformed_key(
        scheme: str, data: dict[str, str], message: str) -> None:
    with pytest.raises(StoreSpecError, match=message) as info:
        credentials_from_data(data, scheme, account="acct")
    assert "PEM-LINE" not in str(info.value)
