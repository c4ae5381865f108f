"""The engines' export state in the OpenFilesVolume's status and Events, end to end: the real
operator, the real node plugin, mounter and engine on MinIO, the real API server.

The node plugin reports every half second as the admin (the RBAC of its reports is
tests/csi/plugin/test_kube.py); the operator re-checks every second with a 2 s margin.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from csi.conftest import Node, Volume, running_node
from operator_cluster import POLICY_NAMESPACE, Cluster, OperatorThread, volume_spec, wait_for

from fixtures.minio import Bucket, MinioServer, new_bucket
from openfiles_contracts import jsonline

pytestmark = [pytest.mark.cluster, pytest.mark.s3, pytest.mark.fuse, pytest.mark.root,
              pytest.mark.timeout(300)]
NODE = "node-1"  # the node id the csi test node's plugin uses


@pytest.fixture
def reporting(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The operator, and a node whose plugin reports; yields ``stage(name) -> Volume``."""
    if not cluster.core.list_node(field_selector=f"metadata.name={NODE}").items:
        cluster.core.create_node({"metadata": {"name": NODE}})
    running = OperatorThread(cluster.kube, export_check_interval=1.0, export_margin=2.0,
                             conflict_window=20.0).start()
    with ExitStack() as stack:
        stack.callback(running.stop)
        node: Node = stack.enter_context(running_node(tmp_path_factory))
        plugin = node.start_plugin(
            "node", "--report-namespace", POLICY_NAMESPACE, "--kubeconfig",
            str(cluster.kube.kubeconfig), "--report-interval", "0.5", "--flush-timeout", "10")
        staged: list[Volume] = []

        def stage(name: str, secret: dict[str, str]) -> Volume:
            body = wait_for(lambda: cluster.ready(name), timeout=60, what=f"{name} Ready")
            handle = body["status"]["volumeHandle"]
            pv = cluster.core.read_persistent_volume(handle)
            staging = node.kubelet / "plugins" / name / "globalmount"
            staging.mkdir(parents=True)
            vol = Volume(plugin, handle, str(staging), dict(pv.spec.csi.volume_attributes),
                         secret)
            vol.stage()
            staged.append(vol)
            return vol

        yield stage
        for vol in staged:
            vol.unstage()


def control(vol: Volume, message: dict[str, Any]) -> dict[str, Any]:
    records = Path(vol.staging).parents[3] / "state" / "records"
    (record,) = (json.loads(p.read_text()) for p in records.iterdir()
                 if json.loads(p.read_text())["volume_id"] == vol.volume_id)
    return jsonline.request(record["control_socket"], message, 40)


def status(cluster: Cluster, name: str) -> dict[str, Any]:
    return dict(cluster.volume(name).get("status") or {})


def exported(cluster: Cluster, name: str) -> dict[str, Any] | None:
    return cluster.condition(name, "Exported")


def reports(cluster: Cluster) -> list[dict[str, Any]]:
    items = cluster.custom.list_namespaced_custom_object(
        "openfiles.io", "v1alpha1", POLICY_NAMESPACE, "openfilesnodereports")["items"]
    return [dict(i) for i in items]


def on_own_minio(cluster: Cluster, make_minio: Any, reporting: Any, prefix: str,
                 delay: str) -> tuple[MinioServer, Bucket, Volume]:
    """OpenFilesVolume ``data`` on a MinIO of its own (a test may stop it), staged."""
    server: MinioServer = make_minio()
    bucket = new_bucket(server)
    data = {k: base64.b64encode(v.encode()).decode() for k, v in bucket.secret.items()}
    cluster.core.create_namespaced_secret(cluster.namespace,
                                          {"metadata": {"name": "own"}, "data": data})
    spec = volume_spec(bucket, prefix, export={"delay": delay})
    spec["bucket"]["credentialsSecretRef"] = {"name": "own"}
    cluster.create_volume("data", spec)
    return server, bucket, reporting("data", bucket.secret)


def test_dirty_bytes_reach_the_status_and_leave_after_the_export(
        cluster: Cluster, s3_bucket: Bucket, reporting: Any) -> None:
    cluster.create_volume("data", volume_spec(s3_bucket, "dirty", export={"delay": "1h"}))
    vol = reporting("data", s3_bucket.secret)
    wait_for(lambda: status(cluster, "data").get("nodeCount") == 1, what="the node's line")
    (Path(vol.staging) / "a.bin").write_bytes(b"x" * 3000)
    written = time.monotonic()
    body = wait_for(lambda: (s := status(cluster, "data")).get("dirtyBytes") == 3000 and s,
                    timeout=15, what="dirty bytes in the status")
    assert time.monotonic() - written < 10
    (line,) = body["nodes"]
    assert line["node"] == NODE and line["engineAlive"] and line["dirtyFiles"] == 1
    assert "2.9 KiB dirty in 1 file" in line["summary"]
    printed = cluster.kube.kubectl("get", "ofv", "data", "-n", cluster.namespace).stdout
    header, row = printed.splitlines()
    assert header.split()[-5:] == ["EXPORTED", "DIRTY", "CONFLICTS", "NODES", "AGE"]
    assert row.split()[-4:-1] == ["3000", "0", "1"]
    assert NODE in cluster.kube.kubectl("describe", "ofv", "data", "-n",
                                        cluster.namespace).stdout
    assert control(vol, {"op": "flush", "timeout": 30})["ok"]
    wait_for(lambda: status(cluster, "data").get("dirtyBytes") == 0, timeout=15,
             what="dirty bytes back to zero")
    cond = wait_for(lambda: exported(cluster, "data"), what="Exported")
    assert cond["status"] == "True" and cond["reason"] == "Exported"
    vol.unstage()
    wait_for(lambda: all(r["spec"]["volumeHandle"] != vol.volume_id for r in reports(cluster)),
             timeout=15, what="the report removed at unstage")
    wait_for(lambda: status(cluster, "data").get("nodeCount") == 0, what="no nodes")
    vol.stage()  # the fixture unstages it again


