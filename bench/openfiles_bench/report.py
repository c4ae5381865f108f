"""The human-readable report of a benchmark run.

Rates are higher-is-better everywhere, so a ratio is ``openfiles / other``
and above 1.00 means OpenFiles is faster. Cells say ``n/a`` or ``failed``
for a target without figures, ``error`` for a workload that broke, ``n/s``
for one the target does not support, ``-`` where a figure cannot exist (the
in-memory FS has no bucket), and a figure marked ``*`` is not comparable
(goal.py).
"""

from __future__ import annotations

from typing import Any

from openfiles_bench.goal import CEILINGS, not_comparable
from openfiles_bench.result import TARGETS, TargetResult
from openfiles_bench.workload import METRICS


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _cell(result: TargetResult, metric: str, value: str | None = None) -> str:
    if result.status != "ok":
        return result.status
    if metric in result.unsupported:
        return "n/s"
    if metric in result.errors:
        return "error"
    rate = result.rate(metric)
    text = value if value is not None else (_number(rate) if rate is not None else "-")
    return text + ("*" if rate is not None and not_comparable(result.name, metric) else "")


def _spread(result: TargetResult, metric: str) -> str:
    rates = result.notes.get("rounds", {}).get(metric) if result.status == "ok" else None
    if not rates:
        return _cell(result, metric)
    return _cell(result, metric, f"{_number(min(rates))} - {_number(max(rates))}")


