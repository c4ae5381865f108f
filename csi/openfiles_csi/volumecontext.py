"""Turn a volume context and node-stage secrets into an engine command and environment.

The volume context keys are those of docs/CONTRACTS.md section 3. Credentials come
only from the secrets and go only into the engine's environment (never its argv,
never a message). Keys that Kubernetes adds on its own (``csi.storage.k8s.io/...``,
``storage.kubernetes.io/...``) are ignored; any other unknown key is refused so a
typo in a StorageClass or PV shows up at once instead of silently doing nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from openfiles_contracts import store
from openfiles_contracts.event import SECRET_ENV as EVENT_SECRET_ENV
from openfiles_contracts.event import EventError
from openfiles_contracts.event import check_url as check_events_url
from openfiles_contracts.quantity import ARGUMENT
from openfiles_csi.plugin.errors import InvalidArgument
from openfiles_csi.volumeid import VolumeIdError, check_endpoint, check_region

_ID = re.compile(r"^\d{1,10}$")
_MODE = re.compile(r"^0?[0-7]{3,4}$")


def _accepts(parse: Callable[[str], object]) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            parse(value)
        except ValueError:
            return False
        return True

    return check


# The grammar the engine accepts (openfiles mount, CONTRACTS.md section 1), so that the
# node refuses what the engine would refuse, but early and with the key's name.
_DURATION = _accepts(ARGUMENT.duration)
_QUANTITY = _accepts(ARGUMENT.quantity)

# context key -> (engine option, value check, what the value should look like)
OPTIONS: dict[str, tuple[str, Callable[[str], object], str]] = {
    "cacheSize": ("--cache-size", _QUANTITY, "a quantity such as 10Gi"),
    "cacheTTL": ("--cache-ttl", _DURATION, "a duration such as 90, 90s, 5m, 1h"),
    "metadataTTL": ("--metadata-ttl", _DURATION, "a duration such as 90, 90s, 5m, 1h"),
    "exportDelay": ("--export-delay", _DURATION, "a duration such as 90, 90s, 5m, 1h"),
    "uid": ("--uid", _ID.match, "a numeric user id"),
    "gid": ("--gid", _ID.match, "a numeric group id"),
    "fileMode": ("--file-mode", _MODE.match, "an octal mode such as 0644"),
    "dirMode": ("--dir-mode", _MODE.match, "an octal mode such as 0755"),
}
DEFAULT_DIR_MODE = "0755"
"""The engine's own default for ``--dir-mode``."""
SETGID = 0o2000
SCHEMES = frozenset({"s3", "gs", "az", "file", "memory"})
IGNORED_PREFIXES = ("csi.storage.k8s.io/", "storage.kubernetes.io/")
LOCATION_KEYS = frozenset({"url", "endpoint", "region", "account"})
"""Context keys that say where the data is (the rest are engine settings, OPTIONS)."""
EVENTS_OFF = "off"
"""``eventsURL`` that turns the node's default events off for one volume."""


@dataclass(frozen=True)
class NodeEvents:
    """The node plugin's mutation-event default (the chart's ``events.nats.url``), for
    volumes whose context names no ``eventsURL``, and the NATS credentials the node was
    given for it (``OPENFILES_NATS_*``: the chart's Secret). A volume's own secrets win."""

    url: str = ""
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


def node_events(url: str, environ: Mapping[str, str]) -> NodeEvents:
    """The node's default from ``--events-url`` and its environment; EventError for a
    bad URL (never quoting a credential)."""
    env = {k: environ[k] for k in EVENT_SECRET_ENV.values() if environ.get(k)}
    return NodeEvents(check_events_url(url) if url else "", env)


@dataclass(frozen=True)
class MountSpec:
    """What the mounter needs to start one engine. ``env`` holds the credentials."""

    source: str
    args: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)

    def fingerprint(self) -> dict[str, object]:
        """The non-secret part, compared to tell an identical re-stage from a conflicting one."""
        return {"source": self.source, "args": list(self.args)}


def check_url(url: str) -> str:
    """Raise INVALID_ARGUMENT unless ``url`` is a store URL the engine accepts; its scheme.

    ``s3://``, ``gs://`` and ``az://`` follow their store's naming rules
    (:func:`openfiles_contracts.store.parse_url`); ``file://`` and ``memory://`` (static
    volumes of one machine) only refuse credentials, queries and ``..``.
    """
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise InvalidArgument(f"url scheme must be one of {sorted(SCHEMES)}")
    if parts.scheme in store.SCHEMES:
        try:
            store.parse_url(url)
        except store.StoreSpecError as exc:
            raise InvalidArgument(f"url: {exc}") from None
        return parts.scheme
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidArgument("url must not carry credentials, a query or a fragment")
    if ".." in parts.path.split("/"):
        raise InvalidArgument("url path must not contain '..'")
    return parts.scheme


