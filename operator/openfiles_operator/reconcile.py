"""Reconciliation of one OpenFilesVolume: validate → check → create → report; and its deletion.

Every step is idempotent, so a handler interrupted anywhere (an operator
restart, a retry) converges when it runs again: names are deterministic, and
``Kube.ensure`` returns what already exists. Nothing is created before the spec
validated, the Secret was read and the bucket answered, so an invalid or
unreachable volume leaves no PV or PVC behind.

Both entry points write the volume's new status into ``status`` (kopf's patch)
before they return or raise an ``OperatorError``; handler.py turns the error
into kopf's retry semantics.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from openfiles_operator import bucket
from openfiles_operator.binding import pv_body, pvc_body
from openfiles_operator.body import Condition, VolumeBody
from openfiles_operator.condition import BOUND, BUCKET_REACHABLE, READY, find, make, merge
from openfiles_operator.errors import CredentialsError, EndpointError, OperatorError, SpecError
from openfiles_operator.kube import Kube, event
from openfiles_operator.resync import PolicySync
from openfiles_operator.settings import Settings
from openfiles_operator.volume import Volume, parse_volume, volume_handle

log = logging.getLogger(__name__)


class InUseError(OperatorError):
    """Pods still use the claim of a volume being deleted."""

    reason = "InUse"


class VolumeReconciler:
    def __init__(self, kube: Kube, sync: PolicySync, settings: Settings) -> None:
        self._kube = kube
        self._sync = sync
        self._settings = settings

    async def reconcile(self, body: VolumeBody, status: MutableMapping[str, Any]) -> None:
        """Bring the PV, the PVC and the channel entry in line with ``body``; report in ``status``.

        Raises SpecError (permanent), or CredentialsError, BucketError, ClaimTakenError,
        ConflictError (temporary).
        """
        meta = body["metadata"]
        ns, name, uid = meta.get("namespace", ""), meta["name"], meta["uid"]
        generation = meta.get("generation", 0)
        old: list[Condition] = (body.get("status") or {}).get("conditions", [])

        def report(phase: str, *conditions: Condition, **extra: Any) -> None:
            status.update(
                phase=phase,
                observedGeneration=generation,
                conditions=merge(old, conditions),
                **extra,
            )

        def failed(exc: OperatorError, *types: str) -> OperatorError:
            report(
                "Invalid" if isinstance(exc, SpecError) else "Pending",
                *(make(t, False, exc.reason, str(exc), generation) for t in types),
            )
            event(body, exc.reason, str(exc), warning=True)
            return exc

        try:
            volume = parse_volume(body["spec"], ns, name, uid)
        except SpecError as exc:
            raise failed(exc, READY) from None
        status["volumeHandle"] = volume.handle
        # Before the Secret is read or the store is called: a refused endpoint sees no request.
        refusal = self._settings.endpoint_policy.refusal(volume.location.endpoint)
        if refusal is not None:
            denied = EndpointError("spec.bucket.endpoint", refusal)
            raise failed(denied, BUCKET_REACHABLE, READY) from None
        try:
            credentials = await self._kube.read_credentials(ns, volume.secret_name, volume.location)
            await bucket.check_reachable(
                volume.location, credentials, self._settings.bucket_timeout
            )
        except OperatorError as exc:
            raise failed(exc, BUCKET_REACHABLE, READY) from None
        reachable = make(
            BUCKET_REACHABLE, True, "Listed", f"listed {volume.location.url}", generation
        )
        if not _was_true(old, BUCKET_REACHABLE):
            event(body, "BucketReachable", f"listed {volume.location.url}")

        try:
            await self._create_pair(body, volume)
        except OperatorError as exc:
            raise failed(exc, BOUND, READY) from None
        claim = await self._kube.read_claim(ns, name) or {}
        phase = (claim.get("status") or {}).get("phase", "")
        bound = make(
            BOUND,
            True,
            "Bound" if phase == "Bound" else "PreBound",
            f"PersistentVolumeClaim {ns}/{name} is bound to PersistentVolume "
            f"{volume.handle}" + ("" if phase == "Bound" else " by claimRef and volumeName"),
            generation,
        )

        effective = await self._sync.apply_one(volume, meta.get("labels") or {})
        ready = make(
            READY, True, "Ready", f"pods can mount PersistentVolumeClaim {name}", generation
        )
        report(
            "Ready",
            reachable,
            bound,
            ready,
            pvName=volume.handle,
            pvcName=name,
            effectivePolicy=effective.to_status(),
        )
        if not _was_true(old, READY):
            event(body, "Ready", f"PersistentVolumeClaim {name} is ready for pods")

    async def repair(self, body: VolumeBody, status: MutableMapping[str, Any]) -> None:
        """Safety net run by a timer: when the PV or the PVC of a reconciled, valid volume is
        gone (deleted by hand, say), run the whole reconcile again. Two GETs when all is well.
        """
        phase = (body.get("status") or {}).get("phase")
        if phase in (None, "Invalid", "Terminating"):
            return  # not reconciled yet, cannot be, or going away: the handlers own it
        meta = body["metadata"]
        ns, name, uid = meta.get("namespace", ""), meta["name"], meta["uid"]
        if await self._kube.pair_exists(ns, name, volume_handle(ns, name, uid), uid):
            return
        log.info("volume %s/%s: PersistentVolume or claim missing; reconciling again", ns, name)
        await self.reconcile(body, status)

    async def _create_pair(self, body: VolumeBody, volume: Volume) -> None:
        _, created = await self._kube.ensure(pv_body(volume), volume.uid)
        if created:
            event(body, "PersistentVolumeCreated", f"created PersistentVolume {volume.handle}")
        _, created = await self._kube.ensure(pvc_body(volume), volume.uid)
        if created:
            event(body, "ClaimCreated", f"created PersistentVolumeClaim {volume.name}")

    async def finalize(self, body: VolumeBody, status: MutableMapping[str, Any]) -> None:
        """Wait for pods to release the claim, delete PVC and PV, drop the channel entry, and
        remove the prefix's objects if reclaimPolicy is Delete. Idempotent.

        Raises InUseError while pods use the claim; CredentialsError or BucketError when data
        must be deleted but cannot be yet.
        """
        meta = body["metadata"]
        ns, name, uid = meta.get("namespace", ""), meta["name"], meta["uid"]
        generation = meta.get("generation", 0)
        old = (body.get("status") or {}).get("conditions", [])
        handle = volume_handle(ns, name, uid)

        def report(exc: OperatorError) -> OperatorError:
            status.update(
                phase="Terminating",
                conditions=merge(old, [make(READY, False, exc.reason, str(exc), generation)]),
            )
            event(body, exc.reason, str(exc), warning=not isinstance(exc, InUseError))
            return exc

        async def wait_for_pods() -> None:
            users = await self._kube.pods_using_claim(ns, name)
            if users:
                raise report(
                    InUseError(
                        f"waiting for pods to stop using PersistentVolumeClaim {ns}/{name}: "
                        + ", ".join(users)
                    )
                )

        await wait_for_pods()
        if await self._kube.delete_claim(ns, name, uid):
            event(body, "ClaimDeleted", f"deleted PersistentVolumeClaim {name}")
        # Asked again once the claim is deleting: a pod created between the first look and
        # the delete would otherwise lose its PV and, with reclaimPolicy Delete, its data.
        # From here on no new pod can start with the claim.
        await wait_for_pods()
        if await self._kube.delete_pv(handle, uid):
            event(body, "PersistentVolumeDeleted", f"deleted PersistentVolume {handle}")
        await self._sync.forget(handle)
        try:
            volume = parse_volume(body["spec"], ns, name, uid)
        except SpecError:
            return  # never valid, so never created: no data of ours to delete
        if volume.reclaim_policy != "Delete":
            return
        url = volume.location.url
        refusal = self._settings.endpoint_policy.refusal(volume.location.endpoint)
        if refusal is not None:
            # The policy changed since the volume was made: calling the endpoint now is what
            # the policy forbids, and keeping the data is the failure that can be undone.
            message = f"{refusal}; objects under {url}/ are kept"
            log.warning("volume %s/%s: %s", ns, name, message)
            event(body, "DataKept", message, warning=True)
            return
        try:
            credentials = await self._kube.read_credentials(ns, volume.secret_name, volume.location)
        except CredentialsError as exc:
            if not await self._kube.namespace_terminating(ns):
                raise report(exc) from None
            # The namespace is going, and its Secret went first: no credentials will come
            # back, and waiting would hold the namespace in Terminating for ever. Keeping
            # the data is the failure that can be undone.
            message = f"{exc}; the namespace is being deleted, so objects under {url}/ are kept"
            log.warning("volume %s/%s: %s", ns, name, message)
            event(body, "DataKept", message, warning=True)
            return
        try:
            count = await bucket.delete_prefix(
                volume.location, credentials, self._settings.bucket_timeout
            )
        except OperatorError as exc:
            raise report(exc) from None
        log.info(
            "volume %s/%s: reclaimPolicy Delete removed %d objects under %s/",
            ns,
            name,
            count,
            volume.location.url,
        )
        event(body, "DataDeleted", f"deleted {count} objects under {volume.location.url}/")


def _was_true(conditions: list[Condition], type_: str) -> bool:
    cond = find(conditions, type_)
    return cond is not None and cond["status"] == "True"
