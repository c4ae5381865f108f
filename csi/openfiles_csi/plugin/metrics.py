"""Prometheus metrics of the node: series per volume, read from each engine at scrape.

The collector asks the mounter for the staged volumes (``list``) and each engine's
control socket for ``status`` (docs/CONTRACTS.md section 2), each with a short deadline,
so a scrape of a node with a hung engine still returns (that volume shows ``up 0``).
Every series has the labels ``volume`` (the volume id) and ``node`` (the node name);
names follow Prometheus' conventions (``openfiles_`` prefix, base units, ``_total``
counters). The table of them is docs/CSI.md's "Metrics"; :func:`sample_names` lists
the names a scrape can show, for the chart's dashboard to be checked against.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from openfiles_contracts import jsonline

log = logging.getLogger(__name__)

LABELS = ["volume", "node"]
UP = ("openfiles_volume_up", "1 if the volume's engine answers its control socket, else 0.")
GAUGES = {  # metric name: (engine status key, help)
    "openfiles_cache_bytes": ("cache_bytes", "Bytes of the volume held in the node's cache."),
    "openfiles_dirty_bytes": ("dirty_bytes", "Bytes written on this node, not yet exported."),
    "openfiles_dirty_files": ("dirty_files", "Files written on this node, not yet exported."),
    "openfiles_pending_exports": (
        "pending_exports", "Dirty files plus journal entries (renames, deletes) to export."),
    "openfiles_export_lag_seconds": (
        "oldest_dirty_seconds",
        "Seconds since the last write of the longest-dirty file (0: none dirty)."),
}
COUNTERS = {  # metric name without _total: (engine status key, help)
    "openfiles_export_errors": ("export_errors", "Exports to the bucket that failed."),
    "openfiles_conflicts": (
        "conflicts", "Local versions moved to lost+found because the bucket changed."),
    "openfiles_cache_hit_bytes": ("hit_bytes", "Bytes read that the node's cache held."),
    "openfiles_cache_miss_bytes": ("miss_bytes", "Bytes read that came from the bucket."),
    "openfiles_fetched_bytes": ("fetched_bytes", "Bytes fetched from the bucket, prefetch "
                                "included."),
}
HISTOGRAMS = {  # metric name: (engine status key, help)
    "openfiles_bucket_request_duration_seconds": (
        "s3_latency", "Duration of requests to the object store."),
    "openfiles_fuse_request_duration_seconds": (
        "fuse_latency", "Duration of FUSE requests served by the engine."),
}
STRANDED = {  # metric name: (mounter marker key, help)
    "openfiles_stranded_dirty_bytes": (
        "dirty_bytes", "Dirty bytes in this node's cache that no engine serves (its engine "
        "died and the unstage could not export them); exported at the next stage here."),
    "openfiles_stranded_dirty_files": ("dirty_files", "Files of openfiles_stranded_dirty_bytes."),
}


def sample_names() -> set[str]:
    """Every sample name a scrape can show (counters with ``_total``, histograms with
    ``_bucket``, ``_sum`` and ``_count``)."""
    names = {UP[0], *GAUGES, *STRANDED}
    names |= {f"{n}_total" for n in COUNTERS}
    names |= {f"{n}_{s}" for n in HISTOGRAMS for s in ("bucket", "sum", "count")}
    return names


def _buckets(hist: Mapping[str, Any]) -> list[tuple[str, float]]:
    buckets = [(le, float(n)) for le, n in hist.get("buckets", {}).items()]
    buckets.sort(key=lambda b: float(b[0]))  # float("+Inf") sorts last
    if not buckets or buckets[-1][0] != "+Inf":
        buckets.append(("+Inf", float(hist.get("count", 0))))
    return buckets


class EngineCollector(Collector):
    def __init__(self, mounter_socket: str, node: str, timeout: float = 2.0) -> None:
        self.mounter_socket = mounter_socket
        self.node = node
        self.timeout = timeout
        # Engines are asked in parallel, so a scrape takes about one timeout however many
        # engines hang, and stays within Prometheus' default 10 s scrape timeout.
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="metrics"
        )

    def _status(self, mount: Mapping[str, Any]) -> dict[str, Any] | None:
        if not mount.get("alive"):
            return None
        try:
            answer = jsonline.request(mount["control_socket"], {"op": "status"}, self.timeout)
        except jsonline.PeerError:
            return None
        status = answer.get("status") if answer.get("ok") else None
        return status if isinstance(status, dict) else None

    def _read(self) -> tuple[list[tuple[str, dict[str, Any] | None]], list[dict[str, Any]]]:
        try:
            reply = jsonline.request(self.mounter_socket, {"op": "list"}, self.timeout)
        except jsonline.PeerError as exc:
            log.warning("metrics: mounter unreachable: %s", exc)
            return [], []
        mounts = reply.get("mounts", [])
        statuses = self._pool.map(self._status, mounts)
        engines = [(str(m["volume_id"]), st) for m, st in zip(mounts, statuses, strict=True)]
        return engines, list(reply.get("stranded", []))

    def collect(self) -> Iterator[Metric]:
        engines, stranded = self._read()
        up = GaugeMetricFamily(UP[0], UP[1], labels=LABELS)
        gauges = {n: GaugeMetricFamily(n, h, labels=LABELS) for n, (_, h) in GAUGES.items()}
        counters = {n: CounterMetricFamily(n, h, labels=LABELS) for n, (_, h) in COUNTERS.items()}
        hists = {n: HistogramMetricFamily(n, h, labels=LABELS) for n, (_, h) in HISTOGRAMS.items()}
        lost = {n: GaugeMetricFamily(n, h, labels=LABELS) for n, (_, h) in STRANDED.items()}
        for volume, status in engines:
            labels = [volume, self.node]
            up.add_metric(labels, 1.0 if status is not None else 0.0)
            if status is None:
                continue
            for name, family in gauges.items():
                family.add_metric(labels, float(status.get(GAUGES[name][0]) or 0))
            for name, cfamily in counters.items():
                cfamily.add_metric(labels, float(status.get(COUNTERS[name][0]) or 0))
            for name, hfamily in hists.items():
                hist = status.get(HISTOGRAMS[name][0])
                if isinstance(hist, dict):
                    hfamily.add_metric(labels, _buckets(hist), float(hist.get("sum", 0)))
        for marker in stranded:
            for name, sfamily in lost.items():
                sfamily.add_metric([str(marker.get("volume_id")), self.node],
                                   float(marker.get(STRANDED[name][0]) or 0))
        yield up
        yield from gauges.values()
        yield from counters.values()
        yield from hists.values()
        yield from lost.values()
