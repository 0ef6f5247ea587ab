"""Layers: Dense, activations, Dropout and Flatten over matnet's kernels.

Every layer is a pair ``forward(x, training)`` / ``backward(grad)``. Forward
keeps what its backward needs (the input, or the output for softmax);
backward returns d loss / d input and, for layers with parameters, stores
fresh gradient arrays (``Dense.dW``, ``Dense.db``) that overwrite the previous
ones. All numeric work on batch data is a call into :mod:`matnet.ops`.

Layers are rebuilt from ``get_config()`` by ``from_config`` (the inverse);
save/load is built on that, with :data:`LAYER_TYPES` as the whitelist of
types a saved file may name.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Dict, Optional, Tuple

import numpy as np

from . import _core, ops

__all__ = [
    "Layer",
    "Dense",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "GELU",
    "SiLU",
    "Softmax",
    "LogSoftmax",
    "Dropout",
    "Flatten",
    "LAYER_TYPES",
    "DENSE_ACTIVATIONS",
    "INITIALIZERS",
]

Shape = Tuple[int, ...]

#: Activations a Dense layer can fuse into its GEMM epilogue.
DENSE_ACTIVATIONS = (None, "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "gelu_tanh", "silu")

#: Weight initialisations for Dense (biases start at zero).
#: "he"/"he_uniform": variance 2/fan_in (ReLU family); "glorot"/"glorot_normal":
#: variance 2/(fan_in+fan_out) (tanh/sigmoid); "lecun": variance 1/fan_in;
#: "zeros" for tests and for layers whose weights are loaded afterwards.
INITIALIZERS = ("he", "he_uniform", "glorot", "glorot_normal", "lecun", "zeros")

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Sizes beyond this are refused: they cannot be real layers on this kind of
# machine, and a saved file declaring them is hostile or corrupt.
_MAX_FEATURES = 1 << 24


def _check_int(value: Any, name: str, cls: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{cls}: {name} must be an int, got {value!r}")
    if not minimum <= int(value) <= _MAX_FEATURES:
        raise ValueError(f"{cls}: {name} must be in [{minimum}, {_MAX_FEATURES}], got {value}")
    return int(value)


def _check_float(value: Any, name: str, cls: str, lo: float, hi: float,
                 hi_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{cls}: {name} must be a number, got {value!r}")
    value = float(value)
    if not (lo <= value <= hi) or (hi_open and value == hi):
        bracket = ")" if hi_open else "]"
        raise ValueError(f"{cls}: {name} must be in [{lo}, {hi}{bracket}, got {value}")
    return value


def _check_seed(seed: Any, cls: str) -> Optional[int]:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{cls}: seed must be an int or None, got {seed!r}")
    if seed < 0:
        raise ValueError(f"{cls}: seed must be >= 0, got {seed}")
    return int(seed)


def _check_dtype(dtype: Any, cls: str) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{cls}: dtype must be float32 or float64, got {dtype!r}") from exc
    if dt not in _FLOAT_DTYPES:
        raise TypeError(f"{cls}: dtype must be float32 or float64, got {dt}")
    return dt


class Layer:
    """Base class: a differentiable map from a batch to a batch.

    Subclasses implement ``forward``, ``backward``, ``get_config`` and
    ``output_shape``; layers with parameters also ``params``/``grads``.
    """

    #: True for layers that act differently in training (Dropout).
    has_training_mode: ClassVar[bool] = False
    #: Arrays (by name, as ``params()``) that ``backward`` should write the
    #: gradients into instead of new ones, or None. matnet.distributed sets
    #: it to views of its fused buffer; a layer may ignore it (then the
    #: gradients are copied there).
    grad_out: Optional[Dict[str, np.ndarray]] = None
    #: True when forward (in evaluation) always returns a new array, never
    #: its input or a view of it; Sequential.predict reuses the buffers of
    #: earlier layers only up to the last such layer.
    returns_new_array: ClassVar[bool] = False

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Output for the batch ``x``; keeps what ``backward`` needs."""
        raise NotImplementedError

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        """d loss / d input from d loss / d output of the last ``forward``.

        Layers with parameters also store their gradients. With
        ``need_input_grad=False`` (the first layer of a model) the input
        gradient may be skipped and ``None`` returned.
        """
        raise NotImplementedError

    def params(self) -> Dict[str, np.ndarray]:
        """Trainable arrays by name (updated in place by optimizers)."""
        return {}

    def grads(self) -> Dict[str, Optional[np.ndarray]]:
        """Gradients of the last backward, same names as ``params`` (None before)."""
        return {}

    def zero_grad(self) -> None:
        """Forget the stored gradients."""

    def param_shapes(self) -> Dict[str, Shape]:
        """Shapes ``params`` has, computed from the configuration alone."""
        return {}

    @property
    def dtype(self) -> Optional[np.dtype]:
        """dtype of the parameters, or None for layers without any."""
        return None

    def set_params(self, values: Dict[str, np.ndarray]) -> None:
        """Replace the parameters (copied; names, shapes and dtype must match)."""
        expected = self.param_shapes()
        if set(values) != set(expected):
            raise ValueError(
                f"{type(self).__name__}.set_params: expected arrays {sorted(expected)}, "
                f"got {sorted(values)}"
            )
        for name, shape in expected.items():
            arr = np.asarray(values[name])
            if arr.shape != shape:
                raise ValueError(
                    f"{type(self).__name__}.set_params: {name} must have shape {shape}, "
                    f"got {arr.shape}"
                )
            if arr.dtype != self.dtype:
                raise ValueError(
                    f"{type(self).__name__}.set_params: {name} must be {self.dtype}, "
                    f"got {arr.dtype}"
                )
        for name in expected:
            setattr(self, name, np.array(values[name], dtype=self.dtype, order="C", copy=True))

    def output_shape(self, input_shape: Shape) -> Shape:
        """Per-sample output shape for a per-sample input shape (ValueError if unfit)."""
        return tuple(input_shape)

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments, JSON-serialisable."""
        return {}

    @classmethod
    def from_config(cls, config: Dict[str, Any],
                    weights: Optional[Dict[str, np.ndarray]] = None) -> "Layer":
        """Inverse of ``get_config``; ``weights`` (as ``params()``) replace the initial ones."""
        layer = cls(**config)
        if weights is not None:
            layer.set_params(weights)
        return layer

    @classmethod
    def config_param_shapes(cls, config: Dict[str, Any]) -> Dict[str, Shape]:
        """Parameter shapes a layer built from ``config`` has, without allocating them.

        Raises TypeError/ValueError for an invalid config.
        """
        return cls(**config).param_shapes()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Dense(Layer):
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

    returns_new_array: ClassVar[bool] = True

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
        self.W = self._initial_weights(np.random.default_rng(seed))
        self.b = np.zeros(self.out_features, dtype=self._dtype) if use_bias else None
        self._clear_caches()

    def _configure(self, in_features: int, out_features: int, activation: Optional[str] = None,
                   init: str = "he", seed: Optional[int] = None, use_bias: bool = True,
                   negative_slope: float = 0.01, dtype: Any = np.float32) -> None:
        # Checks and stores the settings; allocates nothing (saved files are
        # validated through this before any weight array is read).
        self.in_features = _check_int(in_features, "in_features", "Dense")
        self.out_features = _check_int(out_features, "out_features", "Dense")
        if activation not in DENSE_ACTIVATIONS:
            raise ValueError(
                f"Dense: activation must be one of {DENSE_ACTIVATIONS}, got {activation!r}"
            )
        self.activation = activation
        if init not in INITIALIZERS:
            raise ValueError(f"Dense: init must be one of {INITIALIZERS}, got {init!r}")
        self.init = init
        self.seed = _check_seed(seed, "Dense")
        if not isinstance(use_bias, bool):
            raise TypeError(f"Dense: use_bias must be a bool, got {use_bias!r}")
        self.use_bias = use_bias
        self.negative_slope = _check_float(negative_slope, "negative_slope", "Dense", 0.0, 1e6)
        self._dtype = _check_dtype(dtype, "Dense")

    def _clear_caches(self) -> None:
        self.dW: Optional[np.ndarray] = None
        self.db: Optional[np.ndarray] = None
        self._x: Optional[np.ndarray] = None
        self._z: Optional[np.ndarray] = None
        self._infer_buf: Optional[np.ndarray] = None

    @classmethod
    def config_param_shapes(cls, config: Dict[str, Any]) -> Dict[str, Shape]:
        layer = cls.__new__(cls)
        layer._configure(**config)
        return layer.param_shapes()

    @classmethod
    def from_config(cls, config: Dict[str, Any],
                    weights: Optional[Dict[str, np.ndarray]] = None) -> "Dense":
        if weights is None:
            return cls(**config)
        layer = cls.__new__(cls)
        layer._configure(**config)
        layer.b = None
        layer._clear_caches()
        layer.set_params(weights)
        return layer

    def _initial_weights(self, rng: np.random.Generator) -> np.ndarray:
        k, m = self.in_features, self.out_features
        shape = (k, m)
        if self.init == "zeros":
            return np.zeros(shape, dtype=self._dtype)
        if self.init == "he":
            w = rng.normal(0.0, math.sqrt(2.0 / k), size=shape)
        elif self.init == "he_uniform":
            w = rng.uniform(-math.sqrt(6.0 / k), math.sqrt(6.0 / k), size=shape)
        elif self.init == "glorot":
            limit = math.sqrt(6.0 / (k + m))
            w = rng.uniform(-limit, limit, size=shape)
        elif self.init == "glorot_normal":
            w = rng.normal(0.0, math.sqrt(2.0 / (k + m)), size=shape)
        else:  # lecun
            w = rng.normal(0.0, math.sqrt(1.0 / k), size=shape)
        return np.ascontiguousarray(w, dtype=self._dtype)

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not training:
            # Inference: no pre-activation is written or kept. x is kept by
            # reference only, so a backward after an evaluation forward still
            # works (it recomputes z once).
            y = _core.dense_infer(x, self.W, self.b, self.activation, self.negative_slope)
            self._x, self._z = x, None
            return y
        y, z = ops.dense_forward(
            x, self.W, self.b, self.activation, negative_slope=self.negative_slope
        )
        self._x, self._z = x, z
        return y

    def infer(self, x: np.ndarray, reuse_output: bool = False) -> np.ndarray:
        """``forward(x, training=False)`` for prediction: keeps nothing.

        With ``reuse_output`` the result is written into a buffer the layer
        keeps for the next call with the same batch size, so it is valid
        only until then (``Sequential.predict`` uses this between layers).
        """
        if not reuse_output:
            return _core.dense_infer(x, self.W, self.b, self.activation, self.negative_slope)
        buf = self._infer_buf
        rows = x.shape[0] if x.ndim == 2 else -1
        if buf is None or buf.shape[0] != rows or buf.dtype != self._dtype:
            buf = None
        y = _core.dense_infer(x, self.W, self.b, self.activation, self.negative_slope, buf)
        self._infer_buf = y
        return y

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        if self._x is None:
            raise RuntimeError("Dense.backward: call forward first")
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
        return dx

    def params(self) -> Dict[str, np.ndarray]:
        return {"W": self.W, "b": self.b} if self.use_bias else {"W": self.W}

    def grads(self) -> Dict[str, Optional[np.ndarray]]:
        return {"W": self.dW, "b": self.db} if self.use_bias else {"W": self.dW}

    def zero_grad(self) -> None:
        self.dW = None
        self.db = None

    def param_shapes(self) -> Dict[str, Shape]:
        shapes: Dict[str, Shape] = {"W": (self.in_features, self.out_features)}
        if self.use_bias:
            shapes["b"] = (self.out_features,)
        return shapes

    def output_shape(self, input_shape: Shape) -> Shape:
        if tuple(input_shape) != (self.in_features,):
            raise ValueError(
                f"Dense({self.in_features}, {self.out_features}) expects samples of shape "
                f"({self.in_features},), got {tuple(input_shape)}"
            )
        return (self.out_features,)

    def get_config(self) -> Dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "activation": self.activation,
            "init": self.init,
            "seed": self.seed,
            "use_bias": self.use_bias,
            "negative_slope": self.negative_slope,
            "dtype": self._dtype.name,
        }


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

    def _f(self, x):
        return ops.relu(x)

    def _df(self, grad, x):
        return ops.relu_backward(grad, x)


class LeakyReLU(_Elementwise):
    """``x`` for x > 0, ``negative_slope * x`` otherwise."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = _check_float(negative_slope, "negative_slope", "LeakyReLU", 0.0, 1e6)

    def _f(self, x):
        return ops.leaky_relu(x, self.negative_slope)

    def _df(self, grad, x):
        return ops.leaky_relu_backward(grad, x, self.negative_slope)

    def get_config(self) -> Dict[str, Any]:
        return {"negative_slope": self.negative_slope}


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))`` elementwise."""

    def _f(self, x):
        return ops.sigmoid(x)

    def _df(self, grad, x):
        return ops.sigmoid_backward(grad, x)


class Tanh(_Elementwise):
    """``tanh(x)`` elementwise."""

    def _f(self, x):
        return ops.tanh(x)

    def _df(self, grad, x):
        return ops.tanh_backward(grad, x)


class GELU(_Elementwise):
    """``x · Φ(x)``; ``approximate="tanh"`` uses the tanh formula."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def _f(self, x):
        return ops.gelu(x, approximate=self.approximate)

    def _df(self, grad, x):
        return ops.gelu_backward(grad, x, approximate=self.approximate)

    def get_config(self) -> Dict[str, Any]:
        return {"approximate": self.approximate}


class SiLU(_Elementwise):
    """``x · sigmoid(x)`` (swish) elementwise."""

    def _f(self, x):
        return ops.silu(x)

    def _df(self, grad, x):
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


class Dropout(Layer):
    """Zeroes each input with probability ``p`` in training, scaling the rest by 1/(1-p).

    Inactive (the identity) in evaluation. The mask comes from a NumPy
    generator seeded with ``seed``, so runs are reproducible.
    """

    has_training_mode = True

    def __init__(self, p: float = 0.5, seed: Optional[int] = None) -> None:
        self.p = _check_float(p, "p", "Dropout", 0.0, 1.0, hi_open=True)
        self.seed = _check_seed(seed, "Dropout")
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


#: Layer types by name: what ``Sequential`` configs and saved files may contain.
LAYER_TYPES: Dict[str, type] = {
    cls.__name__: cls
    for cls in (Dense, ReLU, LeakyReLU, Sigmoid, Tanh, GELU, SiLU, Softmax, LogSoftmax,
                Dropout, Flatten)
}
