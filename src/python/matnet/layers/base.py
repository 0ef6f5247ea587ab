"""Layer: the base class every layer derives from.

Every layer is a pair ``forward(x, training)`` / ``backward(grad)``. Forward
keeps what its backward needs (the input, or the output for softmax);
backward returns d loss / d input and, for layers with parameters, stores
fresh gradient arrays (``Dense.dW``, ``Dense.db``) that overwrite the previous
ones. All numeric work on batch data is a call into :mod:`matnet.ops`.

Layers are rebuilt from ``get_config()`` by ``from_config`` (the inverse);
save/load is built on that, with :data:`matnet.layers.LAYER_TYPES` as the
whitelist of types a saved file may name. Non-trainable state that must be
saved too (BatchNorm's running statistics) is ``buffers()``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Optional, Tuple

import numpy as np

__all__ = ["Layer", "Shape"]

Shape = Tuple[int, ...]

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
    #: True for layers with buffers (non-trainable saved state, BatchNorm).
    has_buffers: ClassVar[bool] = False
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

    def buffers(self) -> Dict[str, np.ndarray]:
        """Non-trainable state saved and loaded with the layer (BatchNorm's
        running statistics), by name; optimizers never see it."""
        return {}

    def buffer_shapes(self) -> Dict[str, Shape]:
        """Shapes ``buffers`` has, computed from the configuration alone."""
        return {name: arr.shape for name, arr in self.buffers().items()}

    def set_buffers(self, values: Dict[str, np.ndarray]) -> None:
        """Replace the buffers (copied; names, shapes and dtypes must match)."""
        current = self.buffers()
        self._check_arrays("set_buffers", values,
                           {name: (arr.shape, arr.dtype) for name, arr in current.items()})
        for name, old in current.items():
            old[...] = values[name]

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
        self._check_arrays("set_params", values,
                           {name: (shape, self.dtype) for name, shape in expected.items()})
        for name in expected:
            setattr(self, name, np.array(values[name], dtype=self.dtype, order="C", copy=True))

    def _check_arrays(self, what: str, values: Dict[str, np.ndarray],
                      expected: Dict[str, Tuple[Shape, Optional[np.dtype]]]) -> None:
        # ValueError unless ``values`` has exactly the expected names, shapes and dtypes.
        who = f"{type(self).__name__}.{what}"
        if set(values) != set(expected):
            raise ValueError(f"{who}: expected arrays {sorted(expected)}, got {sorted(values)}")
        for name, (shape, dtype) in expected.items():
            arr = np.asarray(values[name])
            if arr.shape != tuple(shape):
                raise ValueError(f"{who}: {name} must have shape {tuple(shape)}, got {arr.shape}")
            if arr.dtype != dtype:
                raise ValueError(f"{who}: {name} must be {dtype}, got {arr.dtype}")

    def output_shape(self, input_shape: Shape) -> Shape:
        """Per-sample output shape for a per-sample input shape (ValueError if unfit)."""
        return tuple(input_shape)

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments, JSON-serialisable."""
        return {}

    def describe(self) -> str:
        """A short description for ``Sequential.summary`` (the class name by default)."""
        return type(self).__name__

    @classmethod
    def from_config(cls, config: Dict[str, Any],
                    weights: Optional[Dict[str, np.ndarray]] = None) -> "Layer":
        """Inverse of ``get_config``; ``weights`` (as ``params()``) replace the initial ones."""
        layer = cls(**config)
        if weights is not None:
            layer.set_params(weights)
        return layer

    @classmethod
    def config_buffer_shapes(cls, config: Dict[str, Any]) -> Dict[str, Shape]:
        """Buffer shapes a layer built from ``config`` has (TypeError/ValueError if invalid)."""
        return cls(**config).buffer_shapes() if cls.has_buffers else {}

    @classmethod
    def config_param_shapes(cls, config: Dict[str, Any]) -> Dict[str, Shape]:
        """Parameter shapes a layer built from ``config`` has, without allocating them.

        Layers whose settings are checked and stored by a ``_configure(**config)``
        method (Dense, Conv2D, MultiHeadAttention, ...) are configured without
        their constructor, so no weights are allocated; others are built.

        Raises TypeError/ValueError for an invalid config.
        """
        if not hasattr(cls, "_configure"):
            return cls(**config).param_shapes()
        layer = cls.__new__(cls)
        getattr(layer, "_configure")(**config)
        return layer.param_shapes()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