def test_a_conflict_is_an_event_naming_lost_and_found(
        cluster: Cluster, s3_bucket: Bucket, reporting: Any) -> None:
    import obstore

    cluster.create_volume("data", volume_spec(s3_bucket, "race", export={"delay": "1h"}))
    vol = reporting("data", s3_bucket.secret)
    (Path(vol.staging) / "c.txt").write_bytes(b"local edit")
    obstore.put(s3_bucket.store(), "race/c.txt", b"plain S3 PUT")
    assert control(vol, {"op": "flush", "timeout": 30})["ok"]

    def conflict_event() -> str | None:
        return next((m for r, m in cluster.events("data") if r == "Conflict"), None)

    message = wait_for(conflict_event, timeout=20, what="a Conflict Event")
    assert "'c.txt'" in message and ".openfiles-lost+found-" in message
    lost = message.split("kept at ")[1].split(" in the volume")[0]
    assert (Path(vol.staging) / lost).read_bytes() == b"local edit"
    wait_for(lambda: status(cluster, "data").get("conflicts") == 1, what="conflicts counted")
    cond = wait_for(lambda: (c := exported(cluster, "data")) and c["reason"] == "Conflicts"
                    and c, what="Exported False: Conflicts")
    assert cond["status"] == "False"
    for secret in s3_bucket.secret.values():
        assert secret not in message and secret not in json.dumps(cluster.volume("data"))
    time.sleep(2)
    assert [r for r, _ in cluster.events("data")].count("Conflict") == 1  # once, not per tick


def test_a_stopped_bucket_turns_exported_false_until_it_returns(
        cluster: Cluster, make_minio: Any, reporting: Any) -> None:
    import obstore

    server, bucket, vol = on_own_minio(cluster, make_minio, reporting, "down", "1s")
    (Path(vol.staging) / "w.txt").write_bytes(b"first")
    assert control(vol, {"op": "flush", "timeout": 30})["ok"]
    server.stop()
    (Path(vol.staging) / "w.txt").write_bytes(b"waits for the bucket")
    cond = wait_for(lambda: (c := exported(cluster, "data")) and c["status"] == "False" and c,
                    timeout=60, what="Exported False")
    assert cond["reason"] == "BucketUnreachable", cond
    assert NODE in cond["message"]
    assert any(r == "ExportFailed" for r, _ in cluster.events("data"))
    assert status(cluster, "data")["nodes"][0]["lastExportError"]
    server.start()
    wait_for(lambda: (c := exported(cluster, "data")) and c["status"] == "True", timeout=90,
             what="Exported True again")
    assert status(cluster, "data")["dirtyBytes"] == 0
    assert bytes(obstore.get(bucket.store(), "down/w.txt").bytes()) == b"waits for the bucket"


