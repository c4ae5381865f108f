"""Volume IDs made by the controller: stable, parseable, no traversal, no secret.

Format, fields joined by ``,`` and each percent-encoded so that no field can hold the
separator: version 1 for ``s3://``, version 2 for ``gs://`` and ``az://``::

    of1,<k|d>,<endpoint>,<region>,<bucket>,<prefix>
    of2,<k|d>,<gs|az>,<endpoint>,<account>,<bucket>,<prefix>

``k`` keeps the data on DeleteVolume, ``d`` deletes it (the class's ``deleteData``);
``account`` is the Azure storage account (empty for ``gs``).
``prefix`` is the volume's key prefix inside the bucket, without leading or trailing
``/``. DeleteVolume receives only the ID and the secrets, so everything it needs to
find the prefix is in the ID; credentials never are (an endpoint with user info is
refused). An ID is at most 128 bytes, the CSI size limit for strings.

The same inputs always give the same ID (CreateVolume is idempotent through it), and
:func:`decode` re-validates every field so a crafted ID cannot name ``..`` segments,
another bucket's root, or a URL with credentials.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from openfiles_contracts import store

VERSION = "of1"
VERSION_STORES = "of2"
"""The version of IDs of ``gs://`` and ``az://`` volumes (``s3://`` ones stay ``of1``)."""
MAX_LENGTH = 128
_REGION = re.compile(r"^[a-z0-9-]{0,32}$")
_SEGMENT_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")


class VolumeIdError(ValueError):
    """The text is not a volume ID this plugin made (the message says why)."""


@dataclass(frozen=True)
class VolumeRef:
    """Where a controller-made volume lives. Holds no credentials."""

    bucket: str
    prefix: str
    endpoint: str = ""
    region: str = ""
    delete_data: bool = False
    scheme: str = "s3"
    account: str = ""

    @property
    def url(self) -> str:
        """The store URL of the volume, as the node receives it in the volume context."""
        return f"{self.scheme}://{self.bucket}/{self.prefix}"


def check_prefix(prefix: str, *, allow_empty: bool = False) -> None:
    """Raise unless ``prefix`` is ``seg/seg/...`` with no empty, ``.`` or ``..`` segment."""
    if not prefix:
        if allow_empty:
            return
        raise VolumeIdError("empty prefix")
    for segment in prefix.split("/"):
        if segment in {"", ".", ".."} or _SEGMENT_FORBIDDEN.search(segment):
            raise VolumeIdError(f"invalid prefix {prefix!r}: bad segment {segment!r}")


def check_endpoint(endpoint: str) -> None:
    """Raise unless ``endpoint`` is empty or ``http(s)://host[:port][/path]`` without user info."""
    if not endpoint:
        return
    parts = urlsplit(endpoint)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise VolumeIdError("endpoint must be an http:// or https:// URL")
    if "@" in parts.netloc:
        raise VolumeIdError("endpoint must not carry credentials")
    if parts.query or parts.fragment:
        raise VolumeIdError("endpoint must not have a query or fragment")


def check_region(region: str) -> None:
    if not _REGION.match(region):
        raise VolumeIdError(f"invalid region {region!r}")


def _check(ref: VolumeRef) -> None:
    if ref.scheme not in store.SCHEMES:
        raise VolumeIdError(f"invalid store {ref.scheme!r}")
    problem = store.bucket_problem(ref.scheme, ref.bucket)
    if problem:
        raise VolumeIdError(problem)
    check_prefix(ref.prefix)
    check_endpoint(ref.endpoint)
    check_region(ref.region)
    try:
        store.check_account(ref.scheme, ref.account)
    except store.StoreSpecError as exc:
        raise VolumeIdError(str(exc)) from None
    if ref.region and ref.scheme != "s3":
        raise VolumeIdError("a region is for s3:// only")


def encode(ref: VolumeRef) -> str:
    """Return the ID of ``ref``; raise :class:`VolumeIdError` if invalid or too long."""
    _check(ref)
    where = (
        [VERSION, "d" if ref.delete_data else "k", quote(ref.endpoint, safe="/:"),
         quote(ref.region, safe="")]
        if ref.scheme == "s3"
        else [VERSION_STORES, "d" if ref.delete_data else "k", ref.scheme,
              quote(ref.endpoint, safe="/:"), quote(ref.account, safe="")]
    )
    fields = [*where, quote(ref.bucket, safe=""), quote(ref.prefix, safe="/")]
    text = ",".join(fields)
    if len(text.encode()) > MAX_LENGTH:
        raise VolumeIdError(
            f"volume id would be {len(text.encode())} bytes (limit {MAX_LENGTH}); "
            "use a shorter endpoint, bucket or base prefix"
        )
    return text


def decode(text: str) -> VolumeRef:
    """Parse an ID made by :func:`encode`; raise :class:`VolumeIdError` for anything else."""
    if len(text.encode()) > MAX_LENGTH:
        raise VolumeIdError("volume id too long")
    fields = text.split(",")
    if fields[0] == VERSION and len(fields) == 6:
        flag, endpoint, region, bucket, prefix = (unquote(f, errors="strict") for f in fields[1:])
        scheme, account = "s3", ""
    elif fields[0] == VERSION_STORES and len(fields) == 7:
        flag, scheme, endpoint, account, bucket, prefix = (
            unquote(f, errors="strict") for f in fields[1:])
        region = ""
    else:
        raise VolumeIdError("not a volume id made by this driver")
    if flag not in {"k", "d"}:
        raise VolumeIdError("invalid deletion flag")
    ref = VolumeRef(bucket=bucket, prefix=prefix, endpoint=endpoint, region=region,
                    delete_data=flag == "d", scheme=scheme, account=account)
    _check(ref)
    if encode(ref) != text:
        # Only the canonical spelling is accepted, so one volume has exactly one ID.
        raise VolumeIdError("volume id is not in canonical form")
    return ref
