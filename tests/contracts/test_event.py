"""The mutation-event contract: subjects, URLs, events and relay lines (contracts/event.py)."""

from __future__ import annotations

import pytest

from openfiles_contracts.event import (
    Event,
    EventError,
    RelaySettings,
    check_url,
    decode_line,
    encode_line,
    scrub,
    subject,
)


def test_one_subject_per_volume_whatever_the_trailing_slash() -> None:
    a, b = subject("s3://bucket/vol1"), subject("s3://bucket/vol1/")
    assert a == b and a.startswith("openfiles.v1.") and len(a) == len("openfiles.v1.") + 32
    assert subject("s3://bucket/vol2") != a
    assert "bucket" not in a  # NATS permissions name hashes, not bucket names


@pytest.mark.parametrize("url", ["nats://127.0.0.1:4222", "tls://nats.example.com",
                                 "nats://a:4222,nats://b:4222"])
def test_server_urls_are_accepted(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(("url", "why"), [
    ("", "empty"),
    ("nats://user:secret@host:4222", "credentials in the URL"),
    ("nats://token@host", "credentials in the URL"),
    ("http://host:4222", "nats:// or tls://"),
    ("nats://host:4222/path", "expected nats://host[:port]"),
    ("nats://host:99999", "malformed"),
    ("nats://", "expected nats://host[:port]"),
])
def test_bad_urls_are_refused_without_quoting_a_secret(url: str, why: str) -> None:
    with pytest.raises(EventError, match=why.replace("[", r"\[").replace("]", r"\]")) as info:
        check_url(url)
    assert "secret" not in str(info.value)


def test_an_event_round_trips_and_bad_ones_are_refused() -> None:
    event = Event("a/b.txt", '"etag"', False, "node-1", "abc123")
    assert Event.decode(event.encode()) == event
    assert decode_line(encode_line({"event": event.as_dict()})) == {"event": event}
    assert decode_line(encode_line({"publish": event.as_dict()})) == {"publish": event}
    for body in (b"not json", b"[]", b'{"v": 2}',
                 b'{"v":1,"key":"/abs","etag":null,"gone":true,"node":"n","origin":"o"}',
                 b'{"v":1,"key":"k","etag":3,"gone":true,"node":"n","origin":"o"}',
                 b'{"v":1,"key":"k","etag":null,"gone":"yes","node":"n","origin":"o"}',
                 b'{"v":1,"key":"k","etag":null,"gone":true,"node":"n","origin":""}'):
        with pytest.raises(EventError):
            Event.decode(body)


def test_relay_lines() -> None:
    assert decode_line(b'{"state": "connected", "error": null}') == \
        {"state": "connected", "error": None}
    assert decode_line(b'{"state": "disconnected", "error": "refused"}') == \
        {"state": "disconnected", "error": "refused"}
    for line in (b'{"state": "maybe"}', b"{}", b"1", b"x" * 70000):
        with pytest.raises(EventError):
            decode_line(line)


def test_relay_settings_travel_in_the_environment() -> None:
    settings = RelaySettings("nats://h:4222", subject("s3://b/p"), "u", "pw-secret", "", "", "")
    assert RelaySettings.from_env(settings.env()) == settings
    assert "pw-secret" not in repr(settings)
    with pytest.raises(EventError, match="not a volume subject"):
        RelaySettings.from_env({**settings.env(), "OPENFILES_EVENTS_SUBJECT": "openfiles.>"})
    with pytest.raises(EventError, match="needs OPENFILES_NATS_USER"):
        RelaySettings.from_env({**settings.env(), "OPENFILES_NATS_USER": ""})


def test_scrub_removes_url_credentials_and_secrets() -> None:
    text = "nats: cannot reach nats://u:pw@h:4222 with token tok-123"
    assert scrub(text, ("tok-123",)) == "nats: cannot reach nats://***@h:4222 with token ***"
