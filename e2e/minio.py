"""A real MinIO that pods reach, inside the local cluster's network namespace.

The server listens on every address of the cluster's namespace (pods reach it
at the node IP), and a ``socat`` forwarder on 127.0.0.1 in the machine's own
namespace lets the tests read the bucket directly, bypassing OpenFiles. No
address of the cluster is ever added to the machine's own namespace.

The object is shaped like ``fixtures.minio.MinioServer`` (``endpoint``,
``access_key``, ``secret_key``, ``admin()``), so ``fixtures.minio.new_bucket``
makes buckets on it.
"""

from __future__ import annotations

import secrets
import shlex
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from fixtures.minio import REGION
from fixtures.net import free_port, stop, wait_until
from fixtures.prereq import tool

PORT_IN_NAMESPACE = 9000


class NamespacedMinio:
    """MinIO in network namespace ``netns``, reachable by pods at ``node_ip``:9000."""

    def __init__(self, netns: str, node_ip: str) -> None:
        self.netns = netns
        self.node_ip = node_ip
        self.root = Path(tempfile.mkdtemp(prefix="openfiles-e2e-minio-"))
        self.log_path = self.root / "minio.log"
        self.port = free_port()
        self.access_key = "of-" + secrets.token_hex(6)
        self.secret_key = secrets.token_urlsafe(24)
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def endpoint(self) -> str:
        """The tests' way in: the forwarder on 127.0.0.1."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def cluster_endpoint(self) -> str:
        """The pods' way in: the node IP inside the cluster's namespace."""
        return f"http://{self.node_ip}:{PORT_IN_NAMESPACE}"

    def _nsenter(self) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--"]

    def start(self) -> None:
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.root),
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
            "MINIO_CI_CD": "1",
        }
        with open(self.log_path, "ab") as log:
            server = subprocess.Popen(
                [
                    *self._nsenter(),
                    str(tool("minio")),
                    "server",
                    str(self.root / "data"),
                    "--quiet",
                    "--address",
                    f":{PORT_IN_NAMESPACE}",
                    "--console-address",
                    "127.0.0.1:0",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            self.procs.append(server)
            inner = " ".join(
                shlex.quote(a)
                for a in [*self._nsenter(), "socat", "STDIO", f"TCP:127.0.0.1:{PORT_IN_NAMESPACE}"]
            )
            forwarder = subprocess.Popen(
                ["socat", f"TCP-LISTEN:{self.port},bind=127.0.0.1,fork,reuseaddr", f"EXEC:{inner}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            self.procs.append(forwarder)

        def live() -> bool:
            with urllib.request.urlopen(f"{self.endpoint}/minio/health/ready", timeout=2) as r:
                return bool(r.status == 200)

        wait_until(live, server, "minio in the cluster namespace", timeout=60, log=self.log_text())

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        self.procs.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def admin(self) -> Any:
        """A ``minio.Minio`` client with the root credentials (through the forwarder)."""
        from minio import Minio

        return Minio(
            f"127.0.0.1:{self.port}",
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region=REGION,
        )


class KindMinio:
    """The MinIO that e2e/kind.sh runs beside a kind cluster, described by its environment.

    ``OPENFILES_E2E_S3_ENDPOINT`` is the tests' way in, ``OPENFILES_E2E_S3_CLUSTER_ENDPOINT``
    the pods', ``OPENFILES_E2E_S3_ACCESS_KEY`` / ``OPENFILES_E2E_S3_SECRET_KEY`` the root
    credentials.
    """

    def __init__(
        self, endpoint: str, cluster_endpoint: str, access_key: str, secret_key: str
    ) -> None:
        self.endpoint = endpoint
        self.cluster_endpoint = cluster_endpoint
        self.access_key = access_key
        self.secret_key = secret_key

    @classmethod
    def from_environment(cls) -> KindMinio:
        import os

        names = ("ENDPOINT", "CLUSTER_ENDPOINT", "ACCESS_KEY", "SECRET_KEY")
        values = [os.environ.get(f"OPENFILES_E2E_S3_{n}", "") for n in names]
        if not all(values):
            raise RuntimeError(
                "--cluster=kind needs OPENFILES_E2E_S3_{" + ",".join(names) + "} (run e2e/kind.sh)"
            )
        return cls(*values)

    def admin(self) -> Any:
        from minio import Minio

        host = self.endpoint.removeprefix("http://")
        return Minio(
            host,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region=REGION,
        )
