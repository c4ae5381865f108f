"""``openfiles mounter --supervise``: keep the engines alive when the mounter crashes.

In the chart the mounter's container runs this as PID 1. Without it the mounter
itself is PID 1, and when it dies the kernel kills every process of the
container's PID namespace: every engine, so every pod on the node loses its
volumes (ENOTCONN) with its dirty data still in the cache. The supervisor is
small and does not touch FUSE, S3 or JSON, so it has little reason to crash:

- it starts the mounter (the same command without ``--supervise``) as its child;
- it is the reaper of orphans (PID 1 is; elsewhere it asks to be one with
  ``PR_SET_CHILD_SUBREAPER``), so the engines of a crashed mounter stay alive
  and become its children, and it reaps them when they exit;
- when the mounter dies without being asked to, it starts a new one after a
  delay that doubles from RESTART_DELAY up to MAX_RESTART_DELAY while the
  crashes come quickly; the new mounter adopts the running engines from its
  records (mounter.Mounter.adopt);
- SIGTERM and SIGINT go to the mounter; when it has exited (with
  ``--stop-engines-on-exit`` its engines have exported and unmounted by then)
  the supervisor exits with the mounter's status.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
from collections.abc import Sequence
from types import FrameType

log = logging.getLogger("openfiles_csi.mounter.supervisor")

RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
STABLE_AFTER = 60.0
"""Seconds a mounter must have run for its crash to restart it after RESTART_DELAY again."""
_PR_SET_CHILD_SUBREAPER = 36


def become_reaper() -> None:
    """Adopt orphaned descendants, as PID 1 does (a no-op need when we are PID 1)."""
    if os.getpid() == 1:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def exit_code(status: int) -> int:
    """A shell-style exit code of a wait status (128 + signal for a killed process)."""
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


class Supervisor:
    """Runs ``argv`` (the mounter) and restarts it until a stop signal arrives."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.child = 0
        self.stopping: signal.Signals | None = None

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = signal.Signals(signum)
        if self.child:
            try:
                os.kill(self.child, signum)
            except ProcessLookupError:
                pass

    def _start(self) -> None:
        self.child = os.posix_spawn(self.argv[0], self.argv, os.environ)
        log.info("supervisor: mounter started, pid %d", self.child)
        if self.stopping is not None:  # the signal came before we knew the pid
            os.kill(self.child, self.stopping)

    def _wait_child(self) -> int:
        """Reap children until the mounter exits; return its wait status."""
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid == self.child:
                self.child = 0
                return status
            # An engine adopted from a dead mounter: reaped here, watched by the
            # current mounter through a pidfd (process.wait_exit).
            log.info("supervisor: reaped pid %d (status %d)", pid, exit_code(status))

    def _pause(self, seconds: float) -> None:
        """Sleep, but wake for a stop signal; reap exiting engines meanwhile."""
        deadline = time.monotonic() + seconds
        while self.stopping is None and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if not pid:
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def run(self) -> int:
        become_reaper()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._signal)
        delay = RESTART_DELAY
        while True:
            started = time.monotonic()
            self._start()
            status = self._wait_child()
            code = exit_code(status)
            if self.stopping is not None:
                log.info("supervisor: mounter exited with %d after %s", code, self.stopping.name)
                return code
            if time.monotonic() - started >= STABLE_AFTER:
                delay = RESTART_DELAY
            log.error(
                "supervisor: mounter exited with %d without being asked to; its engines keep "
                "running; starting a new mounter in %.0f s",
                code,
                delay,
            )
            self._pause(delay)
            if self.stopping is not None:
                return code
            delay = min(delay * 2, MAX_RESTART_DELAY)