def test_data_stranded_by_a_dead_engine_and_a_stopped_bucket_is_reported(
        cluster: Cluster, make_minio: Any, reporting: Any) -> None:
    """Issue 14, item 5: the data cannot be exported at unstage, so the report, the
    volume's status and one Event name the node and the bytes; the next stage exports it."""
    import obstore

    server, bucket, vol = on_own_minio(cluster, make_minio, reporting, "strand", "1h")
    payload = b"s" * 4321
    (Path(vol.staging) / "s.bin").write_bytes(payload)
    wait_for(lambda: status(cluster, "data").get("dirtyBytes") == len(payload), timeout=15,
             what="dirty bytes in the status")
    pid = int(control(vol, {"op": "status"})["status"]["pid"])
    os.kill(pid, signal.SIGKILL)
    server.stop()
    vol.unstage_as_kubelet()  # flush-only cannot reach the bucket: the data stays here

    def own_report() -> dict[str, Any]:  # an earlier test's node may have left one (kept)
        (item,) = (r for r in reports(cluster) if r["spec"]["volumeHandle"] == vol.volume_id)
        return dict(item["spec"])

    def stranded_report() -> dict[str, Any] | None:
        spec = own_report()
        return spec if spec.get("stranded") else None

    report = wait_for(stranded_report, timeout=15, what="the report of the stranded data")
    assert (report["dirtyFiles"], report["dirtyBytes"]) == (1, len(payload))
    assert report["nodeName"] == NODE and report["cacheKept"] and not report["engineAlive"]
    assert report["strandedError"] and report["strandedSince"]
    cond = wait_for(lambda: (c := exported(cluster, "data")) and c["reason"] == "DataStranded"
                    and c, timeout=15, what="Exported False: DataStranded")
    assert cond["status"] == "False"
    assert NODE in cond["message"] and f"{len(payload)} bytes" in cond["message"]
    (line,) = status(cluster, "data")["nodes"]
    assert line["stranded"] and line["dirtyBytes"] == len(payload) and "STRANDED" in line["summary"]

    def stranded_events() -> list[str]:
        return [m for r, m in cluster.events("data") if r == "DataStranded"]

    (message,) = wait_for(stranded_events, timeout=15, what="a DataStranded Event")
    assert NODE in message and f"{len(payload)} dirty bytes" in message
    for secret in bucket.secret.values():
        assert secret not in message and secret not in json.dumps(cluster.volume("data"))
    time.sleep(2)
    assert len(stranded_events()) == 1  # once, not per tick
    server.start()
    vol.stage()  # the engine now serving the cache exports the stranded file at once
    cond = wait_for(lambda: (c := exported(cluster, "data")) and c["status"] == "True" and c,
                    timeout=60, what="Exported True again")
    assert bytes(obstore.get(bucket.store(), "strand/s.bin").bytes()) == payload
    (line,) = status(cluster, "data")["nodes"]
    assert line["engineAlive"] and "stranded" not in line and line["dirtyBytes"] == 0
    assert not {"stranded", "cacheKept", "strandedSince"} & set(own_report())
    assert len(stranded_events()) == 1


# --- The summary alone (exports.summarize), for the reasons the tests above do not reach ---


def _report(node: str, **spec: Any) -> Any:
    return {"metadata": {"name": node, "uid": "u"},
            "spec": {"nodeName": node, "volumeHandle": "h", "engineAlive": True,
                     "reportTime": "2025-01-01T00:00:00Z", **spec}}


def test_summary_reasons() -> None:
    from openfiles_operator.exports import summarize

    now = 1_750_000_000.0

    def reason(*reports: Any) -> tuple[str, str]:
        _, cond = summarize(reports, 60, now, 30, 600, 1)
        return cond["status"], cond.get("reason", "")

    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 100))
    recent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 10))
    assert reason() == ("True", "NotStaged")
    assert reason(_report("a", dirtyFiles=1, dirtyBytes=5, dirtySince=recent)) == \
        ("True", "Exported")
    assert reason(_report("a", dirtyFiles=1, dirtySince=since)) == ("False", "ExportLagging")
    assert reason(_report("a", dirtyFiles=1, dirtySince=since, exportDelaySeconds=3600)) == \
        ("True", "Exported")
    assert reason(_report("a", dirtyFiles=1, dirtySince=recent, lastExportError="refused")) \
        == ("False", "BucketUnreachable")
    assert reason(_report("a", engineAlive=False, dirtyFiles=1, dirtyBytes=9),
                  _report("b", dirtyFiles=1, dirtySince=since)) == ("False", "EngineDead")
    assert reason(_report("a", engineAlive=False)) == ("True", "Exported")
    stranded = _report("a", engineAlive=False, cacheKept=True, stranded=True, dirtyFiles=1,
                       dirtyBytes=9, strandedSince=recent, strandedError="refused")
    assert reason(stranded, _report("b", engineAlive=False, dirtyFiles=1)) == \
        ("False", "DataStranded")
    kept = _report("a", engineAlive=False, cacheKept=True, stranded=False, lostFoundFiles=1,
                   lostFoundBytes=5)
    assert reason(kept) == ("True", "Exported")
    fields, _ = summarize([kept], 60, now, 30, 600, 1)
    assert "cache kept for lost+found" in fields["nodes"][0]["summary"]  # type: ignore[index]
    assert reason(_report("a", conflicts=1, lastConflictTime=recent)) == ("False", "Conflicts")
    fields, _ = summarize([_report("b", dirtyBytes=2, conflicts=1), _report("a", dirtyBytes=3)],
                          60, now, 30, 600, 1)
    assert (fields["dirtyBytes"], fields["conflicts"], fields["nodeCount"]) == (5, 1, 2)
    assert [line["node"] for line in fields["nodes"]] == ["a", "b"]  # type: ignore[attr-defined]
    fields, _ = summarize([_report("a", eventsConnected=True),
                           _report("b", eventsConnected=False, eventsError="refused")],
                          60, now, 30, 600, 1)
    a, b = fields["nodes"]  # type: ignore[misc]
    assert "events connected" in a["summary"] and a["eventsConnected"] is True
    assert "events DOWN (refused)" in b["summary"] and b["eventsError"] == "refused"
    fields, _ = summarize([_report("a")], 60, now, 30, 600, 1)
    assert "events" not in fields["nodes"][0]["summary"]  # type: ignore[index]
