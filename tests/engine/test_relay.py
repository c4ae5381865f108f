"""Mutation events (``openfiles mount --events``, engine/relay.py) with a real nats-server:
two mounts, each with its own cache, on one MinIO bucket.

The metadata TTL is 60 s in every test, so a change seen within a few seconds was
brought by an event, not by the TTL; ``test_without_events_the_ttl_hides_the_change``
shows the same steps without events still see the old version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fixtures.nats import NatsServer
from fixtures.net import wait_for
from fixtures.prereq import child_pids

from .conftest import Backend, Mount, MountFactory

pytestmark = [pytest.mark.fuse, pytest.mark.s3, pytest.mark.nats, pytest.mark.timeout(300)]

TTL = ["--metadata-ttl", "60s"]
SEEN_WITHIN = 5.0
"""Seconds: how soon after the export a peer must show a change (the TTL is 60 s)."""
ORIGINAL = "user.openfiles.original_path"


def pair(mounter: MountFactory, backend: Backend, nats: NatsServer | None,
         first: tuple[str, ...] = (), second: tuple[str, ...] = (),
         env: dict[str, str] | None = None) -> tuple[Mount, Mount]:
    events = ["--events", nats.url] if nats is not None else []
    m1 = mounter(backend, *TTL, "--export-delay", "0", "--fsid", "one", *events, *first,
                 name="one", env=env)
    m2 = mounter(backend, *TTL, "--export-delay", "0", "--fsid", "two", *events, *second,
                 name="two", env=env)
    if nats is not None:
        for m in (m1, m2):
            wait_for(lambda m=m: m.status()["events"]["connected"], 20, f"{m.path} connected")
    return m1, m2


def exported(m: Mount) -> None:
    wait_for(lambda: m.status()["pending_exports"] == 0, 20, f"{m.path} exported")


def size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def status_text(m: Mount) -> str:
    """What ``openfiles status`` prints for ``m``."""
    out = subprocess.run([sys.executable, "-m", "openfiles_cli", "status", str(m.path),
                          "--control-socket", str(m.sock)], capture_output=True, text=True,
                         timeout=60, check=True)
    return out.stdout


def names(path: Path) -> list[str]:
    """The directory's entries without lost+found."""
    return sorted(n for n in os.listdir(path) if not n.startswith(".openfiles-lost+found"))


def write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def test_a_write_on_one_mount_is_seen_on_the_other_at_once(
        mounter: MountFactory, s3_backend: Backend, nats_server: NatsServer) -> None:
    m1, m2 = pair(mounter, s3_backend, nats_server)
    write(m1.path / "f", b"old")
    (m1.path / "d").mkdir()
    exported(m1)
    # m2 learns the old state: listed, stat'ed and read into its cache (and the kernel's).
    wait_for(lambda: size(m2.path / "f") == 3, 20, "m2 sees f")
    assert (m2.path / "f").read_bytes() == b"old"
    assert sorted(os.listdir(m2.path / "d")) == []

    write(m1.path / "f", b"new version")
    write(m1.path / "d" / "g", b"in d")
    exported(m1)
    start = time.monotonic()
    wait_for(lambda: size(m2.path / "f") == 11, SEEN_WITHIN, "stat of the new f on m2")
    assert (m2.path / "f").read_bytes() == b"new version"
    wait_for(lambda: os.listdir(m2.path / "d") == ["g"], SEEN_WITHIN, "g listed on m2")
    assert (m2.path / "d" / "g").read_bytes() == b"in d"
    assert time.monotonic() - start < SEEN_WITHIN
    st1, st2 = m1.status()["events"], m2.status()["events"]
    assert st1["published"] >= 3 and st2["received"] >= 3, (st1, st2)
    assert st1["received"] == 0, "a mount applies no event of its own"
    assert st2["relists"] >= 1


