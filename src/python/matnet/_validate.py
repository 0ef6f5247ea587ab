"""Argument validators shared by layers, optimizers, schedules, model, callbacks and ops.

One place for the checks that turn a bad constructor argument into an
exception naming the class, the argument and the value received: wrong
type -> TypeError, out of range -> ValueError. Every helper returns the value
converted to the plain Python type (int, float, np.dtype) it stands for.

``index_arg`` and ``float_arg`` check the Python scalars that ``matnet.ops``
passes on to ``matnet._core``: pybind11 refuses a Python int that does not
fit the C++ type (an axis of 2**40, an alpha of 10**400) with a TypeError
about "incompatible function arguments"; they raise TypeError /
OverflowError naming the function and the argument instead.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Optional, Tuple, Union

import numpy as np

#: Sizes beyond this are refused: they cannot be real layers on this kind of
#: machine, and a saved file declaring them is hostile or corrupt.
MAX_FEATURES = 1 << 24

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers, False for bools and everything else."""
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def check_int(value: Any, name: str, who: str, minimum: int = 1,
              maximum: Optional[int] = MAX_FEATURES) -> int:
    """An int in [minimum, maximum] (no upper bound when maximum is None)."""
    if not is_int(value):
        raise TypeError(f"{who}: {name} must be an int, got {value!r}")
    value = int(value)
    if maximum is None:
        if value < minimum:
            raise ValueError(f"{who}: {name} must be >= {minimum}, got {value}")
    elif not minimum <= value <= maximum:
        raise ValueError(f"{who}: {name} must be in [{minimum}, {maximum}], got {value}")
    return value


def check_number(value: Any, name: str, who: str, lo: float = 0.0, hi: float = math.inf,
                 hi_open: bool = False) -> float:
    """A real number in [lo, hi] (or [lo, hi) with ``hi_open``), as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{who}: {name} must be a number, got {value!r}")
    value = float(value)
    if not lo <= value <= hi or (hi_open and value == hi):
        bracket = ")" if hi_open else "]"
        raise ValueError(f"{who}: {name} must be in [{lo}, {hi}{bracket}, got {value}")
    return value


def check_bool(value: Any, name: str, who: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{who}: {name} must be a bool, got {value!r}")
    return bool(value)


def check_seed(seed: Any, who: str) -> Optional[int]:
    """None or an int >= 0."""
    if seed is None:
        return None
    if not is_int(seed):
        raise TypeError(f"{who}: seed must be an int or None, got {seed!r}")
    if seed < 0:
        raise ValueError(f"{who}: seed must be >= 0, got {seed}")
    return int(seed)


def check_dtype(dtype: Any, who: str) -> np.dtype:
    """float32 or float64, as an np.dtype."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{who}: dtype must be float32 or float64, got {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{who}: dtype must be float32 or float64, got {dt}")
    return dt


def check_count(value: Any, name: str, who: str, minimum: int = 1) -> int:
    """A call argument counting something (batch_size, epochs, patience): an int
    >= minimum, ValueError for anything else (the model's convention for them)."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{who}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_mode(monitor: str, mode: str) -> str:
    """'min' or 'max' for a monitored value; 'auto' is max for accuracies, else min."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


def check_choice(value: Any, name: str, who: str, choices: Tuple[Any, ...]) -> Any:
    """One of ``choices`` (ValueError naming them otherwise)."""
    try:
        ok = value in choices
    except TypeError:  # unhashable or incomparable
        ok = False
    if not ok:
        raise ValueError(f"{who}: {name} must be one of {choices}, got {value!r}")
    return value


def check_pair(value: Any, name: str, who: str, minimum: int = 1) -> Tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as a (h, w) tuple."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{who}: {name} must be an int or a pair of ints, got {value!r}")
        return (check_int(value[0], name, who, minimum), check_int(value[1], name, who, minimum))
    v = check_int(value, name, who, minimum)
    return (v, v)


def check_padding(value: Any, who: str) -> Union[str, Tuple[int, int]]:
    """'same', 'valid', an int >= 0 or a pair of them."""
    if isinstance(value, str):
        if value not in ("same", "valid"):
            raise ValueError(f"{who}: padding must be 'same', 'valid', an int or a pair, "
                             f"got {value!r}")
        return value
    return check_pair(value, "padding", who, minimum=0)


# ---------------------------------------------------------------- kernel scalars

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
