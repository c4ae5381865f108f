"""``openfiles events`` (csi/openfiles_csi/relay/cli.py) against a real nats-server: what one
relay publishes, another forwards; outages are reported and healed by the relay itself."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from typing import Any

import pytest

from fixtures.nats import NatsServer
from openfiles_contracts.event import Event, RelaySettings, encode_line, subject

pytestmark = [pytest.mark.nats, pytest.mark.timeout(120)]


class RelayProcess:
    """One ``openfiles events`` child, read line by line with a deadline."""

    def __init__(self, settings: RelaySettings) -> None:
        env = {**os.environ, **settings.env()}
        self.proc = subprocess.Popen([sys.executable, "-m", "openfiles_cli", "events"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.buf = b""

    def line(self, timeout: float = 15) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise AssertionError("no line from the relay")
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("the relay exited")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        doc: dict[str, Any] = json.loads(line)
        return doc

    def until(self, predicate: Any, timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            doc = self.line(max(deadline - time.monotonic(), 0.01))
            if predicate(doc):
                return doc

    def publish(self, event: Event) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(encode_line({"publish": event.as_dict()}))
        self.proc.stdin.flush()

    def close(self) -> tuple[int, str]:
        """Close stdin (the engine is gone): the relay exits 0 by itself."""
        _, err = self.proc.communicate(timeout=15)  # closes stdin first
        return self.proc.returncode, err.decode(errors="replace")


def connected(doc: dict[str, Any]) -> bool:
    return doc.get("state") == "connected"


def test_one_relay_publishes_and_the_other_forwards(nats_server: NatsServer) -> None:
    settings = RelaySettings(nats_server.url, subject("s3://b/vol"))
    other = RelaySettings(nats_server.url, subject("s3://b/another"))
    a, b, c = RelayProcess(settings), RelayProcess(settings), RelayProcess(other)
    try:
        for relay in (a, b, c):
            relay.until(connected)
        event = Event("dir/f", '"e1"', False, "node-a", "origin-a")
        a.publish(event)
        assert b.until(lambda d: "event" in d) == {"event": event.as_dict()}
        # The relay forwards its own events too: the engine tells them apart by origin.
        assert a.until(lambda d: "event" in d) == {"event": event.as_dict()}
        with pytest.raises(AssertionError, match="no line"):
            c.line(timeout=1)  # another volume's subject hears nothing
    finally:
        results = [r.close() for r in (a, b, c)]
    assert [code for code, _ in results] == [0, 0, 0]


def test_an_outage_is_reported_and_healed(nats_server: NatsServer) -> None:
    relay = RelayProcess(RelaySettings(nats_server.url, subject("s3://b/vol")))
    try:
        relay.until(connected)
        nats_server.stop()
        down = relay.until(lambda d: d.get("state") == "disconnected")
        assert down["error"]
        nats_server.start()
        relay.until(connected, timeout=30)
        listener = RelayProcess(RelaySettings(nats_server.url, subject("s3://b/vol")))
        try:
            listener.until(connected)
            event = Event("f", None, True, "n", "o")
            relay.publish(event)
            assert listener.until(lambda d: "event" in d) == {"event": event.as_dict()}
        finally:
            listener.close()
    finally:
        relay.close()


def test_a_server_that_is_not_there_yet(tmp_path: Any) -> None:
    late = NatsServer(tmp_path)
    try:
        relay = RelayProcess(RelaySettings(late.url, subject("s3://b/vol")))
        try:
            down = relay.until(lambda d: d.get("state") == "disconnected")
            assert "refused" in down["error"].lower() or "connect" in down["error"].lower()
            late.start()
            relay.until(connected, timeout=30)
        finally:
            relay.close()
    finally:
        late.stop()


def test_tls_with_the_servers_ca_and_not_without(tmp_path: Any) -> None:
    server = NatsServer(tmp_path)
    ca = server.self_signed()
    server.start()
    try:
        trusted = RelayProcess(RelaySettings(server.url, subject("s3://b/vol"), ca=str(ca)))
        untrusted = RelayProcess(RelaySettings(server.url, subject("s3://b/vol")))
        try:
            trusted.until(connected)
            down = untrusted.until(lambda d: d.get("state") == "disconnected")
            assert "certificate" in down["error"].lower(), down
        finally:
            for relay in (trusted, untrusted):
                relay.close()
    finally:
        server.stop()


def test_bad_settings_exit_2_without_quoting_secrets() -> None:
    env = {**os.environ, "OPENFILES_EVENTS_URL": "nats://u:hunter22@h:4222",
           "OPENFILES_EVENTS_SUBJECT": subject("s3://b/v")}
    out = subprocess.run([sys.executable, "-m", "openfiles_cli", "events"], env=env,
                         capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and "credentials in the URL" in out.stderr
    assert "hunter22" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "openfiles_cli", "events", "--url", "x"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "takes no arguments" in out.stderr
