"""Randomized operation sequences on a mount, checked against a plain local directory."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import Backend, MountFactory

pytestmark = [pytest.mark.fuse, pytest.mark.timeout(300)]

NAMES = ["a", "b", "d/a", "d/b", "e/a", "d/f/a"]
DIRS = ["d", "e", "d/f"]

op = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(NAMES), st.binary(max_size=3000)),
    st.tuples(st.just("append"), st.sampled_from(NAMES), st.binary(min_size=1, max_size=500)),
    st.tuples(st.just("pwrite"), st.sampled_from(NAMES), st.integers(0, 5000),
              st.binary(min_size=1, max_size=200)),
    st.tuples(st.just("truncate"), st.sampled_from(NAMES), st.integers(0, 4000)),
    st.tuples(st.just("unlink"), st.sampled_from(NAMES)),
    st.tuples(st.just("mkdir"), st.sampled_from(DIRS)),
    st.tuples(st.just("rmdir"), st.sampled_from(DIRS)),
    st.tuples(st.just("rename"), st.sampled_from(NAMES + DIRS), st.sampled_from(NAMES + DIRS)),
    st.tuples(st.just("chmod"), st.sampled_from(NAMES + DIRS), st.sampled_from([0o600, 0o755])),
    st.tuples(st.just("flush")),
)


def apply(root: Path, step: tuple[object, ...]) -> str:
    """Run one step under ``root``; returns "ok" or the errno name (compared, not raised)."""
    kind = step[0]
    try:
        if kind == "write":
            (root / str(step[1])).write_bytes(step[2])  # type: ignore[arg-type]
        elif kind == "append":
            with open(root / str(step[1]), "ab") as f:
                f.write(step[2])  # type: ignore[arg-type]
        elif kind == "pwrite":
            fd = os.open(root / str(step[1]), os.O_WRONLY)
            try:
                os.pwrite(fd, step[3], step[2])  # type: ignore[arg-type]
            finally:
                os.close(fd)
        elif kind == "truncate":
            os.truncate(root / str(step[1]), step[2])  # type: ignore[arg-type]
        elif kind == "unlink":
            os.unlink(root / str(step[1]))
        elif kind == "mkdir":
            os.mkdir(root / str(step[1]))
        elif kind == "rmdir":
            os.rmdir(root / str(step[1]))
        elif kind == "rename":
            os.rename(root / str(step[1]), root / str(step[2]))
        elif kind == "chmod":
            os.chmod(root / str(step[1]), step[2])  # type: ignore[arg-type]
    except OSError as exc:
        return os.strerror(exc.errno or 0)
    return "ok"


def snapshot(root: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        mode = path.lstat().st_mode & 0o777
        out[rel] = ("dir", mode) if path.is_dir() else ("file", mode, path.read_bytes())
    return out


def test_random_operations_match_a_local_directory(
        mounter: MountFactory, backend: Backend, tmp_path: Path) -> None:
    m = mounter(backend, "--export-delay", "0.3")
    counter = [0]

    @settings(max_examples=40, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
    @given(st.lists(op, max_size=25))
    def run(steps: list[tuple[object, ...]]) -> None:
        counter[0] += 1
        case = f"case{counter[0]}"
        model = tmp_path / "model" / case
        real = m.path / case
        model.mkdir(parents=True)
        real.mkdir()
        for step in steps:
            if step[0] == "flush":
                assert m.flush()["ok"]
                continue
            assert apply(real, step) == apply(model, step), step
        assert snapshot(real) == snapshot(model)
        assert m.flush()["ok"]
        bucket_files = {k[len(case) + 1:]: backend.read(k) for k in backend.keys()
                        if k.startswith(case + "/")}
        model_files = {k: v[2] for k, v in snapshot(model).items()  # type: ignore[index]
                       if v[0] == "file"}  # type: ignore[index]
        assert bucket_files == model_files
        shutil.rmtree(model)

    run()
    assert m.status()["conflicts"] == 0
