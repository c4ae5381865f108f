"""eviction.py: which clean files lose their cached data."""

from __future__ import annotations

from openfiles_engine.cache.eviction import evictable
from openfiles_engine.state.inode import Node


def node(ino: int, *, size: int, access: float, dirty: bool = False, etag: str | None = "e",
         opens: int = 0) -> Node:
    n = Node(ino=ino, parent=1, name=str(ino), kind="file", mode=0o644, uid=0, gid=0,
             size=size, etag=etag, dirty=dirty, last_access=access, full=True)
    n.opens = opens
    return n


def test_eviction_takes_least_recently_used_clean_data_only() -> None:
    nodes = [
        node(2, size=100, access=1.0),
        node(3, size=100, access=3.0),
        node(4, size=100, access=2.0, dirty=True),
        node(5, size=100, access=0.5, etag=None),  # never exported: the only copy
        node(6, size=100, access=4.0),
    ]
    chosen = evictable(nodes, cache_size=150, ttl=1e9, now=5.0)
    assert [n.ino for n in chosen] == [2, 3]
    expired = evictable(nodes, cache_size=10**9, ttl=2.5, now=5.0)
    assert [n.ino for n in expired] == [2]  # unread for 4 s; node 3 only for 2 s
