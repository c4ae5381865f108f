from __future__ import annotations

from openfiles_engine.metrics import Histogram


def test_histogram_is_cumulative() -> None:
    h = Histogram()
    for seconds in (0.00005, 0.002, 0.002, 3.0, 10.0):
        h.observe(seconds)
    d = h.as_dict()
    buckets = d["buckets"]
    assert isinstance(buckets, dict)
    assert d["count"] == 5 and abs(float(d["sum"]) - 13.00405) < 1e-9  # type: ignore[arg-type]
    assert buckets["0.0001"] == 1 and buckets["0.005"] == 3 and buckets["5.0"] == 4
    assert buckets["+Inf"] == 5
    assert list(buckets.values()) == sorted(buckets.values())
