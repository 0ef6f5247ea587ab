"""Losses with fused gradients, computed by matnet's C++ kernels in one pass.

Every loss returns ``(loss, grad)``: the scalar loss (a Python float,
accumulated in float64) and ``grad = d loss / d input`` as a new array of the
input's shape and dtype. Reduction is the mean, as in ``torch.nn`` and Keras:
cross-entropy is averaged over the batch, MSE and binary cross-entropy over
all elements. An empty input raises ``ValueError`` (the mean over nothing is
undefined). Inputs must be float32 or float64, one dtype for all float
arguments (``TypeError`` otherwise); shapes that do not match raise
``ValueError`` naming both shapes. The GIL is released while the kernel runs.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from . import _core

__all__ = ["binary_cross_entropy", "cross_entropy", "mse"]


def cross_entropy(
    logits: np.ndarray, labels: np.ndarray, *, label_smoothing: float = 0.0
) -> Tuple[float, np.ndarray]:
    """Softmax cross-entropy from logits with integer class labels.

    ``loss = mean_r [logsumexp(logits[r]) - sum_c q[r, c] * logits[r, c]]`` with
    the target distribution ``q = (1 - s) * onehot(label) + s / classes`` for
    label smoothing ``s`` (as ``torch.nn.CrossEntropyLoss``). Numerically
    stable for any finite logits (the row maximum is subtracted first).

    Args:
        logits: (batch, classes) float32/float64 array, batch >= 1.
        labels: (batch,) integer array, each in ``[0, classes)``.
        label_smoothing: ``s`` in ``[0, 1]``.

    Returns:
        ``(loss, grad)`` with ``grad = (softmax(logits) - q) / batch``.

    Raises:
        TypeError: float labels, or logits that are not float32/float64.
        ValueError: wrong shapes, an empty batch, or a label out of range.
    """
    return _core.cross_entropy(logits, labels, float(label_smoothing))


def mse(pred: np.ndarray, target: np.ndarray) -> Tuple[float, np.ndarray]:
    """Mean squared error over all elements.

    ``loss = mean((pred - target) ** 2)``, ``grad = 2 (pred - target) / pred.size``.
    ``pred`` and ``target`` must have the same shape (no broadcasting) and dtype.
    """
    return _core.mse(pred, target)


def binary_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> Tuple[float, np.ndarray]:
    """Binary cross-entropy with logits, mean over all elements.

    ``loss = mean(max(x, 0) - x * t + log1p(exp(-|x|)))`` for logits ``x`` and
    targets ``t`` in [0, 1] (stable for any ``x``, like
    ``torch.nn.BCEWithLogitsLoss``); ``grad = (sigmoid(x) - t) / x.size``.
    ``logits`` and ``targets`` must have the same shape and dtype.
    """
    return _core.binary_cross_entropy(logits, targets)
