"""The goal of issue 17, judged from a run's results.

For every workload, OpenFiles's median must be at least the best peer's
median. The peers are the other file systems that keep data in a bucket
(:data:`PEERS`); the ceilings (:data:`CEILINGS`: a raw GET in its best shape
and the in-memory FUSE file system) are not peers, they are what the ratios
are read against. A peer figure that does not promise what OpenFiles
promises is not a target (:data:`NOT_COMPARABLE`): it stays in the table,
marked, and the best peer is chosen without it. A workload a peer does not
support has no figure for it, so it is not that peer's either.

Also judged: the engine's peak RSS during any workload against
:data:`RSS_BOUND`.
"""

from __future__ import annotations

from typing import Any

from openfiles_bench.result import TargetResult
from openfiles_bench.workload import METRICS

SUBJECT = "openfiles"
PEERS = ("s3fs", "rclone", "mount-s3", "mount-s3-cache")
CEILINGS = ("raw", "fuse")
NOT_COMPARABLE: dict[tuple[str, str], str] = {
    ("rclone", "seq_write_fsync"): "rclone's fsync returns once the data is in its local "
    "cache, not in the bucket (OpenFiles's fsync reaches the bucket)",
}
"""(target, metric) -> why that figure is not one OpenFiles is held to."""
RSS_BOUND = 512 << 20
"""Bytes: the engine's resident memory with default options, during any workload."""


def not_comparable(target: str, metric: str) -> str | None:
    """Why ``target``'s ``metric`` is not like with like, or None when it is."""
    return NOT_COMPARABLE.get((target, metric))


def _paired(engine: TargetResult, peers: list[TargetResult], metric: str) -> list[int] | None:
    """[rounds where OpenFiles >= the best peer of the same round, rounds], or None.

    Rounds run in turns, so round i of every target ran minutes apart, on the
    machine in the same state. None with one round, or when a round of any
    of them lacks the figure (the rounds would not line up).
    """
    mine = engine.rounds(metric)
    theirs = [peer.rounds(metric) for peer in peers]
    if len(mine) < 2 or not theirs or any(len(t) != len(mine) for t in theirs):
        return None
    best = [max(t[i] for t in theirs) for i in range(len(mine))]
    return [sum(1 for a, b in zip(mine, best, strict=True) if a >= b), len(mine)]


def goal_rows(results: dict[str, TargetResult]) -> list[dict[str, Any]]:
    """One row per workload: OpenFiles, the best peer, the ratio, met or not, the ceilings.

    ``met`` is None when OpenFiles or every peer lacks the figure.
    """
    engine = results.get(SUBJECT)
    rows = []
    for metric, (label, unit) in METRICS.items():
        mine = engine.rate(metric) if engine is not None else None
        peers: dict[str, float] = {}
        set_aside: dict[str, str] = {}
        for name in PEERS:
            rate = results[name].rate(metric) if name in results else None
            why = not_comparable(name, metric)
            if rate is not None and why is not None:
                set_aside[name] = why
            elif rate is not None:
                peers[name] = rate
        best = max(peers, key=lambda name: peers[name]) if peers else None
        ratio = mine / peers[best] if mine is not None and best is not None else None
        ceilings = {
            name: mine / results[name].rate(metric)  # type: ignore[operator]
            for name in CEILINGS
            if mine is not None and name in results and results[name].rate(metric)
        }
        rows.append({
            "metric": metric,
            "label": label,
            "unit": unit,
            "openfiles": mine,
            "peers": peers,
            "best_peer": best,
            "ratio": ratio,
            "met": None if ratio is None else ratio >= 1.0,
            "rounds_met": None if engine is None or best is None
            else _paired(engine, [results[p] for p in peers], metric),
            "rounds": {name: results[name].rounds(metric) for name in (SUBJECT, *peers)
                       if name in results},
            "ceilings": ceilings,
            "not_comparable": set_aside,
            "unsupported": {name: results[name].unsupported[metric] for name in PEERS
                            if name in results and metric in results[name].unsupported},
        })
    return rows


def rss_bound(results: dict[str, TargetResult]) -> dict[str, Any]:
    """The engine's highest peak RSS over the workloads against :data:`RSS_BOUND`."""
    engine = results.get(SUBJECT)
    peaks = {m: engine.peak_rss(m) for m in METRICS} if engine is not None else {}
    known = {m: p for m, p in peaks.items() if p is not None}
    worst = max(known, key=lambda m: known[m]) if known else None
    return {
        "bound_mib": RSS_BOUND >> 20,
        "peak_mib": None if worst is None else round(known[worst] / (1 << 20), 1),
        "workload": worst,
        "over": [m for m, p in known.items() if p > RSS_BOUND],
        "met": None if worst is None else known[worst] <= RSS_BOUND,
    }
