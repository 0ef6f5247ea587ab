"""Losses by name, metrics, and the checks that fit/evaluate run on targets.

The losses themselves are matnet's fused kernels (:mod:`matnet.losses`);
this module only maps names to them and validates what users pass.
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

import numpy as np

from . import losses

__all__ = ["LOSSES", "METRICS", "check_targets", "correct_count"]

#: Loss names accepted by ``Sequential.compile``.
LOSSES: Dict[str, Callable[[np.ndarray, np.ndarray], Tuple[float, np.ndarray]]] = {
    "cross_entropy": losses.cross_entropy,
    "mse": losses.mse,
    "binary_cross_entropy": losses.binary_cross_entropy,
}

#: Metric names accepted by ``Sequential.compile``, with the losses they make sense for.
METRICS: Dict[str, Tuple[str, ...]] = {
    "accuracy": ("cross_entropy", "binary_cross_entropy"),
}


def check_targets(y: object, loss: str, n: int, out_shape: Tuple[int, ...],
                  dtype: np.dtype, name: str = "y") -> np.ndarray:
    """Targets converted to what ``loss`` takes, or a clear error.

    cross_entropy: integer class labels of shape (n,) in [0, classes), as int64.
    mse / binary_cross_entropy: floats of the model's output shape (a (n,)
    vector is accepted for one output), as the model dtype; BCE targets in [0, 1].
    """
    arr = np.asarray(y)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.shape[:1] != (n,):
        raise ValueError(f"{name} must have {n} rows (one per sample of x), got shape {arr.shape}")
    if loss == "cross_entropy":
        if arr.dtype.kind not in "iu":
            raise TypeError(
                f"{name}: cross_entropy needs integer class labels, got dtype {arr.dtype} "
                "(use y.astype(np.int64) if they are whole numbers)"
            )
        if arr.ndim != 1:
            raise ValueError(f"{name}: class labels must be 1-D (n,), got shape {arr.shape}")
        if len(out_shape) != 1:
            raise ValueError(f"cross_entropy needs 2-D outputs (n, classes), got {out_shape}")
        classes = out_shape[0]
        if n and (arr.min() < 0 or arr.max() >= classes):
            raise ValueError(
                f"{name}: labels must be in [0, {classes}) for a model with {classes} outputs, "
                f"got values in [{arr.min()}, {arr.max()}]"
            )
        return np.ascontiguousarray(arr, dtype=np.int64)
    if arr.shape[1:] != out_shape:
        if out_shape == (1,) and arr.ndim == 1:
            arr = arr.reshape(n, 1)
        else:
            raise ValueError(
                f"{name}: {loss} targets must have the output shape {(n,) + out_shape}, "
                f"got {arr.shape}"
            )
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf")
    if loss == "binary_cross_entropy" and n and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"{name}: binary_cross_entropy targets must be in [0, 1]")
    return arr


def correct_count(out: np.ndarray, y: np.ndarray, loss: str) -> Tuple[int, int]:
    """(right, total) predictions in the batch, for the accuracy metric.

    cross_entropy: one prediction per row (the argmax). binary_cross_entropy:
    one per output element (logit > 0 means 1; targets are rounded at 0.5).
    """
    if loss == "cross_entropy":
        return int(np.count_nonzero(out.argmax(axis=1) == y)), int(y.shape[0])
    return int(np.count_nonzero((out > 0) == (y > 0.5))), int(y.size)
