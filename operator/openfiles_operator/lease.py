"""Leader election on a coordination.k8s.io Lease, so only one operator replica reconciles.

Expiry is judged by the local monotonic clock, as client-go does: a candidate
remembers when it last saw the Lease *change*, and takes it over only when it
has not changed for ``lease_seconds``. Clocks of different nodes are never
compared. Writes carry the resourceVersion they read, so two candidates can
never both win one round.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from openfiles_operator.errors import ConflictError
from openfiles_operator.kube import Kube

log = logging.getLogger(__name__)


class LostLeadershipError(Exception):
    pass


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElection:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = 15,
        renew_seconds: float = 5.0,
        on_tick: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_tick`` is called after every round, won or lost (the liveness heartbeat)."""
        self._kube = kube
        self.namespace, self.name, self.identity = namespace, name, identity
        self._lease_seconds = lease_seconds
        self._renew_seconds = renew_seconds
        self._on_tick = on_tick
        self._seen: tuple[str, float] | None = None  # (resourceVersion, monotonic time seen)

    async def try_acquire(self) -> bool:
        """One round: take, keep or renew the Lease. True when this candidate holds it."""
        lease = await self._kube.read_lease(self.namespace, self.name)
        now = time.monotonic()
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(None),
            }
            try:
                await self._kube.create_lease(self.namespace, body)
            except ConflictError:
                return False
            return True
        version = lease["metadata"]["resourceVersion"]
        if self._seen is None or self._seen[0] != version:
            self._seen = (version, now)
        spec: dict[str, Any] = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        duration = spec.get("leaseDurationSeconds") or self._lease_seconds
        if holder and holder != self.identity and now - self._seen[1] < duration:
            return False
        lease["spec"] = self._spec(spec)
        try:
            updated = await self._kube.replace_lease(self.namespace, self.name, lease)
        except ConflictError:
            return False
        self._seen = (updated["metadata"]["resourceVersion"], time.monotonic())
        return True

    def _spec(self, old: dict[str, Any] | None) -> dict[str, Any]:
        now = _micro_time()
        taking_over = old is None or old.get("holderIdentity") != self.identity
        transitions = (old or {}).get("leaseTransitions", 0) + (1 if old and taking_over else 0)
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self._lease_seconds,
            "acquireTime": now if taking_over else (old or {}).get("acquireTime", now),
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    async def _round(self) -> bool:
        try:
            won = await self.try_acquire()
        except Exception as exc:  # the API server may be briefly away; keep trying
            log.warning("leader election round failed: %s", exc)
            won = False
        self._on_tick()
        return won

    async def acquire(self) -> None:
        """Return once this candidate leads; until then stay a standby."""
        # Polling the API server, not waiting for a local flag: an Event cannot replace it.
        while not await self._round():  # noqa: ASYNC110
            await asyncio.sleep(self._renew_seconds)
        log.info("leading as %s (Lease %s/%s)", self.identity, self.namespace, self.name)

    async def hold(self) -> None:
        """Renew until leadership is lost; then raise LostLeadershipError.

        Lost means no successful renewal for ``lease_seconds`` minus one renew period, so
        this replica stops before another one may take over.
        """
        last = time.monotonic()
        while True:
            await asyncio.sleep(self._renew_seconds)
            if await self._round():
                last = time.monotonic()
            elif time.monotonic() - last > self._lease_seconds - self._renew_seconds:
                raise LostLeadershipError(f"could not renew Lease {self.namespace}/{self.name}")

    async def release(self) -> None:
        """Give the Lease up at shutdown so a standby takes over at once. Best effort."""
        try:
            lease = await self._kube.read_lease(self.namespace, self.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                await self._kube.replace_lease(self.namespace, self.name, lease)
        except Exception as exc:
            log.warning("could not release Lease %s/%s: %s", self.namespace, self.name, exc)
