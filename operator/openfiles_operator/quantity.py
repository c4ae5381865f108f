"""Sizes and durations in OpenFilesVolume and OpenFilesCachePolicy, as integers in range.

The grammar is :data:`openfiles_contracts.quantity.KUBERNETES`, whose patterns the
CRD schema shares, so the API server rejects a malformed value at ``kubectl
apply``. These parsers turn accepted text into integers (bytes rounded up to a
whole byte, as Kubernetes rounds a quantity; whole seconds) and enforce the
ranges a pattern cannot express.
"""

from __future__ import annotations

import math

from openfiles_contracts.quantity import KUBERNETES

#: Shared with the CRD schema (tests/operator/test_body.py checks they agree).
QUANTITY_PATTERN = KUBERNETES.quantity_pattern
DURATION_PATTERN = KUBERNETES.duration_pattern

#: Upper bounds that keep values meaningful for the engine (a cache bigger than
#: 1 EiB, or a TTL longer than ten years, is a typo rather than a wish).
MAX_BYTES = 2**60
MAX_SECONDS = 10 * 365 * 86400


def parse_size(text: str) -> int:
    """Return the number of bytes in quantity ``text``, rounded up to a whole byte.

    Raises ValueError with a message fit for a status condition.
    """
    result = math.ceil(KUBERNETES.quantity(text))
    if result > MAX_BYTES:
        raise ValueError(f"{text!r} is larger than 1Ei")
    return result


def parse_duration(text: str) -> int:
    """Return the number of seconds in duration ``text`` (``90``, ``90s``, ``5m``, ``1h``, ``2d``).

    Raises ValueError with a message fit for a status condition.
    """
    seconds = int(KUBERNETES.duration(text))  # whole seconds: the pattern has no fraction
    if seconds > MAX_SECONDS:
        raise ValueError(f"{text!r} is longer than ten years")
    return seconds
