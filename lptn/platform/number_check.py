"""The one number check of lptn: whole numbers and real numbers with bounds, for the option
schema and for every class that takes a number from an option block (losses, optimisers,
schedules, the model, the distributed settings).

Apart from :mod:`lptn.platform.option_schema` so that modules the schema imports (the
distributed settings) can use it too.
"""

from __future__ import annotations

import math
from typing import Any, Optional


class SchemaViolation(ValueError):
    """A value or key the schema refuses; ``key_path`` is the dotted path, ``reason`` the rest
    of the one-line message."""

    def __init__(self, key_path: str, reason: str) -> None:
        super().__init__(f"{key_path}{reason}")
        self.key_path = key_path
        self.reason = reason


def is_number(value: Any) -> bool:
    """Whether ``value`` is an int or float; ``True`` / ``False`` are not numbers here."""
    # bool is an int subclass; `true` is never a number here.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def describe_whole(minimum: Optional[int] = None, maximum: Optional[int] = None) -> str:
    """The words for a whole number in the range: ``an integer >= 1``, ``an integer in 1..9``."""
    if minimum is not None and minimum == maximum:
        return str(minimum)
    if minimum is not None and maximum is not None:
        return f"an integer in {minimum}..{maximum}"
    if minimum is not None:
        return f"an integer >= {minimum}"
    if maximum is not None:
        return f"an integer <= {maximum}"
    return "an integer"


def is_whole(value: Any, minimum: Optional[int] = None, maximum: Optional[int] = None) -> bool:
    """Whether ``value`` is a whole number (a float such as ``5e3`` included) in the range."""
    if not is_number(value):
        return False
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return False
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def whole_number(
    value: Any, key_path: str, minimum: Optional[int] = None, maximum: Optional[int] = None
) -> int:
    """``value`` as an ``int`` when it is a whole number (``5e3`` included) in
    ``minimum..maximum``; otherwise a :class:`SchemaViolation` naming ``key_path``. The one
    integer check of the options: the schema and the code that reads an option block both
    call it."""
    if not is_whole(value, minimum, maximum):
        what = describe_whole(minimum, maximum)
        raise SchemaViolation(key_path, f" must be {what}, got {value!r}")
    return int(value)


def describe_range(
    low: Optional[float] = None,
    high: Optional[float] = None,
    low_open: bool = False,
    high_open: bool = False,
) -> str:
    """The words for a number in the range: ``a positive number``, ``a number in [0, 1)``..."""
    if low == 0 and low_open and high is None:
        return "a positive number"
    if low == 0 and high is None:
        return "a number >= 0"
    if low is not None and high is not None:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        return f"a number in {left}{low:g}, {high:g}{right}"
    if low is not None:
        return f"a number {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"a number {'<' if high_open else '<='} {high:g}"
    return "a number"


def in_range(
    value: Any,
    low: Optional[float] = None,
    high: Optional[float] = None,
    low_open: bool = False,
    high_open: bool = False,
) -> bool:
    """Whether ``value`` is a finite number within the bounds (open ones exclusive)."""
    if not is_number(value) or not math.isfinite(value):
        return False
    if low is not None and (value <= low if low_open else value < low):
        return False
    if high is not None and (value >= high if high_open else value > high):
        return False
    return True


def real_number(
    value: Any,
    key_path: str,
    low: Optional[float] = None,
    high: Optional[float] = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a ``float`` when it is a finite number within the bounds (``low_open`` /
    ``high_open``: that bound excluded); otherwise a :class:`SchemaViolation` naming
    ``key_path``, e.g. ``train.optim_g.lr must be a positive number, got 'abc'``."""
    if not in_range(value, low, high, low_open, high_open):
        what = describe_range(low, high, low_open, high_open)
        raise SchemaViolation(key_path, f" must be {what}, got {value!r}")
    return float(value)


__all__ = [
    "SchemaViolation",
    "describe_range",
    "describe_whole",
    "in_range",
    "is_whole",
    "is_number",
    "real_number",
    "whole_number",
]
