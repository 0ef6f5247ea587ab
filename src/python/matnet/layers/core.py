"""Core layers: Dense (fused GEMM + bias + activation), Dropout, Flatten."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Dict, Optional, Tuple

import numpy as np

from .. import _core, ops
from .._validate import check_dtype, check_int, check_number, check_seed
from .base import Layer, Shape

__all__ = ["WeightedLayer", "Dense", "Dropout", "Flatten", "Reshape", "DENSE_ACTIVATIONS",
           "INITIALIZERS", "initial_weights"]

#: Activations a Dense layer can fuse into its GEMM epilogue.
DENSE_ACTIVATIONS = (None, "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "gelu_tanh", "silu")

#: Weight initialisations for Dense (biases start at zero).
#: "he"/"he_uniform": variance 2/fan_in (ReLU family); "glorot"/"glorot_normal":
#: variance 2/(fan_in+fan_out) (tanh/sigmoid); "lecun": variance 1/fan_in;
#: "zeros" for tests and for layers whose weights are loaded afterwards.
INITIALIZERS = ("he", "he_uniform", "glorot", "glorot_normal", "lecun", "zeros")


def initial_weights(init: str, shape: Shape, fan_in: int, fan_out: int,
                    rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """Weights of ``shape`` drawn as :data:`INITIALIZERS` describes."""
    if init == "zeros":
        return np.zeros(shape, dtype=dtype)
    if init == "he":
        w = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)
    elif init == "he_uniform":
        w = rng.uniform(-math.sqrt(6.0 / fan_in), math.sqrt(6.0 / fan_in), size=shape)
    elif init == "glorot":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, size=shape)
    elif init == "glorot_normal":
        w = rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)
    else:  # lecun
        w = rng.normal(0.0, math.sqrt(1.0 / fan_in), size=shape)
    return np.ascontiguousarray(w, dtype=dtype)


class WeightedLayer(Layer):
    """Base of the layers with weights ``W``, an optional bias ``b`` and a
    fused activation (Dense, Conv2D).

    A subclass implements ``_configure(**config)``, which checks and stores
    the settings and allocates nothing (saved files are validated through it
    before any weight array is read), calling ``_configure_common`` for the
    shared arguments, plus ``_weight_shape()`` and ``_fans()``.
    """

    returns_new_array: ClassVar[bool] = True

    def _configure(self, *args: Any, **config: Any) -> None:
        # (*args: Any, **config: Any): each subclass declares its own arguments.
        raise NotImplementedError

    def _weight_shape(self) -> Shape:
        raise NotImplementedError

    def _fans(self) -> Tuple[int, int]:
        """(fan_in, fan_out) for the initialisation."""
        raise NotImplementedError

    def _bias_size(self) -> int:
        return self._weight_shape()[-1]

    def _configure_common(self, who: str, activation: Optional[str], init: str,
                          seed: Optional[int], use_bias: bool, negative_slope: float,
                          dtype: Any) -> None:
        if activation not in DENSE_ACTIVATIONS:
            raise ValueError(
                f"{who}: activation must be one of {DENSE_ACTIVATIONS}, got {activation!r}"
            )
        self.activation = activation
        if init not in INITIALIZERS:
            raise ValueError(f"{who}: init must be one of {INITIALIZERS}, got {init!r}")
        self.init = init
        self.seed = check_seed(seed, who)
        if not isinstance(use_bias, bool):
            raise TypeError(f"{who}: use_bias must be a bool, got {use_bias!r}")
        self.use_bias = use_bias
        self.negative_slope = check_number(negative_slope, "negative_slope", who, 0.0, 1e6)
        self._dtype = check_dtype(dtype, who)

    def _init_weights(self) -> None:
        fan_in, fan_out = self._fans()
        self.W = initial_weights(self.init, self._weight_shape(), fan_in, fan_out,
                                 np.random.default_rng(self.seed), self._dtype)
        self.b = np.zeros(self._bias_size(), dtype=self._dtype) if self.use_bias else None
        self._clear_caches()

    def _clear_caches(self) -> None:
        self.dW: Optional[np.ndarray] = None
        self.db: Optional[np.ndarray] = None
        self._x: Optional[np.ndarray] = None
        self._z: Optional[np.ndarray] = None

    @classmethod
    def from_config(cls, config: Dict[str, Any],
                    weights: Optional[Dict[str, np.ndarray]] = None) -> "WeightedLayer":
        if weights is None:
            return cls(**config)
        layer = cls.__new__(cls)
        layer._configure(**config)
        layer.b = None
        layer._clear_caches()
        layer.set_params(weights)
        return layer

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def params(self) -> Dict[str, np.ndarray]:
        # b is None exactly when not use_bias (between from_config's reset and
        # set_params too, where b is left out rather than given as None).
        return {"W": self.W} if self.b is None else {"W": self.W, "b": self.b}

    def grads(self) -> Dict[str, Optional[np.ndarray]]:
        return {"W": self.dW, "b": self.db} if self.use_bias else {"W": self.dW}

    def zero_grad(self) -> None:
        self.dW = None
        self.db = None

    def param_shapes(self) -> Dict[str, Shape]:
        shapes: Dict[str, Shape] = {"W": self._weight_shape()}
        if self.use_bias:
            shapes["b"] = (self._bias_size(),)
        return shapes

    def _common_config(self) -> Dict[str, Any]:
        """The get_config entries of the arguments _configure_common checks."""
        return {"activation": self.activation, "init": self.init, "seed": self.seed,
                "use_bias": self.use_bias, "negative_slope": self.negative_slope,
                "dtype": self._dtype.name}

    def _activation_text(self) -> str:
        return f", {self.activation})" if self.activation else ")"


class Dense(WeightedLayer):
    """Fully connected layer: ``output = activation(X·W + b)``.

    The product, bias and activation run in one fused kernel
    (:func:`matnet.ops.dense_forward`); backward fuses the activation
    derivative and the bias gradient into the GEMMs
    (:func:`matnet.ops.dense_backward`).

    Args:
        in_features: K, size of each input row.
        out_features: M, size of each output row.
        activation: one of :data:`DENSE_ACTIVATIONS` (None = linear).
        init: weight initialisation, one of :data:`INITIALIZERS`.
        seed: seed of the NumPy generator drawing the initial weights.
        use_bias: whether the layer has ``b``.
        negative_slope: slope of ``leaky_relu`` for negative inputs.
        dtype: float32 (default) or float64.

    Shapes:
        input (N, K) -> output (N, M); ``W`` is (K, M), ``b`` is (M,).
        After ``backward``: ``dW`` (K, M) and ``db`` (M,).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: Optional[str] = None,
        init: str = "he",
        seed: Optional[int] = None,
        use_bias: bool = True,
        negative_slope: float = 0.01,
        dtype: Any = np.float32,
    ) -> None:
        self._configure(in_features, out_features, activation, init, seed, use_bias,
                        negative_slope, dtype)
        self._init_weights()

    def _configure(self, in_features: int, out_features: int, activation: Optional[str] = None,
                   init: str = "he", seed: Optional[int] = None, use_bias: bool = True,
                   negative_slope: float = 0.01, dtype: Any = np.float32) -> None:
        # Checks and stores the settings; allocates nothing (saved files are
        # validated through this before any weight array is read).
        self.in_features = check_int(in_features, "in_features", "Dense")
        self.out_features = check_int(out_features, "out_features", "Dense")
        self._configure_common("Dense", activation, init, seed, use_bias, negative_slope, dtype)

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._infer_buf: Optional[np.ndarray] = None
        self._lead: Optional[Shape] = None  # leading dims of a (..., in) input

    def _weight_shape(self) -> Shape:
        return (self.in_features, self.out_features)

    def _fans(self) -> Tuple[int, int]:
        return self.in_features, self.out_features

    def describe(self) -> str:
        return f"Dense({self.in_features}->{self.out_features}" + self._activation_text()

    def _rows(self, x: np.ndarray) -> Tuple[np.ndarray, Optional[Shape]]:
        """(..., in) -> (rows, in) and the leading shape, like torch.nn.Linear;
        2-D (and bad) inputs pass through unchanged to the kernels' checks."""
        if x.ndim > 2 and x.shape[-1] == self.in_features:
            return x.reshape(-1, self.in_features), x.shape[:-1]
        return x, None

    @staticmethod
    def _unrows(y: np.ndarray, lead: Optional[Shape]) -> np.ndarray:
        return y if lead is None else y.reshape(lead + (y.shape[-1],))

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x, lead = self._rows(x)
        self._lead = lead
        if not training:
            # Inference: no pre-activation is written or kept. x is kept by
            # reference only, so a backward after an evaluation forward still
            # works (it recomputes z once).
            y = _core.dense_infer(x, self.W, self.b, self.activation, self.negative_slope)
            self._x, self._z = x, None
            return self._unrows(y, lead)
        y, z = ops.dense_forward(
            x, self.W, self.b, self.activation, negative_slope=self.negative_slope
        )
        self._x, self._z = x, z
        return self._unrows(y, lead)

    def infer(self, x: np.ndarray, reuse_output: bool = False) -> np.ndarray:
        """``forward(x, training=False)`` for prediction: keeps nothing.

        With ``reuse_output`` the result is written into a buffer the layer
        keeps for the next call with the same batch size, so it is valid
        only until then (``Sequential.predict`` uses this between layers).
        """
        x, lead = self._rows(x)
        if not reuse_output:
            return self._unrows(
                _core.dense_infer(x, self.W, self.b, self.activation, self.negative_slope), lead)
        buf = self._infer_buf
        rows = x.shape[0] if x.ndim == 2 else -1
        if buf is None or buf.shape[0] != rows or buf.dtype != self._dtype:
            buf = None
        y = _core.dense_infer(x, self.W, self.b, self.activation, self.negative_slope, buf)
        self._infer_buf = y
        return self._unrows(y, lead)

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        if self._x is None:
            raise RuntimeError("Dense.backward: call forward first")
        lead = self._lead
        if lead is not None:
            grad = grad.reshape(-1, self.out_features)
        if self._z is None:  # the last forward was an evaluation one
            _, self._z = ops.dense_forward(
                self._x, self.W, self.b, self.activation, negative_slope=self.negative_slope
            )
        out = self.grad_out or {}
        dx, self.dW, db = ops.dense_backward(
            grad,
            self._x,
            self.W,
            self._z,
            self.activation,
            negative_slope=self.negative_slope,
            need_dx=need_input_grad,
            dw_out=out.get("W"),
            db_out=out.get("b"),
        )
        self.db = db if self.use_bias else None
        return dx if lead is None or dx is None else dx.reshape(lead + (self.in_features,))

    def output_shape(self, input_shape: Shape) -> Shape:
        if not input_shape or input_shape[-1] != self.in_features:
            raise ValueError(
                f"Dense({self.in_features}, {self.out_features}) expects samples of shape "
                f"(..., {self.in_features}), got {tuple(input_shape)}"
            )
        return tuple(input_shape[:-1]) + (self.out_features,)

    def get_config(self) -> Dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            **self._common_config(),
        }


