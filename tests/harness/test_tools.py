"""The pinned test tools are built and runnable."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from fixtures.prereq import tool

pytestmark = pytest.mark.tools


def test_csi_sanity_runs() -> None:
    # csi-sanity is a Go test binary: -h lists its flags and exits 0 or 2.
    out = subprocess.run([str(tool("csi-sanity")), "-h"], capture_output=True, text=True)
    assert "csi.endpoint" in out.stdout + out.stderr


def test_helm_version() -> None:
    out = subprocess.run([str(tool("helm")), "version", "--short"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("v3.")


def test_kubeconform_validates_offline(tmp_path: Path) -> None:
    """kubeconform checks manifests against local schemas; no download is possible here."""
    schema = {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {
            "data": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    (tmp_path / "configmap-v1.json").write_text(json.dumps(schema))
    good = tmp_path / "good.yaml"
    good.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: 1}\n")
    location = str(tmp_path / "{{ .ResourceKind }}{{ .KindSuffix }}.json")

    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(tool("kubeconform")), "-strict", "-schema-location", location,
                               str(path)], capture_output=True, text=True)

    assert check(good).returncode == 0, check(good).stdout
    result = check(bad)
    assert result.returncode == 1
    assert "data/a" in result.stdout or "/data/a" in result.stdout, result.stdout


def pinned(name: str) -> str:
    """A version pinned in scripts/bootstrap-tests.sh (NAME="...")."""
    script = (Path(__file__).resolve().parents[2] / "scripts" / "bootstrap-tests.sh").read_text()
    match = re.search(rf'^{name}="([^"]+)"$', script, re.MULTILINE)
    assert match, f"{name} is not pinned in scripts/bootstrap-tests.sh"
    return match.group(1)


@pytest.mark.parametrize("binary", ["kube-apiserver", "kube-controller-manager",
                                    "kube-scheduler", "kubelet", "kube-proxy"])  # fmt: skip
def test_kubernetes_binary_reports_the_pinned_version(binary: str) -> None:
    """Unstamped builds say v0.0.0-master, which kubectl cannot parse and helm refuses."""
    out = subprocess.run([str(tool(binary)), "--version"], capture_output=True, text=True,
                         check=True, timeout=30)
    assert out.stdout.strip() == f"Kubernetes {pinned('KUBERNETES_VERSION')}"


def test_kubectl_reports_the_pinned_version() -> None:
    out = subprocess.run([str(tool("kubectl")), "version", "--client", "-o", "json"],
                         capture_output=True, text=True, check=True, timeout=30)
    client = json.loads(out.stdout)["clientVersion"]
    version = pinned("KUBERNETES_VERSION")
    assert client["gitVersion"] == version
    assert (client["major"], client["minor"]) == ("1", version.split(".")[1])
    assert client["gitTreeState"] == "clean"


@pytest.mark.parametrize(("binary", "pin"), [("csi-provisioner", "PROVISIONER_VERSION"),
                                             ("csi-node-driver-registrar", "SIDECAR_VERSION"),
                                             ("livenessprobe", "SIDECAR_VERSION")])  # fmt: skip
def test_sidecar_reports_its_version(binary: str, pin: str) -> None:
    out = subprocess.run([str(tool(binary)), "--version"], capture_output=True, text=True,
                         check=True, timeout=30)
    name, version = out.stdout.split()  # upstream's provisioner prints its argv[0]
    assert (Path(name).name, version) == (binary, pinned(pin))


def test_the_gcs_emulator_wraps_the_pinned_fake_gcs_server() -> None:
    # tools/gcsemulator requires the pinned release; Go records it in the binary.
    gomod = Path(__file__).resolve().parents[2] / "tools" / "gcsemulator" / "go.mod"
    assert f"github.com/fsouza/fake-gcs-server {pinned('FAKE_GCS_VERSION')}\n" in gomod.read_text()
    out = subprocess.run(["go", "version", "-m", str(tool("gcs-emulator"))],
                         capture_output=True, text=True, check=True, timeout=30)
    assert f"dep\tgithub.com/fsouza/fake-gcs-server\t{pinned('FAKE_GCS_VERSION')}\t" in out.stdout
    out = subprocess.run([str(tool("gcs-emulator")), "-version"], capture_output=True,
                         text=True, check=True, timeout=30)
    assert out.stdout.strip() == pinned("FAKE_GCS_VERSION")


def test_azurite_reports_the_pinned_version() -> None:
    out = subprocess.run([str(tool("azurite-blob")), "--version"], capture_output=True,
                         text=True, check=True, timeout=60)
    assert out.stdout.strip() == pinned("AZURITE_VERSION")
    package = Path(__file__).resolve().parents[2] / "tools" / "azurite" / "package.json"
    assert json.loads(package.read_text())["dependencies"]["azurite"] == pinned("AZURITE_VERSION")


def test_nats_server_reports_the_pinned_version() -> None:
    out = subprocess.run([str(tool("nats-server")), "--version"], capture_output=True,
                         text=True, check=True, timeout=30)
    assert out.stdout.split()[-1] == pinned("NATS_SERVER_VERSION")
