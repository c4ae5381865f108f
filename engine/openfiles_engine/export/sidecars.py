"""Which sidecars a directory holds, as one LIST tells it, for the stale-sidecar check.

The export of a file that its own create-only PUT made must remove a sidecar left
at its key by a deleted version (docs/SEMANTICS.md, "stale sidecars"). Asking with
a HEAD per file doubled the requests of small creates (1000 creates were 1000 PUTs
and 1000 HEADs). :class:`SidecarLists` answers from one LIST of the directory's
sidecars instead, for every new file of that directory exported within ``TTL``:
only a name the LIST shows costs a HEAD. A LIST is read again once a journal entry
was replayed (a rename or a delete moves sidecars); the sidecars the exporter puts
itself are added as it puts them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import trio

from openfiles_engine.bucket.asyncstore import AsyncStore
from openfiles_engine.bucket.store import ObjectNotFound

TTL = 1.0
"""Seconds one LIST of a directory's sidecars answers for."""
MAX_DIRS = 256
"""Directories remembered at once (the oldest are forgotten first)."""
BIG = 1000
"""A directory with more sidecars than one LIST page is asked with a HEAD per new
file instead, for ``BIG_TTL`` seconds: its LIST would cost more than the HEADs."""
BIG_TTL = 60.0


class SidecarLists:
    def __init__(self, store: AsyncStore, replayed: Callable[[], int]) -> None:
        self.store = store
        self.replayed = replayed
        """Moves whenever the journal changed the bucket: a LIST read before is stale."""
        self._lists: dict[str, tuple[float, int, set[str] | None]] = {}
        """prefix -> (when its LIST started, ``replayed`` then, the sidecar names;
        None for a directory with more than ``BIG``)."""
        self._locks: dict[str, trio.Lock] = {}

    async def may_hold(self, sc_key: str) -> bool:
        """False when the LIST of ``sc_key``'s directory shows no sidecar there."""
        prefix, _, name = sc_key.rpartition("/")
        lock = self._locks.setdefault(prefix, trio.Lock())
        async with lock:  # the first export of a directory lists it, the others wait
            hit = self._lists.get(prefix)
            if hit is None or not self._fresh(hit):
                hit = await self._list(prefix)
        return hit[2] is None or name in hit[2]  # None: a big directory, ask with a HEAD

    def _fresh(self, hit: tuple[float, int, set[str] | None]) -> bool:
        started, replayed, names = hit
        if names is None:
            return time.monotonic() - started < BIG_TTL
        return time.monotonic() - started < TTL and replayed == self.replayed()

    async def _list(self, prefix: str) -> tuple[float, int, set[str] | None]:
        replayed, start = self.replayed(), time.monotonic()
        try:
            objects, _ = await self.store.list_dir(f"{prefix}/")
        except ObjectNotFound:
            objects = []
        names = {info.key.rsplit("/", 1)[-1] for info in objects}
        hit = (start, replayed, names if len(names) <= BIG else None)
        self._lists.pop(prefix, None)
        self._lists[prefix] = hit
        while len(self._lists) > MAX_DIRS:
            del self._lists[next(iter(self._lists))]
        if len(self._locks) > 2 * MAX_DIRS:  # also those of LISTs that failed
            for old in [p for p, lk in self._locks.items()
                        if p not in self._lists and not lk.locked()]:
                del self._locks[old]
        return hit

    def put(self, sc_key: str) -> None:
        """The exporter put the sidecar ``sc_key``."""
        prefix, _, name = sc_key.rpartition("/")
        hit = self._lists.get(prefix)
        if hit is not None and hit[2] is not None:
            hit[2].add(name)
