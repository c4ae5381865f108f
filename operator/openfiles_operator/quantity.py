"""Sizes and durations as users write them in OpenFilesVolume and OpenFilesCachePolicy.

Sizes are Kubernetes quantities (``10Gi``, ``500M``, ``1024``); durations are an
integer with an optional unit (``90``, ``90s``, ``5m``, ``1h``, ``2d``), the form
the engine's command line takes (docs/CONTRACTS.md section 1). The CRD schema
checks the same shapes with the patterns below, so the API server rejects a
malformed value at ``kubectl apply``; these parsers turn accepted text into
integers and enforce the ranges a pattern cannot express.
"""

from __future__ import annotations

import re

#: Shared with the CRD schema (tests/operator/test_body.py checks they agree).
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
DURATION_PATTERN = r"^[0-9]+(s|m|h|d)?$"

_SIZE_FACTORS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_DURATION_FACTORS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

#: Upper bounds that keep values meaningful for the engine (a cache bigger than
#: 1 EiB, or a TTL longer than ten years, is a typo rather than a wish).
MAX_BYTES = 2**60
MAX_SECONDS = 10 * 365 * 86400


def parse_size(text: str) -> int:
    """Return the number of bytes in quantity ``text``, rounded up to a whole byte.

    Raises ValueError with a message fit for a status condition.
    """
    match = re.fullmatch(QUANTITY_PATTERN, text)
    if match is None:
        raise ValueError(f"{text!r} is not a quantity such as 10Gi, 500M or 1024")
    suffix = str(match.group(2) or "")
    number = text[: len(text) - len(suffix)]
    whole, _, frac = number.partition(".")
    scale = 10 ** len(frac)
    value = (int(whole) * scale + int(frac or "0")) * _SIZE_FACTORS[suffix]
    result = int(-(-value // scale))
    if result > MAX_BYTES:
        raise ValueError(f"{text!r} is larger than 1Ei")
    return result


def parse_duration(text: str) -> int:
    """Return the number of seconds in duration ``text`` (``90``, ``90s``, ``5m``, ``1h``, ``2d``).

    Raises ValueError with a message fit for a status condition.
    """
    match = re.fullmatch(DURATION_PATTERN, text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 90s, 5m, 1h or 2d")
    unit = match.group(1) or ""
    seconds = int(text[: len(text) - len(unit)]) * _DURATION_FACTORS[str(unit)]
    if seconds > MAX_SECONDS:
        raise ValueError(f"{text!r} is longer than ten years")
    return seconds
