"""The liveness endpoint: ``GET /healthz`` answers 200 while the operator's loop is alive.

Alive means the leader-election loop ticked within ``max_age`` seconds; it ticks
on standbys and on the leader alike, and a blocked event loop cannot answer at
all. Anything else answers 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import time


class Liveness:
    def __init__(self, max_age: float) -> None:
        self._max_age = max_age
        self._beat = time.monotonic()

    def beat(self) -> None:
        self._beat = time.monotonic()

    @property
    def alive(self) -> bool:
        return time.monotonic() - self._beat <= self._max_age

    async def serve(self, host: str, port: int) -> asyncio.Server:
        """Start listening; the caller closes the returned server."""
        return await asyncio.start_server(self._handle, host, port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) >= 2 else ""
            if path != "/healthz":
                code, text = "404 Not Found", "not found\n"
            elif self.alive:
                code, text = "200 OK", "ok\n"
            else:
                code, text = "503 Service Unavailable", "stalled\n"
            writer.write(
                f"HTTP/1.1 {code}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(text)}\r\nConnection: close\r\n\r\n{text}".encode()
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
