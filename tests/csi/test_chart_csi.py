"""The CSI parts of the chart render as the node and controller need them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.prereq import tool

pytestmark = [pytest.mark.tools]

CHART = Path(__file__).resolve().parents[2] / "charts" / "openfiles"


def render(*sets: str) -> dict[tuple[str, str], dict[str, Any]]:
    args = [str(tool("helm")), "template", "openfiles", str(CHART),
            "--namespace", "openfiles-system", "--kube-version", "1.34.10"]  # fmt: skip
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out) if d}


def containers(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in doc["spec"]["template"]["spec"]["containers"]}


def test_csi_objects() -> None:
    docs = render()
    driver = docs[("CSIDriver", "csi.openfiles.io")]["spec"]
    assert driver["attachRequired"] is False
    node = docs[("DaemonSet", "openfiles-csi-node")]
    mounter = docs[("DaemonSet", "openfiles-mounter")]
    c = {**containers(node), **containers(mounter)}
    assert set(containers(node)) == {"node-driver-registrar", "liveness-probe", "csi-node"}
    assert set(containers(mounter)) == {"mounter"}
    # The node plugin rolls; the mounter (parent of the engines) changes only on delete.
    assert node["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    assert mounter["spec"]["updateStrategy"]["type"] == "OnDelete"
    for name in ("csi-node", "mounter"):
        kubelet = [m for m in c[name]["volumeMounts"] if m["name"] == "kubelet-dir"]
        assert kubelet[0]["mountPropagation"] == "Bidirectional"
        assert c[name]["securityContext"]["privileged"] is True
    assert "--cache-root=/var/lib/openfiles/cache" in c["mounter"]["args"]
    # PID 1 of its container: its exit would SIGKILL the engines before they export.
    assert "--stop-engines-on-exit" in c["mounter"]["args"]
    node_volumes = {v["name"]: v for v in node["spec"]["template"]["spec"]["volumes"]}
    mounter_volumes = {v["name"]: v for v in mounter["spec"]["template"]["spec"]["volumes"]}
    assert mounter_volumes["cache-root"]["hostPath"]["path"] == "/var/lib/openfiles/cache"
    assert mounter_volumes["fuse"]["hostPath"]["path"] == "/dev/fuse"
    # Both ends of the mounter socket and of the engines' control sockets are host dirs.
    for key in ("run-dir", "state-dir"):
        assert node_volumes[key]["hostPath"] == mounter_volumes[key]["hostPath"]
    assert node_volumes["policies"]["configMap"]["optional"] is True
    controller = containers(docs[("Deployment", "openfiles-csi-controller")])
    assert set(controller) == {"csi-provisioner", "liveness-probe", "csi-controller"}
    assert "--mode=controller" in controller["csi-controller"]["args"]
    rules = docs[("ClusterRole", "openfiles-csi-provisioner")]["rules"]
    pv = next(r for r in rules if "persistentvolumes" in r["resources"])
    assert {"create", "delete"} <= set(pv["verbs"])


def test_parts_can_be_disabled() -> None:
    docs = render("controller.enabled=false", "node.metrics.enabled=false")
    assert ("Deployment", "openfiles-csi-controller") not in docs
    assert ("ClusterRole", "openfiles-csi-provisioner") not in docs
    node = containers(docs[("DaemonSet", "openfiles-csi-node")])
    assert not any(a.startswith("--metrics-address") for a in node["csi-node"]["args"])


def test_liveness_is_wired_to_the_sidecar() -> None:
    """The kubelet probes the plugin's /healthz port, which the livenessprobe sidecar of
    the same pod serves by calling the plugin's Probe over its socket."""
    docs = render("node.livenessProbe.port=9900", "node.livenessProbe.timeoutSeconds=7")
    for kind, name, plugin, port, timeout in (
            ("DaemonSet", "openfiles-csi-node", "csi-node", 9900, 7),
            ("Deployment", "openfiles-csi-controller", "csi-controller", 9808, 10)):
        c = containers(docs[(kind, name)])
        probe = c[plugin]["livenessProbe"]
        assert probe["httpGet"] == {"path": "/healthz", "port": "healthz"}
        assert probe["timeoutSeconds"] == timeout
        ports = {p["name"]: p["containerPort"] for p in c[plugin]["ports"]}
        assert ports["healthz"] == port
        sidecar = c["liveness-probe"]
        assert sidecar["image"] == "registry.k8s.io/sig-storage/livenessprobe:v2.15.0"
        assert f"--http-endpoint=:{port}" in sidecar["args"]
        # It answers before the kubelet gives up on it.
        assert f"--probe-timeout={timeout - 1}s" in sidecar["args"]
        socket = next(m for m in c[plugin]["volumeMounts"] if m["mountPath"] == "/csi")
        assert {"name": socket["name"], "mountPath": "/csi"} in sidecar["volumeMounts"]


def test_only_the_node_side_is_privileged() -> None:
    docs = render()
    controller = docs[("Deployment", "openfiles-csi-controller")]["spec"]["template"]["spec"]
    assert controller["securityContext"]["runAsNonRoot"] is True
    for c in controller["containers"]:
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    node = containers(docs[("DaemonSet", "openfiles-csi-node")])
    for sidecar in ("node-driver-registrar", "liveness-probe"):
        assert "privileged" not in node[sidecar]["securityContext"]
        assert node[sidecar]["securityContext"]["allowPrivilegeEscalation"] is False
