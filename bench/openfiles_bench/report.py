"""Results of a benchmark run: the table, the ratios, the issue's goals, JSON, a plot.

Rates are higher-is-better everywhere, so a ratio is ``subject / anchor`` and
above 1.00 means the subject is faster. A target that could not run is kept
in the results with its status (``n/a`` or ``failed``) and the reason, so the
table always has the same columns.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openfiles_bench.workload import METRICS, Figure

# target -> column label, in table order. The first four are the anchors.
TARGETS: dict[str, str] = {
    "raw": "raw obstore",
    "fuse": "FUSE ceiling",
    "rclone": "rclone full",
    "s3fs": "s3fs",
    "openfiles": "openfiles",
}
ANCHORS = ("raw", "fuse", "rclone", "s3fs")
SUBJECTS = ("openfiles", "rclone", "s3fs")
SCHEMA = "openfiles-bench/1"


@dataclass
class TargetResult:
    """What one target produced: figures when ``status`` is "ok", else a reason."""

    name: str
    status: str = "ok"
    reason: str | None = None
    figures: dict[str, Figure] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    """metric -> why that workload broke (the others still have figures)."""
    notes: dict[str, Any] = field(default_factory=dict)

    def rate(self, metric: str) -> float | None:
        figure = self.figures.get(metric) if self.status == "ok" else None
        return figure.rate if figure is not None else None


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
    out = TargetResult(rounds[0].name, notes=dict(ok[0].notes))
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
    if len(rounds) > 1:
        out.notes["rounds"] = spread
        out.notes["reclaim_seconds"] = [r.notes.get("reclaim_seconds") for r in rounds]
        failed = [f"{r.status}: {r.reason}" for r in rounds if r.status != "ok"]
        if failed:
            out.notes["failed_rounds"] = failed
    return out


def ratios(results: dict[str, TargetResult]) -> dict[str, dict[str, dict[str, float]]]:
    """subject -> anchor -> metric -> subject rate / anchor rate, where both exist."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for subject in SUBJECTS:
        if subject not in results:
            continue
        for anchor in ANCHORS:
            if anchor == subject or anchor not in results:
                continue
            for metric in METRICS:
                mine, theirs = results[subject].rate(metric), results[anchor].rate(metric)
                if mine is not None and theirs:
                    table.setdefault(subject, {}).setdefault(anchor, {})[metric] = mine / theirs
    return table


def goals(results: dict[str, TargetResult]) -> list[dict[str, Any]]:
    """The issue's performance targets for the engine; ``met`` is None when unmeasured."""
    wanted = [
        ("cached sequential read >= 50% of the FUSE ceiling", "seq_read_cached", "fuse", 0.5),
        ("cold sequential read >= 70% of raw GET", "seq_read_cold", "raw", 0.7),
        ("small-file create >= rclone full cache", "create_4k", "rclone", 1.0),
    ]
    wanted += [(f"{METRICS[m][0]}: faster than s3fs", m, "s3fs", 1.0) for m in METRICS]
    engine = results.get("openfiles")
    out = []
    for text, metric, anchor, threshold in wanted:
        mine = engine.rate(metric) if engine else None
        other = results[anchor].rate(metric) if anchor in results else None
        ratio = mine / other if mine is not None and other else None
        met = None if ratio is None else ratio >= threshold
        goal: dict[str, Any] = {
            "goal": text,
            "metric": metric,
            "anchor": anchor,
            "threshold": threshold,
            "ratio": ratio,
            "met": met,
            "rounds_met": None,
            "peers": {},
        }
        if met is not None and engine is not None:
            goal["rounds_met"] = _rounds_met(engine, results[anchor], metric, threshold)
            if threshold < 1.0:  # how the other mounts with a cache fare against the same bar
                goal["peers"] = {
                    peer: results[peer].rate(metric) / other  # type: ignore[operator]
                    for peer in ("rclone", "s3fs")
                    if peer in results and results[peer].rate(metric) is not None
                }
        out.append(goal)
    return out


def _rounds_met(
    engine: TargetResult, anchor: TargetResult, metric: str, threshold: float
) -> list[int] | None:
    """[rounds where the engine met the goal against the anchor's same round, rounds].

    Rounds run in turns, so round i of every target ran minutes apart, on the
    machine in the same state: this pairs them, where the medians do not.
    None with a single round, or when a round broke for either target.
    """
    mine = engine.notes.get("rounds", {}).get(metric, [])
    theirs = anchor.notes.get("rounds", {}).get(metric, [])
    if len(mine) < 2 or len(mine) != len(theirs):
        return None
    return [
        sum(1 for a, b in zip(mine, theirs, strict=True) if b and a / b >= threshold),
        len(mine),
    ]


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _cell(result: TargetResult, metric: str) -> str:
    if result.status != "ok":
        return result.status
    if metric in result.errors:
        return "error"
    rate = result.rate(metric)
    return _number(rate) if rate is not None else "-"


def _spread(result: TargetResult, metric: str) -> str:
    rates = result.notes.get("rounds", {}).get(metric) if result.status == "ok" else None
    if not rates:
        return _cell(result, metric)
    return f"{_number(min(rates))} - {_number(max(rates))}"