def _secret_env(
    scheme: str, context: Mapping[str, str], secrets: Mapping[str, str]
) -> dict[str, str]:
    """The engine's environment from the secrets; refuses keys of another store, a
    partial set and malformed values (naming keys, never values)."""
    if scheme not in store.SCHEMES:
        known = set().union(*store.SECRET_KEYS.values())
        unknown = sorted(set(secrets) - known)
        if unknown:
            raise InvalidArgument(f"secrets have unknown keys {unknown}")
        return store.engine_env(secrets)
    try:
        store.check_secret(scheme, secrets, endpoint=context.get("endpoint", ""),
                           account=context.get("account", ""), required=False)
    except store.StoreSpecError as exc:
        raise InvalidArgument(f"secrets: {exc}") from None
    return store.engine_env(secrets)


def parse(
    context: Mapping[str, str],
    secrets: Mapping[str, str],
    *,
    read_only: bool = False,
    mount_group: str = "",
    events: NodeEvents | None = None,
) -> MountSpec:
    """Build the engine invocation; raise INVALID_ARGUMENT naming the bad key."""
    url = context.get("url", "")
    if not url:
        raise InvalidArgument("volume_context.url is required")
    scheme = check_url(url)
    args: list[str] = []
    account = context.get("account", "")
    if scheme in store.SCHEMES:
        try:
            store.check_account(scheme, account)
        except store.StoreSpecError as exc:
            raise InvalidArgument(f"volume_context.account: {exc}") from None
    elif account:
        raise InvalidArgument(f"volume_context.account is for az:// only, not {scheme}://")
    if account:
        # Not a secret: an engine started without the Secret (a flush-only recovery by a
        # restarted mounter) still knows its store.
        args += ["--account", account]
    for key in ("endpoint", "region"):
        value = context.get(key, "")
        if not value:
            continue
        try:
            (check_endpoint if key == "endpoint" else check_region)(value)
        except VolumeIdError as exc:
            raise InvalidArgument(f"volume_context.{key}: {exc}") from None
        args += [f"--{key}", value]
    for key, value in sorted(context.items()):
        if key in LOCATION_KEYS or key == "eventsURL" or key.startswith(IGNORED_PREFIXES):
            continue
        if key not in OPTIONS:
            raise InvalidArgument(f"volume_context has unknown key {key!r}")
        option, accepts, expected = OPTIONS[key]
        if key == "gid" and mount_group:
            continue
        if not accepts(value):
            raise InvalidArgument(f"volume_context.{key} must be {expected}")
        if key == "dirMode" and mount_group:
            continue  # added below, with the setgid bit
        args += [option, value]
    if mount_group:
        if not _ID.match(mount_group):
            raise InvalidArgument("volume_mount_group must be a numeric group id")
        # The fsGroup owns the volume, and set-group-ID directories make what pods
        # create in it belong to the fsGroup too, as the kubelet's own recursive
        # ownership change would.
        dir_mode = int(context.get("dirMode", DEFAULT_DIR_MODE), 8) | SETGID
        args += ["--gid", mount_group, "--dir-mode", f"{dir_mode:04o}"]
    # Pods run as many users; without allow_other only root could enter the mount.
    args.append("--allow-other")
    if read_only:
        args.append("--read-only")
    env = _secret_env(scheme, context,
                      {k: v for k, v in secrets.items() if k not in EVENT_SECRET_ENV})
    event_env = {EVENT_SECRET_ENV[k]: v for k, v in secrets.items()
                 if k in EVENT_SECRET_ENV and v}
    node = events or NodeEvents()
    events_url = context.get("eventsURL", "") or node.url
    if events_url and events_url != EVENTS_OFF:
        try:
            args += ["--events", check_events_url(events_url)]
        except EventError as exc:
            raise InvalidArgument(f"volume_context.eventsURL: {exc}") from None
        env.update(event_env or node.env)
    return MountSpec(source=url, args=tuple(args), env=env)


def check_inline(spec: MountSpec) -> None:
    """Refuse an inline (ephemeral) volume that would act with the node's authority.

    Any pod author writes an inline volume's attributes, so only ``s3://`` is allowed
    (``file://`` would serve the mounter's own file system, which holds the kubelet
    directory and so every pod's secrets; ``memory://`` the mounter's memory), and only
    with credentials from the pod's ``nodePublishSecretRef``: without them the store
    client falls back to the node's own cloud identity.
    """
    if urlsplit(spec.source).scheme != "s3":
        raise InvalidArgument("an inline volume's url must be s3://")
    if "AWS_ACCESS_KEY_ID" not in spec.env:
        raise InvalidArgument(
            "an inline volume needs credentials: a nodePublishSecretRef with accessKeyId "
            "and secretAccessKey"
        )