def _grid(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[col]) for row in [header, *rows]) for col in range(len(header))]
    lines = []
    for row in [header, *rows]:
        numbers = [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        cells = [row[0].ljust(widths[0]), *numbers]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _goal_table(rows: list[dict[str, Any]]) -> list[str]:
    header = ["workload", "openfiles", "best peer", "", "ratio", "goal", "rounds",
              *(f"vs {TARGETS[c]}" for c in CEILINGS)]
    table = []
    for row in rows:
        best = row["best_peer"]
        paired = row["rounds_met"]
        table.append([
            row["label"],
            "-" if row["openfiles"] is None else _number(row["openfiles"]),
            "-" if best is None else _number(row["peers"][best]),
            "" if best is None else TARGETS[best],
            _ratio(row["ratio"]),
            {True: "met", False: "MISSED", None: "n/a"}[row["met"]],
            "-" if paired is None else f"{paired[0]} of {paired[1]}",
            *(_ratio(row["ceilings"].get(c)) for c in CEILINGS),
        ])
    met = sum(1 for row in rows if row["met"])
    judged = sum(1 for row in rows if row["met"] is not None)
    return ["", "Goal (issue 17): OpenFiles's median >= the best peer's median "
            "(peers: s3fs, rclone full, mount-s3, mount-s3 cache)", _grid(header, table),
            f"met on {met} of {judged} workloads with figures; "
            "'rounds': rounds in which OpenFiles beat the best peer of the same round"]


def _usage_tables(results: dict[str, TargetResult], names: list[str]) -> list[str]:
    def rss(result: TargetResult, metric: str) -> str:
        peak = result.peak_rss(metric)
        return _cell(result, metric, "-" if peak is None else f"{peak / (1 << 20):,.0f}")

    def cpu(result: TargetResult, metric: str) -> str:
        cost = result.cpu(metric)
        return _cell(result, metric, "-" if cost is None else _number(cost[0]))

    header = ["workload", *(TARGETS[n] for n in names)]
    peaks = [[label, *(rss(results[n], key) for n in names)]
             for key, (label, _) in METRICS.items()]
    costs = [[label, "us/op" if key in ("ls_cold", "ls_warm", "stat") else "s/GiB",
              *(cpu(results[n], key) for n in names)] for key, (label, _) in METRICS.items()]
    return ["", "Peak RSS of each file system's processes, MiB (the highest round; "
            "raw GET: the bench's own process)", _grid(header, peaks),
            "", "CPU seconds of those processes per GiB moved (ls -l and stat: "
            "microseconds per operation), the median round",
            _grid(["workload", "unit", *header[1:]], costs)]


def _rss_line(rss: dict[str, Any]) -> str:
    if rss["met"] is None:
        return "OpenFiles's peak RSS: n/a (the engine has no figures in this run)"
    where = METRICS[rss["workload"]][0]
    if rss["met"]:
        return (f"OpenFiles's peak RSS: {rss['peak_mib']:,.0f} MiB ({where}), "
                f"under the {rss['bound_mib']} MiB bound in every workload")
    over = "; ".join(METRICS[m][0] for m in rss["over"])
    return f"OpenFiles's peak RSS: {rss['peak_mib']:,.0f} MiB, OVER the " \
           f"{rss['bound_mib']} MiB bound in: {over}"


def _shapes(results: dict[str, TargetResult]) -> list[str]:
    raw = results.get("raw")
    shapes = raw.notes.get("get_shapes") if raw is not None and raw.status == "ok" else None
    if not shapes:
        return []
    per_round = shapes if isinstance(shapes, list) else [shapes]
    lines = ["", "Raw GET of the sequential read, MiB/s by shape (the best is the ceiling)"]
    for index, rates in enumerate(per_round, 1):
        if rates:
            best = max(rates, key=lambda s: rates[s])
            cells = ", ".join(f"{s} {_number(r)}" for s, r in rates.items())
            lines.append(f"  round {index}: best {best}; {cells}")
    return lines


def _notes(results: dict[str, TargetResult], names: list[str]) -> list[str]:
    parts: list[str] = []
    marked = [f"  * {TARGETS[n]}, {label}: {not_comparable(n, key)}"
              for n in names for key, (label, _) in METRICS.items()
              if results[n].rate(key) is not None and not_comparable(n, key)]
    if marked:
        parts += ["", "Not comparable (not a figure OpenFiles is held to)", *marked]
    lacking = []
    for n in names:
        lacks = results[n].notes.get("lacks")
        if lacks:
            used = [f"{METRICS[k][0]} (needs {ops})" for k, ops in results[n].unsupported.items()]
            lacking.append(f"  {TARGETS[n]} does not support {', '.join(lacks)}: "
                           + ("n/s in " + "; ".join(used) if used else "no workload here needs it"))
    if lacking:
        parts += ["", "Not supported (n/s)", *lacking]
    rows = []
    for name in names:
        seconds = results[name].notes.get("reclaim_seconds")
        per_round = seconds if isinstance(seconds, list) else [seconds]
        if any(per_round):
            cells = " / ".join("-" if s is None else f"{s:.2f}" for s in per_round)
            rows.append(f"  {TARGETS[name]}: {cells}")
    if rows:
        parts += ["", "CPU seconds of the kernel's reclaim (DAMON) during each round", *rows]
    missing = [f"  {TARGETS[n]}: {results[n].status} ({results[n].reason})"
               for n in names if results[n].status != "ok"]
    if missing:
        parts += ["", "Targets without figures", *missing]
    broken = [f"  {TARGETS[n]}, {METRICS[key][0]}: {why}"
              for n in names for key, why in results[n].errors.items()]
    if broken:
        parts += ["", "Workloads that broke", *broken]
    return parts


def render(results: dict[str, TargetResult], rows: list[dict[str, Any]],
           rss: dict[str, Any]) -> str:
    """The report: figures, spread, the goal table, costs, RSS bound, shapes, notes."""
    names = [name for name in TARGETS if name in results]
    header = ["workload", "unit", *(TARGETS[name] for name in names)]
    table = [[label, unit, *(_cell(results[n], key) for n in names)]
             for key, (label, unit) in METRICS.items()]
    rounds = max((len(r.notes.get("rounds", {}).get(k, [])) for r in results.values()
                  for k in METRICS), default=0)
    title = "Absolute figures (higher is better)"
    if rounds > 1:
        title += f", the median of {rounds} rounds"
    parts = [title, _grid(header, table)]
    if rounds > 1:
        table = [[label, unit, *(_spread(results[n], key) for n in names)]
                 for key, (label, unit) in METRICS.items()]
        parts += ["", "Spread over the rounds (lowest - highest)", _grid(header, table)]
    parts += _goal_table(rows)
    parts += _usage_tables(results, names)
    parts += ["", _rss_line(rss)]
    parts += _shapes(results)
    parts += _notes(results, names)
    return "\n".join(parts)
