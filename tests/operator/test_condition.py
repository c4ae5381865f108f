"""Conditions keep their transition time while their status holds."""

from __future__ import annotations

from openfiles_operator.condition import READY, find, make, merge


def test_unchanged_status_keeps_the_transition_time() -> None:
    old = make(READY, True, "Ready", "one", 1)
    old["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    merged = merge([old], [make(READY, True, "Ready", "two", 2)])
    cond = find(merged, READY)
    assert cond is not None
    assert cond["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert (cond["message"], cond["observedGeneration"]) == ("two", 2)


def test_changed_status_gets_a_new_time_and_others_are_kept() -> None:
    ready = make(READY, True, "Ready", "", 1)
    ready["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    old = [ready, make("BucketReachable", True, "Listed", "", 1)]
    merged = merge(old, [make(READY, False, "InUse", "pods", 1)])
    assert [c["type"] for c in merged] == [READY, "BucketReachable"]
    cond = find(merged, READY)
    assert cond is not None and cond["status"] == "False"
    assert cond["lastTransitionTime"] != "2020-01-01T00:00:00Z"


def test_unknown_status() -> None:
    assert make(READY, None, "Checking", "", 0)["status"] == "Unknown"
