"""The JSON-line framing and the blocking client, against a real unix socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.peer import canned_peer
from openfiles_contracts import jsonline
from openfiles_contracts.jsonline import PeerError, decode_reply, decode_request, encode


def test_encode_is_one_line() -> None:
    line = encode({"op": "status", "text": "two\nlines"})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"op": "status", "text": "two\nlines"}


def test_decode_request() -> None:
    assert decode_request(b'{"op": "flush"}\n{"ignored": 1}\n') == {"op": "flush"}
    for bad in (b"", b"\n", b"[1, 2]\n", b"null\n"):
        with pytest.raises(ValueError, match="JSON object"):
            decode_request(bad)
    with pytest.raises(ValueError):
        decode_request(b"not json\n")


def test_decode_reply_names_the_socket_not_the_payload() -> None:
    assert decode_reply(b'{"ok": true}\n', "/s") == {"ok": True}
    for bad in (b"", b"[1]\n", b"secret-garbage\n"):
        with pytest.raises(PeerError, match="malformed reply from /s") as info:
            decode_reply(bad, "/s")
        assert "secret" not in str(info.value)
    assert issubclass(PeerError, OSError)


@pytest.fixture
def answer(tmp_path: Path) -> Iterator[tuple[str, list[bytes]]]:
    """A unix socket server that answers a connection with the bytes put in the list."""
    path = str(tmp_path / "peer.sock")
    with canned_peer(path) as replies:
        yield path, replies


def test_request_round_trip(answer: tuple[str, list[bytes]]) -> None:
    path, reply = answer
    reply.append(b'{"ok": true, "status": {"pid": 1}}\n')
    assert jsonline.request(path, {"op": "status"}, 5) == {"ok": True, "status": {"pid": 1}}


def test_a_reply_too_large_is_refused(answer: tuple[str, list[bytes]]) -> None:
    path, reply = answer
    reply.append(b'{"pad": "' + b"x" * jsonline.MAX_REPLY + b'"}\n')
    with pytest.raises(PeerError, match="too large"):
        jsonline.request(path, {"op": "status"}, 5)


def test_an_empty_reply_is_malformed(answer: tuple[str, list[bytes]]) -> None:
    path, reply = answer
    reply.append(b"")
    with pytest.raises(PeerError, match="malformed"):
        jsonline.request(path, {"op": "status"}, 5)


# Moved from tests/engine/test_control.py (the client was openfiles_engine.control.request).
def test_client_reports_absent_engine(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        jsonline.request(str(tmp_path / "none.sock"), {"op": "status"})
