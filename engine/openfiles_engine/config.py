"""Typed mount settings, parsed once at the edge (the command line).

Nothing deeper than :mod:`openfiles_engine.cli` reads argv or the environment;
every other module receives a :class:`MountConfig` or a :class:`Policy`.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field

from openfiles_contracts.quantity import ENGINE, QuantityError


class ConfigError(ValueError):
    """A setting has a malformed value; the message names the setting."""


def parse_duration(text: str | float, name: str = "duration") -> float:
    """``90``, ``90s``, ``5m``, ``1h``, ``250ms`` -> seconds (float, >= 0).

    The text is in the engine's dialect of :mod:`openfiles_contracts.quantity`.
    """
    if isinstance(text, int | float):
        if text < 0:
            raise ConfigError(f"{name}: must not be negative")
        return float(text)
    try:
        return float(ENGINE.duration(text))
    except QuantityError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def parse_quantity(text: str | int, name: str = "quantity") -> int:
    """Kubernetes quantity (``10Gi``, ``500M``, ``1048576``) -> bytes, a fraction truncated.

    The text is in the engine's dialect of :mod:`openfiles_contracts.quantity`.
    """
    if isinstance(text, int):
        if text < 0:
            raise ConfigError(f"{name}: must not be negative")
        return text
    try:
        return int(ENGINE.quantity(text))
    except QuantityError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def parse_mode(text: str, name: str) -> int:
    """Octal permission bits (``0644``) -> int; only the 0o7777 bits are allowed."""
    try:
        value = int(text, 8)
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not an octal mode like 0644") from None
    if value & ~0o7777:
        raise ConfigError(f"{name}: {text!r} has bits outside 07777")
    return value


@dataclass
class Policy:
    """Cache and export settings that may change while mounted (control ``policy`` op)."""

    cache_size: int = 10 * 2**30
    """Bound on clean cached bytes; least recently used clean data goes first."""
    cache_ttl: float = 24 * 3600.0
    """Seconds: clean data unread for this long is dropped from the cache."""
    metadata_ttl: float = 5.0
    """Seconds: attributes older than this are checked against the bucket on open/lookup."""
    export_delay: float = 60.0
    """Seconds without writes before a dirty file is exported."""

    def as_dict(self) -> dict[str, float | int]:
        return {
            "cache_size": self.cache_size,
            "cache_ttl": self.cache_ttl,
            "metadata_ttl": self.metadata_ttl,
            "export_delay": self.export_delay,
        }

    def update(self, values: dict[str, object]) -> None:
        """Apply any subset of the policy keys.

        Raises ConfigError, and changes nothing, if any value is bad.
        """
        new = Policy(**self.as_dict())  # type: ignore[arg-type]
        for key, value in values.items():
            if key == "cache_size":
                new.cache_size = parse_quantity(value, key)  # type: ignore[arg-type]
            elif key in ("cache_ttl", "metadata_ttl", "export_delay"):
                setattr(new, key, parse_duration(value, key))  # type: ignore[arg-type]
            else:
                raise ConfigError(f"unknown policy key {key!r}")
        self.__dict__.update(new.__dict__)


@dataclass
class Credentials:
    """Store credentials; ``repr`` never shows the secret parts.

    S3: an access key (and a session token). GCS: a service-account JSON key,
    the whole document as text. Azure: the storage account's name with its
    account key or a SAS token (the token wins when both are given).
    """

    access_key_id: str = field(default="", repr=False)
    secret_access_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)
    gcs_service_account_key: str = field(default="", repr=False)
    azure_account_name: str = ""
    azure_account_key: str = field(default="", repr=False)
    azure_sas_token: str = field(default="", repr=False)


@dataclass
class EventsConfig:
    """Mutation events over NATS (``--events``); ``repr`` never shows a secret.

    ``url`` is checked by :func:`openfiles_contracts.event.check_url` (no
    credentials in it). ``creds`` and ``ca`` are paths: a NATS ``.creds`` file and
    the CA bundle of the server's certificate (TLS).
    """

    url: str
    user: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    creds: str = ""
    ca: str = ""


@dataclass
class MountConfig:
    """Everything ``openfiles mount`` needs, validated."""

    source: str
    mountpoint: str
    cache_dir: str
    endpoint: str = ""
    region: str = ""
    credentials: Credentials = field(default_factory=Credentials)
    policy: Policy = field(default_factory=Policy)
    uid: int = 0
    gid: int = 0
    file_mode: int = 0o644
    dir_mode: int = 0o755
    read_only: bool = False
    allow_other: bool = False
    fsid: str = field(default_factory=lambda: default_fsid())
    control_socket: str = ""
    unmount_timeout: float = 30.0
    """Seconds SIGTERM/SIGINT may spend exporting before the unmount goes ahead."""
    events: EventsConfig | None = None
    """Publish and receive mutation events over NATS; None: the metadata TTL alone."""


def default_fsid() -> str:
    """The node's host name, reduced to characters safe in a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "local"
