"""The node end of the cache policy channel (docs/CONTRACTS.md section 4).

The operator writes one ConfigMap key per volume handle; kubelet projects it into
``--policy-dir``. Every ``interval`` seconds the node re-reads the directory and sends
a ``policy`` request to the control socket of each running engine whose volume has an
entry that differs from what that engine last accepted. A restarted node server
re-sends once (the request is idempotent); a restarted engine gets it again because
it is a new process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

from openfiles_csi import jsonline
from openfiles_csi.plugin.errors import CsiError
from openfiles_csi.plugin.mounterclient import MounterClient

log = logging.getLogger(__name__)

# ConfigMap field -> control socket field
FIELDS = {
    "cacheTTL": "cache_ttl",
    "cacheSize": "cache_size",
    "metadataTTL": "metadata_ttl",
    "exportDelay": "export_delay",
}


def read_policies(directory: str) -> dict[str, dict[str, float]]:
    """Volume handle -> control-socket policy fields; bad entries are logged and skipped."""
    policies: dict[str, dict[str, float]] = {}
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return policies
    for name in names:
        if name.startswith("."):
            continue  # kubelet's ..data and timestamped directories
        path = os.path.join(directory, name)
        try:
            with open(path) as f:
                raw = json.load(f)
            if not isinstance(raw, dict):
                raise ValueError("not an object")
            fields = {}
            for key, op_key in FIELDS.items():
                value = raw.get(key)
                if value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ValueError(f"{key} must be a non-negative number")
                fields[op_key] = value
        except (OSError, ValueError) as exc:
            log.warning("ignoring policy %s: %s", name, exc)
            continue
        policies[name] = fields
    return policies


class PolicyWatcher:
    def __init__(self, directory: str, mounter: MounterClient, interval: float = 5.0) -> None:
        self.directory = directory
        self.mounter = mounter
        self.interval = interval
        # (mountpoint, pid) -> the fields that engine last accepted
        self._pushed: dict[tuple[str, int], dict[str, float]] = {}

    async def run(self) -> None:
        while True:
            try:
                await self.sync_once()
            except CsiError as exc:
                log.warning("policy sync skipped: %s", exc)
            except Exception:
                # One bad pass must not end the channel for the life of the plugin.
                log.exception("policy sync failed")
            await asyncio.sleep(self.interval)

    async def sync_once(self) -> int:
        """Push changed policies; return how many engines accepted a new one."""
        policies = await asyncio.to_thread(read_policies, self.directory)
        mounts = await self.mounter.mounts()
        live = {(m["mountpoint"], m["pid"]) for m in mounts if m["alive"]}
        self._pushed = {k: v for k, v in self._pushed.items() if k in live}
        pushed = 0
        for m in mounts:
            key = (m["mountpoint"], m["pid"])
            wanted = policies.get(m["volume_id"])
            if not m["alive"] or not wanted or self._pushed.get(key) == wanted:
                continue
            if await self._push(m, wanted):
                self._pushed[key] = wanted
                pushed += 1
        return pushed

    async def _push(self, mount: dict[str, Any], fields: dict[str, float]) -> bool:
        try:
            reply = await jsonline.arequest(
                mount["control_socket"], {"op": "policy", **fields}, 5.0
            )
        except jsonline.PeerError as exc:
            log.warning("policy for %s not delivered: %s", mount["volume_id"], exc)
            return False
        if not reply.get("ok"):
            log.warning("engine refused policy for %s: %s", mount["volume_id"], reply.get("error"))
            return False
        log.info("policy for volume %s now %s", mount["volume_id"], reply.get("policy", fields))
        return True
