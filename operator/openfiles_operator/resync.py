"""Effective policies of all volumes, written to the node channel and to status.

The channel is ConfigMap ``openfiles-policies`` (docs/CONTRACTS.md section 4):
key = volume handle, value = the effective policy as JSON. This module owns
its writing side. A volume's own reconcile writes its entry (``apply_one``);
a change to any policy, and a periodic timer, recompute every entry
(``resync``), which also removes entries of volumes that no longer exist and
refreshes each policy's ``matchedVolumes``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from openfiles_operator import kube as kubemod
from openfiles_operator.binding import MANAGED_BY
from openfiles_operator.body import PolicyBody, VolumeBody
from openfiles_operator.condition import READY, find, make, merge
from openfiles_operator.errors import SpecError
from openfiles_operator.kube import Kube
from openfiles_operator.policy import (
    CachePolicy,
    EffectivePolicy,
    effective_policy,
    parse_policy,
    policy_selects,
)
from openfiles_operator.settings import Settings
from openfiles_operator.volume import Volume, parse_volume, volume_handle

log = logging.getLogger(__name__)


def valid_policies(bodies: list[PolicyBody]) -> list[CachePolicy]:
    """The policies that parse; an invalid one applies to nothing (its own status says why)."""
    policies = []
    for body in bodies:
        try:
            policies.append(parse_policy(body))
        except SpecError:
            continue
    return policies


def select(
    policies: list[CachePolicy], namespace_labels: Mapping[str, str],
    volume_labels: Mapping[str, str],
) -> list[CachePolicy]:
    return [p for p in policies if policy_selects(p, namespace_labels, volume_labels)]


class PolicySync:
    """Computes and publishes effective policies. One instance per operator."""

    def __init__(self, kube: Kube, settings: Settings) -> None:
        self._kube = kube
        self._settings = settings
        self._lock = asyncio.Lock()

    async def _publish(self, entries: Mapping[str, str | None]) -> None:
        if entries:
            await self._kube.patch_config_map(
                self._settings.policy_namespace,
                self._settings.policy_config_map,
                entries,
                MANAGED_BY,
            )

    async def apply_one(self, volume: Volume, volume_labels: Mapping[str, str]) -> EffectivePolicy:
        """Compute ``volume``'s effective policy and write its channel entry. Idempotent.

        Serialized with ``resync``: otherwise an entry computed from the policies as they
        were could land after a resync wrote the entry for a newer policy, and stay stale
        until the next periodic resync.
        """
        async with self._lock:
            policies = valid_policies(await self._kube.list_policies())
            ns_labels = (await self._kube.namespace_labels()).get(volume.namespace, {})
            chosen = select(policies, ns_labels, volume_labels)
            effective = effective_policy(volume.cache, chosen)
            await self._publish({volume.handle: effective.to_channel()})
            return effective

    async def forget(self, handle: str) -> None:
        """Remove a deleted volume's channel entry. Idempotent."""
        await self._publish({handle: None})

    async def resync(self) -> None:
        """Recompute every volume's effective policy and every policy's match count.

        Writes only what changed: the channel entries, ``status.effectivePolicy`` of each
        volume, and ``status.matchedVolumes`` of each policy. Serialized: concurrent calls
        queue rather than interleave.
        """
        async with self._lock:
            bodies = await self._kube.list_policies()
            policies = valid_policies(bodies)
            namespaces = await self._kube.namespace_labels()
            volumes = await self._kube.list_volumes()
            counts = {p.name: 0 for p in policies}
            entries: dict[str, str | None] = {}
            live: set[str] = set()
            for body in volumes:
                meta = body["metadata"]
                ns = meta.get("namespace", "")
                live.add(volume_handle(ns, meta["name"], meta["uid"]))
                try:
                    volume = parse_volume(body["spec"], ns, meta["name"], meta["uid"])
                except SpecError:
                    continue
                chosen = select(policies, namespaces.get(ns, {}), meta.get("labels") or {})
                for policy in chosen:
                    counts[policy.name] += 1
                effective = effective_policy(volume.cache, chosen)
                entries[volume.handle] = effective.to_channel()
                await self._update_volume(body, effective)
            current = (
                await self._kube.read_config_map(
                    self._settings.policy_namespace, self._settings.policy_config_map
                )
                or {}
            )
            changes: dict[str, str | None] = {
                key: value for key, value in entries.items() if current.get(key) != value
            }
            changes.update(
                {key: None for key in current if key.startswith("ofv-") and key not in live}
            )
            await self._publish(changes)
            for policy_body in bodies:
                await self._update_policy(policy_body, counts)

    async def _update_volume(self, body: VolumeBody, effective: EffectivePolicy) -> None:
        status = body.get("status") or {}
        if "volumeHandle" not in status or status.get("effectivePolicy") == effective.to_status():
            return  # not reconciled yet: its own handler writes the first status
        meta = body["metadata"]
        await self._kube.patch_volume_status(
            meta.get("namespace", ""), meta["name"], {"effectivePolicy": effective.to_status()}
        )
        kubemod.event(body, "PolicyApplied", f"effective cache policy now {effective.to_channel()}")

    async def _update_policy(self, body: PolicyBody, counts: Mapping[str, int]) -> None:
        name = body["metadata"]["name"]
        if name not in counts:
            return  # invalid: its handler reports that
        status = body.get("status") or {}
        generation = body["metadata"].get("generation", 0)
        ready = make(READY, True, "Applied", f"selects {counts[name]} volume(s)", generation)
        conditions = merge(status.get("conditions", []), [ready])
        old = find(status.get("conditions", []), READY)
        if (
            status.get("matchedVolumes") == counts[name]
            and status.get("observedGeneration") == generation
            and old is not None
            and old["status"] == "True"
            and old.get("message") == ready["message"]
        ):
            return
        await self._kube.patch_policy_status(
            name,
            {
                "matchedVolumes": counts[name],
                "observedGeneration": generation,
                "conditions": conditions,
            },
        )
