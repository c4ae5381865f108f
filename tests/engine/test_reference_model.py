"""A reference model of one mount (tests/engine/refmodel.py), run as a hypothesis
``RuleBasedStateMachine`` against a real FUSE mount on a real MinIO.

Steps: create, write at an offset (optionally fsync), truncate, rename of files and
directories, unlink, mkdir, rmdir, chmod, chown, utimens, setxattr, symlink;
``kill -9`` of the engine and a remount with the same cache ("reboot"), also with a
write whose file was never closed; ``openfiles flush`` (the control socket); a second
writer putting and deleting keys straight in the bucket (obstore); MinIO stopped and
started around local work. Each example gets a fresh bucket, engine and cache on a
MinIO server of its own.

Checked after every step: the mount shows exactly the model (names, kinds, bytes,
symlink targets, mode, uid, gid, ``user.*`` xattrs, mtimes set with utimens), and
lost+found holds the versions the model put there. After every flush: every local
version acknowledged by close or fsync and not exported before is in the bucket or in
``.openfiles-lost+found-<fsid>/`` (original path in ``user.openfiles.original_path``);
every second-writer version made since the previous flush that the engine could not
have seen is still in the bucket (after this flush the mount shows it: seen);
and the bucket (objects and sidecars) describes exactly the model, so a fresh mount
would show it.

The engine runs with ``--export-delay 3600 --metadata-ttl 0``: files are exported
only by fsync, flush and unmount, so the model knows which paths are dirty, and with
a TTL of 0 every lookup lists the directory, so the engine sees a second writer's
change to a clean file at the next look (close-to-open, SEMANTICS.md).

Choices where docs/SEMANTICS.md leaves room (the model accepts exactly these):
- A second writer changes or deletes a key whose local file is dirty (data or
  attributes): the mount keeps showing the local version until its export; then the
  bucket wins. Local bytes not exported yet go to lost+found (no copy if the bucket
  holds the same bytes). If only attributes were changed locally, nothing local is
  lost: the bucket's object shows with the mount defaults (its sidecar describes
  another ETag), and a lost+found copy of the old bytes is allowed but not required.
- A second writer puts a key that was unlinked locally since the last flush: the
  journal delete runs in the background at once, so the key may or may not show
  before the next flush; after it, the second writer's object must be there (an
  unconditional delete would destroy a version the engine never saw).
- The second writer leaves alone paths renamed (either end, whole subtrees) since the
  last flush: whether the journal copy ran before or after the change is timing, and
  SEMANTICS.md does not say where a rename's local bytes go on such a conflict.
- A write whose file was not closed before ``kill -9`` is not acknowledged: after the
  reboot the file has the old or the new size, each byte within it old or new (or
  it is absent, if the crashed writer created it); the model then takes what the
  mount shows as the file's content, which the next flush must send.
- A second writer puts and then deletes the key of a local file never exported: the
  key is absent again, as the engine last saw it; its create-only PUT succeeds.
- Second-writer versions all differ (a counter in front): equal bytes have equal
  ETags, which no precondition can tell apart.
- Symlink modes are not compared (the kernel ignores them).

Bounded run, part of the default suite: 30 examples of up to 40 steps,
``derandomize=True`` (the same examples every run: 34 machines started, 1206
checked steps), about 170 s on a 2-core machine (2:49 measured with
``python -m pytest -p no:cacheprovider tests/engine/test_reference_model.py``).
Long run, for hunting, with a seed (``OPENFILES_MODEL_SHRINK=0`` reports a failure
as found instead of shrinking it, which can take many minutes):

    OPENFILES_MODEL_EXAMPLES=500 OPENFILES_MODEL_STEPS=60 OPENFILES_MODEL_SEED=1234 \\
        .venv/bin/python -m pytest -p no:cacheprovider tests/engine/test_reference_model.py
"""

from __future__ import annotations

import collections
import errno
import os
import time
from pathlib import Path
from typing import Any

