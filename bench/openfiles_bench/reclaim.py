"""The kernel's proactive reclaim while the benchmark runs (DAMON's kdamond threads).

On the dev VM a DAMON scheme pages out memory not touched for about 30 s, up
to 2 GiB and 800 ms of CPU per second (``/sys/kernel/mm/damon/admin``). Its
threads take CPU from whatever runs, and the memory it frees goes back to the
host, so the next page-cache pages cost a host fault each: the figures of a
round it is busy in are lower, for some targets more than others. The bench
records how much CPU those threads used during each target's round, so that
such a round can be told from a slow file system. Where DAMON is off (most
machines), every figure is 0.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from openfiles_contracts import procstat

PROC = Path("/proc")
DAMON = Path("/sys/kernel/mm/damon/admin/kdamonds")


def cpu_seconds(task: Path) -> float:
    """User plus system CPU seconds of a process or thread, from its /proc directory."""
    return procstat.read(task).cpu_seconds


def reclaim_seconds(proc: Path = PROC) -> float:
    """CPU seconds used so far by every ``kdamond*`` kernel thread (a running total)."""
    total = 0.0
    for task in proc.iterdir():
        if not task.name.isdigit():
            continue
        try:
            if (task / "comm").read_text().startswith("kdamond"):
                total += cpu_seconds(task)
        except OSError:  # the task ended while we looked
            continue
    return total


def damon_schemes(root: Path = DAMON) -> list[str]:
    """The actions of the DAMON schemes of every running kdamond (e.g. ``["pageout"]``)."""
    actions: list[str] = []
    for kdamond in sorted(root.glob("[0-9]*")):
        try:
            if (kdamond / "state").read_text().strip() != "on":
                continue
            for action in sorted(kdamond.glob("contexts/*/schemes/*/action")):
                actions.append(action.read_text().strip())
        except OSError:
            continue
    return actions


def settle(timeout: float = 30.0, quiet: float = 2.0, poll: float = 0.5) -> float:
    """Wait, after ``sync()``, until the kdamond threads have been quiet for ``quiet`` s.

    Called between targets, so that the reclaim of what one target left behind
    runs before the next one starts rather than during it. Quiet means under
    2% of a core (kdamond's own sampling costs about 1%). Gives up after
    ``timeout`` s; returns the seconds waited. Without a running DAMON scheme
    it only syncs.
    """
    start = time.monotonic()
    os.sync()
    if not damon_schemes():
        return time.monotonic() - start
    last, quiet_since = reclaim_seconds(), time.monotonic()
    while time.monotonic() - start < timeout:
        time.sleep(poll)
        now = reclaim_seconds()
        if now - last > 0.02 * poll:
            quiet_since = time.monotonic()
        last = now
        if time.monotonic() - quiet_since >= quiet:
            break
    return time.monotonic() - start
