"""``openfiles bench``: the engine side by side with its peers and ceilings (issue 17).

On one machine, against one S3 server (a private MinIO started for the run on
127.0.0.1, or ``--endpoint``), the same workloads run one target after the
other:

- ``raw``: obstore GET/PUT/LIST/HEAD of the same bytes, no FUSE; the
  sequential read in the best GET shape found (a ceiling);
- ``fuse``: a trivial in-memory pyfuse3 file system (memfs.py), the FUSE ceiling;
- ``rclone``: ``rclone mount --vfs-cache-mode full`` (a peer);
- ``s3fs``: s3fs-fuse with a local cache (a peer);
- ``mount-s3``, ``mount-s3-cache``: Mountpoint for S3, without and with
  ``--cache`` (peers; prebuilt in ``../shared/anchors/``);
- ``openfiles``: ``openfiles mount``, as the CSI mounter runs it.

A target that is not installed (or, for the engine, not in this build) is
reported as ``n/a (reason)``; one that breaks is ``failed (reason)``; the run
goes on. It prints the figures, the goal (OpenFiles's median at least the
best peer's, workload by workload), each target's peak RSS and CPU per GiB,
writes JSON, and draws a PNG when asked and matplotlib is present. See
docs/BENCHMARKS.md for what each figure means and why.

Every mount is taken down and the private MinIO stopped on the way out, also
on Ctrl-C or SIGTERM. Credentials are never printed.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from openfiles_bench.bucket import MiB, StoreError, pattern_block
from openfiles_bench.chart import plot
from openfiles_bench.goal import goal_rows, rss_bound
from openfiles_bench.reclaim import damon_schemes
from openfiles_bench.report import render
from openfiles_bench.result import TARGETS, combine, to_json, write_json
from openfiles_bench.run import remove_run_dir, run_rounds
from openfiles_bench.server import DEFAULT_MINIO, ServerError
from openfiles_bench.target import ANCHORS
from openfiles_bench.workload import Plan

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# (size, files, random reads, stat seconds) of a full run and of --quick.
FULL = ("1GiB", 1000, 2000, 10.0)
QUICK = ("64MiB", 200, 500, 2.0)


def parse_size(text: str) -> int:
    """Bytes in ``text``: a number with an optional binary unit (``64MiB``, ``1G``, ``4k``)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*", text, re.IGNORECASE)
    if match is None or (match.group(3) and not match.group(2) and match.group(3).lower() != "b"):
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 64MiB, 1GiB, 4096)")
    size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size < 4096:
        raise argparse.ArgumentTypeError(f"size {text!r} is below the 4 KiB minimum")
    return size


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="openfiles bench", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=parse_size, help=f"big object size (default {FULL[0]})")
    p.add_argument("--files", type=_positive, help=f"small files (default {FULL[1]})")
    p.add_argument("--random-reads", type=_positive, help=f"4 KiB reads (default {FULL[2]})")
    p.add_argument(
        "--stat-rounds",
        type=_positive,
        default=100,
        help="stats of every small file (the kernel answers most: a few ms per round; "
        "100 rounds of 1000 files take about 0.4 s, so one stall of the VM does not decide it)",
    )
    p.add_argument(
        "--stat-seconds",
        type=_seconds,
        help=f"stop the stat rounds after the one that ends past this many seconds "
        f"(default {FULL[3]:g}; a target that sends each stat to the bucket would take minutes)",
    )
    p.add_argument(
        "--repeat",
        type=_positive,
        default=1,
        help="run every target this many times, in turns; figures are the medians",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"defaults {QUICK[0]}, {QUICK[1]} files, {QUICK[2]} random reads, "
        f"{QUICK[3]:g} s of stats",
    )
    p.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help="comma-separated subset of " + ",".join(TARGETS),
    )
    p.add_argument("--endpoint", help="use this S3 endpoint (credentials from AWS_* variables)")
    p.add_argument("--bucket", default="openfiles-bench", help="bucket (created if missing)")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--minio", type=Path, default=DEFAULT_MINIO, help="MinIO server binary")
    p.add_argument(
        "--mount-s3",
        type=Path,
        default=ANCHORS / "mount-s3",
        help="Mountpoint for S3 binary (default: ../shared/anchors/mount-s3 beside the "
        "repository; the mount-s3 targets are n/a without it)",
    )
    p.add_argument("--workdir", type=Path, help="parent of the run's temporary directory")
    p.add_argument("--json", type=Path, default=Path("openfiles-bench.json"), help="results file")
    p.add_argument("--plot", type=Path, help="also draw a PNG here (needs matplotlib)")
    p.add_argument(
        "--read-ahead-kb",
        type=int,
        default=1024,
        help="kernel read-ahead of every FUSE mount, 0 leaves the default",
    )
    p.add_argument(
        "--drop-caches",
        action="store_true",
        help="drop the page cache before each read workload and re-read "
        "(root; affects the whole machine)",
    )
    p.add_argument("--logs", type=Path, help="keep each file system's log in this directory")
    p.add_argument("--durable-timeout", type=float, default=600.0, help="seconds")
    p.add_argument(
        "--target-timeout",
        type=float,
        default=1800.0,
        help="seconds a mounted target may take before it is killed",
    )
    return p


