"""Volume IDs made by the controller: stable, parseable, no traversal, no secret.

Format (version 1), fields joined by ``,`` and each percent-encoded so that no field
can hold the separator::

    of1,<k|d>,<endpoint>,<region>,<bucket>,<prefix>

``k`` keeps the data on DeleteVolume, ``d`` deletes it (the class's ``deleteData``).
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

VERSION = "of1"
MAX_LENGTH = 128
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
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

    @property
    def url(self) -> str:
        """The store URL of the volume, as the node receives it in the volume context."""
        return f"s3://{self.bucket}/{self.prefix}"


def check_bucket(bucket: str) -> None:
    """Raise :class:`VolumeIdError` unless ``bucket`` is a valid S3 bucket name."""
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise VolumeIdError(f"invalid bucket name {bucket!r}")


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
    check_bucket(ref.bucket)
    check_prefix(ref.prefix)
    check_endpoint(ref.endpoint)
    check_region(ref.region)


def encode(ref: VolumeRef) -> str:
    """Return the ID of ``ref``; raise :class:`VolumeIdError` if invalid or too long."""
    _check(ref)
    fields = [
        VERSION,
        "d" if ref.delete_data else "k",
        quote(ref.endpoint, safe="/:"),
        quote(ref.region, safe=""),
        quote(ref.bucket, safe=""),
        quote(ref.prefix, safe="/"),
    ]
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
    if len(fields) != 6 or fields[0] != VERSION:
        raise VolumeIdError("not a volume id made by this driver")
    flag, endpoint, region, bucket, prefix = (unquote(f, errors="strict") for f in fields[1:])
    if flag not in {"k", "d"}:
        raise VolumeIdError("invalid deletion flag")
    ref = VolumeRef(
        bucket=bucket, prefix=prefix, endpoint=endpoint, region=region, delete_data=flag == "d"
    )
    _check(ref)
    if encode(ref) != text:
        # Only the canonical spelling is accepted, so one volume has exactly one ID.
        raise VolumeIdError("volume id is not in canonical form")
    return ref
