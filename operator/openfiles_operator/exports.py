"""The nodes' reports of one OpenFilesVolume, summed up in its status.

:func:`summarize` is pure: given the volume's OpenFilesNodeReports (one per node
where it is staged), it returns the status fields ``dirtyBytes``, ``conflicts``,
``nodeCount`` and ``nodes`` (one line per node) and the ``Exported`` condition:

- False, ``DataStranded``: a node keeps dirty data of the volume in its cache after
  the unstage, with no engine (its engine died and the mounter could not export
  it); the message names each node, its bytes and why;
- False, ``EngineDead``: an engine that does not answer holds dirty data;
- False, ``BucketUnreachable``: exports fail (the engine's last export error) while
  data is dirty;
- False, ``ExportLagging``: a file has been dirty longer than the export delay plus
  ``margin`` without an error (an open writer, a slow bucket);
- False, ``Conflicts``: a local version went to lost+found in the last ``window``
  seconds (the Events name each one);
- True, ``Exported`` otherwise (also with no node at all: nothing can be dirty).

:class:`ExportStatus` reads the reports and writes the status (kube.py); reports whose
node is gone or that no node plugin refreshed for ``stale_after`` seconds are deleted
first. The status is a merge patch of these fields and of the conditions list (the
other conditions kept as read), so it never touches what reconcile.py owns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from openfiles_operator.body import Condition, NodeExportStatus, NodeReportBody, VolumeBody
from openfiles_operator.condition import make, merge
from openfiles_operator.kube import Kube
from openfiles_operator.settings import Settings

log = logging.getLogger(__name__)

EXPORTED = "Exported"


def _unix(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def size(n: int) -> str:
    """Bytes in binary units, for people: 0 B, 512 B, 1.5 KiB, 3.0 MiB..."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def node_line(report: NodeReportBody, now: float) -> NodeExportStatus:
    spec = report["spec"]
    dirty, files = spec.get("dirtyBytes", 0), spec.get("dirtyFiles", 0)
    parts = [f"{size(dirty)} dirty in {files} file{'s' if files != 1 else ''}"]
    since = _unix(spec.get("dirtySince"))
    if files and since is not None:
        parts[0] += f" (oldest {max(now - since, 0):.0f}s)"
    parts.append(f"{spec.get('conflicts', 0)} conflicts")
    if "lostFoundFiles" in spec:
        parts.append(f"{spec['lostFoundFiles']} in lost+found "
                     f"({size(spec.get('lostFoundBytes', 0))})")
    if spec.get("stranded"):
        parts.append(f"NOT STAGED, dirty data STRANDED in the node's cache since "
                     f"{spec.get('strandedSince', '?')}: {spec.get('strandedError', '')}")
    elif spec.get("cacheKept"):
        parts.append("not staged, cache kept for lost+found")
    else:
        parts.append("engine up" if spec["engineAlive"] else "engine DOWN")
    if spec.get("lastExportError"):
        parts.append(f"export failing: {spec['lastExportError']}")
    if "eventsConnected" in spec:
        parts.append("events connected" if spec["eventsConnected"] else
                     f"events DOWN ({spec.get('eventsError', 'no reason')}), TTL applies")
    line: NodeExportStatus = {"node": spec["nodeName"], "summary": ", ".join(parts),
                              "engineAlive": spec["engineAlive"],
                              "reportTime": spec["reportTime"]}
    for key in ("dirtyFiles", "dirtyBytes", "dirtySince", "journalEntries", "conflicts",
                "lastExportError", "lastExportErrorTime", "cacheBytes", "lostFoundFiles",
                "lostFoundBytes", "cacheKept", "stranded", "strandedSince", "strandedError",
                "eventsConnected", "eventsError"):
        if key in spec:
            line[key] = spec[key]
    return line


