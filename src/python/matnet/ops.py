"""Array operations backed by matnet's C++ kernels.

All functions take NumPy arrays (float32 or float64; both operands of one
dtype) and return NumPy arrays. Other dtypes raise ``TypeError``; shapes that
do not fit raise ``ValueError`` naming both shapes. Non-contiguous inputs are
read through their strides or copied once.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import _core

__all__ = ["matmul", "gemm"]


def matmul(
    a: np.ndarray,
    b: np.ndarray,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Matrix product ``op(a) @ op(b)`` where ``op(x)`` is ``x`` or ``x.T``.

    Args:
        a: 2-D array, shape (m, k), or (k, m) when ``trans_a``.
        b: 2-D array, shape (k, n), or (n, k) when ``trans_b``.
        trans_a, trans_b: use the transpose of the operand (no copy is made).
        out: optional C-contiguous, writeable (m, n) array of the same dtype to
            write into; it may overlap the inputs (they are copied first).

    Returns:
        The (m, n) product (``out`` when given).
    """
    return _core.matmul(a, b, trans_a=trans_a, trans_b=trans_b, out=out)


def gemm(
    a: np.ndarray,
    b: np.ndarray,
    c: Optional[np.ndarray] = None,
    *,
    alpha: float = 1.0,
    beta: float = 0.0,
    trans_a: bool = False,
    trans_b: bool = False,
) -> np.ndarray:
    """General matrix multiply ``alpha * op(a) @ op(b) + beta * c``, BLAS style.

    When ``c`` is given it must be a C-contiguous, writeable (m, n) array of
    the operands' dtype; it is updated in place and returned. With ``beta == 0``
    the old contents of ``c`` are not read (NaN there does not propagate).
    Without ``c``, a new array ``alpha * op(a) @ op(b)`` is returned and
    ``beta`` must be 0.
    """
    return _core.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