def _version(argv: list[str]) -> str | None:
    try:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (run.stdout or run.stderr).strip().splitlines()
    return lines[0] if lines else None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _plan(args: argparse.Namespace) -> Plan:
    size_default, files_default, reads_default, stat_default = QUICK if args.quick else FULL
    return Plan(
        size=args.size or parse_size(size_default),
        files=args.files or files_default,
        random_reads=args.random_reads or reads_default,
        stat_rounds=args.stat_rounds,
        stat_seconds=args.stat_seconds or stat_default,
        block=pattern_block(),
        durable_timeout=args.durable_timeout,
        drop_caches=args.drop_caches,
    )


def main(argv: list[str]) -> int:
    """Entry point of ``openfiles bench``; ``argv[0]`` is the subcommand name.

    Exit status: 0 when the run completed (whatever targets were n/a or
    failed: that is in the report), 1 when it could not run at all, 130 on
    interruption.
    """
    args = _parser().parse_args(argv[1:])
    names = list(dict.fromkeys(n.strip() for n in args.targets.split(",") if n.strip()))
    unknown = [n for n in names if n not in TARGETS]
    if unknown or not names:
        print(
            f"openfiles bench: unknown targets {unknown}; choose from {list(TARGETS)}",
            file=sys.stderr,
        )
        return 2
    for output in (args.json, args.plot):
        if output is not None and not os.access(output.absolute().parent, os.W_OK):
            print(f"openfiles bench: cannot write {output}", file=sys.stderr)
            return 2
    if args.drop_caches and os.geteuid() != 0:
        print("openfiles bench: --drop-caches needs root", file=sys.stderr)
        return 2
    plan = _plan(args)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    run_dir = Path(tempfile.mkdtemp(prefix="openfiles-bench-", dir=args.workdir))
    started, load_at_start = time.time(), list(os.getloadavg())
    try:
        rounds = run_rounds(names, plan, args, run_dir)
    except KeyboardInterrupt:
        print("openfiles bench: interrupted; everything is unmounted", file=sys.stderr)
        return 130
    except (ServerError, StoreError, OSError) as exc:
        print(f"openfiles bench: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        remove_run_dir(run_dir)

    results = {name: combine(done) for name, done in rounds.items()}
    options: dict[str, Any] = {
        "size": plan.size,
        "files": plan.files,
        "random_reads": plan.random_reads,
        "stat_rounds": plan.stat_rounds,
        "stat_seconds": plan.stat_seconds,
        "repeat": args.repeat,
        "read_ahead_kb": args.read_ahead_kb,
        "drop_caches": plan.drop_caches,
        "targets": names,
        "endpoint": args.endpoint or "private MinIO on 127.0.0.1",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        # The machine may be shared: a high load makes every figure lower.
        "load_average": {"start": load_at_start, "end": list(os.getloadavg())},
        "damon_schemes": damon_schemes(),  # reclaim.py: what may slow a round
        "duration_s": round(time.time() - started, 1),
        "versions": {
            "minio": None if args.endpoint else _version([str(args.minio), "--version"]),
            "rclone": _version(["rclone", "version"]),
            "s3fs": _version(["s3fs", "--version"]),
            "mount-s3": _version([str(args.mount_s3), "--version"]),
        },
    }
    rows, rss = goal_rows(results), rss_bound(results)
    # Results first: a closed stdout (``| head``) must not lose them.
    write_json(args.json, to_json(results, options, rows, rss))
    print(
        f"openfiles bench: {plan.size / MiB:g} MiB objects, {plan.files} files of 4 KiB, "
        f"{plan.random_reads} random reads, {plan.stat_rounds} stat rounds, "
        f"{args.repeat} round{'s' if args.repeat > 1 else ''} per target, "
        f"read-ahead {args.read_ahead_kb or 'default'} KiB, {options['endpoint']}, "
        f"load average {load_at_start[0]:.1f} at start\n"
    )
    print(render(results, rows, rss))
    print(f"\nresults: {args.json}")
    if args.plot is not None:
        why_not = plot(results, args.plot)
        print(f"plot: {args.plot}" if why_not is None else f"plot: skipped ({why_not})")
    return 0
