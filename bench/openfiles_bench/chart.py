"""The picture of a benchmark run: one bar chart per workload, into a PNG.

matplotlib is optional: without it the benchmark still reports in text and
JSON (``uv run --with matplotlib openfiles bench --plot FILE ...``).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from openfiles_bench.goal import goal_rows, not_comparable
from openfiles_bench.result import TARGETS, TargetResult
from openfiles_bench.workload import METRICS


def plot(results: dict[str, TargetResult], path: Path, title: str = "") -> str | None:
    """Draw the chart into ``path``; returns why not, or None when done."""
    try:
        # Imported by name: matplotlib is optional and has no stubs here.
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return "matplotlib is not installed"
    names = [n for n in TARGETS if n in results and results[n].status == "ok"]
    bars = {row["metric"]: row for row in goal_rows(results)}
    columns = 5
    fig, axes = plt.subplots((len(METRICS) + columns - 1) // columns, columns, figsize=(22, 11))
    for axis in axes.flat[len(METRICS):]:
        axis.set_visible(False)
    for axis, (key, (label, unit)) in zip(axes.flat, METRICS.items(), strict=False):
        rates = [results[n].rate(key) for n in names]
        colours = [f"C{i}" for i in range(len(names))]
        axis.bar([TARGETS[n] for n in names], [r or 0.0 for r in rates], color=colours)
        for index, (name, rate) in enumerate(zip(names, rates, strict=True)):
            mark = ("n/s" if key in results[name].unsupported else "n/a") if rate is None \
                else ("*" if not_comparable(name, key) else "")
            if mark:
                axis.text(index, rate or 0, mark, ha="center", va="bottom", fontsize=8)
        best = bars[key]["best_peer"]
        if best is not None:  # the bar OpenFiles has to reach
            axis.axhline(bars[key]["peers"][best], color="grey", linestyle="--", linewidth=0.8)
        axis.set_title(label, fontsize=9)
        axis.set_ylabel(unit, fontsize=8)
        axis.tick_params(axis="x", labelrotation=45, labelsize=7)
    fig.suptitle(title or "openfiles bench (higher is better; dashed: the best peer; "
                 "* not comparable, n/s not supported)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None
