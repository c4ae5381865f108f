"""The JSON-line protocol (:mod:`openfiles_contracts.jsonline`) on the event loop.

:func:`arequest` is the asyncio form of :func:`openfiles_contracts.jsonline.request`:
the same reply and the same :class:`PeerError` cases, but it holds no thread, so slow
mounts cannot starve a thread pool that stats calls also need. Every call has a
deadline. The blocking form, used by the Prometheus collector in its own thread, is
the contracts' own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from openfiles_contracts.jsonline import MAX_REPLY, decode_reply, encode
from openfiles_contracts.jsonline import PeerError as PeerError


async def arequest(path: str, message: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send ``message`` as one line to ``path`` and return the reply object.

    Raises :class:`PeerError` on connection failure, timeout, or a malformed reply.
    """

    async def exchange() -> bytes:
        reader, writer = await asyncio.open_unix_connection(path, limit=MAX_REPLY)
        try:
            writer.write(encode(message))
            await writer.drain()
            return await reader.readline()
        finally:
            writer.close()

    try:
        data = await asyncio.wait_for(exchange(), timeout)
    except TimeoutError:
        raise PeerError(f"no reply from {path} within {timeout:g}s") from None
    except ValueError:  # the line exceeded MAX_REPLY
        raise PeerError(f"reply from {path} too large") from None
    except OSError as exc:
        raise PeerError(f"cannot reach {path}: {exc.strerror or exc}") from None
    return decode_reply(data, path)
