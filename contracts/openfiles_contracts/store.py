"""Which stores a volume from Kubernetes may name, and the Secret each one needs.

One judge for the operator (an OpenFilesVolume's ``spec.bucket``), the CSI controller
(a StorageClass's parameters) and the CSI node (a volume context with its node-stage
secrets), so all three accept and refuse the same things (docs/CONTRACTS.md section 3):

=============================  =======================================  ==================
URL                            Secret keys                              not secret
=============================  =======================================  ==================
``s3://BUCKET[/PREFIX]``       ``accessKeyId`` + ``secretAccessKey``,   ``region``
                               optional ``sessionToken``
``gs://BUCKET[/PREFIX]``       ``serviceAccountKey``: the service
                               account's JSON key, the whole document
``az://CONTAINER[/PREFIX]``    ``accountKey`` or ``sasToken``           ``account``
=============================  =======================================  ==================

The Azure storage account's name is not a secret: it is part of where the data is
(``https://ACCOUNT.blob.core.windows.net/CONTAINER``), so it travels with the URL
(``spec.bucket.account``, the volume context's ``account``), and an engine started
without the Secret (a flush-only recovery) still knows its store. A Secret may repeat
it as ``accountName`` (as Azure's own tools write it), but only with the same value.

A service-account key may name its own base URL (``gcs_base_url``), which store clients
use when no endpoint is given; that would be an endpoint the endpoint policy never saw,
so a key's ``gcs_base_url`` must be the volume's endpoint.

Every message names fields and keys, never a value from the Secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from openfiles_contracts.event import SECRET_ENV as EVENT_SECRET_ENV

SCHEMES = ("s3", "gs", "az")
"""The stores a volume from Kubernetes may use (``file://`` and ``memory://`` are the
engine's own, for tests and single machines)."""

SECRET_KEYS: dict[str, frozenset[str]] = {
    "s3": frozenset({"accessKeyId", "secretAccessKey", "sessionToken"}),
    "gs": frozenset({"serviceAccountKey"}),
    "az": frozenset({"accountName", "accountKey", "sasToken"}),
}
"""The Secret keys each store takes."""

SECRET_ENV = {
    "accessKeyId": "AWS_ACCESS_KEY_ID",
    "secretAccessKey": "AWS_SECRET_ACCESS_KEY",
    "sessionToken": "AWS_SESSION_TOKEN",
    "serviceAccountKey": "GOOGLE_SERVICE_ACCOUNT_KEY",
    "accountKey": "AZURE_STORAGE_ACCOUNT_KEY",
    "sasToken": "AZURE_STORAGE_SAS_TOKEN",
}
"""Secret key -> the engine's environment variable (docs/CONTRACTS.md section 1).
``accountName`` has none: the account reaches the engine as ``--account``."""

_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_AZ_CONTAINER = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_AZ_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_SEGMENT_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")
_SERVICE_ACCOUNT_FIELDS = ("client_email", "private_key")


class StoreSpecError(ValueError):
    """A URL, account or Secret a store cannot take; the message says what, never a secret."""


@dataclass(frozen=True)
class StoreURL:
    """A parsed ``SCHEME://BUCKET[/PREFIX]``; ``prefix`` has no leading or trailing slash."""

    scheme: str
    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        base = f"{self.scheme}://{self.bucket}"
        return f"{base}/{self.prefix}" if self.prefix else base


def bucket_problem(scheme: str, bucket: str) -> str | None:
    """Why ``bucket`` is no valid bucket (container) name of ``scheme``, or None."""
    if scheme == "s3":
        ok = bool(_S3_BUCKET.match(bucket)) and ".." not in bucket
        what = "an S3 bucket name (3-63 of a-z 0-9 . -)"
    elif scheme == "gs":
        ok = bool(_GCS_BUCKET.match(bucket)) and ".." not in bucket
        what = "a GCS bucket name (3-63 of a-z 0-9 . _ -)"
    else:
        ok = bool(_AZ_CONTAINER.match(bucket)) and "--" not in bucket
        what = "an Azure container name (3-63 of a-z 0-9 -, no --)"
    return None if ok else f"{bucket!r} is not {what}"


def parse_url(url: str) -> StoreURL:
    """Parse ``s3://``, ``gs://`` or ``az://`` ``BUCKET[/PREFIX]``; raise StoreSpecError.

    A trailing slash is dropped; an empty, ``.`` or ``..`` segment, a control character
    or a backslash in the prefix is refused, as are a query, a fragment and user info.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise StoreSpecError(f"{url!r} must start with s3://, gs:// or az://")
    if any(c in rest for c in "?#@"):
        raise StoreSpecError(f"{url!r} must not carry a query, a fragment or credentials")
    bucket, _, prefix = rest.partition("/")
    problem = bucket_problem(scheme, bucket)
    if problem:
        raise StoreSpecError(problem)
    prefix = prefix.removesuffix("/")
    for segment in prefix.split("/") if prefix else []:
        if segment in {"", ".", ".."} or _SEGMENT_FORBIDDEN.search(segment):
            raise StoreSpecError(f"the prefix of {url!r} has a bad part {segment!r}")
    return StoreURL(scheme, bucket, prefix)


def check_account(scheme: str, account: str) -> None:
    """An ``az://`` URL needs its storage account's name; no other store takes one."""
    if scheme != "az":
        if account:
            raise StoreSpecError(f"account is for az:// only, not {scheme}://")
        return
    if not account:
        raise StoreSpecError("az:// needs the storage account's name (account)")
    if not _AZ_ACCOUNT.match(account):
        raise StoreSpecError(f"{account!r} is not an Azure storage account name (3-24 of a-z 0-9)")


def check_secret(
    scheme: str, data: Mapping[str, str], *, endpoint: str = "", account: str = "",
    required: bool = True,
) -> None:
    """Raise StoreSpecError unless ``data`` (a decoded Secret) suits a ``scheme`` volume.

    Keys of another store are refused (naming the keys). With ``required`` the
    credentials must be complete; without (a node stage with no Secret, which makes
    the store client use the node's own identity) an empty ``data`` passes, but a
    partial one does not. ``endpoint`` and ``account`` are the volume's.
    """
    keys = {k for k, v in data.items() if v and k not in EVENT_SECRET_ENV}
    foreign = sorted(set(data) - SECRET_KEYS[scheme] - set(EVENT_SECRET_ENV))
    if foreign:
        raise StoreSpecError(f"keys {foreign} are not taken by a {scheme}:// volume "
                             f"(it takes {sorted(SECRET_KEYS[scheme])})")
    if not keys and not required:
        return
    if scheme == "s3":
        missing = [k for k in ("accessKeyId", "secretAccessKey") if k not in keys]
        if missing:
            raise StoreSpecError(f"no key {' and '.join(missing)}")
    elif scheme == "gs":
        if "serviceAccountKey" not in keys:
            raise StoreSpecError("no key serviceAccountKey (the service account's JSON key)")
        _check_service_account_key(data["serviceAccountKey"], endpoint)
    else:
        if "accountName" in keys and data["accountName"] != account:
            raise StoreSpecError("key accountName differs from the volume's account")
        if not {"accountKey", "sasToken"} & keys:
            raise StoreSpecError("no key accountKey or sasToken")
        if "accountKey" in keys and "sasToken" not in keys:
            try:
                base64.b64decode(data["accountKey"], validate=True)
            except (binascii.Error, ValueError):
                raise StoreSpecError("key accountKey is not base64 (the storage account's "
                                     "access key)") from None
        if "sasToken" in keys and "sig=" not in data["sasToken"]:
            raise StoreSpecError("key sasToken is not a SAS token (no sig= in it)")


def _check_service_account_key(text: str, endpoint: str) -> None:
    try:
        document = json.loads(text)
    except ValueError:
        raise StoreSpecError("key serviceAccountKey is not JSON (the service account's "
                             "JSON key, the whole file)") from None
    if not isinstance(document, dict):
        raise StoreSpecError("key serviceAccountKey is not a JSON object")
    absent = [f for f in _SERVICE_ACCOUNT_FIELDS if not isinstance(document.get(f), str)]
    if absent:
        raise StoreSpecError(f"key serviceAccountKey has no {' or '.join(absent)}")
    base_url = document.get("gcs_base_url")
    if base_url is not None and str(base_url).rstrip("/") != endpoint.rstrip("/"):
        raise StoreSpecError("key serviceAccountKey names a gcs_base_url other than the "
                             "volume's endpoint (give that address as the endpoint)")


def engine_env(data: Mapping[str, str]) -> dict[str, str]:
    """The engine's environment for checked Secret ``data`` (empty values dropped)."""
    return {SECRET_ENV[k]: v for k, v in data.items() if v and k in SECRET_ENV}
