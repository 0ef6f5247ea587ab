"""Checks of Python scalar arguments before they reach ``matnet._core``.

pybind11 refuses a Python int that does not fit the C++ type (an axis of
2**40, an alpha of 10**400) with a TypeError about "incompatible function
arguments"; these helpers raise ValueError / OverflowError naming the
function and the argument instead.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

__all__ = ["index_arg", "float_arg"]

_INT64_MAX = 2**63 - 1


def index_arg(value: Any, fn: str, name: str, lo: int = -_INT64_MAX - 1,
              hi: int = _INT64_MAX) -> int:
    """``value`` as an int in ``[lo, hi]``: TypeError if it is not an integer
    (bool included), OverflowError outside ``[lo, hi]``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be an int, got {value!r}")
    try:
        i = operator.index(value)
    except TypeError:
        raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__}") from None
    if not lo <= i <= hi:
        raise OverflowError(f"{fn}: {name}={i} is out of range [{lo}, {hi}]")
    return i


def float_arg(value: Any, fn: str, name: str) -> float:
    """``value`` as a Python float: TypeError if it is not a real number,
    OverflowError if it is an int too large for a double."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: {name} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise OverflowError(f"{fn}: {name}={value} is too large for a float64") from None
