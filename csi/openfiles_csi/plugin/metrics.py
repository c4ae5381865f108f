"""Prometheus metrics of the node: one series per volume, read from each engine at scrape.

The collector asks the mounter for the running engines and each engine's control
socket for ``status`` (docs/CONTRACTS.md section 2), each with a short deadline, so a
scrape of a node with a hung engine still returns (that volume shows ``up 0``).
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

GAUGES = {
    "cache_bytes": "Bytes of the volume held in the node-local cache.",
    "dirty_bytes": "Bytes written locally and not yet exported to the bucket.",
    "pending_exports": "Files waiting to be exported to the bucket.",
    "hit_ratio": "Share of reads served from the node-local cache (0 to 1).",
}
COUNTERS = {
    "export_errors": "Exports to the bucket that failed.",
    "conflicts": "Local versions moved to lost+found because the bucket changed.",
}
HISTOGRAMS = {
    "s3_latency": ("openfiles_s3_request_seconds", "Latency of object store requests."),
    "fuse_latency": ("openfiles_fuse_operation_seconds", "Latency of FUSE operations."),
}


def _buckets(hist: Mapping[str, Any]) -> list[tuple[str, float]]:
    buckets = [(le, float(n)) for le, n in hist.get("buckets", {}).items()]
    buckets.sort(key=lambda b: float(b[0]))  # float("+Inf") sorts last
    if not buckets or buckets[-1][0] != "+Inf":
        buckets.append(("+Inf", float(hist.get("count", 0))))
    return buckets


class EngineCollector(Collector):
    def __init__(self, mounter_socket: str, timeout: float = 2.0) -> None:
        self.mounter_socket = mounter_socket
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

    def _statuses(self) -> list[tuple[str, dict[str, Any] | None]]:
        try:
            reply = jsonline.request(self.mounter_socket, {"op": "list"}, self.timeout)
        except jsonline.PeerError as exc:
            log.warning("metrics: mounter unreachable: %s", exc)
            return []
        mounts = reply.get("mounts", [])
        statuses = self._pool.map(self._status, mounts)
        return [(str(m["volume_id"]), st) for m, st in zip(mounts, statuses, strict=True)]

    def collect(self) -> Iterator[Metric]:
        statuses = self._statuses()
        up = GaugeMetricFamily(
            "openfiles_volume_up", "1 if the volume's engine answers.", labels=["volume_id"]
        )
        gauges = {
            k: GaugeMetricFamily(f"openfiles_{k}", h, labels=["volume_id"])
            for k, h in GAUGES.items()
        }
        counters = {
            k: CounterMetricFamily(f"openfiles_{k}", h, labels=["volume_id"])
            for k, h in COUNTERS.items()
        }
        hists = {
            k: HistogramMetricFamily(name, h, labels=["volume_id"])
            for k, (name, h) in HISTOGRAMS.items()
        }
        for volume_id, status in statuses:
            up.add_metric([volume_id], 1.0 if status is not None else 0.0)
            if status is None:
                continue
            for key, family in gauges.items():
                family.add_metric([volume_id], float(status.get(key) or 0))
            for key, cfamily in counters.items():
                cfamily.add_metric([volume_id], float(status.get(key) or 0))
            for key, hfamily in hists.items():
                hist = status.get(key)
                if isinstance(hist, dict):
                    hfamily.add_metric([volume_id], _buckets(hist), float(hist.get("sum", 0)))
        yield up
        yield from gauges.values()
        yield from counters.values()
        yield from hists.values()