import obstore
import pytest
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from fixtures.minio import MinioServer, new_bucket

from .conftest import Backend, MountFactory
from .refmodel import Model
from .refviews import bucket_view, lostfound_view, mount_view

pytestmark = [pytest.mark.fuse, pytest.mark.s3, pytest.mark.timeout(1800)]

EXAMPLES = int(os.environ.get("OPENFILES_MODEL_EXAMPLES", "30"))
STEPS = int(os.environ.get("OPENFILES_MODEL_STEPS", "40"))
SEED = os.environ.get("OPENFILES_MODEL_SEED")
ARGS = ("--export-delay", "3600", "--metadata-ttl", "0")
NAMES = ["a", "b", "c"]
MODES = [0o600, 0o640, 0o700, 0o755]
OWNERS = [(0, 0), (1000, 1000), (0, 100)]
blob = st.binary(max_size=48)
SECOND_WRITER = iter(range(10**9))


def remote_bytes(content: bytes) -> bytes:
    """Every second-writer version is new: the same bytes again would have the same
    ETag, and a conditional PUT cannot (and need not) tell them apart."""
    return b"sw%d:" % next(SECOND_WRITER) + content


def unacknowledged_ok(old: bytes, new: bytes, got: bytes | None, created: bool) -> bool:
    """May a file whose write was never closed or fsynced show ``got`` after a crash?

    docs/SEMANTICS.md, "Crash safety": the size is the old or the new one; each byte
    within it is old or new (past the old size, "old" is a zero); a file the crashed
    writer created may also be absent (``got`` None)."""
    if got is None:
        return created
    if len(got) not in (len(old), len(new)):
        return False
    return all(b == (old[i] if i < len(old) else 0) or (i < len(new) and b == new[i])
               for i, b in enumerate(got))


class Env:
    """What outlives one example: the MinIO server, the mount factory, a counter."""

    def __init__(self, server: MinioServer, mounter: MountFactory, tmp: Path) -> None:
        self.server, self.mounter, self.tmp = server, mounter, tmp
        self.count = 0
        self.steps = 0


