"""Activation layers: elementwise (ReLU, LeakyReLU, Sigmoid, Tanh, GELU, SiLU)
and row-normalised (Softmax, LogSoftmax)."""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Optional

import numpy as np

from .. import ops
from .._validate import check_number
from .base import Layer, Shape

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "Softmax", "LogSoftmax"]


class _Elementwise(Layer):
    """An activation as its own layer: keeps its input for backward."""

    returns_new_array: ClassVar[bool] = True

    def __init__(self) -> None:
        self._x: Optional[np.ndarray] = None

    def _f(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _df(self, grad: np.ndarray, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._x = x
        return self._f(x)

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        if self._x is None:
            raise RuntimeError(f"{type(self).__name__}.backward: call forward first")
        return self._df(grad, self._x)


class ReLU(_Elementwise):
    """``max(x, 0)`` elementwise."""

    def _f(self, x: np.ndarray) -> np.ndarray:
        return ops.relu(x)

    def _df(self, grad: np.ndarray, x: np.ndarray) -> np.ndarray:
        return ops.relu_backward(grad, x)


class LeakyReLU(_Elementwise):
    """``x`` for x > 0, ``negative_slope * x`` otherwise."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = check_number(negative_slope, "negative_slope", "LeakyReLU", 0.0, 1e6)

    def _f(self, x: np.ndarray) -> np.ndarray:
        return ops.leaky_relu(x, self.negative_slope)

    def _df(self, grad: np.ndarray, x: np.ndarray) -> np.ndarray:
        return ops.leaky_relu_backward(grad, x, self.negative_slope)

    def get_config(self) -> Dict[str, Any]:
        return {"negative_slope": self.negative_slope}


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))`` elementwise."""

    def _f(self, x: np.ndarray) -> np.ndarray:
        return ops.sigmoid(x)

    def _df(self, grad: np.ndarray, x: np.ndarray) -> np.ndarray:
        return ops.sigmoid_backward(grad, x)


class Tanh(_Elementwise):
    """``tanh(x)`` elementwise."""

    def _f(self, x: np.ndarray) -> np.ndarray:
        return ops.tanh(x)

    def _df(self, grad: np.ndarray, x: np.ndarray) -> np.ndarray:
        return ops.tanh_backward(grad, x)


class GELU(_Elementwise):
    """``x · Φ(x)``; ``approximate="tanh"`` uses the tanh formula."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def _f(self, x: np.ndarray) -> np.ndarray:
        return ops.gelu(x, approximate=self.approximate)

    def _df(self, grad: np.ndarray, x: np.ndarray) -> np.ndarray:
        return ops.gelu_backward(grad, x, approximate=self.approximate)

    def get_config(self) -> Dict[str, Any]:
        return {"approximate": self.approximate}


class SiLU(_Elementwise):
    """``x · sigmoid(x)`` (swish) elementwise."""

    def _f(self, x: np.ndarray) -> np.ndarray:
        return ops.silu(x)

    def _df(self, grad: np.ndarray, x: np.ndarray) -> np.ndarray:
        return ops.silu_backward(grad, x)


class _RowNormalised(Layer):
    """Softmax-like layers: backward needs the forward output, not the input."""

    def __init__(self, axis: int = -1) -> None:
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{type(self).__name__}: axis must be an int, got {axis!r}")
        if axis == 0:
            raise ValueError(f"{type(self).__name__}: axis 0 is the batch axis")
        self.axis = int(axis)
        self._y: Optional[np.ndarray] = None

    def output_shape(self, input_shape: Shape) -> Shape:
        # axis counts the batch axis; per-sample shapes do not.
        ndim = len(input_shape) + 1
        if not -ndim < self.axis < ndim:
            raise ValueError(
                f"{type(self).__name__}: axis {self.axis} does not exist for samples of shape "
                f"{tuple(input_shape)}"
            )
        return tuple(input_shape)

    def get_config(self) -> Dict[str, Any]:
        return {"axis": self.axis}


class Softmax(_RowNormalised):
    """``exp(x) / sum(exp(x))`` along ``axis`` (numerically stable).

    For classification, train on logits with ``loss="cross_entropy"`` (which
    applies the softmax itself) and add Softmax only to read probabilities.
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._y = ops.softmax(x, axis=self.axis)
        return self._y

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        if self._y is None:
            raise RuntimeError("Softmax.backward: call forward first")
        return ops.softmax_backward(grad, self._y, axis=self.axis)


class LogSoftmax(_RowNormalised):
    """``x - logsumexp(x)`` along ``axis`` (numerically stable)."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._y = ops.log_softmax(x, axis=self.axis)
        return self._y

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        if self._y is None:
            raise RuntimeError("LogSoftmax.backward: call forward first")
        return ops.log_softmax_backward(grad, self._y, axis=self.axis)
