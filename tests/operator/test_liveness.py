"""The /healthz endpoint answers over real HTTP."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

from openfiles_operator.liveness import Liveness


def get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_healthz_follows_the_heartbeat() -> None:
    async def scenario() -> list[int]:
        # Two seconds: room for the first requests on a loaded machine, before staleness.
        liveness = Liveness(max_age=2.0)
        server = await liveness.serve("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        codes = [await asyncio.to_thread(get, port, "/healthz"),
                 await asyncio.to_thread(get, port, "/other")]
        await asyncio.sleep(2.2)
        codes.append(await asyncio.to_thread(get, port, "/healthz"))  # stalled
        liveness.beat()
        codes.append(await asyncio.to_thread(get, port, "/healthz"))
        server.close()
        await server.wait_closed()
        return codes

    assert asyncio.run(scenario()) == [200, 404, 503, 200]