class MountModel(RuleBasedStateMachine):
    env: Env

    def __init__(self) -> None:
        super().__init__()
        env = self.env
        env.count += 1
        if env.server.proc is None:
            env.server.start()
        self.backend = Backend.on_s3(new_bucket(env.server))
        self.name = f"c{env.count}"
        self.m = env.mounter(self.backend, *ARGS, name=self.name)
        self.model = Model()

    def teardown(self) -> None:
        if self.env.server.proc is None:
            self.env.server.start()
        self.m.stop()

    @property
    def root(self) -> Path:
        return self.m.path

    def p(self, path: str) -> Path:
        return self.root / path

    # choices
    def live(self, kinds: tuple[str, ...]) -> list[str]:
        return [p for p in self.model.files(kinds) if p not in self.model.maybe_absent]

    def new_path(self, data: st.DataObject) -> str | None:
        parents = [d for d in self.model.dirs() if d.count("/") < 2]
        free = self.model.free_names(data.draw(st.sampled_from(parents)), NAMES)
        return data.draw(st.sampled_from(free)) if free else None

    # local operations
    @rule(data=st.data(), content=blob)
    def create_file(self, data: st.DataObject, content: bytes) -> None:
        path = self.new_path(data)
        if path is None:
            return
        fd = os.open(self.p(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            os.write(fd, content)
        finally:
            os.close(fd)
        self.model.create(path, "file", content)

    @rule(data=st.data(), offset=st.integers(0, 80), content=blob, sync=st.booleans())
    def write(self, data: st.DataObject, offset: int, content: bytes, sync: bool) -> None:
        files = self.live(("file",))
        if not files:
            return
        path = data.draw(st.sampled_from(files))
        fd = os.open(self.p(path), os.O_WRONLY)
        try:
            os.pwrite(fd, content, offset)
            self.model.write(path, offset, content)
            if sync:
                self.fsync(fd, path)
        finally:
            os.close(fd)

    def fsync(self, fd: int, path: str) -> None:
        expect_ok = self.model.export(path)
        try:
            os.fsync(fd)
            got_ok = True
        except OSError as exc:
            assert exc.errno == errno.EIO, exc
            got_ok = False
        assert got_ok == expect_ok, f"fsync of {path}: ok={got_ok}, the model says {expect_ok}"

    @rule(data=st.data(), size=st.integers(0, 100))
    def truncate(self, data: st.DataObject, size: int) -> None:
        files = self.live(("file",))
        if files:
            path = data.draw(st.sampled_from(files))
            os.truncate(self.p(path), size)
            self.model.truncate(path, size)

    @rule(data=st.data())
    def unlink(self, data: st.DataObject) -> None:
        files = self.live(("file", "symlink"))
        if files:
            path = data.draw(st.sampled_from(files))
            os.unlink(self.p(path))
            self.model.remove(path)

    @rule(data=st.data())
    def mkdir(self, data: st.DataObject) -> None:
        path = self.new_path(data)
        if path is not None:
            os.mkdir(self.p(path))
            self.model.create(path, "dir")

    @rule(data=st.data())
    def rmdir(self, data: st.DataObject) -> None:
        empty = [d for d in self.live(("dir",)) if not self.model.children(d)]
        if empty:
            path = data.draw(st.sampled_from(empty))
            os.rmdir(self.p(path))
            self.model.remove(path)

    @rule(data=st.data(), replace=st.booleans())
    def rename(self, data: st.DataObject, replace: bool) -> None:
        # Not where a second writer's change is pending: see the docstring.
        nodes = [p for p in self.live(("file", "dir", "symlink"))
                 if not self.model.has_remote(p)]
        if not nodes:
            return
        src = data.draw(st.sampled_from(nodes))
        kind = self.model.nodes[src].kind
        targets = [p for p in self.live(("file",)) if p != src] if replace and kind == "file" \
            else []
        if not targets:
            parents = [d for d in self.model.dirs() if d.count("/") < 2
                       and not (d == src or d.startswith(src + "/"))]
            free = self.model.free_names(data.draw(st.sampled_from(parents)), NAMES)
            if kind == "dir":  # keep the tree at most three levels deep
                depth = max(p.count("/") for p in self.model.subtree(src)) - src.count("/")
                free = [f for f in free if f.count("/") + depth < 3]
            targets = free
        targets = [t for t in targets if not self.model.has_remote(t)]
        if targets:
            dst = data.draw(st.sampled_from(targets))
            os.rename(self.p(src), self.p(dst))
            self.model.rename(src, dst)

    def attr_target(self, data: st.DataObject) -> str | None:
        nodes = self.live(("file", "dir"))
        return data.draw(st.sampled_from(nodes)) if nodes else None

    @rule(data=st.data(), mode=st.sampled_from(MODES))
    def chmod(self, data: st.DataObject, mode: int) -> None:
        path = self.attr_target(data)
        if path is not None:
            os.chmod(self.p(path), mode)
            self.model.setattr(path, mode=mode)

    @rule(data=st.data(), owner=st.sampled_from(OWNERS))
    def chown(self, data: st.DataObject, owner: tuple[int, int]) -> None:
        path = self.attr_target(data)
        if path is not None:
            os.chown(self.p(path), *owner)
            self.model.setattr(path, uid=owner[0], gid=owner[1])

    @rule(data=st.data(), seconds=st.integers(10**9, 2 * 10**9))
    def utimens(self, data: st.DataObject, seconds: int) -> None:
        path = self.attr_target(data)
        if path is not None:
            ns = seconds * 10**9 + 123
            os.utime(self.p(path), ns=(ns, ns))
            self.model.setattr(path, mtime_ns=ns)

    @rule(data=st.data(), name=st.sampled_from(["user.k1", "user.k2"]), value=blob)
    def setxattr(self, data: st.DataObject, name: str, value: bytes) -> None:
        path = self.attr_target(data)
        if path is not None:
            os.setxattr(self.p(path), name, value)
            xattrs = dict(self.model.nodes[path].xattrs)
            xattrs[name] = value
            self.model.setattr(path, xattrs=xattrs)

    @rule(data=st.data(), link=st.sampled_from(["a", "../b", "/etc/hostname", "x" * 40]))
    def symlink(self, data: st.DataObject, link: str) -> None:
        path = self.new_path(data)
        if path is not None:
            os.symlink(link, self.p(path))
            self.model.create(path, "symlink", link.encode())

    # export, crashes, outages
    @rule()
    def flush(self) -> None:
        unseen = dict(self.model.unseen)
        owed = self.model.flush()
        reply = self.m.flush()
        assert reply["ok"], reply
        keys = {k: bytes(obstore.get(self.backend.bucket.store(), k).bytes())
                for k in self.backend.keys()}
        lost = lostfound_view(self.root)
        for path, content in owed:  # acknowledged bytes: in the bucket or in lost+found
            assert keys.get(path) == content or lost[(path, content)] > 0, \
                f"the version of {path!r} the mount showed ({content!r}) is neither in " \
                f"the bucket ({keys.get(path)!r}) nor in lost+found"
        for path, sw in unseen.items():  # nothing overwritten or deleted unseen
            assert keys.get(path) == sw, \
                f"second writer's version of {path!r} ({sw!r}) was replaced unseen " \
                f"by {keys.get(path)!r}"
        assert bucket_view(self.backend) == self.model.expected_view()

    @rule()
    def reboot(self) -> None:
        """kill -9, remount with the same cache. The new engine exports what was left
        dirty at once (pending exports finish), so the model takes it as a flush."""
        self.m.kill9()
        self.reboot_only()
        self.flush()

    @rule(data=st.data(), offset=st.integers(0, 80), content=blob, new=st.booleans())
    def crash_before_close(self, data: st.DataObject, offset: int, content: bytes,
                           new: bool) -> None:
        """kill -9 while a file is open with a write that close never acknowledged."""
        # Not where a second writer's change is pending: the remount exports at once.
        files = [f for f in self.live(("file",)) if not self.model.has_remote(f)]
        path = self.new_path(data) if new or not files else data.draw(st.sampled_from(files))
        if path is None:
            return
        before = self.model.nodes.get(path)
        fd = os.open(self.p(path), os.O_CREAT | os.O_WRONLY, 0o644)
        os.pwrite(fd, content, offset)
        self.m.kill9()
        try:
            os.close(fd)
        except OSError as exc:
            assert exc.errno == errno.ENOTCONN, exc
        self.reboot_only()
        if before is None:
            self.model.create(path, "file")
        old = before.data if before else b""
        self.model.write(path, offset, content)
        new_data = self.model.nodes[path].data
        got = self.p(path).read_bytes() if self.p(path).exists() else None
        assert unacknowledged_ok(old, new_data, got, before is None), \
            (path, old, new_data, got)
        if got is None:
            self.model.remove(path)
            self.model.journaled.discard(path)
        else:  # what the mount shows is the truth from now on (the bucket gets it)
            self.model.nodes[path].data = got
            self.model.unsure.add(path)
        self.flush()

    def reboot_only(self) -> None:
        self.m = self.env.mounter(self.backend, *ARGS, mountpoint=self.m.path,
                                  cache=self.m.cache, name=self.name)

    @rule(content=blob, mode=st.sampled_from(MODES))
    def minio_outage(self, content: bytes, mode: int) -> None:
        """Local work goes on while the bucket is down; nothing is lost when it returns."""
        free = self.model.free_names("", ["out1", "out2"])
        self.env.server.stop()
        try:
            if free:
                self.p(free[0]).write_bytes(content)
                self.model.create(free[0], "file", content)
            path = next(iter(self.live(("file",))), None)
            if path is not None and self.model.nodes[path].dirty:
                os.chmod(self.p(path), mode)
                self.model.setattr(path, mode=mode)
        finally:
            self.env.server.start()

    # the second writer
    @rule(data=st.data(), content=blob)
    def remote_put(self, data: st.DataObject, content: bytes) -> None:
        model = self.model
        targets = [p for p in self.live(("file",)) if model.second_writer_ok(p)]
        for d in model.dirs():
            if d in model.nodes and not model.second_writer_ok(d):
                continue
            for name in NAMES:
                path = f"{d}/{name}" if d else name
                if path not in model.nodes and model.second_writer_ok(path) \
                        and path not in model.maybe_absent:
                    targets.append(path)
        if targets:
            path = data.draw(st.sampled_from(sorted(targets)))
            content = remote_bytes(content)
            obstore.put(self.backend.bucket.store(), path, content)
            model.remote_put(path, content)

    @rule(data=st.data())
    def remote_delete(self, data: st.DataObject) -> None:
        model = self.model
        targets = [p for p in self.live(("file",)) if model.second_writer_ok(p)
                   and p not in model.journaled
                   and (model.nodes[p].exported or isinstance(model.nodes[p].remote, bytes))]
        if targets:
            path = data.draw(st.sampled_from(targets))
            obstore.delete(self.backend.bucket.store(), path)
            model.remote_delete(path)

    @rule(data=st.data(), content=blob, then=st.sampled_from(["unlink", "write", "fsync"]))
    def race(self, data: st.DataObject, content: bytes, then: str) -> None:
        """A second writer changes a file that is dirty here, then a local step on it:
        the denser form of remote_put followed by unlink, write or fsync."""
        dirty = [p for p in self.live(("file",)) if self.model.nodes[p].dirty
                 and self.model.second_writer_ok(p)]
        if not dirty:
            return
        path = data.draw(st.sampled_from(dirty))
        content = remote_bytes(content)
        obstore.put(self.backend.bucket.store(), path, content)
        self.model.remote_put(path, content)
        if then == "unlink":
            os.unlink(self.p(path))
            self.model.remove(path)
            return
        fd = os.open(self.p(path), os.O_WRONLY)
        try:
            os.pwrite(fd, b"L", 0)
            self.model.write(path, 0, b"L")
            if then == "fsync":
                self.fsync(fd, path)
        finally:
            os.close(fd)

    # invariants
    @invariant()
    def mount_equals_model(self) -> None:
        self.env.steps += 1
        try:
            got = mount_view(self.root)
        except FileNotFoundError:  # a listing changed under the walk: look once more
            time.sleep(0.5)
            got = mount_view(self.root)
        want = self.model.expected_view()
        for path in self.model.maybe_absent:
            if path not in got:
                want.pop(path, None)
        assert got == want
        for path, node in self.model.nodes.items():
            if node.mtime_ns is not None and path in got:
                assert self.p(path).lstat().st_mtime_ns == node.mtime_ns, path
        lost = lostfound_view(self.root)
        must = collections.Counter(self.model.lost)
        extra = lost - must
        assert not must - lost, f"missing from lost+found: {must - lost}"
        assert not extra - collections.Counter(self.model.maybe_lost), f"extra: {extra}"


def test_reference_model(mounter: MountFactory, make_minio: Any, tmp_path: Path) -> None:
    env = Env(make_minio(), mounter, tmp_path)
    machine = type("Machine", (MountModel,), {"env": env})
    options: dict[str, Any] = {"derandomize": SEED is None}
    if os.environ.get("OPENFILES_MODEL_SHRINK") == "0":  # report the failing run as found
        options["phases"] = [Phase.explicit, Phase.reuse, Phase.generate]
    if SEED is not None:
        seed(int(SEED))(machine)
    start = time.monotonic()
    run_state_machine_as_test(machine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
        suppress_health_check=list(HealthCheck), **options))
    print(f"reference model: {env.count} examples, {env.steps} checked steps, "
          f"{time.monotonic() - start:.0f} s")
