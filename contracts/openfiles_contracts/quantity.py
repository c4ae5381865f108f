"""Durations and sizes as users write them: one grammar, three dialects.

A **duration** is a decimal number with an optional unit: ``ms``, ``s`` (the
default), ``m``, ``h``, ``d``. A **quantity** (a size in bytes) is a decimal
number with an optional Kubernetes suffix: ``k`` ``M`` ``G`` ``T`` ``P`` ``E``
(powers of 1000) or ``Ki`` ``Mi`` ``Gi`` ``Ti`` ``Pi`` ``Ei`` (powers of 1024);
``K`` also means 1000 except in the Kubernetes dialect. Every dialect gives a
text the same value; they differ only in which texts they accept:

- :data:`ENGINE`: ``openfiles mount`` options and the control socket's ``policy``
  op (docs/CONTRACTS.md sections 1 and 2). Blanks are allowed around the number
  and the unit (``" 2.5 s "``).
- :data:`ARGUMENT`: what the CSI node accepts in a volume context before handing
  the text to the engine unchanged: the engine's dialect without blanks (one
  trailing newline excepted, which the engine strips).
- :data:`KUBERNETES`: the OpenFilesVolume and OpenFilesCachePolicy fields; its
  patterns are the CRD schema's (tests/operator/test_body.py checks they agree),
  ASCII digits only, whole seconds only, no ``ms`` and no ``K``.

Values are exact (:class:`~fractions.Fraction`); each caller rounds as its own
contract says. Malformed text raises :class:`QuantityError` (a ValueError) whose
message quotes the text and shows examples, and never names a setting: the
caller adds the name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

DURATION_UNITS: dict[str, Fraction] = {
    "": Fraction(1), "ms": Fraction(1, 1000), "s": Fraction(1), "m": Fraction(60),
    "h": Fraction(3600), "d": Fraction(86400),
}
"""Seconds per duration unit; ``""`` is a bare number of seconds."""

QUANTITY_SUFFIXES: dict[str, int] = {
    "": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
    "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
"""Bytes per quantity suffix; ``""`` is a bare number of bytes."""

# The number, then the unit: what is left once a dialect has accepted the text.
_SPLIT = re.compile(r"\s*([^\sa-zA-Z]+)\s*([a-zA-Z]*)\s*")


class QuantityError(ValueError):
    """A duration or quantity text that the dialect does not accept."""


@dataclass(frozen=True)
class Dialect:
    """Which texts one part accepts (see the module docstring); the values are shared."""

    duration_pattern: str
    """Regular expression a whole duration text must match."""
    quantity_pattern: str
    """Regular expression a whole quantity text must match."""
    duration_examples: str
    quantity_examples: str

    def duration(self, text: str) -> Fraction:
        """Seconds in ``text``, exactly. Raises :class:`QuantityError`."""
        if re.fullmatch(self.duration_pattern, text) is None:
            raise QuantityError(f"{text!r} is not a duration such as {self.duration_examples}")
        number, unit = _split(text)
        return number * DURATION_UNITS[unit]

    def quantity(self, text: str) -> Fraction:
        """Bytes in ``text``, exactly (``0.5`` is half a byte). Raises :class:`QuantityError`."""
        if re.fullmatch(self.quantity_pattern, text) is None:
            raise QuantityError(f"{text!r} is not a quantity such as {self.quantity_examples}")
        number, suffix = _split(text)
        return number * QUANTITY_SUFFIXES[suffix]


def _split(text: str) -> tuple[Fraction, str]:
    match = _SPLIT.fullmatch(text)
    assert match is not None  # the dialect's pattern accepted the text
    return Fraction(match.group(1)), match.group(2)


ENGINE = Dialect(
    duration_pattern=r"\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*",
    quantity_pattern=r"\s*\d+(\.\d+)?\s*([KMGTPE]i?|k)?\s*",
    duration_examples="90, 90s, 5m, 1h",
    quantity_examples="10Gi or 500M",
)
ARGUMENT = Dialect(
    duration_pattern=r"\d+(\.\d+)?(ms|s|m|h|d)?\n?",
    quantity_pattern=r"\d+(\.\d+)?([KMGTPE]i?|k)?\n?",
    duration_examples="90, 90s, 5m, 1h",
    quantity_examples="10Gi",
)
KUBERNETES = Dialect(
    duration_pattern=r"^[0-9]+(s|m|h|d)?$",
    quantity_pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$",
    duration_examples="90s, 5m, 1h or 2d",
    quantity_examples="10Gi, 500M or 1024",
)
