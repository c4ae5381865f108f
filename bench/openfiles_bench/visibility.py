"""How soon a change made on one mount can be read on another, with and without events.

    .venv/bin/python -m openfiles_bench.visibility [--runs N] [--metadata-ttl 5s]

A private MinIO (the bench's) and a private nats-server on 127.0.0.1 (both built
by scripts/bootstrap-tests.sh). For each mode, two ``openfiles mount``s of the
same prefix, each with its own cache, ``--export-delay 0`` (a file is exported
when it is closed) and ``--metadata-ttl`` as given: ``events`` runs both with
``--events``, ``ttl`` without. Each run writes new bytes (a new size too) to
one file on the first mount and closes it, then reads the file on the second
every 5 ms until it reads those bytes; the time from the close returning to
that read is the run's latency. Before each run the second mount has read the
previous version, so its caches (the engine's and the kernel's) hold it. One
line per mode: median, 10th and 90th percentile, min and max, in
milliseconds. Needs root (FUSE). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from openfiles_bench.server import DEFAULT_MINIO, S3Site
from openfiles_bench.target import Mount, engine_spec
from openfiles_bench.testbed import private_minio
from openfiles_contracts.jsonline import request

NATS_SERVER = DEFAULT_MINIO.parent / "nats-server"
POLL = 0.005
"""Seconds between reads on the second mount."""
GIVE_UP = 120.0
"""Seconds after which a run counts as never seen (printed as such)."""


@contextmanager
def nats_server(work: Path) -> Iterator[str]:
    """A nats-server on a free port of 127.0.0.1; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(work / "nats.log", "ab")
    proc = subprocess.Popen([str(NATS_SERVER), "-a", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                    if c.recv(4) == b"INFO":
                        break
            except OSError as exc:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"nats-server did not start (log: {work}/nats.log)"
                                       ) from exc
                time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def start(stack: ExitStack, site: S3Site, work: Path, name: str, extra: list[str]) -> Path:
    run = work / name
    run.mkdir()
    spec = engine_spec(site, run / "mnt", run / "cache", run)
    spec.argv += ["--fsid", name, *extra]
    mount = stack.enter_context(Mount(spec, run / "mnt", run / "engine.log", site))
    mount.start(0)
    return run / "mnt"


def wait_connected(sock: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = request(str(sock), {"op": "status"}, timeout=10).get("status") or {}
        if (status.get("events") or {}).get("connected"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"events of {sock} not connected after {timeout:.0f} s")


def read_until(path: Path, want: bytes) -> float:
    """Read ``path`` until it holds ``want``; returns when it did (monotonic seconds)."""
    deadline = time.monotonic() + GIVE_UP
    while time.monotonic() < deadline:
        try:
            if path.read_bytes() == want:
                return time.monotonic()
        except OSError:
            pass
        time.sleep(POLL)
    return float("inf")


def measure(site: S3Site, work: Path, mode: str, runs: int, ttl: str, url: str) -> list[float]:
    extra = ["--metadata-ttl", ttl] + (["--events", url] if mode == "events" else [])
    with ExitStack() as stack:
        one = start(stack, site, work, f"{mode}-one", extra)
        two = start(stack, site, work, f"{mode}-two", extra)
        if mode == "events":  # a run before both relays are connected would see the TTL
            for run in (one, two):
                wait_connected(run.parent / "engine.sock")
        name = f"f-{mode}"
        latencies = []
        for i in range(runs + 1):
            data = f"{mode} run {i} ".encode() * (i + 1)
            with open(one / name, "wb") as f:
                f.write(data)
            closed = time.monotonic()
            seen = read_until(two / name, data)
            if i > 0:  # the first run only brings the file into the second mount's cache
                latencies.append(seen - closed)
    return latencies


def line(mode: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    deciles = statistics.quantiles(ms, n=10, method="inclusive") if len(ms) > 1 else ms * 9
    return (f"{mode:<7} runs {len(ms):3d}  median {statistics.median(ms):8.0f} ms  "
            f"p10 {deciles[0]:7.0f}  p90 {deciles[-1]:7.0f}  min {ms[0]:7.0f}  "
            f"max {ms[-1]:7.0f}")


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m openfiles_bench.visibility",
                                description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=20, help="runs per mode (default 20)")
    p.add_argument("--metadata-ttl", default="5s", help="both modes' TTL (default 5s, "
                   "the engine's default)")
    p.add_argument("--modes", default="events,ttl")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (FUSE mounts)")
    if not os.access(NATS_SERVER, os.X_OK):
        raise SystemExit(f"no nats-server at {NATS_SERVER}: run scripts/bootstrap-tests.sh")
    with private_minio("visibility", 0, {}) as (site, _bucket, _pid, work), \
            nats_server(Path(tempfile.mkdtemp(dir=work))) as url:
        for mode in args.modes.split(","):
            print(line(mode, measure(site, work, mode, args.runs, args.metadata_ttl, url)),
                  flush=True)


if __name__ == "__main__":
    main()
