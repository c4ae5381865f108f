"""One JSON-lines request over a unix socket: replies, silence, garbage, absence.

The asyncio client of this package and the blocking client of openfiles_contracts,
side by side: one contract, two forms."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.peer import canned_peer
from openfiles_contracts.jsonline import request
from openfiles_csi.jsonline import PeerError, arequest


def run_async(path: str, message: dict[str, Any], timeout: float) -> dict[str, Any]:
    return asyncio.run(arequest(path, message, timeout))


BOTH = pytest.mark.parametrize("call", [request, run_async], ids=["blocking", "async"])
Call = Callable[[str, dict[str, Any], float], dict[str, Any]]


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[tuple[str, list[bytes]]]:
    """A unix socket server that answers each connection with the next canned reply."""
    path = str(tmp_path / "peer.sock")
    with canned_peer(path) as replies:
        yield path, replies


@BOTH
def test_reply(peer: tuple[str, list[bytes]], call: Call) -> None:
    path, replies = peer
    replies.append(b'{"ok": true, "n": 1}\n')
    assert call(path, {"op": "status"}, 5) == {"ok": True, "n": 1}


@BOTH
def test_silence_garbage_and_absence(
    peer: tuple[str, list[bytes]], tmp_path: Path, call: Call
) -> None:
    path, replies = peer
    replies += [b"", b"hold"]  # says nothing, keeps the connection open
    with pytest.raises(PeerError, match="no reply"):
        call(path, {"op": "status"}, 0.5)
    replies.append(b"[1, 2]\n")
    with pytest.raises(PeerError, match="malformed"):
        call(path, {"op": "status"}, 5)
    with pytest.raises(PeerError, match="cannot reach"):
        call(str(tmp_path / "absent.sock"), {"op": "status"}, 5)
