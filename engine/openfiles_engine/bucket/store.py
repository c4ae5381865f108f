"""The only module that calls obstore.

Exceptions (every store failure leaves as one of these, most specific first)::

    StoreError                 anything else; message has no credentials
    ├── ObjectNotFound         the key does not exist
    ├── Conflict               a precondition failed (If-Match / If-None-Match)
    └── Unsupported            the store cannot do this (LocalStore + If-Match)

:class:`Store` is synchronous (obstore's sync API releases the GIL);
:class:`~openfiles_engine.bucket.asyncstore.AsyncStore` runs it in trio worker
threads under a CapacityLimiter.
Keys are volume-relative ("a/b.txt"); the store adds the volume prefix.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import obstore
import obstore.exceptions as oberr
from obstore.store import AzureStore, GCSStore, LocalStore, MemoryStore, S3Store

from openfiles_engine.bucket import fence
from openfiles_engine.bucket.layout import META_DIR
from openfiles_engine.config import Credentials

log = logging.getLogger(__name__)

MULTIPART_THRESHOLD = 64 * 2**20
"""Bytes: bigger files go up in parts (never conditional; see SEMANTICS.md)."""
PART_SIZE = 16 * 2**20
CHUNK = 2**20
"""Bytes per buffer of a range GET's body (:meth:`Store.get_chunks`)."""
UNSIGNED_PAYLOAD = True
"""S3 requests sign ``UNSIGNED-PAYLOAD`` instead of the body's SHA-256, as Mountpoint
for S3 does: hashing every uploaded byte cost the engine a third of its CPU and
MinIO a fifth of its own (docs/ENGINE.md, "Upload while written"). Over https, TLS
guards the body; over plain http, an attacker on the path could change an upload,
as it can change every download, which no signature covers either."""
STAGING_SUFFIX = ".tmp"
"""``file://`` PUTs and copies are written at ``.openfiles-meta/<digits>.tmp`` first."""

T = TypeVar("T")

QUOTED_IN_LISTS = frozenset({"az", "gs"})
"""Kinds whose listings give ETags without the quotes of HEAD and PUT (see ``_info``)."""
CREATE_ONLY = frozenset({"file", "gs"})
"""Kinds whose PUTs can be conditional on absence only (SEMANTICS.md, "Conditional
writes per store"): ``file://`` (LocalStore has no If-Match) and ``gs://``
(obstore's conditional update on GCS needs the object's generation, which the
engine does not keep). An update there is checked by a HEAD first."""


class StoreError(Exception):
    """A store call failed; ``str()`` is safe to log and to show in status."""


class ObjectNotFound(StoreError):
    pass


class Conflict(StoreError):
    pass


class Unsupported(StoreError):
    pass


class Changed(StoreError):
    """The object is no longer the version a read asked for (If-Match failed)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None
    mtime_ns: int


def _info(meta: Any, quote: bool = False) -> ObjectInfo:
    """``quote``: the store lists ETags bare (Azure's List Blobs) but gives them quoted
    on HEAD, GET and PUT; the listing's are quoted here, so that one object has one
    ETag whichever request saw it."""
    etag = meta.get("e_tag")
    if quote and etag and not etag.startswith(('"', "W/")):
        etag = f'"{etag}"'
    return ObjectInfo(
        key=meta["path"],
        size=int(meta["size"]),
        etag=etag,
        mtime_ns=int(meta["last_modified"].timestamp() * 1e9),
    )


def _map(exc: Exception, key: str, lookup: bool = False) -> StoreError:
    """One table from obstore's exceptions to ours, most specific first.

    ``lookup``: a read or delete of ``key``, where a name too long to exist is
    ObjectNotFound (for a write it stays an error)."""
    if isinstance(exc, FileNotFoundError | oberr.NotFoundError):
        return ObjectNotFound(f"not found: {key}")
    if isinstance(exc, oberr.PreconditionError | oberr.AlreadyExistsError):
        return Conflict(f"precondition failed: {key}")
    if isinstance(exc, NotImplementedError | oberr.NotSupportedError):
        return Unsupported(f"not supported by this store: {key}")
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if lookup and f"(os error {errno.ENAMETOOLONG})" in first_line:
        # A file:// key whose name is too long for the local file system cannot
        # exist there (a 255-byte name's sidecar, ``<name>.meta``): nothing to find.
        return ObjectNotFound(f"not found (name too long for the file system): {key}")
    return StoreError(f"{type(exc).__name__}: {first_line[:300]}")


def _gcs_options(creds: Credentials, endpoint: str) -> dict[str, str]:
    """GCSStore's options: the service-account JSON key from ``creds`` (else obstore
    looks in the environment: ``GOOGLE_APPLICATION_CREDENTIALS``, ...)."""
    options = {"service_account_key": creds.gcs_service_account_key, "base_url": endpoint}
    return {k: v for k, v in options.items() if v}


def _azure_options(creds: Credentials, endpoint: str) -> dict[str, str]:
    """AzureStore's options: the account in ``creds`` with its SAS token (which wins)
    or account key; ``endpoint`` replaces ``https://ACCOUNT.blob.core.windows.net``."""
    if not creds.azure_account_name:
        raise StoreError("az:// needs the storage account's name (--account or "
                         "AZURE_STORAGE_ACCOUNT_NAME)")
    secret = ({"sas_key": creds.azure_sas_token.lstrip("?")} if creds.azure_sas_token
              else {"account_key": creds.azure_account_key})
    options = {"account_name": creds.azure_account_name, "endpoint": endpoint, **secret}
    return {k: v for k, v in options.items() if v}


