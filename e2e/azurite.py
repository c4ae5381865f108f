"""The Azurite of the az:// scenario, seen from both sides: pods and tests.

``e2e/cluster.sh azurite-up`` starts it inside the cluster's network namespace with a
storage account of its own and a new key (pods reach the node IP, the tests a forwarder
on 127.0.0.1). The object is shaped like ``fixtures.azurite.AzuriteServer`` (``endpoint``,
``account``, ``account_key``, ``create_bucket``), so ``fixtures.azurite.Container``
makes containers on it and checks them past OpenFiles.
"""

from __future__ import annotations

from pathlib import Path

from fixtures.azurite import create_container


class ClusterAzurite:
    """A running Azurite: ``endpoint`` for the tests, ``cluster_endpoint`` for pods."""

    def __init__(self, env: dict[str, str]) -> None:
        """From ``e2e/cluster.sh env`` (the key is in a 0600 file, never in the environment)."""
        keys = {}
        for line in Path(env["OPENFILES_E2E_AZURITE_CREDENTIALS"]).read_text().splitlines():
            name, _, value = line.partition("=")
            keys[name] = value
        self.endpoint = env["OPENFILES_E2E_AZURITE_ENDPOINT"]
        self.cluster_endpoint = env["OPENFILES_E2E_AZURITE_POD_ENDPOINT"]
        self.account = keys["AZURE_STORAGE_ACCOUNT_NAME"]
        self.account_key = keys["AZURE_STORAGE_ACCOUNT_KEY"]

    def create_bucket(self, name: str) -> None:
        create_container(self.endpoint, self.account, self.account_key, name)