class Dropout(Layer):
    """Zeroes each input with probability ``p`` in training, scaling the rest by 1/(1-p).

    Inactive (the identity) in evaluation. The mask comes from a NumPy
    generator seeded with ``seed``, so runs are reproducible.
    """

    has_training_mode = True

    def __init__(self, p: float = 0.5, seed: Optional[int] = None) -> None:
        self.p = check_number(p, "p", "Dropout", 0.0, 1.0, hi_open=True)
        self.seed = check_seed(seed, "Dropout")
        self._rng = np.random.default_rng(self.seed)
        self._mask: Optional[np.ndarray] = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.p == 0.0:
            self._mask = None
            return x
        keep = self._rng.random(x.shape, dtype=np.float32) >= self.p
        self._mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        return x * self._mask

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        return grad if self._mask is None else grad * self._mask

    def get_config(self) -> Dict[str, Any]:
        return {"p": self.p, "seed": self.seed}


class Flatten(Layer):
    """Reshapes each sample to one row: (N, d1, d2, ...) -> (N, d1·d2·...)."""

    def __init__(self) -> None:
        self._shape: Optional[Tuple[int, ...]] = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        if self._shape is None:
            raise RuntimeError("Flatten.backward: call forward first")
        return grad.reshape(self._shape)

    def output_shape(self, input_shape: Shape) -> Shape:
        return (int(np.prod(input_shape, dtype=np.int64)),)


