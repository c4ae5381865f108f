"""One run of ``openfiles bench``: the S3 site, every target in turns, each one's workloads.

:func:`run_rounds` is the loop: it brings up the S3 site, puts the source
objects once, and runs each target (:func:`run_target`) in the order of
:func:`turn_order`, letting the kernel settle between targets. Every mount is
taken down after its target, whatever happened; :func:`remove_run_dir`
deletes the run's directory only once nothing is mounted in it.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from openfiles_bench import target as bench_mount
from openfiles_bench.bucket import Bucket
from openfiles_bench.meter import Meter
from openfiles_bench.raw import run_raw
from openfiles_bench.reclaim import reclaim_seconds, settle
from openfiles_bench.result import TARGETS, TargetResult
from openfiles_bench.server import S3Site, ServerError, create_bucket, delete_markers, start_minio
from openfiles_bench.target import Mount, MountSpec, TargetError, Watchdog
from openfiles_bench.tree import run_tree
from openfiles_bench.workload import FILES, Plan, populate_bucket, populate_tree


@contextmanager
def _site(args: argparse.Namespace, workdir: Path) -> Iterator[S3Site]:
    prefix = "openfiles-bench-" + secrets.token_hex(4)
    if args.endpoint is None:
        with start_minio(args.minio, args.bucket, prefix, workdir) as site:
            yield site
        return
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        raise ServerError("--endpoint needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set")
    site = S3Site(args.endpoint.rstrip("/"), args.region, args.bucket, prefix, key, secret)
    create_bucket(site)
    try:
        yield site
    finally:
        # Leave the given bucket as it was: the run's objects all live under its prefix.
        directories = ["", "src", FILES, "out"]
        directories += [f"out/{name}{sub}" for name in TARGETS for sub in ("", "/files")]
        try:
            Bucket(site).delete_under("")
            delete_markers(site, directories)
        except Exception as exc:  # report, but do not hide the run's own outcome
            print(f"openfiles bench: could not clean up {prefix}/: {exc}", file=sys.stderr)


def _spec(name: str, site: S3Site, run_dir: Path, args: argparse.Namespace) -> MountSpec:
    mountpoint, cache = run_dir / "mnt" / name, run_dir / "cache" / name
    cache.mkdir(parents=True, exist_ok=True)
    if name == "fuse":
        return bench_mount.memfs_spec(mountpoint)
    if name == "rclone":
        return bench_mount.rclone_spec(site, mountpoint, cache, run_dir)
    if name == "s3fs":
        return bench_mount.s3fs_spec(site, mountpoint, cache, run_dir)
    if name.startswith("mount-s3"):
        return bench_mount.mount_s3_spec(
            site, mountpoint, cache if name == "mount-s3-cache" else None, args.mount_s3)
    return bench_mount.engine_spec(site, mountpoint, cache, run_dir)


def _empty_out(name: str, site: S3Site) -> None:
    """Delete what the target wrote, so that the next round writes new keys again
    (and a durability poll cannot see the last round's object)."""
    try:
        Bucket(site).delete_under(f"out/{name}")
        delete_markers(site, [f"out/{name}/files", f"out/{name}", "out"])
    except Exception as exc:  # the next round's stale-object check will say so
        print(f"openfiles bench: could not empty out/{name}: {site.redact(str(exc))}",
              file=sys.stderr)


def run_target(
    name: str, site: S3Site, plan: Plan, args: argparse.Namespace, run_dir: Path
) -> TargetResult:
    """Run every workload on one target; never raises (but for KeyboardInterrupt).

    A target that cannot start is 'failed'; one whose workloads break keeps
    the figures it has and an error for each of the others.
    """
    bucket = Bucket(site)
    if name == "raw":
        try:
            outcome = run_raw(bucket, plan, Meter(os.getpid(), descendants=False))
        finally:
            _empty_out(name, site)
        result = TargetResult.of(name, outcome)
        result.errors = {key: site.redact(why) for key, why in result.errors.items()}
        return result
    spec = _spec(name, site, run_dir, args)
    if spec.available is not None:
        return TargetResult(name, "n/a", spec.available)
    mountpoint = run_dir / "mnt" / name
    mount = Mount(spec, mountpoint, run_dir / f"{name}.log", site)
    result = TargetResult(name)
    watchdog = Watchdog(mount, args.target_timeout)
    try:
        with watchdog:
            mount.start(args.read_ahead_kb)
            assert mount.process is not None
            if name == "fuse":
                populate_tree(mountpoint, plan)
            outcome = run_tree(
                mountpoint,
                name,
                plan,
                None if name == "fuse" else bucket,
                mounted=lambda: bench_mount.is_mounted(mountpoint),
                meter=Meter(mount.process.pid),
                lacks=spec.lacks,
            )
            result = TargetResult.of(name, outcome)
            result.notes["read_ahead_kb"] = (
                args.read_ahead_kb if mount.read_ahead_before is not None else "default"
            )
            if spec.lacks:
                result.notes["lacks"] = sorted(spec.lacks)
            code = mount.process.poll()
            if watchdog.fired or code is not None:
                # Later workloads saw only ENOTCONN or an empty directory: say why.
                why = (
                    f"killed after {args.target_timeout:.0f} s"
                    if watchdog.fired
                    else f"exited with status {code} during the run"
                )
                result.notes["ended"] = f"{name} {why}: {mount.log_tail(5)}"
                for key in result.errors:
                    result.errors[key] += f" ({name} {why})"
            result.errors = {key: site.redact(text) for key, text in result.errors.items()}
    except Exception as exc:  # a target that cannot even start must not stop the others
        tail = mount.log_tail(5)
        result = TargetResult(name, "failed", site.redact(str(exc) + ("\n" + tail if tail else "")))
    finally:
        try:
            mount.stop()
        except TargetError as exc:
            result.notes["stop_error"] = str(exc)
            print(f"openfiles bench: {exc}", file=sys.stderr)
        shutil.rmtree(run_dir / "cache" / name, ignore_errors=True)
        if name != "fuse":
            _empty_out(name, site)
        if args.logs is not None and mount.log_path.exists():
            args.logs.mkdir(parents=True, exist_ok=True)
            (args.logs / f"{name}.log").write_text(mount.log_tail(lines=10_000_000) + "\n")
    return result


def turn_order(names: list[str], turn: int) -> list[str]:
    """The targets of turn ``turn`` (from 1): a different order, and neighbours, each turn.

    What a target leaves behind (its cache being written back and deleted,
    the kernel paging out its memory) slows the next one's first workloads,
    so no target should always follow the same one, nor always run at the
    same place. Turn t takes every step-th target (a step coprime with their
    number, so each is taken once; the step sets who precedes whom), starting
    one place further each turn: with 5 targets, 4 turns give each target 4
    different predecessors.
    """
    n = len(names)
    steps = [k for k in range(1, n) if math.gcd(k, n) == 1] or [1]
    step, shift = steps[(turn - 1) % len(steps)], turn - 1
    return [names[((i + shift) * step) % n] for i in range(n)]


def remove_run_dir(run_dir: Path) -> None:
    """Delete the run's directory, unless a mount is still in it.

    rmtree would walk into a live mount and delete through it, which for a
    bucket-backed file system means deleting objects.
    """
    mounts = [p for p in (run_dir / "mnt").glob("*") if bench_mount.is_mounted(p)]
    if mounts:
        print(f"openfiles bench: still mounted, not deleting {run_dir}: {mounts}", file=sys.stderr)
        return
    shutil.rmtree(run_dir, ignore_errors=True)


def run_rounds(
    names: list[str], plan: Plan, args: argparse.Namespace, run_dir: Path
) -> dict[str, list[TargetResult]]:
    """Run every target ``args.repeat`` times, in turns; each target's results by round.

    The S3 site (a private MinIO, or ``--endpoint``) lives for the whole run and
    is cleaned up on the way out, also on KeyboardInterrupt. Raises what the
    site raises (ServerError, StoreError, OSError); a target's own failure is in
    its result.
    """
    rounds: dict[str, list[TargetResult]] = {name: [] for name in names}
    with _site(args, run_dir) as site:
        print(
            f"openfiles bench: {plan.size} byte objects, {plan.files} files, "
            f"S3 at {site.endpoint}",
            file=sys.stderr,
        )
        populated = False
        # In turns (a, b, a, b), so that a slow spell of a shared machine
        # hits every target instead of all rounds of one.
        for turn in range(1, args.repeat + 1):
            for name in turn_order(names, turn):
                if name != "fuse" and not populated:  # the in-memory FS has no bucket
                    print("openfiles bench: putting the source objects", file=sys.stderr)
                    populate_bucket(Bucket(site), plan)
                    populated = True
                of = f" (round {turn} of {args.repeat})" if args.repeat > 1 else ""
                print(f"openfiles bench: running {name}{of}", file=sys.stderr)
                # What the previous target left (its dirty cache, its memory to page
                # out) is flushed and reclaimed before, not on this target's time.
                waited = settle()
                reclaim = reclaim_seconds()
                began = time.monotonic()
                result = run_target(name, site, plan, args, run_dir)
                result.notes["seconds"] = round(time.monotonic() - began, 1)
                result.notes["reclaim_seconds"] = round(reclaim_seconds() - reclaim, 2)
                result.notes["settle_seconds"] = round(waited, 1)
                rounds[name].append(result)
                print(f"openfiles bench: {name}: {result.status}", file=sys.stderr)
    return rounds