def _grid(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[col]) for row in [header, *rows]) for col in range(len(header))]
    lines = []
    for row in [header, *rows]:
        numbers = [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        cells = [row[0].ljust(widths[0]), *numbers]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render(results: dict[str, TargetResult]) -> str:
    """The human-readable report: absolute figures, ratios, goals, unavailable targets."""
    names = [name for name in TARGETS if name in results]
    header = ["workload", "unit", *(TARGETS[name] for name in names)]
    rows = [
        [label, unit, *(_cell(results[n], key) for n in names)]
        for key, (label, unit) in METRICS.items()
    ]
    rounds = max(
        (len(r.notes.get("rounds", {}).get(k, [])) for r in results.values() for k in METRICS),
        default=0,
    )
    title = "Absolute figures (higher is better)"
    if rounds > 1:
        title += f", the median of {rounds} rounds"
    parts = [title, _grid(header, rows)]
    if rounds > 1:
        rows = [
            [label, unit, *(_spread(results[n], key) for n in names)]
            for key, (label, unit) in METRICS.items()
        ]
        parts += ["", "Spread over the rounds (lowest - highest)", _grid(header, rows)]

    for subject, per_anchor in ratios(results).items():
        anchors = list(per_anchor)
        header = ["workload", *(f"vs {TARGETS[a]}" for a in anchors)]
        rows = []
        for key, (label, _) in METRICS.items():
            cells = [per_anchor[a].get(key) for a in anchors]
            rows.append([label, *("-" if c is None else f"{c:.2f}x" for c in cells)])
        parts += ["", f"{TARGETS[subject]} relative to each anchor", _grid(header, rows)]

    lines = []
    engine = results.get("openfiles")
    if engine is None or engine.status != "ok":
        lines.append("  n/a: the engine has no figures in this run")
    for goal in goals(results) if not lines else []:
        mark = {True: "met", False: "MISSED", None: "n/a"}[goal["met"]]
        ratio = "" if goal["ratio"] is None else f" ({goal['ratio']:.2f}x"
        if goal["rounds_met"]:
            ratio += f"; met in {goal['rounds_met'][0]} of {goal['rounds_met'][1]} rounds"
        lines.append(f"  [{mark}] {goal['goal']}{ratio}{')' if ratio else ''}")
        if goal["peers"]:
            peers = ", ".join(f"{TARGETS[p]} {r:.2f}x" for p, r in goal["peers"].items())
            lines.append(f"         the other mounts with a disk cache: {peers}")
    parts += ["", "Goals of issue 3 for the engine", *lines]
    parts += _reclaim(results, names)

    missing = [
        f"  {TARGETS[n]}: {results[n].status} ({results[n].reason})"
        for n in names
        if results[n].status != "ok"
    ]
    if missing:
        parts += ["", "Targets without figures", *missing]
    broken = [
        f"  {TARGETS[n]}, {METRICS[key][0]}: {why}"
        for n in names
        for key, why in results[n].errors.items()
    ]
    if broken:
        parts += ["", "Workloads that broke", *broken]
    return "\n".join(parts)


def _reclaim(results: dict[str, TargetResult], names: list[str]) -> list[str]:
    """Lines on the kernel's proactive reclaim during each round (reclaim.py), if any."""
    rows = []
    for name in names:
        seconds = results[name].notes.get("reclaim_seconds")
        per_round = seconds if isinstance(seconds, list) else [seconds]
        if any(per_round):
            cells = " / ".join("-" if s is None else f"{s:.2f}" for s in per_round)
            rows.append(f"  {TARGETS[name]}: {cells}")
    if not rows:
        return []
    return ["", "CPU seconds of the kernel's reclaim (DAMON) during each round", *rows]


def to_json(results: dict[str, TargetResult], options: dict[str, Any]) -> dict[str, Any]:
    """The machine-readable results (schema ``openfiles-bench/1``)."""
    targets = {}
    for name, result in results.items():
        metrics = {
            key: {
                "value": fig.rate,
                "unit": METRICS[key][1],
                "seconds": fig.seconds,
                "amount": fig.amount,
            }
            for key, fig in result.figures.items()
        }
        targets[name] = {
            "label": TARGETS[name],
            "status": result.status,
            "reason": result.reason,
            "errors": result.errors,
            "notes": result.notes,
            "metrics": metrics,
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
        "ratios": ratios(results),
        "goals": goals(results),
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write atomically: a reader never sees half a result file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    partial.replace(path)


def plot(results: dict[str, TargetResult], path: Path) -> str | None:
    """Draw one bar chart per workload into a PNG; returns why not, or None when done.

    matplotlib is optional: without it the benchmark still reports in text and JSON.
    """
    try:
        # Imported by name: matplotlib is optional and has no stubs here.
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return "matplotlib is not installed"
    names = [n for n in TARGETS if n in results and results[n].status == "ok"]
    fig, axes = plt.subplots(2, (len(METRICS) + 1) // 2, figsize=(18, 7))
    for axis, (key, (label, unit)) in zip(axes.flat, METRICS.items(), strict=False):
        rates = [results[n].rate(key) for n in names]
        values = [0.0 if rate is None else rate for rate in rates]
        axis.bar([TARGETS[n] for n in names], values, color=[f"C{i}" for i in range(len(names))])
        for index, rate in enumerate(rates):
            if rate is None:  # e.g. durability of the in-memory FS, which has no bucket
                axis.text(index, 0, "n/a", ha="center", va="bottom", fontsize=8)
        axis.set_title(label, fontsize=9)
        axis.set_ylabel(unit, fontsize=8)
        axis.tick_params(axis="x", labelrotation=45, labelsize=7)
    fig.suptitle("openfiles bench (higher is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
