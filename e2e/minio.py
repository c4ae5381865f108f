"""The MinIO the scenarios use, seen from both sides: pods and tests.

On the local cluster it is the one ``e2e/cluster.sh minio-up`` starts inside
the cluster's network namespace (pods reach the node IP, the tests a
forwarder on 127.0.0.1); on kind it is the container ``e2e/kind.sh`` runs.
Either way the object is shaped like ``fixtures.minio.MinioServer``
(``endpoint``, ``access_key``, ``secret_key``, ``admin()``), so
``fixtures.minio.new_bucket`` makes buckets on it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fixtures.minio import REGION


class ClusterMinio:
    """A running MinIO: ``endpoint`` for the tests, ``cluster_endpoint`` for pods."""

    def __init__(
        self, endpoint: str, cluster_endpoint: str, access_key: str, secret_key: str
    ) -> None:
        self.endpoint = endpoint
        self.cluster_endpoint = cluster_endpoint
        self.access_key = access_key
        self.secret_key = secret_key

    @classmethod
    def from_cluster_env(cls, env: dict[str, str]) -> ClusterMinio:
        """From ``e2e/cluster.sh env`` (the keys are in a 0600 file, never in the environment)."""
        keys = {}
        for line in Path(env["OPENFILES_E2E_MINIO_CREDENTIALS"]).read_text().splitlines():
            name, _, value = line.partition("=")
            keys[name] = value
        return cls(
            env["OPENFILES_E2E_MINIO_ENDPOINT"],
            env["OPENFILES_E2E_MINIO_POD_ENDPOINT"],
            keys["AWS_ACCESS_KEY_ID"],
            keys["AWS_SECRET_ACCESS_KEY"],
        )

    @classmethod
    def from_kind_env(cls) -> ClusterMinio:
        """From the variables e2e/kind.sh exports (``OPENFILES_E2E_S3_*``)."""
        names = ("ENDPOINT", "CLUSTER_ENDPOINT", "ACCESS_KEY", "SECRET_KEY")
        values = [os.environ.get(f"OPENFILES_E2E_S3_{n}", "") for n in names]
        if not all(values):
            raise RuntimeError(
                f"--cluster=kind needs OPENFILES_E2E_S3_{{{','.join(names)}}} (run e2e/kind.sh)"
            )
        return cls(*values)

    def admin(self) -> Any:
        """A ``minio.Minio`` client with the root credentials."""
        from minio import Minio

        host = self.endpoint.removeprefix("http://")
        return Minio(
            host,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region=REGION,
        )
