"""Mutation events: what an engine publishes on NATS, and the relay's line protocol.

Contract (docs/CONTRACTS.md section 5):

- **Subject.** One per volume: ``openfiles.v1.<32 hex digits>``, the start of the
  SHA-256 of the volume's source URL (``s3://bucket/prefix``). Every mount of the
  same prefix, on any node, uses the same subject and nothing else; NATS
  permissions can grant a node exactly the subjects of the volumes it stages.
- **Event** (one NATS message, a JSON object): ``v`` (1), ``key`` (the path
  inside the volume, ``""`` for the root), ``etag`` (the object's new ETag, or
  null for a directory or when ``gone``), ``gone`` (the key no longer exists),
  ``node`` (the publisher's ``--fsid``, for people reading the traffic) and
  ``origin`` (a random id per engine run: a mount ignores its own events).
- **Relay lines.** The engine runs the NATS client in a child process (the
  *relay*, asyncio) and talks to it over its stdin and stdout, one JSON object
  per line. Engine to relay: ``{"publish": EVENT}``. Relay to engine:
  ``{"state": "connected" | "disconnected", "error": TEXT | null}`` and
  ``{"event": EVENT}``. A line that is not one of these is refused with a
  ValueError by :func:`decode_line`.
- **Relay environment** (never argv): :data:`ENV_URL`, :data:`ENV_SUBJECT`,
  :data:`ENV_USER`, :data:`ENV_PASSWORD`, :data:`ENV_TOKEN`, :data:`ENV_CREDS`,
  :data:`ENV_CA`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

VERSION = 1
MAX_LINE = 64 * 1024
"""Bytes: the longest relay line (a key is at most 1024 bytes; an ETag far less)."""

ENV_URL = "OPENFILES_EVENTS_URL"
ENV_SUBJECT = "OPENFILES_EVENTS_SUBJECT"
ENV_USER = "OPENFILES_NATS_USER"
ENV_PASSWORD = "OPENFILES_NATS_PASSWORD"
ENV_TOKEN = "OPENFILES_NATS_TOKEN"
ENV_CREDS = "OPENFILES_NATS_CREDS"
"""A path: a NATS ``.creds`` file (user JWT and NKey seed)."""
ENV_CA = "OPENFILES_NATS_CA"
"""A path: the CA bundle that signs the server's certificate (implies TLS)."""

SECRET_ENV = {"natsUser": ENV_USER, "natsPassword": ENV_PASSWORD, "natsToken": ENV_TOKEN}
"""The NATS credentials a volume's Secret may carry (allowed beside every store's own
keys) -> the engine's environment variable (docs/CONTRACTS.md)."""
SCHEMES = ("nats", "tls")


class EventError(ValueError):
    """A URL or a line that does not follow this contract."""


def subject(source_url: str) -> str:
    """The NATS subject of the volume whose source URL is ``source_url`` (a trailing
    slash makes no difference)."""
    digest = hashlib.sha256(source_url.rstrip("/").encode()).hexdigest()
    return "openfiles.v1." + digest[:32]


def check_url(url: str) -> str:
    """Return ``url`` if it is a NATS server URL without credentials in it.

    ``nats://host[:port]`` or ``tls://host[:port]``, several separated by commas
    (a cluster). Credentials in the URL are refused: they would show in argv and
    in the volume attributes; they come from the environment or a file.
    """
    servers = [s.strip() for s in url.split(",") if s.strip()]
    if not servers:
        raise EventError("the events URL is empty")
    for server in servers:
        try:
            parts = urlsplit(server)
            port = parts.port
        except ValueError:
            raise EventError(f"events URL {server!r}: malformed") from None
        if parts.scheme not in SCHEMES:
            raise EventError(f"events URL {server!r}: the scheme must be nats:// or tls://")
        if "@" in parts.netloc:
            raise EventError("events URL: credentials in the URL are refused (they would "
                             "show in argv); give them in the environment or a file")
        if not parts.hostname or (parts.path not in ("", "/")) or parts.query:
            raise EventError(f"events URL {server!r}: expected nats://host[:port]")
        if port == 0:
            raise EventError(f"events URL {server!r}: port 0")
    return ",".join(servers)


