"""What a file system's processes cost during one workload: peak RSS and CPU seconds.

A :class:`Meter` watches one process (the file system the bench started) and,
by default, its descendants, read from ``/proc``:

- CPU: user plus system seconds of every thread (``/proc/PID/stat``), the
  difference between the end and the start of the window; a process that
  appears during the window counts from zero.
- Peak RSS: the peak of the summed ``VmRSS`` of the tree, sampled every
  ``period`` seconds, and, where the kernel lets the bench reset it (writing
  ``5`` to ``/proc/PID/clear_refs``, root), the sum of every process's
  ``VmHWM`` at the end of the window. ``VmHWM`` alone is the peak of the
  process's whole life, so it is used only after such a reset; the samples
  cover processes that end during the window, the reset peaks cover spikes
  shorter than a sample period.

Nothing here raises because a process ended: its last sample stands.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from openfiles_contracts import procstat

PROC = Path("/proc")
GiB = 1 << 30


@dataclass(frozen=True)
class Usage:
    """The cost of one workload on one target.

    ``moved`` is the number of bytes the workload read or wrote (0 for the
    metadata workloads); ``operations`` the number of operations it timed.
    """

    peak_rss: int
    """Bytes."""
    cpu_seconds: float
    moved: int
    operations: float

    @property
    def cpu_per_gib(self) -> float | None:
        """CPU seconds per GiB moved; None for a workload that moves no bytes."""
        return self.cpu_seconds / (self.moved / GiB) if self.moved else None

    @property
    def cpu_per_operation(self) -> float | None:
        """CPU seconds per operation; None when nothing was counted."""
        return self.cpu_seconds / self.operations if self.operations else None


def _children(pid: int, proc: Path) -> list[int]:
    found: list[int] = []
    try:
        for task in (proc / str(pid) / "task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


def tree(pid: int, proc: Path = PROC) -> list[int]:
    """``pid`` and every live descendant of it (``/proc/PID/task/TID/children``)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += _children(current, proc)
    return out


def _status_kib(pid: int, field: str, proc: Path) -> int | None:
    try:
        for line in (proc / str(pid) / "status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cpu(pid: int, proc: Path) -> float | None:
    try:
        return procstat.read(proc / str(pid)).cpu_seconds
    except (OSError, ValueError):
        return None


@dataclass
class Window:
    """One measured span: filled in when the ``with`` block of :meth:`Meter.window` ends."""

    peak_rss: int = 0
    cpu_seconds: float = 0.0


class Meter:
    """Measures windows of the process ``pid`` (and its descendants, unless told not to)."""

    def __init__(
        self, pid: int, descendants: bool = True, period: float = 0.1, proc: Path = PROC
    ) -> None:
        self.pid = pid
        self.descendants = descendants
        self.period = period
        self.proc = proc

    def _pids(self) -> list[int]:
        return tree(self.pid, self.proc) if self.descendants else [self.pid]

    def _reset_peaks(self, pids: list[int]) -> bool:
        """Reset every process's VmHWM; False when any could not be reset."""
        done = True
        for pid in pids:
            try:
                (self.proc / str(pid) / "clear_refs").write_text("5")
            except OSError:
                done = False
        return done

    @contextmanager
    def window(self) -> Iterator[Window]:
        """Measure the ``with`` block; the yielded :class:`Window` holds the result after it."""
        result = Window()
        pids = self._pids()
        reset = self._reset_peaks(pids)
        start = {pid: _cpu(pid, self.proc) or 0.0 for pid in pids}
        last = dict(start)
        stop = threading.Event()

        def sample() -> None:
            total = 0
            for pid in self._pids():
                cpu = _cpu(pid, self.proc)
                if cpu is not None:
                    last[pid] = cpu
                    start.setdefault(pid, 0.0)  # born during the window
                total += (_status_kib(pid, "VmRSS", self.proc) or 0) * 1024
            result.peak_rss = max(result.peak_rss, total)

        def sampler() -> None:
            while not stop.wait(self.period):
                sample()

        thread = threading.Thread(target=sampler, name="bench-meter", daemon=True)
        sample()
        thread.start()
        try:
            yield result
        finally:
            stop.set()
            thread.join()
            sample()
            if reset:
                peaks = sum((_status_kib(p, "VmHWM", self.proc) or 0) * 1024 for p in self._pids())
                result.peak_rss = max(result.peak_rss, peaks)
            result.cpu_seconds = sum(max(0.0, last[pid] - start[pid]) for pid in last)
