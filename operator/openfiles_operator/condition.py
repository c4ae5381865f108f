"""Status conditions, kept in the Kubernetes style.

``lastTransitionTime`` changes only when a condition's status changes, so
``kubectl describe`` tells how long a volume has been in its state rather than
when the operator last looked.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

from openfiles_operator.body import Condition

BUCKET_REACHABLE, BOUND, READY = "BucketReachable", "Bound", "Ready"
Status = Literal["True", "False", "Unknown"]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make(type_: str, ok: bool | None, reason: str, message: str, generation: int) -> Condition:
    status: Status = "Unknown" if ok is None else ("True" if ok else "False")
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now(),
        "observedGeneration": generation,
    }


def merge(old: Iterable[Condition], new: Iterable[Condition]) -> list[Condition]:
    """Conditions ``old`` updated by ``new``, by type; an unchanged status keeps its time.

    Types present only in ``old`` are kept; the order is old types first, then new ones.
    """
    merged: dict[str, Condition] = {c["type"]: c for c in old}
    for cond in new:
        before = merged.get(cond["type"])
        if (
            before is not None
            and before["status"] == cond["status"]
            and "lastTransitionTime" in before
        ):
            cond = {**cond, "lastTransitionTime": before["lastTransitionTime"]}
        merged[cond["type"]] = cond
    return list(merged.values())


def find(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c["type"] == type_), None)