@dataclass(frozen=True)
class Event:
    """One mutation that reached the bucket (see the module docstring)."""

    key: str
    etag: str | None
    gone: bool
    node: str
    origin: str

    def as_dict(self) -> dict[str, Any]:
        return {"v": VERSION, "key": self.key, "etag": self.etag, "gone": self.gone,
                "node": self.node, "origin": self.origin}

    def encode(self) -> bytes:
        """The NATS message body."""
        return json.dumps(self.as_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_dict(cls, doc: object) -> Event:
        if not isinstance(doc, dict) or doc.get("v") != VERSION:
            raise EventError("not a version-1 event")
        key, etag, gone = doc.get("key"), doc.get("etag"), doc.get("gone")
        node, origin = doc.get("node"), doc.get("origin")
        if not isinstance(key, str) or len(key.encode()) > 1024 or key.startswith("/"):
            raise EventError("event: bad key")
        if etag is not None and not isinstance(etag, str):
            raise EventError("event: bad etag")
        if not isinstance(gone, bool) or not isinstance(node, str) or \
                not isinstance(origin, str) or not origin:
            raise EventError("event: bad gone, node or origin")
        return cls(key, etag, gone, node, origin)

    @classmethod
    def decode(cls, body: bytes) -> Event:
        """Parse a NATS message body; EventError if it is not an event."""
        try:
            doc = json.loads(body)
        except ValueError:
            raise EventError("event: not JSON") from None
        return cls.from_dict(doc)


@dataclass(frozen=True)
class RelaySettings:
    """What the engine hands its relay, through the environment; ``repr`` hides secrets."""

    url: str
    subject: str
    user: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    creds: str = ""
    ca: str = ""

    def env(self) -> dict[str, str]:
        """The relay's environment variables for these settings."""
        return {ENV_URL: self.url, ENV_SUBJECT: self.subject, ENV_USER: self.user,
                ENV_PASSWORD: self.password, ENV_TOKEN: self.token, ENV_CREDS: self.creds,
                ENV_CA: self.ca}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RelaySettings:
        """Read and check the settings; EventError names what is wrong (never a value)."""
        subj = env.get(ENV_SUBJECT, "")
        if not re.fullmatch(r"openfiles\.v1\.[0-9a-f]{32}", subj):
            raise EventError(f"{ENV_SUBJECT}: not a volume subject")
        settings = cls(url=check_url(env.get(ENV_URL, "")), subject=subj,
                       user=env.get(ENV_USER, ""), password=env.get(ENV_PASSWORD, ""),
                       token=env.get(ENV_TOKEN, ""), creds=env.get(ENV_CREDS, ""),
                       ca=env.get(ENV_CA, ""))
        if settings.password and not settings.user:
            raise EventError(f"{ENV_PASSWORD} needs {ENV_USER}")
        return settings

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.password, self.token)


def encode_line(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def decode_line(line: bytes) -> dict[str, Any]:
    """One relay line as a dict with exactly one of ``publish``, ``event`` or ``state``.

    ``publish`` and ``event`` become :class:`Event`; ``state`` stays text (with
    ``error``). Raises EventError otherwise.
    """
    if len(line) > MAX_LINE:
        raise EventError("relay line too long")
    try:
        doc = json.loads(line)
    except ValueError:
        raise EventError("relay line: not JSON") from None
    if not isinstance(doc, dict):
        raise EventError("relay line: not an object")
    for name in ("publish", "event"):
        if name in doc:
            return {name: Event.from_dict(doc[name])}
    state = doc.get("state")
    if state in ("connected", "disconnected"):
        error = doc.get("error")
        return {"state": state, "error": error if isinstance(error, str) else None}
    raise EventError("relay line: unknown")


_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` without URL credentials and without any of ``secrets`` (for errors)."""
    text = _USERINFO.sub("***@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
