"""The control socket: the trio server, with the contracts' blocking client, over a real
unix socket."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import trio

from openfiles_contracts import jsonline
from openfiles_engine import control


def test_request_reply_round_trip(tmp_path: Path) -> None:
    path = str(tmp_path / "run" / "c.sock")
    seen: list[dict[str, Any]] = []

    async def dispatch(req: dict[str, Any]) -> dict[str, Any]:
        seen.append(req)
        if req.get("op") == "boom":
            raise RuntimeError("secret detail")
        return {"ok": True, "echo": req}

    async def main() -> list[dict[str, Any]]:
        async with trio.open_nursery() as nursery:
            await nursery.start(control.serve, path, dispatch)
            replies = [
                await trio.to_thread.run_sync(jsonline.request, path, {"op": "status"}),
                await trio.to_thread.run_sync(jsonline.request, path, {"op": "boom"}),
                await trio.to_thread.run_sync(_raw, path, b"[1, 2]\n"),
                await trio.to_thread.run_sync(_raw, path, b"not json\n"),
            ]
            nursery.cancel_scope.cancel()
        return replies

    ok, boom, not_object, garbage = trio.run(main)
    assert ok == {"ok": True, "echo": {"op": "status"}}
    assert boom == {"ok": False, "error": "internal error: RuntimeError"}
    assert not not_object["ok"] and "JSON object" in not_object["error"]
    assert not garbage["ok"] and garbage["error"].startswith("bad request")
    assert not Path(path).exists()  # removed when the server stops


def _raw(path: str, data: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(data)
        return json.loads(s.makefile("rb").readline())  # type: ignore[no-any-return]


def test_default_socket_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENFILES_RUN_DIR", str(tmp_path))
    a = control.default_socket(str(tmp_path / "mnt"))
    b = control.default_socket(str(tmp_path / "mnt" / "."))
    assert a == b and a.startswith(str(tmp_path)) and a.endswith(".sock")
    assert len(Path(a).name) == 16 + 5

