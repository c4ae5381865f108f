"""Latency histograms and counters reported by the control socket's ``status``."""

from __future__ import annotations

import bisect

BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)


class Histogram:
    """Cumulative latency histogram in the Prometheus shape (seconds)."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self._counts = [0] * (len(BUCKETS) + 1)

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self._counts[bisect.bisect_left(BUCKETS, seconds)] += 1

    def as_dict(self) -> dict[str, object]:
        buckets: dict[str, int] = {}
        running = 0
        for bound, n in zip(BUCKETS, self._counts, strict=False):
            running += n
            buckets[repr(bound)] = running
        buckets["+Inf"] = self.count
        return {"count": self.count, "sum": self.total, "buckets": buckets}
