"""BatchNorm: batch normalization over features (N, C) or images (N, C, H, W)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from .. import ops
from .._validate import check_dtype, check_int, check_number
from .base import Layer, Shape

__all__ = ["BatchNorm"]


class BatchNorm(Layer):
    """``y = (x - mean) / sqrt(var + eps) * gamma + beta`` per channel (axis 1).

    Training uses the batch's mean and biased variance over every axis but
    the channel one and updates ``running_mean``/``running_var`` with
    ``momentum`` (unbiased variance), as ``torch.nn.BatchNorm1d/2d``;
    evaluation uses the running statistics. Training on one value per
    channel (batch 1 of features) is a ValueError, as in PyTorch.

    Args:
        num_features: C.  momentum: in [0, 1].  eps: > 0.
        affine: learn ``gamma`` (ones) and ``beta`` (zeros).
        dtype: float32 or float64.

    Buffers (saved and loaded, never trained): ``running_mean`` (zeros),
    ``running_var`` (ones), ``num_batches_tracked`` (a 0-d count).
    """

    has_training_mode = True
    has_buffers = True
    returns_new_array = True

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5,
                 affine: bool = True, dtype: Any = np.float32) -> None:
        self.num_features = check_int(num_features, "num_features", "BatchNorm")
        self.momentum = check_number(momentum, "momentum", "BatchNorm", 0.0, 1.0)
        self.eps = check_number(eps, "eps", "BatchNorm", 0.0)
        if self.eps == 0.0:
            raise ValueError("BatchNorm: eps must be > 0")
        if not isinstance(affine, bool):
            raise TypeError(f"BatchNorm: affine must be a bool, got {affine!r}")
        self.affine = affine
        self._dtype = check_dtype(dtype, "BatchNorm")
        c = self.num_features
        self.gamma = np.ones(c, self._dtype) if affine else None
        self.beta = np.zeros(c, self._dtype) if affine else None
        self.running_mean = np.zeros(c, self._dtype)
        self.running_var = np.ones(c, self._dtype)
        self.num_batches_tracked = np.zeros((), self._dtype)
        self.dgamma: Optional[np.ndarray] = None
        self.dbeta: Optional[np.ndarray] = None
        self._cache: Optional[tuple] = None

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if np.ndim(x) < 2 or np.shape(x)[1] != self.num_features:
            raise ValueError(f"BatchNorm({self.num_features}) expects inputs of shape "
                             f"(N, {self.num_features}, ...), got {np.shape(x)}")
        y, mean, invstd = ops.batch_norm(x, self.gamma, self.beta, self.running_mean,
                                         self.running_var, training, momentum=self.momentum,
                                         eps=self.eps)
        if training:
            self.num_batches_tracked += 1
        self._cache = (x, mean, invstd, training)
        return y

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        if self._cache is None:
            raise RuntimeError("BatchNorm.backward: call forward first")
        x, mean, invstd, training = self._cache
        dx, dgamma, dbeta = ops.batch_norm_backward(grad, x, self.gamma, mean, invstd, training,
                                                    need_dx=need_input_grad)
        if self.affine:
            self.dgamma, self.dbeta = dgamma, dbeta
        return dx

    def params(self) -> Dict[str, np.ndarray]:
        if self.gamma is None or self.beta is None:  # both None exactly when not affine
            return {}
        return {"gamma": self.gamma, "beta": self.beta}

    def grads(self) -> Dict[str, Optional[np.ndarray]]:
        return {"gamma": self.dgamma, "beta": self.dbeta} if self.affine else {}

    def zero_grad(self) -> None:
        self.dgamma = self.dbeta = None

    def param_shapes(self) -> Dict[str, Shape]:
        c = (self.num_features,)
        return {"gamma": c, "beta": c} if self.affine else {}

    def buffers(self) -> Dict[str, np.ndarray]:
        return {"running_mean": self.running_mean, "running_var": self.running_var,
                "num_batches_tracked": self.num_batches_tracked}

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) < 1 or input_shape[0] != self.num_features:
            raise ValueError(f"BatchNorm({self.num_features}) expects samples of shape "
                             f"({self.num_features}, ...), got {tuple(input_shape)}")
        return tuple(input_shape)

    def get_config(self) -> Dict[str, Any]:
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps,
                "affine": self.affine, "dtype": self._dtype.name}

    def describe(self) -> str:
        return f"BatchNorm({self.num_features})"
