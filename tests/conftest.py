"""Test-suite wiring: markers, shared fixtures, and a check that nothing leaks.

Fixtures live in ``tests/fixtures/`` (``minio``, ``make_minio``, ``s3_bucket``,
``kube``). ``tests/`` is on ``sys.path`` through ``pythonpath`` in
pyproject.toml, so test modules import them as ``fixtures.minio``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

from fixtures.prereq import check_markers, child_pids, fuse_mounts, lazy_unmount

pytest_plugins = ["fixtures.minio", "fixtures.kube"]


def pytest_runtest_setup(item: pytest.Item) -> None:
    check_markers(item)


@pytest.fixture(scope="session", autouse=True)
def _leaves_nothing_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fail the session if tests leave FUSE mounts or child processes behind.

    Only mounts under this session's temporary directories count: other
    processes on the machine may mount elsewhere and are none of our business.
    """
    roots = (str(tmp_path_factory.getbasetemp()), f"{tempfile.gettempdir()}/openfiles-")
    yield
    leaked_mounts = sorted(p for p in fuse_mounts() if p.startswith(roots))
    for point in leaked_mounts:
        lazy_unmount(point)
    # Session fixtures (MinIO, the API server) are torn down before this one
    # only if they were requested after it; it is autouse, so it comes first
    # and ends last.
    leaked_procs = child_pids(os.getpid())
    problems = []
    if leaked_mounts:
        problems.append(f"FUSE mounts left behind (now unmounted): {leaked_mounts}")
    if leaked_procs:
        cmdlines = []
        for pid in leaked_procs:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdlines.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
        if cmdlines:
            problems.append(f"child processes left behind: {cmdlines}")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