class Store:
    """Synchronous object access for one volume (bucket + prefix)."""

    def __init__(self, backend: Any, kind: str, url: str) -> None:
        self._backend = backend
        self.kind = kind
        self.url = url
        self._quote = kind in QUOTED_IN_LISTS
        self.conditional: Literal["full", "create-only"] = (
            "create-only" if kind in CREATE_ONLY else "full"
        )
        self.fenced = kind == "s3"
        """Deletes go through a fence (fence.py); off once the bucket's ETags are not
        MD5s, for then other mounts would not know a fence for one."""
        self._mine: set[str] = set()
        """Keys where this store put a fence that is still to go (its delete or copy
        failed after it): a later try of the same change takes it for its own."""
        self.read_only = False
        """A read-only mount: it never writes, so it removes no fence either."""
        self.fence_owner: tuple[str, int] | None = None
        """(the cache's token, this engine run's number), written into every fence:
        a fence of an earlier run was left by a crash, and is ours to remove
        (fence.py). None: fences name no maker (a store outside an engine)."""

    @classmethod
    def open(
        cls, url: str, *, endpoint: str = "", region: str = "",
        credentials: Credentials | None = None,
    ) -> Store:
        """Build a store from ``s3://b/p``, ``gs://b/p``, ``az://container/p``,
        ``file:///dir``, ``memory://``.

        Raises StoreError with a message naming the problem (never a secret).
        """
        parts = urlsplit(url)
        scheme = parts.scheme
        safe_url = f"{scheme}://{parts.hostname or ''}{parts.path}"
        retry: Any = {"max_retries": 2, "retry_timeout": timedelta(seconds=10)}
        client: Any = {"connect_timeout": "5s", "timeout": "120s"}
        try:
            if scheme == "memory":
                return cls(MemoryStore(), "memory", "memory://")
            if scheme == "file":
                root = parts.path
                if parts.netloc not in ("", "localhost") or not root.startswith("/"):
                    raise StoreError(f"file:// URL needs an absolute path (file:///dir): {url!r}")
                os.makedirs(root, exist_ok=True)
                return cls(LocalStore(root), "file", f"file://{root}")
            if scheme == "s3":
                creds = credentials or Credentials()
                kwargs: Any = {}
                if endpoint:
                    kwargs["endpoint"] = endpoint
                    if endpoint.startswith("http://"):
                        client["allow_http"] = True
                if region:
                    kwargs["region"] = region
                elif endpoint:
                    kwargs["region"] = "us-east-1"
                if creds.access_key_id:
                    kwargs["access_key_id"] = creds.access_key_id
                    kwargs["secret_access_key"] = creds.secret_access_key
                if creds.session_token:
                    kwargs["token"] = creds.session_token
                prefix = parts.path.strip("/") or None
                # UNSIGNED_PAYLOAD: the body is not hashed into the signature (see there).
                backend = S3Store(
                    parts.hostname, prefix=prefix, client_options=client,
                    retry_config=retry, conditional_put="etag",
                    unsigned_payload=UNSIGNED_PAYLOAD, **kwargs,
                )
                return cls(backend, "s3", safe_url)
            if scheme in ("gs", "az"):
                creds = credentials or Credentials()
                builder: Any
                options: Any
                builder, options = ((GCSStore, _gcs_options(creds, endpoint)) if scheme == "gs"
                                    else (AzureStore, _azure_options(creds, endpoint)))
                if endpoint.startswith("http://"):
                    client["allow_http"] = True
                backend = builder(parts.hostname or "", prefix=parts.path.strip("/") or None,
                                  client_options=client, retry_config=retry, **options)
                return cls(backend, scheme, safe_url)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot open {safe_url}: {_map(exc, '')}") from None
        raise StoreError(f"unsupported URL scheme {scheme!r} (use s3, gs, az, file, memory)")

    def _call(self, key: str, fn: Callable[[], T], *, lookup: bool = False) -> T:
        try:
            return fn()
        except StoreError:
            raise
        except Exception as exc:
            raise _map(exc, key, lookup) from None

    def list_dir(self, prefix: str) -> tuple[list[ObjectInfo], list[str]]:
        """One level under ``prefix`` ("" or "a/b/"): (objects, child prefixes), sorted.

        Child prefixes come without their trailing slash.
        """
        res = self._call(
            prefix, lambda: obstore.list_with_delimiter(self._backend, prefix or None)
        )
        infos = [_info(m, self._quote) for m in res["objects"]]
        objects = sorted((o for o in infos if not self._fence(o)), key=lambda o: o.key)
        if len(objects) < len(infos):
            self._drop_stale(o for o in infos if self._fence(o))
        return objects, sorted(p.rstrip("/") for p in res["common_prefixes"])

    def _drop_stale(self, fences: Iterable[ObjectInfo]) -> None:
        """Delete the fences a listing met that no living process will delete."""
        for info in fences:
            with contextlib.suppress(StoreError):
                self.drop_if_dead(info)

    def drop_if_dead(self, info: ObjectInfo) -> bool:
        """Delete the fence ``info`` if nobody else will: a stale one, or one an
        earlier run of this engine left when it died between a fence's two requests
        (fence.py). True if it went. A read-only mount removes none."""
        # A key in _mine: this run fenced it again meanwhile (its replay removed the
        # dead fence first), so the fence there now is its own, for its owner to delete.
        if self.read_only or info.key in self._mine:
            return False
        if not (fence.stale(info) or self.left_by_earlier_run(info.key)):
            return False
        log.info("removing %r, a fence left by a delete cut short", info.key)
        self.delete(info.key)
        return True

    def list_all(self, prefix: str) -> list[ObjectInfo]:
        """Every object under ``prefix`` (recursive)."""
        out: list[ObjectInfo] = []

        def run() -> None:
            for chunk in obstore.list(self._backend, prefix or None):
                out.extend(o for m in chunk if not self._fence(o := _info(m, self._quote)))

        self._call(prefix, run)
        return out

    def any_under(self, prefix: str) -> bool:
        """Is there an object under ``prefix`` ("a/b/")? One LIST request."""
        def run() -> bool:
            # A fence is no object: a deleted directory's last fence must not keep it.
            return any(not self._fence(_info(m)) for chunk in
                       obstore.list(self._backend, prefix, chunk_size=16) for m in chunk)

        try:
            return self._call(prefix, run, lookup=True)
        except ObjectNotFound:
            return False

    def head(self, key: str) -> ObjectInfo:
        """The object at ``key``; ObjectNotFound if none, or if a delete's fence is there."""
        info = self._head(key)
        if self._fence(info):
            with contextlib.suppress(StoreError):  # the answer stands either way
                self.drop_if_dead(info)
            raise ObjectNotFound(f"not found: {key} (being deleted)")
        return info

    def head_any(self, key: str) -> ObjectInfo | None:
        """What is at ``key``, a fence included; None if nothing."""
        try:
            return self._head(key)
        except ObjectNotFound:
            return None

    def _head(self, key: str) -> ObjectInfo:
        return self._call(key, lambda: _info(obstore.head(self._backend, key)), lookup=True)

    def _fence(self, info: ObjectInfo) -> bool:
        return self.fenced and fence.is_fence(info)

    def get_chunks(self, key: str, start: int, end: int, *, if_match: str | None = None,
                   chunk: int = CHUNK,
                   sink: Callable[[int, memoryview], object] | None = None) -> list[memoryview]:
        """Bytes [start, end) of ``key`` as consecutive buffers of ``chunk`` bytes (the
        last may be shorter; fewer bytes at the end of the object), not copied.

        One range GET, read into one buffer outside the GIL; the buffers returned are
        views of it, so it lives until the last of them is dropped. (glibc reuses such
        buffers of up to 32 MiB: cache/malloc.py.) With ``if_match``, only of that
        version: Changed if the object was replaced, so that pieces of two versions
        never make one file. ``sink(offset, buffer)`` is called with each buffer, in
        order, once the range has arrived, in the calling thread (the read path
        writes it into the cache there); what it raises ends the call and leaves as
        it is, unmapped.
        """
        if end <= start:
            return [memoryview(b"")]
        options: Any = {"range": (start, end)}
        if if_match is not None:
            options["if_match"] = if_match
        raised: list[BaseException] = []

        def run() -> list[memoryview]:
            result = obstore.get(self._backend, key, options=options)
            parts, pos = [], start
            # Read whole by obstore, with the GIL released: its stream() hands out each
            # buffer as a new Python bytes, zero-filled and then copied into with the GIL
            # held (docs/ENGINE.md, "One buffer per GET").
            whole = memoryview(result.bytes())
            for at in range(0, len(whole), chunk):
                view = whole[at:at + chunk]
                if sink is not None:
                    try:
                        sink(pos, view)
                    except BaseException as exc:
                        raised.append(exc)
                        raise
                parts.append(view)
                pos += len(view)
            return parts

        try:
            return self._call(key, run)
        except Conflict:
            raise Changed(f"changed in the bucket while it was read: {key}") from None
        except StoreError:
            if raised:
                raise raised[0] from None
            raise

    def get(self, key: str) -> bytes:
        return self._call(key, lambda: bytes(obstore.get(self._backend, key).bytes()),
                          lookup=True)

    def put_bytes(self, key: str, data: bytes, *, if_match: str | None, create: bool) -> str | None:
        """Conditional single-request PUT; returns the new ETag.

        ``create``: fail with Conflict if the key exists (If-None-Match).
        ``if_match``: fail with Conflict unless the current ETag matches. On a
        create-only store this is checked with a HEAD first (a small race window).
        Neither: unconditional overwrite.
        """
        mode: Any = "overwrite"
        if create:
            mode = "create"
        elif if_match is not None:
            if self.conditional == "full":
                mode = {"e_tag": if_match}
            else:
                self._check_etag(key, if_match)
        try:
            return self._put(key, data, mode, create=create, use_multipart=False)
        except Conflict:
            # A create that met another mount's delete in its last step: the key is
            # free once that delete's fence goes.
            if not (create and self.fenced) or fence.clear(self, key) is not None:
                raise
            return self._put(key, data, mode, create=create, use_multipart=False)

    def put_file(self, key: str, path: str, *, if_match: str | None, create: bool) -> str | None:
        """PUT a local file; multipart above MULTIPART_THRESHOLD.

        Multipart uploads cannot be conditional, so the precondition is checked
        with a HEAD just before (documented race window).
        """
        size = os.path.getsize(path)
        if size <= MULTIPART_THRESHOLD:
            with open(path, "rb") as f:
                data = f.read()
            return self.put_bytes(key, data, if_match=if_match, create=create)
        self.check(key, if_match=if_match, create=create)
        with open(path, "rb") as f:
            # A multipart upload cannot be conditional: the HEAD above checked.
            return self._put(key, f, "overwrite", create=create, use_multipart=True,
                             chunk_size=PART_SIZE, max_concurrency=4)

    def put_parts(self, key: str, parts: Iterable[bytes], *, if_match: str | None,
                  create: bool, part_size: int, concurrency: int) -> str | None:
        """A multipart upload of the bytes ``parts`` yields, sent as they come; returns
        the ETag. For a file uploaded while it is written (``export/stream.py``).

        ``parts`` may block until it has more; up to ``concurrency`` parts of
        ``part_size`` bytes are in flight and held in memory. Once ``parts`` is
        exhausted, the precondition (as :meth:`put_bytes`) is checked with a HEAD,
        then the last part and the complete are sent: obstore's multipart upload
        takes no condition, so a change landing in that window (one part upload and
        the complete) is overwritten. An exception from ``parts``, or Conflict from
        the check, aborts the upload (nothing at ``key`` changes) and is raised.
        S3 only: other stores raise Unsupported before anything is sent.
        """
        if self.kind != "s3":
            raise Unsupported(f"uploads while written are for s3:// only: {key}")

        with ThreadPoolExecutor(1) as other:
            def checked() -> Iterator[bytes]:
                yield from parts
                # From another thread: this one runs obstore's runtime, and a call
                # of obstore here would start a runtime inside it (a panic).
                other.submit(self.check, key, if_match=if_match, create=create).result()

            return self._call(key, lambda: obstore.put(
                self._backend, key, checked(), use_multipart=True, chunk_size=part_size,
                max_concurrency=concurrency)["e_tag"])

    def check(self, key: str, *, if_match: str | None, create: bool) -> None:
        """Conflict unless ``key`` is absent (``create``) or at ETag ``if_match``: a HEAD."""
        if create:
            if (fence.clear(self, key) if self.fenced else self.head_any(key)) is None:
                return
            raise Conflict(f"precondition failed: {key}")
        if if_match is not None:
            self._check_etag(key, if_match)

    def _put(self, key: str, body: Any, mode: Any, *, create: bool,
             **options: Any) -> str | None:
        """One ``obstore.put`` of ``body`` at ``key`` with ``mode``; returns the new ETag.

        A ``file://`` store goes through :meth:`_staged`: LocalStore's own staging
        name (``<key>#<n>``) would pass the 255-byte name limit of the local file
        system for a long name, and every PUT of such a file would fail.
        """
        if self.kind != "file":
            res = self._call(key, lambda: obstore.put(self._backend, key, body, mode=mode,
                                                      **options))
            log.debug("PUT %r (%s) -> %s", key, mode, res["e_tag"])
            return res["e_tag"]
        return self._staged(key, lambda tmp: obstore.put(self._backend, tmp, body, **options),
                            create=create)

    def _staged(self, key: str, write: Callable[[str], Any], *, create: bool) -> str | None:
        """``file://`` only: ``write(tmp)`` at a short temporary key beside ``key``,
        then rename it into place; returns the ETag of what ``write`` returned.

        The temporary key is ``.openfiles-meta/<digits>.tmp``: in the reserved
        folder, where no listing of the engine shows it (only ``*.meta`` names
        there are read), and on the same file system, so the rename keeps the
        inode and mtime LocalStore's ETag is made of. With ``create`` the rename
        is a hard link that fails if ``key`` exists (Conflict), so ``If-None-Match``
        keeps its meaning; otherwise it replaces ``key`` atomically. A crash between
        the two steps leaves a temporary file there, nothing at ``key``.
        """
        tmp = f"{META_DIR}/{int.from_bytes(os.urandom(8), 'big')}{STAGING_SUFFIX}"
        res = self._call(key, lambda: write(tmp))
        try:
            self._call(key, lambda: obstore.rename(self._backend, tmp, key, overwrite=not create))
        except StoreError:
            with contextlib.suppress(StoreError):
                self._call(tmp, lambda: obstore.delete(self._backend, tmp))
            raise
        return res.get("e_tag") if isinstance(res, dict) else None

    def _check_etag(self, key: str, etag: str) -> None:
        try:
            current = self.head(key).etag
        except ObjectNotFound:
            raise Conflict(f"precondition failed: {key} was deleted") from None
        if current != etag:
            raise Conflict(f"precondition failed: {key}")

    def delete(self, key: str) -> None:
        """Delete ``key``; a missing key is not an error (idempotent)."""
        try:
            self._call(key, lambda: obstore.delete(self._backend, key), lookup=True)
        except ObjectNotFound:
            pass
        log.debug("DELETE %r", key)

    def copy(self, src: str, dst: str) -> None:
        """Copy ``src`` over ``dst`` (a ``file://`` store stages it, see :meth:`_staged`)."""
        if self.kind == "file":
            self._staged(dst, lambda tmp: obstore.copy(self._backend, src, tmp), create=False)
            return
        self._call(src, lambda: obstore.copy(self._backend, src, dst))
        log.debug("COPY %r -> %r", src, dst)

    def etag_or_none(self, key: str) -> str | None:
        """The current ETag of ``key``, or None if there is no such object.

        A store that gives no ETags makes every present object ``""`` (never None).
        """
        try:
            return self.head(key).etag or ""
        except ObjectNotFound:
            return None

    def delete_if(self, key: str, etag: str) -> None:
        """Delete ``key`` only if its ETag is ``etag``; a missing key is not an error.

        Conflict if another version is there. On S3 the version is first replaced
        by a fence, If-Match ``etag`` (fence.py). Elsewhere neither the DELETE nor
        obstore can carry If-Match, so the check is a HEAD just before: a change
        that lands between the two requests is deleted (the window SEMANTICS.md
        names).
        """
        if self.fenced:
            self._delete_fenced(key, etag)
            return
        current = self.etag_or_none(key)
        if current is None:
            return
        if current != etag:
            raise Conflict(f"precondition failed: {key} changed")
        self.delete(key)

    def _take(self, key: str) -> None:
        """Put a fence at ``key`` if nothing is there (a fence that goes included, and
        one of ours, left by an earlier try)."""
        try:
            self._put_fence(key, "create")
        except Conflict:
            if key in self._mine and self._fence_at(key):
                return
            if fence.clear(self, key) is not None:
                raise Conflict(f"precondition failed: {key} exists") from None
            self._put_fence(key, "create")
        self._mine.add(key)

    def _put_fence(self, key: str, mode: Any) -> str | None:
        return self._put(key, fence.FENCE, mode, create=mode == "create",
                         attributes=fence.owner_tag(self.fence_owner))

    def _fence_at(self, key: str) -> bool:
        info = self.head_any(key)
        return info is not None and fence.is_fence(info)

    def left_by_earlier_run(self, key: str) -> bool:
        """Whether a fence at ``key`` was put by an earlier run of this engine (one
        GET of the fence's few bytes, for its metadata)."""
        if self.fence_owner is None:
            return False

        def run() -> tuple[ObjectInfo, str | None]:
            result = obstore.get(self._backend, key)
            tag = result.attributes.get(fence.OWNER)
            result.bytes()
            return _info(result.meta), None if tag is None else str(tag)

        try:
            info, tag = self._call(key, run, lookup=True)
        except ObjectNotFound:
            return False
        return fence.is_fence(info) and fence.left_by_earlier_run(tag, self.fence_owner)

    def _delete_fenced(self, key: str, etag: str) -> None:
        try:
            put = self._put_fence(key, {"e_tag": etag})
        except ObjectNotFound:
            return
        except Conflict:
            info = self.head_any(key)  # S3 says 412 for a missing key too
            if info is None:
                return
            if not fence.is_fence(info):
                raise Conflict(f"precondition failed: {key} changed") from None
            # Ours, from a try whose DELETE failed or from a run that died between
            # the two requests, or a stale one: it goes. Another mount's fresh one:
            # that mount is deleting the same version.
            if key in self._mine:
                self.delete(key)
                self._mine.discard(key)
            else:
                self.drop_if_dead(info)
            return
        if put != fence.FENCE_ETAG:
            log.warning("the bucket's ETags are not MD5 sums (SSE-KMS?): deletes check "
                        "the version with a HEAD just before, as on other stores")
            self.fenced = False
        self._mine.add(key)
        self.delete(key)
        self._mine.discard(key)

    def copy_if(self, src: str, dst: str, *, if_match: str | None) -> str | None:
        """Copy ``src`` to a ``dst`` that does not exist; returns the copy's ETag.

        ``if_match``: the ETag ``src`` must have (None: any version). ObjectNotFound
        if ``src`` is gone, Conflict if it is another version or ``dst`` exists.
        obstore's copy takes no conditions on S3, so the source's version is a HEAD
        just before the copy (a window, as in :meth:`delete_if` elsewhere). On S3
        ``dst`` is first taken with a fence PUT If-None-Match (fence.py), which the
        copy then replaces: a file another mount makes at ``dst`` meanwhile meets
        the fence instead of being copied over. Elsewhere it is a HEAD too.
        """
        current = self.etag_or_none(src)
        if current is None:
            raise ObjectNotFound(f"not found: {src}")
        if if_match is not None and current != if_match:
            raise Conflict(f"precondition failed: {src} changed")
        if self.fenced:
            self._take(dst)
        elif self.head_any(dst) is not None:
            raise Conflict(f"precondition failed: {dst} exists")
        try:
            self.copy(src, dst)
        except StoreError:
            if self.fenced:
                with contextlib.suppress(StoreError):
                    self.delete(dst)  # only our fence is there: nobody else writes over one
                    self._mine.discard(dst)
            raise
        self._mine.discard(dst)
        return self.etag_or_none(dst)
