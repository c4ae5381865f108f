"""csi-sanity (pinned by scripts/bootstrap-tests.sh) against the real plugin in --mode all.

Real FUSE mounts through the mounter and the engine, volumes created in a MinIO
bucket, a bucket of the GCS emulator and an Azurite container (the controller's
CreateVolume and DeleteVolume, the node's whole lifecycle, for each store). Zero
failures; every skip must be one of ``EXPECTED_SKIPS``, each with the reason this
driver does not offer that feature.
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET

import pytest
import yaml

from fixtures.prereq import tool
from fixtures.server import ServerBucket

from .conftest import Node

# csi-sanity's skip message -> why this driver does not offer that feature
EXPECTED_SKIPS = {
    "GetCapacity not supported": "object storage has no capacity to report",
    "ListVolumes not supported": "volumes are bucket prefixes; listing them is not offered",
    "Snapshot not supported": "no snapshots; the bucket's own versioning serves that need",
    "ListSnapshots not supported": "no snapshots",
    "CreateSnapshot not supported": "no snapshots",
    "DeleteSnapshot not supported": "no snapshots",
    "Volume Cloning not supported": "no clones",
    "Modify volume not supported": "no mutable parameters (no volume attribute classes)",
    "Modify Volume not supported": "no mutable parameters (no volume attribute classes)",
    "ControllerModifyVolume not supported": "no mutable parameters",
    "ControllerPublishVolume not supported": "no attach step: CSIDriver attachRequired false",
    "ControllerUnpublishVolume not supported": "no attach step: CSIDriver attachRequired false",
    "Controller Publish, UnpublishVolume not supported": "no attach step (controller lifecycle)",
    "testnodevolumeattachlimit not enabled": "no per-node volume limit",
    "ControllerExpandVolume not supported": "capacity is nominal; nothing to expand",
    "NodeExpandVolume not supported": "capacity is nominal; nothing to expand",
    "GroupControllerService not supported": "no group controller service",
    "VolumeGroupSnapshots not supported": "no group snapshots",
    "pending": "marked pending (PIt) inside csi-sanity itself; never runs for any driver",
}


@pytest.mark.fuse
@pytest.mark.root
@pytest.mark.tools
@pytest.mark.timeout(900)
@pytest.mark.parametrize("store", [
    pytest.param("s3_bucket", marks=pytest.mark.s3, id="s3"),
    pytest.param("gcs_bucket", marks=pytest.mark.gcs, id="gs"),
    pytest.param("az_container", marks=pytest.mark.azure, id="az"),
])  # fmt: skip
def test_csi_sanity(node_env: Node, store: str, request: pytest.FixtureRequest) -> None:
    bucket: ServerBucket = request.getfixturevalue(store)
    plugin = node_env.start_plugin("all")
    root = node_env.root
    secrets = bucket.secret
    (root / "params.yaml").write_text(yaml.safe_dump({
        "url": f"{bucket.url}/sanity", **bucket.context, "deleteData": "true",
        "exportDelay": "1s",
    }))  # fmt: skip
    (root / "secrets.yaml").write_text(yaml.safe_dump({
        key: secrets for key in (
            "CreateVolumeSecret", "DeleteVolumeSecret",
            "ControllerValidateVolumeCapabilitiesSecret",
            "NodeStageVolumeSecret", "NodePublishVolumeSecret",
        )
    }))  # fmt: skip
    junit = root / "junit.xml"
    result = subprocess.run(
        [str(tool("csi-sanity")),
         f"--csi.endpoint=unix://{plugin.socket}",
         f"--csi.mountdir={node_env.kubelet}/mount",
         f"--csi.stagingdir={node_env.kubelet}/staging",
         f"--csi.testvolumeparameters={root / 'params.yaml'}",
         f"--csi.secrets={root / 'secrets.yaml'}",
         f"--ginkgo.junit-report={junit}",
         "--ginkgo.no-color", "--ginkgo.timeout=14m"],
        capture_output=True, text=True, timeout=880,
    )  # fmt: skip
    output = result.stdout[-20000:] + result.stderr[-5000:]
    cases = ET.parse(junit).getroot().iter("testcase")
    failed: list[str] = []
    passed: list[str] = []
    skipped: dict[str, str] = {}
    for case in cases:
        name = case.get("name", "")
        skip = case.find("skipped")
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(name)
        elif skip is not None:
            skipped[name] = skip.get("message", "")
        else:
            passed.append(name)
    logs = f"{plugin.proc.log()[-20000:]}\n--- mounter ---\n{node_env.mounter.log()[-10000:]}"
    assert not failed, f"csi-sanity failures: {failed}\n{output}\n{logs}"
    assert result.returncode == 0, output
    unexplained = {
        n: m for n, m in skipped.items() if not any(m.endswith(k) for k in EXPECTED_SKIPS)
    }
    assert not unexplained, f"skips without a stated reason: {unexplained}"
    # The full node lifecycle (create, stage, publish, stats, unpublish, unstage, delete),
    # once and then ten times over for idempotency.
    assert "[It] Node Service should work" in passed
    assert "[It] Node Service should be idempotent" in passed
    assert len(passed) >= 35, f"only {len(passed)} csi-sanity tests ran"
    # Every staged volume was unstaged: nothing is left mounted under the node's root.
    with open("/proc/self/mountinfo") as f:
        assert str(root) not in f.read()
