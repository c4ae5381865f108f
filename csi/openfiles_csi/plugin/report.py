"""What an engine knows, as an ``OpenFilesNodeReport`` (docs/OPERATOR.md, "Export state").

One report per (volume, node), named ``<node>-<sha256(volume handle)[:12]>``, in the
node plugin's namespace. Its spec is built here from the engine's control-socket
``status`` (docs/CONTRACTS.md section 2) by :func:`report_spec`. Units: bytes,
seconds, RFC 3339 UTC times. The Event bodies for conflicts and export errors are
built here too. Nothing here does I/O; ``reporter.py`` runs the loop.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from openfiles_csi.logsetup import redact

HANDLE_LABEL = "openfiles.io/volume-handle-hash"
"""Label holding ``sha256(volume handle)[:16]``: handles may exceed a label's 63 bytes."""
STABLE_SECONDS = 3.0
"""``dirtySince`` moving by less than this (the jitter of reading an age) is no change."""
MAX_MESSAGE = 1000
"""Bytes of an Event message (events.k8s.io allows 1 KiB)."""


def handle_hash(volume_handle: str) -> str:
    return hashlib.sha256(volume_handle.encode()).hexdigest()[:16]


def report_name(node: str, volume_handle: str) -> str:
    """A DNS subdomain (at most 253 characters), unique per (node, volume)."""
    return f"{node[:200]}-{hashlib.sha256(volume_handle.encode()).hexdigest()[:12]}"


def rfc3339(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Ref:
    """A namespaced object an Event can be about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class Target:
    """Where a volume's Events go and what its report names, from its PersistentVolume."""

    pv: str = ""
    claim: Ref | None = None
    volume: Ref | None = None
    """The OpenFilesVolume, for volumes the operator made (None when provisioned)."""

    @property
    def subject(self) -> Ref | None:
        """The object conflict and export Events are about: the OpenFilesVolume, else the claim."""
        return self.volume or self.claim


def target_of(pv: Mapping[str, Any] | None) -> Target:
    """Read the claim (``spec.claimRef``) and the OpenFilesVolume (the labels the operator
    puts on its PVs: openfiles.io/volume-{namespace,name,uid}) from a PV."""
    if pv is None:
        return Target()
    meta, spec = pv.get("metadata") or {}, pv.get("spec") or {}
    ref = spec.get("claimRef") or {}
    claim = None
    if ref.get("name") and ref.get("namespace"):
        claim = Ref("v1", "PersistentVolumeClaim", ref["namespace"], ref["name"],
                    ref.get("uid", ""))
    labels = meta.get("labels") or {}
    annotation = (meta.get("annotations") or {}).get("openfiles.io/volume", "")
    volume = None
    if labels.get("openfiles.io/volume-uid") and "/" in annotation:
        namespace, name = annotation.split("/", 1)
        volume = Ref("openfiles.io/v1alpha1", "OpenFilesVolume", namespace, name,
                     labels["openfiles.io/volume-uid"])
    return Target(pv=meta.get("name", ""), claim=claim, volume=volume)


def report_spec(node: str, volume_handle: str, target: Target, status: Mapping[str, Any] | None,
                previous: Mapping[str, Any] | None, now: float) -> dict[str, Any]:
    """The report's spec. ``status`` None means the engine does not answer: the counts
    are then the last known ones (``previous``), with ``engineAlive`` false."""
    prev = dict(previous or {})
    spec: dict[str, Any] = {"nodeName": node, "volumeHandle": volume_handle}
    if target.pv:
        spec["pvName"] = target.pv
    for key, ref in (("claim", target.claim), ("volume", target.volume)):
        if ref is not None:
            spec[key] = {"namespace": ref.namespace, "name": ref.name}
    if status is None:
        kept = {k: v for k, v in prev.items() if k not in spec and k != "reportTime"}
        return {**kept, **spec, "engineAlive": False, "conflictsSinceLastReport": 0}
    conflicts = int(status.get("conflicts") or 0)
    spec.update({
        "engineAlive": True,
        "dirtyFiles": int(status.get("dirty_files") or 0),
        "dirtyBytes": int(status.get("dirty_bytes") or 0),
        "journalEntries": int(status.get("journal_entries") or 0),
        "conflicts": conflicts,
        "conflictsSinceLastReport": max(conflicts - int(prev.get("conflicts", conflicts)), 0),
        "cacheBytes": int(status.get("cache_bytes") or 0),
    })
    delay = (status.get("policy") or {}).get("export_delay")
    if delay is not None:
        spec["exportDelaySeconds"] = int(delay)
    age = float(status.get("oldest_dirty_seconds") or 0)
    if spec["dirtyFiles"]:
        since = now - age
        old = prev.get("dirtySince")
        if old and abs(_unix(old) - since) < STABLE_SECONDS:
            spec["dirtySince"] = old
        else:
            spec["dirtySince"] = rfc3339(since)
    recent = status.get("recent_conflicts") or []
    if recent:
        spec["lastConflictTime"] = rfc3339(float(recent[-1]["time"]))
    elif prev.get("lastConflictTime"):
        spec["lastConflictTime"] = prev["lastConflictTime"]
    error = status.get("last_export_error")
    if error:
        spec["lastExportError"] = clean(str(error))
        spec["lastExportErrorTime"] = rfc3339(float(status.get("last_export_error_time") or now))
    return spec


def changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether ``new`` says something ``old`` did not (the report time aside)."""
    if old is None:
        return True
    strip = {"reportTime", "conflictsSinceLastReport"}
    return ({k: v for k, v in old.items() if k not in strip}
            != {k: v for k, v in new.items() if k not in strip})


def clean(text: str) -> str:
    """One short paragraph with every registered credential masked (logsetup.redact)."""
    text = " ".join(redact(text).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def conflict_message(node: str, conflict: Mapping[str, Any]) -> str:
    return clean(
        f"{conflict['path']!r} changed in the bucket while node {node} had local changes: "
        f"the bucket's version is at the path, the local version is kept at "
        f"{conflict['lost_path']} in the volume (its original path in the xattr "
        "user.openfiles.original_path). Restore it by copying it back.")


def export_error_message(node: str, error: str) -> str:
    return clean(f"exports from node {node} to the bucket fail, retrying: {error}")


def event_body(subject: Ref, node: str, reason: str, message: str, warning: bool,
               now: float) -> dict[str, Any]:
    """A core/v1 Event about ``subject``, reported by this node's plugin."""
    stamp = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{subject.name[:200]}.{secrets.token_hex(8)}",
                     "namespace": subject.namespace},
        "involvedObject": {"apiVersion": subject.api_version, "kind": subject.kind,
                           "namespace": subject.namespace, "name": subject.name,
                           "uid": subject.uid},
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "source": {"component": "openfiles-csi-node", "host": node},
        "reportingComponent": "csi.openfiles.io/node",
        "reportingInstance": node,
    }


def _unix(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