def test_without_events_the_ttl_hides_the_change(
        mounter: MountFactory, s3_backend: Backend) -> None:
    m1, m2 = pair(mounter, s3_backend, None)
    write(m1.path / "f", b"old")
    exported(m1)
    wait_for(lambda: size(m2.path / "f") == 3, 20, "m2 sees f")
    assert (m2.path / "f").read_bytes() == b"old"
    write(m1.path / "f", b"new version")
    exported(m1)
    time.sleep(SEEN_WITHIN)
    assert size(m2.path / "f") == 3
    assert (m2.path / "f").read_bytes() == b"old"
    assert m2.status()["events"] is None


def test_rename_and_delete_reach_the_other_mount(
        mounter: MountFactory, s3_backend: Backend, nats_server: NatsServer) -> None:
    m1, m2 = pair(mounter, s3_backend, nats_server)
    (m1.path / "d").mkdir()
    for name in ("a", "b", "d/c"):
        write(m1.path / name, name.encode())
    exported(m1)
    wait_for(lambda: names(m2.path) == ["a", "b", "d"], 20, "m2 lists a, b, d")
    assert os.listdir(m2.path / "d") == ["c"]
    assert (m2.path / "a").read_bytes() == b"a"

    os.rename(m1.path / "a", m1.path / "z")
    os.unlink(m1.path / "b")
    os.rename(m1.path / "d", m1.path / "e")
    m1.flush()
    exported(m1)
    wait_for(lambda: names(m2.path) == ["e", "z"], SEEN_WITHIN,
             "m2 lists the renames and the delete")
    assert not (m2.path / "a").exists() and not (m2.path / "b").exists()
    assert (m2.path / "z").read_bytes() == b"a"
    assert (m2.path / "e" / "c").read_bytes() == b"d/c"


def test_a_dirty_file_on_the_other_mount_is_kept_and_goes_to_lost_found(
        mounter: MountFactory, s3_backend: Backend, nats_server: NatsServer) -> None:
    m1, m2 = pair(mounter, s3_backend, nats_server, second=("--export-delay", "60s"))
    write(m1.path / "f", b"first")
    exported(m1)
    wait_for(lambda: size(m2.path / "f") == 5, 20, "m2 sees f")
    write(m2.path / "f", b"m2's own change")  # dirty on m2 for 60 s
    received = m2.status()["events"]["received"]
    write(m1.path / "f", b"m1 wins")
    exported(m1)
    wait_for(lambda: m2.status()["events"]["received"] > received, SEEN_WITHIN, "the event")
    wait_for(lambda: m2.status()["events"]["relists"] >= 1, SEEN_WITHIN, "m2 relisted")
    time.sleep(0.5)
    assert (m2.path / "f").read_bytes() == b"m2's own change", "an event never drops dirty data"
    assert m2.status()["dirty_files"] == 1
    m2.flush()  # the conditional PUT is refused: lost+found keeps m2's version
    st = m2.status()
    assert st["conflicts"] == 1 and st["lostfound_files"] == 1, st
    assert s3_backend.read("f") == b"m1 wins"
    wait_for(lambda: (m2.path / "f").read_bytes() == b"m1 wins", 20, "m2 shows the bucket's")
    lost = m2.path / ".openfiles-lost+found-two"
    (kept,) = lost.iterdir()
    assert kept.read_bytes() == b"m2's own change"
    assert os.getxattr(kept, ORIGINAL) == b"f"


