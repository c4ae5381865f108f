"""An OpenFilesVolume spec, validated and turned into plain typed values.

``parse_volume`` is the one place that decides whether a spec can be applied.
It checks everything the CRD schema checks (so a body that skipped the schema,
for instance from an older CRD, is still caught) and what a schema cannot
express: ports in range, a bucket name its store accepts, no ``.``/``..``
segments in the prefix, the Azure account (``openfiles_contracts.store``, the
node's and the CSI controller's judge too). It raises SpecError naming the field;
nothing is created before it returns.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from openfiles_contracts.event import EventError
from openfiles_contracts.event import check_url as check_events_url
from openfiles_contracts.store import StoreSpecError, check_account, parse_url
from openfiles_operator.body import VolumeSpec
from openfiles_operator.errors import SpecError
from openfiles_operator.quantity import parse_duration, parse_size

_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_MODE = re.compile(r"^0?[0-7]{3}$")
_REGION = re.compile(r"^[a-z0-9-]*$")
ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
#: CONTRACTS.md section 3: handles are [a-z0-9-], at most 128 characters.
MAX_HANDLE = 128


@dataclass(frozen=True)
class Location:
    """Where the data lives. ``prefix`` has no leading or trailing slash; "" is the whole bucket.

    ``scheme`` is ``s3``, ``gs`` or ``az``; ``account`` is the Azure storage account
    (``az`` only, where it is required), ``region`` S3's.
    """

    bucket: str
    prefix: str
    endpoint: str
    region: str
    scheme: str = "s3"
    account: str = ""

    @property
    def url(self) -> str:
        base = f"{self.scheme}://{self.bucket}"
        return f"{base}/{self.prefix}" if self.prefix else base


@dataclass(frozen=True)
class CacheSettings:
    """The volume's own cache settings, in bytes and seconds."""

    cache_size: int
    cache_ttl: int
    metadata_ttl: int
    export_delay: int


@dataclass(frozen=True)
class Volume:
    """A valid OpenFilesVolume, ready to become a PV and a PVC."""

    namespace: str
    name: str
    uid: str
    location: Location
    secret_name: str
    cache: CacheSettings
    access_modes: tuple[str, ...]
    capacity: str
    reclaim_policy: str
    uid_owner: int
    gid_owner: int
    file_mode: str
    dir_mode: str
    # The spec's own text for sizes and durations, passed on to the node unchanged.
    cache_text: tuple[str, str, str, str]
    events_url: str = ""
    """NATS server(s) for mutation events; "" leaves the node's default, "off" none."""

    @property
    def handle(self) -> str:
        return volume_handle(self.namespace, self.name, self.uid)


def volume_handle(namespace: str, name: str, uid: str) -> str:
    """``ofv-<namespace>-<name>-<8 hex of uid>``, only ``[a-z0-9-]``, at most 128 characters.

    Stable for the life of the object: it depends on nothing that can change. The
    hash suffix keeps two volumes apart when truncation or character folding makes
    their readable parts equal. Also the PV name.
    """
    digest = hashlib.sha256(uid.encode()).hexdigest()[:8]
    readable = re.sub(r"[^a-z0-9-]", "-", f"{namespace}-{name}".lower())
    readable = readable[: MAX_HANDLE - len("ofv-") - 1 - len(digest)].strip("-")
    return f"ofv-{readable}-{digest}"


def parse_location(url: str, endpoint: str, region: str, account: str = "") -> Location:
    """Validate ``s3://``, ``gs://`` or ``az://`` ``bucket[/prefix]`` plus endpoint, region
    and account. Raises SpecError."""
    try:
        where = parse_url(url)
    except StoreSpecError as exc:
        raise SpecError("spec.bucket.url", str(exc)) from None
    try:
        check_account(where.scheme, account)
    except StoreSpecError as exc:
        raise SpecError("spec.bucket.account", str(exc)) from None
    if region and where.scheme != "s3":
        raise SpecError("spec.bucket.region", f"is for s3:// only, not {where.scheme}://")
    if endpoint:
        try:
            parts = urlsplit(endpoint)
        except ValueError:
            raise SpecError("spec.bucket.endpoint", "is not a valid URL") from None
        # Checked before any message quotes the endpoint: user:password@ would reach the
        # status, Events and the PV's volumeAttributes, all readable without Secret access.
        if "@" in parts.netloc:
            raise SpecError(
                "spec.bucket.endpoint",
                "must not carry credentials (user@ or user:password@); "
                "put them in the Secret named by credentialsSecretRef",
            )
        try:
            parts.port  # noqa: B018 -- raises ValueError when out of range
        except ValueError as exc:
            raise SpecError(
                "spec.bucket.endpoint", f"{endpoint!r} is not a valid URL: {exc}"
            ) from exc
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise SpecError("spec.bucket.endpoint", f"{endpoint!r} must be http(s)://HOST[:PORT]")
    if not _REGION.fullmatch(region):
        raise SpecError("spec.bucket.region", f"{region!r} is not a region name")
    return Location(
        bucket=where.bucket,
        prefix=where.prefix,
        endpoint=endpoint,
        region=region,
        scheme=where.scheme,
        account=account,
    )


