"""The node's export state, sent to the API server: one report per staged volume, and Events.

Every ``interval`` seconds the reporter asks the mounter for the running engines and
each engine's control socket for ``status`` (short deadlines, in parallel). For each
volume it applies the report (report.py) only when something changed, or when
``heartbeat`` seconds have passed (so a report older than a few heartbeats means a
node plugin that stopped). Volumes the mounter no longer lists lose their report;
NodeUnstage removes it at once through :meth:`Reporter.forget`.

Events, each about the volume's OpenFilesVolume (or its claim when it has none):
one per conflict (``Conflict``, naming the path and where the local version went),
and for export errors at most one per ``error_every`` seconds per volume
(``ExportFailed``). A conflict is announced once: the last announced count is the
report's ``conflicts``, read back after a plugin restart.

Nothing here raises out of :meth:`Reporter.run`: API and engine failures are logged
and retried at the next tick. Credentials never reach a report or an Event
(report.clean masks the registered secrets; engine texts hold none to begin with).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from openfiles_csi import jsonline
from openfiles_csi.plugin import report
from openfiles_csi.plugin.errors import CsiError
from openfiles_csi.plugin.kube import KubeClient
from openfiles_csi.plugin.mounterclient import MounterClient

log = logging.getLogger(__name__)


@dataclass
class _Volume:
    target: report.Target | None = None
    sent: dict[str, Any] | None = None
    sent_at: float = 0.0
    announced: int | None = None
    """Conflicts already announced by Events (None: not read back yet)."""
    error_event_at: float = 0.0
    pending_events: list[tuple[str, str, bool]] = field(default_factory=list)


class Reporter:
    def __init__(self, node: str, namespace: str, mounter: MounterClient, kube: KubeClient,
                 interval: float = 2.0, heartbeat: float = 60.0, error_every: float = 300.0,
                 engine_timeout: float = 2.0) -> None:
        self.node = node
        self.namespace = namespace
        self.mounter = mounter
        self.kube = kube
        self.interval = interval
        self.heartbeat = heartbeat
        self.error_every = error_every
        self.engine_timeout = engine_timeout
        self._volumes: dict[str, _Volume] = {}
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        """Report until cancelled."""
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("report: tick failed; retrying in %gs", self.interval)
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        """Read every engine once and send what changed."""
        async with self._lock:  # a NodeUnstage's forget() never races a report back in
            await self._tick()

    async def _tick(self) -> None:
        try:
            mounts = await self.mounter.mounts()
        except CsiError as exc:
            log.warning("report: mounter unreachable: %s", exc)
            return
        by_volume: dict[str, dict[str, Any]] = {}
        for mount in mounts:
            # An ephemeral volume and a staged one never share an id; prefer a live engine.
            if mount["volume_id"] not in by_volume or mount.get("alive"):
                by_volume[str(mount["volume_id"])] = mount
        statuses = await asyncio.gather(*(self._status(m) for m in by_volume.values()))
        for (volume_id, _), status in zip(by_volume.items(), statuses, strict=True):
            try:
                await self._report(volume_id, status)
            except Exception as exc:
                log.warning("report: volume %s: %s", volume_id, report.clean(str(exc)))
        for volume_id in set(self._volumes) - set(by_volume):
            await self._forget(volume_id)

    async def forget(self, volume_id: str) -> None:
        """Remove this node's report of ``volume_id`` (the volume is unstaged here)."""
        async with self._lock:
            await self._forget(volume_id)

    async def _forget(self, volume_id: str) -> None:
        try:
            await self.kube.delete_report(self.namespace, report.report_name(self.node, volume_id))
        except Exception as exc:
            log.warning("report: removing the report of %s: %s", volume_id, exc)
            return  # the next tick tries again
        self._volumes.pop(volume_id, None)

    async def _status(self, mount: dict[str, Any]) -> dict[str, Any] | None:
        if not mount.get("alive"):
            return None
        try:
            answer = await jsonline.arequest(mount["control_socket"], {"op": "status"},
                                             self.engine_timeout)
        except jsonline.PeerError:
            return None
        status = answer.get("status") if answer.get("ok") else None
        return status if isinstance(status, dict) else None

    async def _report(self, volume_id: str, status: dict[str, Any] | None) -> None:
        vol = self._volumes.setdefault(volume_id, _Volume())
        name = report.report_name(self.node, volume_id)
        if vol.target is None:
            vol.target = report.target_of(await self.kube.find_pv(volume_id))
        if vol.sent is None:
            existing = await self.kube.read_report(self.namespace, name)
            if existing is not None:
                vol.sent = dict(existing.get("spec") or {})
                vol.announced = int(vol.sent.get("conflicts", 0))
        now = time.time()
        spec = report.report_spec(self.node, volume_id, vol.target, status, vol.sent, now)
        if status is not None:
            self._queue_events(vol, status, now)
        if report.changed(vol.sent, spec) or now - vol.sent_at >= self.heartbeat:
            spec["reportTime"] = report.rfc3339(now)
            labels = {report.HANDLE_LABEL: report.handle_hash(volume_id),
                      "app.kubernetes.io/managed-by": "openfiles-csi-node"}
            await self.kube.apply_report(self.namespace, name, labels, spec)
            vol.sent, vol.sent_at = spec, now
        await self._post_events(vol, now)

    def _queue_events(self, vol: _Volume, status: dict[str, Any], now: float) -> None:
        total = int(status.get("conflicts") or 0)
        announced = vol.announced if vol.announced is not None else 0
        for conflict in status.get("recent_conflicts") or []:
            if int(conflict["seq"]) > announced:
                vol.pending_events.append(
                    ("Conflict", report.conflict_message(self.node, conflict), True))
        vol.announced = max(total, announced)
        error = status.get("last_export_error")
        if error and now - vol.error_event_at >= self.error_every:
            vol.error_event_at = now
            vol.pending_events.append(
                ("ExportFailed", report.export_error_message(self.node, str(error)), True))

    async def _post_events(self, vol: _Volume, now: float) -> None:
        subject = vol.target.subject if vol.target else None
        if subject is None:
            if vol.pending_events:
                log.info("report: %d Events dropped: the volume has no claim or "
                         "OpenFilesVolume", len(vol.pending_events))
            vol.pending_events.clear()
            return
        while vol.pending_events:
            reason, message, warning = vol.pending_events[0]
            body = report.event_body(subject, self.node, reason, message, warning, now)
            await self.kube.post_event(subject.namespace, body)
            vol.pending_events.pop(0)
