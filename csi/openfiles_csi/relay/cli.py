"""``openfiles events``: relay one volume's mutation events between an engine and NATS.

Started by the engine, never by hand: its settings come from the environment
(:mod:`openfiles_contracts.event`, "Relay environment"), so no credential is in
argv. stdin carries ``{"publish": EVENT}`` lines; stdout carries ``{"state": ...}``
and ``{"event": EVENT}`` lines. The connection is retried forever (0.5 s doubling
to 5 s before the first connect; nats-py's own reconnect, every second, after it);
a publish while disconnected is dropped and counted (the peers fall back to
their metadata TTL). Exit status 0 when stdin closes, 2 on bad settings.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import sys
from typing import Any

from openfiles_contracts.event import (
    MAX_LINE,
    Event,
    EventError,
    RelaySettings,
    decode_line,
    encode_line,
    scrub,
)
from openfiles_csi.logsetup import register_secret, setup_logging

log = logging.getLogger(__name__)

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 5.0
"""Seconds between attempts to connect for the first time."""
RECONNECT_WAIT = 1
"""Seconds between nats-py's reconnect attempts once connected once."""
PING_INTERVAL = 5
"""Seconds between pings; two unanswered ones end a half-open connection."""


def connect_options(cfg: RelaySettings) -> dict[str, Any]:
    """Keyword arguments of ``nats.connect`` for the credentials and TLS of ``cfg``."""
    opts: dict[str, Any] = {}
    if cfg.user:
        opts["user"], opts["password"] = cfg.user, cfg.password
    if cfg.token:
        opts["token"] = cfg.token
    if cfg.creds:
        opts["user_credentials"] = cfg.creds
    if cfg.ca or "tls://" in cfg.url:
        opts["tls"] = ssl.create_default_context(cafile=cfg.ca or None)
    return opts


class Relay:
    """One NATS connection for one volume's subject, and the engine's two pipes."""

    def __init__(self, cfg: RelaySettings, out: Any) -> None:
        self.cfg = cfg
        self.out = out  # a binary file: the engine's side of our stdout
        self.nc: Any = None
        self.last_error: str | None = None
        self.dropped = 0

    def say(self, doc: dict[str, Any]) -> None:
        self.out.write(encode_line(doc))
        self.out.flush()

    def state(self, connected: bool) -> None:
        self.say({"state": "connected" if connected else "disconnected",
                  "error": None if connected else self.last_error or "disconnected"})

    def _error(self, exc: BaseException) -> str:
        text = scrub(f"{type(exc).__name__}: {exc}".rstrip(": "), self.cfg.secrets)
        self.last_error = text
        return text

    async def connect(self) -> None:
        """Connect once (retrying until it works) and subscribe to the volume's subject."""
        import nats

        async def on_error(exc: Exception) -> None:
            before = self.last_error
            if isinstance(exc, ConnectionError) and before and "nats: " in before:
                return  # the server said why before it closed the connection: keep that
            text = self._error(exc)
            if text != before:  # nats-py retries every second: say each error once
                log.warning("NATS: %s", text)
                if self.nc is None or not self.nc.is_connected:
                    self.state(False)

        async def on_disconnected() -> None:
            log.warning("NATS disconnected: %s", self.last_error)
            self.state(False)

        async def on_reconnected() -> None:
            log.info("NATS reconnected")
            self.last_error = None
            self.state(True)

        backoff = FIRST_BACKOFF
        while True:
            try:
                self.nc = await nats.connect(
                    servers=self.cfg.url.split(","), allow_reconnect=True,
                    max_reconnect_attempts=-1, reconnect_time_wait=RECONNECT_WAIT,
                    connect_timeout=2, ping_interval=PING_INTERVAL, max_outstanding_pings=2,
                    error_cb=on_error, disconnected_cb=on_disconnected,
                    reconnected_cb=on_reconnected, name="openfiles", **connect_options(self.cfg))
                break
            except Exception as exc:
                self.last_error = self._error(exc)
                log.warning("NATS connect failed, retrying in %.1f s: %s", backoff,
                            self.last_error)
                self.state(False)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        await self.nc.subscribe(self.cfg.subject, cb=self._on_message)
        await self.nc.flush(timeout=5)  # the subscription is in place when we say so
        self.last_error = None
        log.info("NATS connected; subscribed to %s", self.cfg.subject)
        self.state(True)

    async def _on_message(self, msg: Any) -> None:
        try:
            event = Event.decode(msg.data)
        except EventError as exc:
            log.info("ignoring a message on %s: %s", msg.subject, exc)
            return
        self.say({"event": event.as_dict()})

    async def publish(self, event: Event) -> None:
        if self.nc is None or not self.nc.is_connected:
            self.dropped += 1
            return
        try:
            await self.nc.publish(self.cfg.subject, event.encode())
        except Exception as exc:
            self.dropped += 1
            log.info("publish dropped: %s", self._error(exc))

    async def pump(self, reader: asyncio.StreamReader) -> None:
        """Publish each ``{"publish": EVENT}`` line of stdin until it closes."""
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # longer than the limit
                log.warning("ignoring an over-long line from the engine")
                continue
            if not line:
                return
            try:
                doc = decode_line(line)
            except EventError as exc:
                log.warning("ignoring a line from the engine: %s", exc)
                continue
            if "publish" in doc:
                await self.publish(doc["publish"])

    async def close(self) -> None:
        if self.nc is not None:
            try:
                await asyncio.wait_for(self.nc.close(), timeout=2)
            except Exception as exc:  # closing anyway
                log.debug("closing NATS: %s", exc)


async def run(cfg: RelaySettings) -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    relay = Relay(cfg, sys.stdout.buffer)
    connecting = asyncio.create_task(relay.connect())
    try:
        await relay.pump(reader)  # publishes while connecting are dropped
    finally:
        connecting.cancel()
        await relay.close()
    return 0


def main(argv: list[str]) -> int:
    """Entry point of ``openfiles events``; takes no arguments (see the module docstring)."""
    if len(argv) > 1:
        print("openfiles events: takes no arguments; the engine starts it with --events",
              file=sys.stderr)
        return 2
    setup_logging(os.environ.get("OPENFILES_LOG_LEVEL", "INFO"))
    try:
        cfg = RelaySettings.from_env(os.environ)
        for path in (cfg.creds, cfg.ca):
            if path and not os.path.isfile(path):
                raise EventError(f"no file at {path}")
    except EventError as exc:
        print(f"openfiles events: {exc}", file=sys.stderr)
        return 2
    register_secret(*cfg.secrets)
    try:
        return asyncio.run(run(cfg))
    except KeyboardInterrupt:
        return 0
