"""Pooling layers over NCHW batches: MaxPool2D, AvgPool2D, GlobalAvgPool2D."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from .. import ops
from .._validate import check_pair
from .base import Layer, Shape

__all__ = ["MaxPool2D", "AvgPool2D", "GlobalAvgPool2D"]


class _Pool2D(Layer):
    """Window pooling: (N, C, H, W) -> (N, C, OH, OW), OH = (H + 2p - k) // s + 1."""

    returns_new_array = True

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        who = type(self).__name__
        self.kernel_size = check_pair(kernel_size, "kernel_size", who)
        self.stride = self.kernel_size if stride is None else check_pair(stride, "stride", who)
        self.padding = check_pair(padding, "padding", who, minimum=0)
        if 2 * self.padding[0] > self.kernel_size[0] or 2 * self.padding[1] > self.kernel_size[1]:
            raise ValueError(f"{who}: padding {self.padding} must be at most half the window "
                             f"{self.kernel_size}")
        self._x_shape: Optional[Shape] = None

    def output_shape(self, input_shape: Shape) -> Shape:
        return ops.pool2d_output_shape(input_shape, self.kernel_size, self.stride, self.padding,
                                       type(self).__name__)

    def get_config(self) -> Dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding)}

    def _require_forward(self) -> Shape:
        if self._x_shape is None:
            raise RuntimeError(f"{type(self).__name__}.backward: call forward first")
        return self._x_shape


class MaxPool2D(_Pool2D):
    """Maximum over each window (implicit -inf padding); stride defaults to the window."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, self._argmax = ops.max_pool2d_forward(x, self.kernel_size, self.stride, self.padding)
        self._x_shape = x.shape
        return y

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        shape = self._require_forward()
        return ops.max_pool2d_backward(grad, self._argmax, shape, self.kernel_size, self.stride,
                                       self.padding)


class AvgPool2D(_Pool2D):
    """Mean over each window; zero padding counts in the divisor unless
    ``count_include_pad`` is False (PyTorch's default is True)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 count_include_pad: bool = True) -> None:
        super().__init__(kernel_size, stride, padding)
        if not isinstance(count_include_pad, bool):
            raise TypeError(f"AvgPool2D: count_include_pad must be a bool, "
                            f"got {count_include_pad!r}")
        self.count_include_pad = count_include_pad

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._x_shape = x.shape
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                              self.count_include_pad)

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        shape = self._require_forward()
        return ops.avg_pool2d_backward(grad, shape, self.kernel_size, self.stride, self.padding,
                                       self.count_include_pad)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "count_include_pad": self.count_include_pad}


class GlobalAvgPool2D(Layer):
    """Mean of each channel's plane: (N, C, H, W) -> (N, C)."""

    returns_new_array = True

    def __init__(self) -> None:
        self._x_shape: Optional[Shape] = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._x_shape = x.shape
        return ops.global_avg_pool2d(x)

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        if self._x_shape is None:
            raise RuntimeError("GlobalAvgPool2D.backward: call forward first")
        return ops.global_avg_pool2d_backward(grad, self._x_shape)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3 or min(input_shape[1:]) < 1:
            raise ValueError(f"GlobalAvgPool2D expects samples of shape (C, H, W), "
                             f"got {tuple(input_shape)}")
        return (input_shape[0],)
