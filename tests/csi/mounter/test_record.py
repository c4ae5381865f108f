"""Mount records survive as whole files; interrupted and corrupt ones do not break loading."""

from __future__ import annotations

import json
import os

from openfiles_csi.mounter.record import MountRecord, RecordStore


def record(mountpoint: str = "/stage/a") -> MountRecord:
    return MountRecord(
        volume_id="vol-1", mountpoint=mountpoint, source="s3://b/v", args=["--uid", "1"],
        cache_dir="/c", control_socket="/s.sock", log_path="/l.log", pid=42, start_ticks=7,
    )  # fmt: skip


def test_save_load_delete(tmp_path: str) -> None:
    store = RecordStore(str(tmp_path))
    store.save(record("/stage/a"))
    r = record("/stage/b")
    r.state = "running"
    store.save(r)
    loaded = {x.mountpoint: x for x in RecordStore(str(tmp_path)).load()}
    assert loaded["/stage/b"] == r
    assert loaded["/stage/a"].state == "starting"
    store.delete("/stage/a")
    store.delete("/stage/a")  # idempotent
    assert [x.mountpoint for x in store.load()] == ["/stage/b"]
    assert oct(os.stat(store.dir).st_mode & 0o777) == "0o700"
    (name,) = os.listdir(store.dir)
    assert oct(os.stat(os.path.join(store.dir, name)).st_mode & 0o777) == "0o600"


def test_leftover_tmp_and_corrupt_files(tmp_path: str) -> None:
    store = RecordStore(str(tmp_path))
    store.save(record())
    good = os.listdir(store.dir)[0]
    with open(os.path.join(store.dir, good + ".tmp"), "w") as f:
        f.write('{"volume_id": "half')  # a save cut short by a crash
    with open(os.path.join(store.dir, "bad.json"), "w") as f:
        json.dump({"unexpected": 1}, f)
    loaded = store.load()
    assert [x.volume_id for x in loaded] == ["vol-1"]
    names = sorted(os.listdir(store.dir))
    assert names == sorted([good, "bad.json.corrupt"])
