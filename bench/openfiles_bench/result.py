"""What a benchmark run produced: each target's figures and costs, round by round, and JSON.

A target that could not run is kept in the results with its status (``n/a``
or ``failed``) and the reason, so that the table always has the same columns.
Over several rounds, each figure is the median round's, and every round's
rate stays in ``notes["rounds"]``.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openfiles_bench.meter import Usage
from openfiles_bench.workload import METRICS, Figure, Outcome

# target -> column label, in table order.
TARGETS: dict[str, str] = {
    "raw": "raw GET",
    "fuse": "FUSE ceiling",
    "rclone": "rclone full",
    "s3fs": "s3fs",
    "mount-s3": "mount-s3",
    "mount-s3-cache": "mount-s3 cache",
    "openfiles": "openfiles",
}
SCHEMA = "openfiles-bench/2"
PER_ROUND_NOTES = ("seconds", "reclaim_seconds", "settle_seconds", "get_shape", "get_shapes")
"""Notes that differ from round to round: a list, one per round, after :func:`combine`."""
MiB = 1 << 20


@dataclass
class TargetResult:
    """What one target produced: figures when ``status`` is "ok", else a reason."""

    name: str
    status: str = "ok"
    reason: str | None = None
    figures: dict[str, Figure] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    """metric -> why that workload broke (the others still have figures)."""
    unsupported: dict[str, str] = field(default_factory=dict)
    """metric -> the operations this target lacks for it (the workload did not run)."""
    usage: dict[str, list[Usage]] = field(default_factory=dict)
    """metric -> the cost of the workload, one entry per round that measured it."""
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, outcome: Outcome) -> TargetResult:
        """One round's result from the workloads' :class:`Outcome`."""
        return cls(name, figures=dict(outcome.figures), errors=dict(outcome.errors),
                   unsupported=dict(outcome.unsupported),
                   usage={key: [usage] for key, usage in outcome.usage.items()},
                   notes=dict(outcome.notes))

    def rate(self, metric: str) -> float | None:
        figure = self.figures.get(metric) if self.status == "ok" else None
        return figure.rate if figure is not None else None

    def rounds(self, metric: str) -> list[float]:
        """Every round's rate of ``metric`` (the one figure when there was one round)."""
        rates = self.notes.get("rounds", {}).get(metric)
        if rates is not None:
            return list(rates)
        rate = self.rate(metric)
        return [] if rate is None else [rate]

    def peak_rss(self, metric: str) -> int | None:
        """The highest peak RSS of the target's processes over the rounds, bytes."""
        usages = self.usage.get(metric) if self.status == "ok" else None
        return max(u.peak_rss for u in usages) if usages else None

    def cpu(self, metric: str) -> tuple[float, str] | None:
        """The median round's CPU cost: (seconds per GiB, "s/GiB"), or for a workload
        that moves no bytes, (microseconds per operation, "us/op")."""
        usages = self.usage.get(metric) if self.status == "ok" else None
        if not usages:
            return None
        per_gib = [u.cpu_per_gib for u in usages if u.cpu_per_gib is not None]
        if per_gib:
            return _median(per_gib), "s/GiB"
        per_op = [u.cpu_per_operation * 1e6 for u in usages if u.cpu_per_operation is not None]
        return (_median(per_op), "us/op") if per_op else None


def _median(values: list[float]) -> float:
    """The lower median, as the figures use."""
    return sorted(values)[(len(values) - 1) // 2]


def combine(rounds: list[TargetResult]) -> TargetResult:
    """One target's result over several rounds: each figure is the median round's.

    The median (the lower one for an even count) of a metric is taken over the
    rounds that measured it; a metric that broke in every round keeps the
    first round's error. Every round's rate is kept in ``notes["rounds"]``, so
    the spread can be read back. A target that never ran keeps the first
    round's status and reason.
    """
    ok = [r for r in rounds if r.status == "ok"]
    if not ok:
        return rounds[0]
    out = TargetResult(rounds[0].name, unsupported=dict(ok[0].unsupported),
                       notes=dict(ok[0].notes))
    spread: dict[str, list[float]] = {}
    for key in METRICS:
        figures = sorted((r.figures[key] for r in ok if key in r.figures), key=lambda f: f.rate)
        if figures:
            out.figures[key] = figures[(len(figures) - 1) // 2]
            spread[key] = [r.figures[key].rate for r in ok if key in r.figures]
        else:
            why = next((r.errors[key] for r in ok if key in r.errors), None)
            if why is not None:
                out.errors[key] = why
        usages = [u for r in ok for u in r.usage.get(key, [])]
        if usages:
            out.usage[key] = usages
    if len(rounds) > 1:
        out.notes["rounds"] = spread
        for note in PER_ROUND_NOTES:
            if any(note in r.notes for r in rounds):
                out.notes[note] = [r.notes.get(note) for r in rounds]
        failed = [f"{r.status}: {r.reason}" for r in rounds if r.status != "ok"]
        if failed:
            out.notes["failed_rounds"] = failed
    return out


def _usage_json(result: TargetResult, key: str) -> dict[str, Any]:
    usages = result.usage[key]
    cpu = result.cpu(key)
    return {
        "peak_rss_mib": round((result.peak_rss(key) or 0) / MiB, 1),
        "cpu": None if cpu is None else {"value": cpu[0], "unit": cpu[1]},
        "rounds": [{"peak_rss_mib": round(u.peak_rss / MiB, 1), "cpu_seconds": u.cpu_seconds,
                    "moved_bytes": u.moved, "operations": u.operations} for u in usages],
    }


def to_json(results: dict[str, TargetResult], options: dict[str, Any],
            goal_rows: list[dict[str, Any]], rss: dict[str, Any]) -> dict[str, Any]:
    """The machine-readable results (schema ``openfiles-bench/2``)."""
    targets = {}
    for name, result in results.items():
        metrics = {
            key: {
                "value": fig.rate,
                "unit": METRICS[key][1],
                "seconds": fig.seconds,
                "amount": fig.amount,
                "rounds": result.rounds(key),
            }
            for key, fig in result.figures.items()
        }
        targets[name] = {
            "label": TARGETS[name],
            "status": result.status,
            "reason": result.reason,
            "errors": result.errors,
            "unsupported": result.unsupported,
            "notes": result.notes,
            "metrics": metrics,
            "usage": {key: _usage_json(result, key) for key in result.usage},
        }
    return {
        "schema": SCHEMA,
        "options": options,
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
        },
        "targets": targets,
        "goals": goal_rows,
        "rss_bound": rss,
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write atomically: a reader never sees half a result file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    partial.replace(path)


