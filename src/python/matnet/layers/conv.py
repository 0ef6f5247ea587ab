"""Conv2D: 2-D convolution over NCHW batches with a fused bias and activation."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from .. import ops
from .._validate import check_int, check_pair, check_padding
from .base import Shape
from .core import WeightedLayer

__all__ = ["Conv2D"]


class Conv2D(WeightedLayer):
    """2-D convolution: ``output = activation(conv2d(X, W) + b)``, NCHW like PyTorch.

    Forward and backward are the implicit-GEMM kernels of
    :func:`matnet.ops.conv2d_forward` / :func:`matnet.ops.conv2d_backward`
    (bias and activation fused into the GEMM's output tiles).

    Args:
        in_channels: C.  out_channels: F.
        kernel_size, stride, dilation: int or (h, w) pair.
        padding: int or (h, w) pair, "valid" (0) or "same" (stride 1).
        groups: divides C and F; ``groups == in_channels`` is depthwise.
        activation, init, seed, use_bias, negative_slope, dtype: as :class:`Dense`
            (fan_in = C/groups * kh * kw).

    Shapes:
        input (N, C, H, W) -> output (N, F, OH, OW); ``W`` is
        (F, C/groups, kh, kw) (PyTorch's layout), ``b`` is (F,).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Union[int, str, Tuple[int, int]] = 0, dilation: Any = 1,
                 groups: int = 1, activation: Optional[str] = None, init: str = "he",
                 seed: Optional[int] = None, use_bias: bool = True,
                 negative_slope: float = 0.01, dtype: Any = np.float32) -> None:
        self._configure(in_channels, out_channels, kernel_size, stride, padding, dilation,
                        groups, activation, init, seed, use_bias, negative_slope, dtype)
        self._init_weights()

    def _configure(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                   padding: Any = 0, dilation: Any = 1, groups: int = 1,
                   activation: Optional[str] = None, init: str = "he",
                   seed: Optional[int] = None, use_bias: bool = True,
                   negative_slope: float = 0.01, dtype: Any = np.float32) -> None:
        who = "Conv2D"
        self.in_channels = check_int(in_channels, "in_channels", who)
        self.out_channels = check_int(out_channels, "out_channels", who)
        self.kernel_size = check_pair(kernel_size, "kernel_size", who)
        self.stride = check_pair(stride, "stride", who)
        self.dilation = check_pair(dilation, "dilation", who)
        self.groups = check_int(groups, "groups", who)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{who}: groups={self.groups} must divide in_channels="
                             f"{self.in_channels} and out_channels={self.out_channels}")
        self.padding = check_padding(padding, who)
        ops.conv2d_padding(self.padding, self.kernel_size, self.stride, self.dilation, who)
        self._configure_common(who, activation, init, seed, use_bias, negative_slope, dtype)

    def _weight_shape(self) -> Shape:
        return (self.out_channels, self.in_channels // self.groups) + self.kernel_size

    def _bias_size(self) -> int:
        return self.out_channels

    def _fans(self) -> Tuple[int, int]:
        area = self.kernel_size[0] * self.kernel_size[1]
        return self.in_channels // self.groups * area, self.out_channels // self.groups * area

    def _geometry(self) -> Dict[str, Any]:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
                "groups": self.groups}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y, z = ops.conv2d_forward(x, self.W, self.b, activation=self.activation,
                                  negative_slope=self.negative_slope, keep_z=training,
                                  **self._geometry())
        self._x, self._z = x, z
        return y

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        if self._x is None:
            raise RuntimeError("Conv2D.backward: call forward first")
        if self._z is None:  # the last forward was an evaluation one
            _, self._z = ops.conv2d_forward(self._x, self.W, self.b, activation=self.activation,
                                            negative_slope=self.negative_slope,
                                            **self._geometry())
        dx, self.dW, db = ops.conv2d_backward(
            grad, self._x, self.W, self._z, activation=self.activation,
            negative_slope=self.negative_slope, need_dx=need_input_grad,
            need_db=self.use_bias, **self._geometry())
        self.db = db
        return dx

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3 or input_shape[0] != self.in_channels:
            raise ValueError(f"Conv2D({self.in_channels}, {self.out_channels}) expects samples "
                             f"of shape ({self.in_channels}, H, W), got {tuple(input_shape)}")
        return ops.conv2d_output_shape(input_shape, self.out_channels, self.kernel_size,
                                       self.stride, self.padding, self.dilation)

    def get_config(self) -> Dict[str, Any]:
        pad: Union[str, List[int]] = self.padding if isinstance(self.padding, str) \
            else list(self.padding)
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": pad,
            "dilation": list(self.dilation),
            "groups": self.groups,
            **self._common_config(),
        }

    def describe(self) -> str:
        kh, kw = self.kernel_size
        return (f"Conv2D({self.in_channels}->{self.out_channels}, {kh}x{kw}"
                + self._activation_text())
