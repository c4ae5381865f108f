"""Leader election on a real Lease: one leader, takeover after expiry, release on exit."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from fixtures.kube import KubeCluster
from openfiles_operator.kube import Kube
from openfiles_operator.lease import LeaderElection, LostLeadershipError

pytestmark = pytest.mark.cluster


def candidates(kube: KubeCluster, lease_seconds: int = 2) -> tuple[LeaderElection, ...]:
    name = "lease-" + secrets.token_hex(3)
    api = Kube(kube.api_client())
    return tuple(LeaderElection(api, "default", name, who, lease_seconds=lease_seconds,
                                renew_seconds=0.5) for who in ("a", "b"))


def test_one_leader_then_takeover_after_expiry(kube: KubeCluster) -> None:
    a, b = candidates(kube)

    async def scenario() -> None:
        assert await a.try_acquire()
        assert not await b.try_acquire()
        assert await a.try_acquire()  # renewal
        assert not await b.try_acquire()
        await asyncio.sleep(2.5)  # a stops renewing; b saw no change for the lease duration
        assert await b.try_acquire()
        assert not await a.try_acquire()

    asyncio.run(scenario())
    from kubernetes import client

    lease = client.CoordinationV1Api(kube.api_client()).read_namespaced_lease(b.name, "default")
    assert lease.spec.holder_identity == "b"
    assert lease.spec.lease_transitions == 1


def test_release_hands_over_at_once(kube: KubeCluster) -> None:
    a, b = candidates(kube, lease_seconds=60)

    async def scenario() -> None:
        assert await a.try_acquire()
        assert not await b.try_acquire()
        await a.release()
        assert await b.try_acquire()

    asyncio.run(scenario())


def test_hold_raises_when_someone_else_leads(kube: KubeCluster) -> None:
    a, b = candidates(kube, lease_seconds=2)

    async def scenario() -> None:
        await a.acquire()
        holding = asyncio.create_task(a.hold())
        await asyncio.sleep(0.1)
        # Force b in by writing it into the Lease under a; a can no longer renew. A write
        # (not a delete that b then re-creates) leaves a no window to win the Lease back,
        # however slow the machine; a renewal of a racing this write makes it a conflict.
        from kubernetes import client

        leases = client.CoordinationV1Api(kube.api_client())
        for _ in range(10):
            lease = leases.read_namespaced_lease(a.name, "default")
            lease.spec.holder_identity = "b"
            try:
                leases.replace_namespaced_lease(a.name, "default", lease)
                break
            except client.ApiException as exc:
                assert exc.status == 409
        assert await b.try_acquire()
        for _ in range(20):
            await asyncio.sleep(0.4)
            await b.try_acquire()
            if holding.done():
                break
        with pytest.raises(LostLeadershipError):
            await holding

    asyncio.run(scenario())
