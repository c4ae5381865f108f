"""The picture of a run: a PNG when matplotlib is there, else the reason."""

from __future__ import annotations

from pathlib import Path

from openfiles_bench.chart import plot
from openfiles_bench.result import TargetResult
from openfiles_bench.workload import METRICS, Figure


def test_plot_draws_a_png_or_says_why_not(tmp_path: Path) -> None:
    results = {name: TargetResult(name, figures={k: Figure(5.0, 1.0) for k in METRICS})
               for name in ("raw", "rclone", "openfiles")}
    del results["rclone"].figures["seq_write"]
    results["rclone"].unsupported["seq_write"] = "rename"
    path = tmp_path / "p.png"
    why_not = plot(results, path)
    if why_not is None:
        assert path.read_bytes()[:4] == b"\x89PNG"
    else:
        assert why_not == "matplotlib is not installed"
        assert not path.exists()