def summarize(reports: Iterable[NodeReportBody], export_delay: float, now: float,
              margin: float, window: float, generation: int
              ) -> tuple[dict[str, object], Condition]:
    """Status fields and the Exported condition for the reports of one volume."""
    reports = sorted(reports, key=lambda r: r["spec"]["nodeName"])
    stranded, dead, failing, lagging, conflicted = [], [], [], [], []
    for r in reports:
        spec = r["spec"]
        node, dirty = spec["nodeName"], spec.get("dirtyFiles", 0) or spec.get("dirtyBytes", 0)
        delay = spec.get("exportDelaySeconds", export_delay)
        since = _unix(spec.get("dirtySince"))
        if spec.get("stranded"):
            stranded.append(f"node {node} holds {size(spec.get('dirtyBytes', 0))} "
                            f"({spec.get('dirtyBytes', 'unknown')} bytes) dirty in "
                            f"{spec.get('dirtyFiles', '?')} files in its cache with no engine, "
                            f"since {spec.get('strandedSince', '?')}: "
                            f"{spec.get('strandedError', 'not exported')}; exported when the "
                            f"volume is staged on {node} again")
        elif not spec["engineAlive"] and dirty:
            dead.append(f"the engine on {node} is down with {size(spec.get('dirtyBytes', 0))} "
                        "dirty; the data waits in that node's cache")
        elif dirty and spec.get("lastExportError"):
            failing.append(f"{node}: {spec['lastExportError']}")
        elif dirty and since is not None and now - since > delay + margin:
            lagging.append(f"{node} has data dirty for {now - since:.0f}s "
                           f"(export delay {delay:.0f}s)")
        last = _unix(spec.get("lastConflictTime"))
        if last is not None and now - last < window:
            conflicted.append(f"{node}: {spec.get('conflicts', 0)} in total")
    if stranded:
        cond = make(EXPORTED, False, "DataStranded", "; ".join(stranded), generation)
    elif dead:
        cond = make(EXPORTED, False, "EngineDead", "; ".join(dead), generation)
    elif failing:
        cond = make(EXPORTED, False, "BucketUnreachable",
                    "exports fail: " + "; ".join(failing), generation)
    elif lagging:
        cond = make(EXPORTED, False, "ExportLagging", "; ".join(lagging), generation)
    elif conflicted:
        cond = make(EXPORTED, False, "Conflicts",
                    f"local versions moved to lost+found in the last {window:.0f}s "
                    f"(see the Conflict Events): {'; '.join(conflicted)}", generation)
    elif reports:
        cond = make(EXPORTED, True, "Exported",
                    f"nothing dirty for longer than the export delay plus {margin:.0f}s",
                    generation)
    else:
        cond = make(EXPORTED, True, "NotStaged", "no node has the volume staged", generation)
    fields: dict[str, object] = {
        "dirtyBytes": sum(r["spec"].get("dirtyBytes", 0) for r in reports),
        "conflicts": sum(r["spec"].get("conflicts", 0) for r in reports),
        "nodeCount": len(reports),
        "nodes": [node_line(r, now) for r in reports],
    }
    return fields, cond


class ExportStatus:
    """Keeps the export part of OpenFilesVolume status in step with the reports."""

    def __init__(self, kube: Kube, settings: Settings) -> None:
        self.kube = kube
        self.settings = settings

    async def refresh(self, volume: VolumeBody) -> None:
        """Drop stale reports of ``volume``, then write its summary if it changed."""
        handle = (volume.get("status") or {}).get("volumeHandle")
        if not handle:
            return  # not reconciled yet: no PV, so no node can have it staged
        now = time.time()
        reports = []
        for report in await self.kube.list_reports(self.settings.policy_namespace, handle):
            if await self._stale(report, now):
                continue
            reports.append(report)
        status = volume.get("status") or {}
        delay = float((status.get("effectivePolicy") or {}).get("exportDelay", 60))
        generation = volume["metadata"].get("generation", 0)
        fields, cond = summarize(reports, delay, now, self.settings.export_margin,
                                 self.settings.conflict_window, generation)
        old = status.get("conditions", [])
        conditions = merge(old, [cond])
        current = {key: status.get(key) for key in fields}
        if current == fields and conditions == old:
            return
        meta = volume["metadata"]
        await self.kube.patch_volume_status(meta.get("namespace", ""), meta["name"],
                                            {**fields, "conditions": conditions})

    async def _stale(self, report: NodeReportBody, now: float) -> bool:
        spec, meta = report["spec"], report["metadata"]
        reported = _unix(spec.get("reportTime")) or 0.0
        reason = None
        if now - reported > self.settings.report_stale_after:
            reason = f"not refreshed for {now - reported:.0f}s"
        elif not await self.kube.node_exists(spec["nodeName"]):
            reason = f"node {spec['nodeName']} is gone"
        if reason is None:
            return False
        log.info("deleting report %s: %s", meta["name"], reason)
        await self.kube.delete_report(self.settings.policy_namespace, meta["name"], meta["uid"])
        return True
