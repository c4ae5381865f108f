"""The benchmark's only door to the bucket: obstore's synchronous API.

It serves two purposes: the raw object-store anchor (the same bytes moved by
plain GET/PUT/LIST/HEAD, no FUSE), and the durability checks of the mounted
targets (poll until written bytes are really in the bucket).

All paths given to :class:`Bucket` are relative to the site's prefix.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import timedelta

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import S3Store

from openfiles_bench.server import S3Site

MiB = 1 << 20

StoreError = BaseError
"""What obstore raises when the bucket refuses or cannot be reached."""


class DurabilityTimeout(RuntimeError):
    """Written data did not show up in the bucket within the allowed time."""


def pattern_block(seed: int = 7) -> bytes:
    """1 MiB of incompressible bytes; file content at offset o is ``block[o % MiB]``."""
    import random

    return random.Random(seed).randbytes(MiB)


def chunks(block: bytes, size: int) -> Iterator[bytes | memoryview]:
    """``size`` bytes of the repeated pattern, as pieces of at most 1 MiB."""
    view = memoryview(block)
    full, rest = divmod(size, len(block))
    for _ in range(full):
        yield view
    if rest:
        yield view[:rest]


class Bucket:
    """Synchronous obstore access to one :class:`S3Site`.

    It holds no state of its own beyond obstore's store, which is safe to use
    from several threads at once: the parallel workloads share one Bucket.
    """

    def __init__(self, site: S3Site) -> None:
        self.site = site
        self.store = S3Store(
            site.bucket,
            endpoint=site.endpoint,
            region=site.region,
            access_key_id=site.access_key,
            secret_access_key=site.secret_key,
            virtual_hosted_style_request=False,
            # A 1 GiB GET is one request; the 30 s default could cut it short.
            client_options={"allow_http": True, "timeout": timedelta(minutes=10)},
        )

    def put(self, path: str, data: bytes | Iterable[bytes | memoryview]) -> None:
        """Store ``data`` at ``path``; an iterable goes up as a multipart upload."""
        obstore.put(self.store, self.site.key(path), data)

    def read_all(self, path: str) -> int:
        """GET the whole object, streamed in 1 MiB pieces; returns its length."""
        total = 0
        for piece in obstore.get(self.store, self.site.key(path)).stream(min_chunk_size=MiB):
            total += len(piece)
        return total

    def stream_range(self, path: str, start: int, end: int) -> int:
        """GET bytes [start, end), streamed in 1 MiB pieces; returns how many came.

        Safe to call from several threads at once (obstore's store is).
        """
        total = 0
        result = obstore.get(self.store, self.site.key(path), options={"range": (start, end)})
        for piece in result.stream(min_chunk_size=MiB):
            total += len(piece)
        return total

    def read_range(self, path: str, start: int, length: int) -> bytes:
        return bytes(obstore.get_range(self.store, self.site.key(path), start=start, length=length))

    def size(self, path: str) -> int | None:
        """Size of the object at ``path``, None when there is none (a HEAD request)."""
        try:
            return obstore.head(self.store, self.site.key(path))["size"]
        except (NotFoundError, FileNotFoundError):
            return None

    def list_dir(self, path: str) -> int:
        """One delimited listing of directory ``path``; returns the number of entries."""
        result = obstore.list_with_delimiter(self.store, self.site.key(path).rstrip("/") + "/")
        return len(result["objects"]) + len(result["common_prefixes"])

    def sizes_under(self, path: str) -> dict[str, int]:
        """Every object under directory ``path``: relative path -> size."""
        base = self.site.key(path).rstrip("/") + "/"
        found: dict[str, int] = {}
        for batch in obstore.list(self.store, base, chunk_size=1000):
            for meta in batch:
                found[meta["path"][len(base) :]] = meta["size"]
        return found

    def delete_under(self, path: str) -> int:
        """Delete every object under directory ``path`` ("" is the whole prefix)."""
        base = self.site.key(path).rstrip("/") + "/"
        keys = [meta["path"] for batch in obstore.list(self.store, base) for meta in batch]
        for start in range(0, len(keys), 1000):
            obstore.delete(self.store, keys[start : start + 1000])
        return len(keys)

    def wait_object(self, path: str, size: int, deadline: float, poll: float = 0.02) -> float:
        """Poll until ``path`` holds ``size`` bytes; returns time.monotonic() when seen.

        Raises DurabilityTimeout at ``deadline`` (a time.monotonic() value).
        """
        while True:
            if self.size(path) == size:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise DurabilityTimeout(f"{path} did not reach {size} bytes in the bucket")
            time.sleep(poll)

    def wait_files(
        self, path: str, names: Iterable[str], size: int, deadline: float, poll: float = 0.05
    ) -> float:
        """Poll until every ``names`` under ``path`` holds ``size`` bytes; see wait_object."""
        missing = set(names)
        while True:
            sizes = self.sizes_under(path)
            missing = {name for name in missing if sizes.get(name) != size}
            if not missing:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise DurabilityTimeout(f"{len(missing)} files under {path} not in the bucket")
            time.sleep(poll)
