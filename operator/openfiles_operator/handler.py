"""kopf handlers for OpenFilesVolume and OpenFilesCachePolicy, registered on a given registry.

Handlers are thin: they call reconcile.py or resync.py and map the domain
errors to kopf's retry semantics here, in one place:

    SpecError                                     -> kopf.PermanentError (no retry)
    ConflictError                                 -> TemporaryError(delay=conflict_delay)
    InUseError                                    -> TemporaryError(delay=pod_wait_delay)
    CredentialsError, BucketError, ClaimTakenError -> TemporaryError(delay=retry_delay)

Each handler's ``id=`` is pinned: kopf stores progress under it, so renaming a
function must not orphan a half-done handler on a running cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from openfiles_operator.body import (
    GROUP,
    POLICY_PLURAL,
    REPORT_PLURAL,
    VERSION,
    VOLUME_PLURAL,
    NodeReportBody,
    PolicyBody,
)
from openfiles_operator.condition import READY, make, merge
from openfiles_operator.errors import ConflictError, OperatorError, SpecError
from openfiles_operator.exports import ExportStatus
from openfiles_operator.kube import Kube, event
from openfiles_operator.policy import parse_policy
from openfiles_operator.reconcile import InUseError, VolumeReconciler
from openfiles_operator.resync import PolicySync
from openfiles_operator.settings import Settings

log = logging.getLogger(__name__)


def _to_kopf(exc: OperatorError, settings: Settings) -> Exception:
    if isinstance(exc, SpecError):
        return kopf.PermanentError(str(exc))
    if isinstance(exc, ConflictError):
        return kopf.TemporaryError(str(exc), delay=settings.conflict_delay)
    if isinstance(exc, InUseError):
        return kopf.TemporaryError(str(exc), delay=settings.pod_wait_delay)
    return kopf.TemporaryError(str(exc), delay=settings.retry_delay)


async def _mapped(call: Awaitable[None], settings: Settings) -> None:
    try:
        await call
    except OperatorError as exc:
        raise _to_kopf(exc, settings) from exc


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf settings the handlers rely on."""
    # Progress and the diff base go to annotations: the CRD schemas are structural, and
    # the API server would prune an undeclared status.kopf.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.persistence.finalizer = f"{GROUP}/operator"
    settings.posting.level = logging.WARNING  # Events are posted explicitly, not from logs


def register(registry: kopf.OperatorRegistry, kube: Kube, settings: Settings) -> PolicySync:
    """Register every handler on ``registry``. Returns the PolicySync (tests drive it directly)."""
    sync = PolicySync(kube, settings)
    volumes = VolumeReconciler(kube, sync, settings)
    vol, pol = (GROUP, VERSION, VOLUME_PLURAL), (GROUP, VERSION, POLICY_PLURAL)
    tasks: list[asyncio.Task[None]] = []

    async def reconcile_volume(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await _mapped(volumes.reconcile(_plain(body), patch.status), settings)

    _on_change(registry, vol, "volume", reconcile_volume)

    @kopf.on.delete(*vol, id="volume-delete", registry=registry)
    async def delete_volume(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await _mapped(volumes.finalize(_plain(body), patch.status), settings)

    @kopf.timer(
        *vol,
        id="volume-repair",
        interval=settings.resync_interval,
        initial_delay=settings.resync_interval,
        registry=registry,
    )
    async def repair_volume(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await _mapped(volumes.repair(_plain(body), patch.status), settings)

    async def apply_policy(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        plain: PolicyBody = _plain(body)
        try:
            parse_policy(plain)
        except SpecError as exc:
            generation = plain["metadata"].get("generation", 0)
            old = (plain.get("status") or {}).get("conditions", [])
            patch.status["observedGeneration"] = generation
            patch.status["matchedVolumes"] = 0
            patch.status["conditions"] = merge(
                old, [make(READY, False, exc.reason, str(exc), generation)]
            )
            event(plain, exc.reason, str(exc), warning=True)
            raise kopf.PermanentError(str(exc)) from exc
        await _mapped(sync.resync(), settings)

    _on_change(registry, pol, "policy", apply_policy)

    @kopf.on.event(*pol, id="policy-deleted", registry=registry)
    async def policy_deleted(type: str, **_: Any) -> None:
        if type == "DELETED":
            await _mapped(sync.resync(), settings)

    exports = ExportStatus(kube, settings)

    @kopf.timer(*vol, id="volume-exports", interval=settings.export_check_interval,
                registry=registry)
    async def check_exports(body: kopf.Body, **_: Any) -> None:
        await _mapped(exports.refresh(_plain(body)), settings)

    @kopf.on.event(GROUP, VERSION, REPORT_PLURAL, id="report-event", registry=registry)
    async def report_changed(body: kopf.Body, **_: Any) -> None:
        report: NodeReportBody = _plain(body)
        ref = report.get("spec", {}).get("volume")
        if ref is None:
            return  # a provisioned volume: no OpenFilesVolume to sum it up in
        volume = await kube.read_volume(ref["namespace"], ref["name"])
        if volume is not None:
            await _mapped(exports.refresh(volume), settings)

    @kopf.on.startup(registry=registry, id="resync-start")
    async def start_resync(**_: Any) -> None:
        tasks.append(asyncio.create_task(_every(settings.resync_interval, sync.resync)))

    @kopf.on.cleanup(registry=registry, id="resync-stop")
    async def stop_resync(**_: Any) -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        tasks.clear()

    return sync


def _on_change(
    registry: kopf.OperatorRegistry,
    resource: tuple[str, str, str],
    kind: str,
    handler: Callable[..., Awaitable[None]],
) -> None:
    """Register ``handler`` for creation, update and resumption, as ``<kind>-create`` etc."""
    for cause, verb in (
        (kopf.on.create, "create"),
        (kopf.on.update, "update"),
        (kopf.on.resume, "resume"),
    ):
        cause(*resource, id=f"{kind}-{verb}", registry=registry)(handler)


async def _every(interval: float, call: Callable[[], Awaitable[None]]) -> None:
    """Run ``call`` every ``interval`` seconds; log and survive its failures."""
    while True:
        await asyncio.sleep(interval)
        try:
            await call()
        except Exception:
            log.exception("periodic policy resync failed; retrying in %gs", interval)


def _plain(body: kopf.Body) -> Any:
    """kopf's read-only body view as the plain nested dicts the typed modules expect."""
    return {
        key: _thaw(body.get(key))
        for key in ("apiVersion", "kind", "metadata", "spec", "status")
        if body.get(key) is not None
    }


def _thaw(value: Any) -> Any:
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_thaw(v) for v in value]
    return value
