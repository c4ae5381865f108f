"""Read ``/proc/<pid>/stat``: a process's state, parent, CPU time and start time.

Format (proc(5)): one line, ``PID (COMM) STATE PPID ...``. The command name may
hold spaces and parentheses, so the fields are counted after the *last* ``)``;
numbering follows proc(5): state is field 3, ppid 4, utime 14, stime 15 and
starttime 22. Times are in clock ticks (``SC_CLK_TCK`` a second); starttime
counts from boot, so ``(pid, starttime)`` names one process even after its pid
is reused.

Errors: :func:`read` raises FileNotFoundError (or ProcessLookupError, as a
``/proc`` entry may vanish while read) when the process or thread does not
exist; :func:`parse` raises ValueError on text that is not a stat line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcStat:
    """The fields of one stat line that OpenFiles reads."""

    state: str
    """One letter: ``R`` running, ``S`` sleeping, ``Z`` zombie, ..."""
    ppid: int
    utime: int
    """Clock ticks spent in user mode."""
    stime: int
    """Clock ticks spent in kernel mode."""
    start_ticks: int
    """Start time in clock ticks since boot."""

    @property
    def zombie(self) -> bool:
        """Exited and not yet reaped: it serves nothing any more."""
        return self.state == "Z"

    @property
    def cpu_seconds(self) -> float:
        """User plus system CPU seconds."""
        return (self.utime + self.stime) / os.sysconf("SC_CLK_TCK")


def parse(text: str) -> ProcStat:
    """The fields of stat line ``text``. Raises ValueError if it is not one."""
    head, paren, rest = text.rpartition(")")
    fields = rest.split()
    if not paren or "(" not in head or len(fields) < 20:
        raise ValueError("not a /proc/<pid>/stat line")
    return ProcStat(
        state=fields[0],
        ppid=int(fields[1]),
        utime=int(fields[11]),
        stime=int(fields[12]),
        start_ticks=int(fields[19]),
    )


def read(task: str | os.PathLike[str]) -> ProcStat:
    """Parse ``<task>/stat``, where ``task`` is ``/proc/<pid>`` or ``/proc/<pid>/task/<tid>``."""
    with open(os.path.join(task, "stat")) as f:
        return parse(f.read())


def start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot; None if there is no such
    process or it is a zombie (it has stopped serving whatever it served)."""
    try:
        stat = read(f"/proc/{pid}")
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if stat.zombie else stat.start_ticks