def _field(path: str, parse: Callable[[str], int], text: str) -> int:
    try:
        return parse(text)
    except ValueError as exc:
        raise SpecError(path, str(exc)) from exc


def parse_volume(spec: VolumeSpec, namespace: str, name: str, uid: str) -> Volume:
    """Validate ``spec`` (as defaulted by the API server) and return a Volume. Raises SpecError."""
    bucket = spec.get("bucket")
    if not isinstance(bucket, dict) or not bucket.get("url"):
        raise SpecError("spec.bucket.url", "is required")
    location = parse_location(
        bucket["url"],
        bucket.get("endpoint", ""),
        bucket.get("region", ""),
        bucket.get("account", ""),
    )
    ref = bucket.get("credentialsSecretRef", {})
    secret = ref.get("name", "")
    # Secrets stay in their namespace: whoever may create a volume here may not make the
    # operator (which can read every namespace's Secrets) or a node use another's.
    if ref.get("namespace", namespace) != namespace:
        raise SpecError(
            "spec.bucket.credentialsSecretRef.namespace",
            f"{ref.get('namespace')!r}: a volume can use only a Secret in its own namespace "
            f"{namespace!r}",
        )
    if not _SECRET_NAME.fullmatch(secret):
        raise SpecError("spec.bucket.credentialsSecretRef.name", f"{secret!r} is not a Secret name")
    cache, export = spec.get("cache", {}), spec.get("export", {})
    text = (
        cache.get("size", "10Gi"),
        cache.get("ttl", "24h"),
        cache.get("metadataTTL", "10s"),
        export.get("delay", "60s"),
    )
    settings = CacheSettings(
        cache_size=_field("spec.cache.size", parse_size, text[0]),
        cache_ttl=_field("spec.cache.ttl", parse_duration, text[1]),
        metadata_ttl=_field("spec.cache.metadataTTL", parse_duration, text[2]),
        export_delay=_field("spec.export.delay", parse_duration, text[3]),
    )
    capacity = spec.get("capacity", "1Ti")
    if _field("spec.capacity", parse_size, capacity) <= 0:
        raise SpecError("spec.capacity", "must be more than zero")
    modes = tuple(spec.get("accessModes", ["ReadWriteMany"]))
    if not modes or any(mode not in ACCESS_MODES for mode in modes):
        raise SpecError("spec.accessModes", f"each mode must be one of {', '.join(ACCESS_MODES)}")
    reclaim = spec.get("reclaimPolicy", "Retain")
    if reclaim not in {"Retain", "Delete"}:
        raise SpecError("spec.reclaimPolicy", "must be Retain or Delete")
    if reclaim == "Delete" and not location.prefix:
        raise SpecError("spec.reclaimPolicy", "Delete needs a prefix in bucket.url")
    opts = spec.get("mountOptions", {})
    owner = {"uid": opts.get("uid", 0), "gid": opts.get("gid", 0)}
    for key, value in owner.items():
        if not isinstance(value, int) or not 0 <= value <= 2**31 - 1:
            raise SpecError(f"spec.mountOptions.{key}", "must be an integer from 0 to 2147483647")
    file_mode, dir_mode = opts.get("fileMode", "0644"), opts.get("dirMode", "0755")
    for key, mode in (("fileMode", file_mode), ("dirMode", dir_mode)):
        if not _MODE.fullmatch(mode):
            raise SpecError(f"spec.mountOptions.{key}", f"{mode!r} is not an octal mode like 0644")
    events_url = (spec.get("events") or {}).get("natsURL", "")
    if events_url and events_url != "off":
        try:
            events_url = check_events_url(events_url)
        except EventError as exc:
            raise SpecError("spec.events.natsURL", str(exc)) from None
    return Volume(
        namespace=namespace,
        name=name,
        uid=uid,
        location=location,
        secret_name=secret,
        cache=settings,
        access_modes=modes,
        capacity=capacity,
        reclaim_policy=reclaim,
        uid_owner=owner["uid"],
        gid_owner=owner["gid"],
        file_mode=file_mode.zfill(4),
        dir_mode=dir_mode.zfill(4),
        cache_text=text,
        events_url=events_url,
    )
