"""Durations and quantities: the values every dialect shares, and what each accepts."""

from __future__ import annotations

from fractions import Fraction

import pytest

from openfiles_contracts.quantity import ARGUMENT, ENGINE, KUBERNETES, Dialect, QuantityError

DIALECTS = {"engine": ENGINE, "argument": ARGUMENT, "kubernetes": KUBERNETES}


# Moved from tests/engine/test_config.py (the engine's dialect).
@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1h", 3600.0), ("250ms", 0.25), ("1d", 86400.0),
    (" 2.5s ", 2.5),
])
def test_durations(text: str, seconds: float) -> None:
    assert ENGINE.duration(text) == seconds


# Moved from tests/engine/test_config.py (the engine's dialect).
@pytest.mark.parametrize(("text", "size"), [
    ("10Gi", 10 * 2**30), ("500M", 500 * 10**6), ("1048576", 2**20), ("1Ki", 1024),
    ("2k", 2000),
])
def test_quantities(text: str, size: int) -> None:
    assert ENGINE.quantity(text) == size


def test_values_are_exact() -> None:
    assert ENGINE.duration("250ms") == Fraction(1, 4)
    assert ENGINE.duration("1.1m") == 66  # no binary rounding: 1.1 * 60.0 is 66.00000000000001
    assert ENGINE.quantity("1.5Gi") == 3 * 2**29
    assert ENGINE.quantity("0.1k") == 100
    assert ENGINE.quantity("1.0001k") == Fraction(10001, 10)  # each caller rounds
    assert ENGINE.quantity("123456789012345678901") == 123456789012345678901


# Which texts each dialect accepts: (text, engine, argument, kubernetes).
DURATIONS = [
    ("90", True, True, True),
    ("2d", True, True, True),
    ("0s", True, True, True),
    ("250ms", True, True, False),
    ("1.5h", True, True, False),
    (" 2.5s ", True, False, False),
    ("5 m", True, False, False),
    ("5s\n", True, True, False),
    ("\u0665s", True, True, False),  # an Arabic-Indic digit five: Python's \d
    ("", False, False, False),
    ("1h30m", False, False, False),
    ("-1s", False, False, False),
    ("1w", False, False, False),
    ("s", False, False, False),
    ("5 minutes", False, False, False),
]
QUANTITIES = [
    ("1024", True, True, True),
    ("10Gi", True, True, True),
    ("1.5Gi", True, True, True),
    ("500k", True, True, True),
    ("1Ei", True, True, True),
    ("10K", True, True, False),
    (" 10Gi", True, False, False),
    ("10 Gi", True, False, False),
    ("10Gi\n", True, True, False),
    ("", False, False, False),
    ("10GB", False, False, False),
    ("-1", False, False, False),
    ("1e3", False, False, False),
    ("Gi", False, False, False),
    ("1.Gi", False, False, False),
    ("10ki", False, False, False),
]


def accepts(parse: object, text: str) -> bool:
    try:
        parse(text)  # type: ignore[operator]
    except QuantityError:
        return False
    return True


@pytest.mark.parametrize(("text", "engine", "argument", "kubernetes"), DURATIONS)
def test_which_durations_each_dialect_accepts(
    text: str, engine: bool, argument: bool, kubernetes: bool
) -> None:
    got = {name: accepts(d.duration, text) for name, d in DIALECTS.items()}
    assert got == {"engine": engine, "argument": argument, "kubernetes": kubernetes}


@pytest.mark.parametrize(("text", "engine", "argument", "kubernetes"), QUANTITIES)
def test_which_quantities_each_dialect_accepts(
    text: str, engine: bool, argument: bool, kubernetes: bool
) -> None:
    got = {name: accepts(d.quantity, text) for name, d in DIALECTS.items()}
    assert got == {"engine": engine, "argument": argument, "kubernetes": kubernetes}


def test_dialects_nest() -> None:
    """What the operator admits the node admits, and what the node admits the engine admits."""
    for text, engine, argument, kubernetes in DURATIONS + QUANTITIES:
        assert (not kubernetes or argument) and (not argument or engine), text


@pytest.mark.parametrize("dialect", DIALECTS.values(), ids=DIALECTS.keys())
def test_one_value_for_one_text(dialect: Dialect) -> None:
    assert dialect.duration("5m") == 300 and dialect.quantity("1.5Gi") == 3 * 2**29


def test_errors_quote_the_text_and_show_examples() -> None:
    with pytest.raises(QuantityError, match=r"'soon' is not a duration such as 90, 90s"):
        ENGINE.duration("soon")
    with pytest.raises(ValueError, match=r"'lots' is not a quantity such as 10Gi, 500M or 1024"):
        KUBERNETES.quantity("lots")


# Moved from tests/operator/test_quantity.py: the CRD schema uses these patterns.
def test_patterns_are_anchored() -> None:
    assert KUBERNETES.quantity_pattern.startswith("^") and KUBERNETES.quantity_pattern.endswith("$")
    assert KUBERNETES.duration_pattern.startswith("^") and KUBERNETES.duration_pattern.endswith("$")