class Reshape(Layer):
    """Reshapes each sample: (N, *input) -> (N, *target_shape) (same element count).

    E.g. ``Reshape((1, 8, 8))`` turns flat 64-pixel rows into one-channel
    images for Conv2D.
    """

    def __init__(self, target_shape: Any) -> None:
        if not isinstance(target_shape, (tuple, list)) or not target_shape:
            raise TypeError(f"Reshape: target_shape must be a non-empty tuple of ints, "
                            f"got {target_shape!r}")
        self.target_shape = tuple(check_int(d, "target_shape", "Reshape") for d in target_shape)
        self._shape: Optional[Tuple[int, ...]] = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if int(np.prod(x.shape[1:], dtype=np.int64)) != int(np.prod(self.target_shape)):
            raise ValueError(f"Reshape{self.target_shape}: input of shape {x.shape} does not fit")
        self._shape = x.shape
        return x.reshape((x.shape[0],) + self.target_shape)

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        if self._shape is None:
            raise RuntimeError("Reshape.backward: call forward first")
        return grad.reshape(self._shape)

    def output_shape(self, input_shape: Shape) -> Shape:
        if int(np.prod(input_shape, dtype=np.int64)) != int(np.prod(self.target_shape)):
            raise ValueError(f"Reshape{self.target_shape} does not fit samples of shape "
                             f"{tuple(input_shape)}")
        return self.target_shape

    def get_config(self) -> Dict[str, Any]:
        return {"target_shape": list(self.target_shape)}
