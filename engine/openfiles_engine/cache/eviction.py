"""Eviction: which clean files lose their cached data (:func:`evictable`).

Only clean data is ever chosen: dirty files and files never exported hold the
only copy of their bytes. Least recently read first, a file's data goes while
the cache is over its size bound (bytes), or once unread for ``ttl`` seconds.
The engine does the dropping (or trims an open file behind its reader).
"""

from __future__ import annotations

from collections.abc import Iterable

from openfiles_engine.state.inode import Node


def evictable(nodes: Iterable[Node], cache_size: int, ttl: float, now: float) -> list[Node]:
    """Clean nodes whose data should go: expired first, then LRU until under ``cache_size``.

    Dirty data and files never exported are never chosen. Open files are: the
    caller trims them behind the reader instead of dropping them whole.
    """
    clean = [
        n for n in nodes
        if n.kind == "file" and not n.dirty and n.etag is not None and not n.lost
        and n.cached_bytes() > 0
    ]
    clean.sort(key=lambda n: n.last_access)
    total = sum(n.cached_bytes() for n in clean)
    out: list[Node] = []
    for node in clean:
        if total > cache_size or now - node.last_access > ttl:
            out.append(node)
            total -= node.cached_bytes()
    return out