def test_a_nats_outage_falls_back_to_the_ttl_and_events_resume(
        mounter: MountFactory, s3_backend: Backend, nats_server: NatsServer) -> None:
    m1, m2 = pair(mounter, s3_backend, nats_server)
    write(m1.path / "f", b"one")
    exported(m1)
    wait_for(lambda: size(m2.path / "f") == 3, 20, "m2 sees f")

    nats_server.stop()
    for m in (m1, m2):
        wait_for(lambda m=m: not m.status()["events"]["connected"], 20, f"{m.path} notices")
    st = m2.status()["events"]
    assert st["error"], st
    shown = status_text(m2)
    assert f"events:            {nats_server.url} disconnected (" in shown, shown
    assert "the metadata TTL applies" in shown
    # Both mounts keep working, file operations do not wait for NATS.
    start = time.monotonic()
    write(m1.path / "f", b"two, in the outage")
    write(m2.path / "g", b"m2 writes too")
    assert (m1.path / "f").read_bytes() == b"two, in the outage"
    assert time.monotonic() - start < 2
    exported(m1)
    exported(m2)
    assert m1.status()["events"]["dropped"] >= 1

    nats_server.start()  # the same port: the relays reconnect by themselves
    for m in (m1, m2):
        wait_for(lambda m=m: m.status()["events"]["connected"], 30, f"{m.path} reconnects")
    assert m2.status()["events"]["error"] is None
    assert f"events:            {nats_server.url} connected" in status_text(m2)
    # What changed in the outage: m2's engine revalidates at the next open (its
    # kernel may keep the old size until the TTL; the bytes are the new ones).
    assert (m2.path / "f").read_bytes() == b"two, in the outage"
    write(m1.path / "h", b"after the outage")
    exported(m1)
    wait_for(lambda: (m2.path / "h").exists(), SEEN_WITHIN, "an event after the outage")
    assert (m2.path / "h").read_bytes() == b"after the outage"


def test_a_relay_that_dies_is_started_again(
        mounter: MountFactory, s3_backend: Backend, nats_server: NatsServer) -> None:
    m1, m2 = pair(mounter, s3_backend, nats_server)
    write(m1.path / "f", b"before")
    exported(m1)
    wait_for(lambda: size(m2.path / "f") == 6, 20, "m2 sees f")  # and caches it for 60 s
    (relay,) = [pid for pid in child_pids(m2.proc.pid)
                if b"events" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
    assert Path(f"/proc/{relay}/cmdline").read_bytes().split(b"\0")[-2] == b"events"
    os.kill(relay, 9)  # no argument carries a setting: the whole argv ends in "events"
    wait_for(lambda: m2.status()["events"]["restarts"] == 1, 20, "the engine notices")
    wait_for(lambda: m2.status()["events"]["connected"], 30, "a new relay connects")
    write(m1.path / "f", b"after the restart")
    exported(m1)
    wait_for(lambda: size(m2.path / "f") == 17, SEEN_WITHIN, "an event through the new relay")


def test_credentials_come_from_the_environment_and_never_show(
        mounter: MountFactory, s3_backend: Backend, tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats")
    server.root.mkdir()
    server.user, server.password = "of-node", "s3cr3t-nats-password"
    server.start()
    try:
        env = {"OPENFILES_NATS_USER": "of-node", "OPENFILES_NATS_PASSWORD": server.password}
        m1, m2 = pair(mounter, s3_backend, server, env=env)
        write(m1.path / "f", b"authenticated")
        exported(m1)
        wait_for(lambda: (m2.path / "f").exists(), SEEN_WITHIN, "the event")
        bad = mounter(s3_backend, *TTL, "--events", server.url, name="bad",
                      env={"OPENFILES_NATS_USER": "of-node",
                           "OPENFILES_NATS_PASSWORD": "wrong-" + server.password})
        wait_for(lambda: "authorization" in str(bad.status()["events"]["error"]).lower(),
                 20, "the refusal")
        st: dict[str, Any] = bad.status()["events"]
        assert not st["connected"] and "authorization" in st["error"].lower(), st
        for m in (m1, m2, bad):
            text = json.dumps(m.status()) + m.log_text() + " ".join(m.args)
            assert server.password not in text
    finally:
        server.stop()


def test_bad_events_settings_are_refused(mounter: MountFactory, s3_backend: Backend,
                                         tmp_path: Path) -> None:
    for args, why in ((["--events", "nats://u:p@127.0.0.1:4222"], "credentials in the URL"),
                      (["--events", "http://127.0.0.1:4222"], "nats:// or tls://"),
                      (["--events-ca", "/ca.pem"], "need --events")):
        out = subprocess.run([sys.executable, "-m", "openfiles_cli", "mount", s3_backend.url,
                              str(tmp_path), "--foreground", *args], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 2 and why in out.stderr, out.stderr
        assert "u:p" not in out.stderr
