"""Containers: layers made of layers.

``Sequential`` (in :mod:`matnet.model`) is itself a Layer, so stacks nest;
``Residual(layer)`` adds a skip connection around any layer. A pre-norm
transformer block is then::

    Residual(Sequential([LayerNorm(64), MultiHeadAttention(64, 4)]))
    Residual(Sequential([LayerNorm(64), Dense(64, 128), GELU(), Dense(128, 64)]))

A container's parameters are its children's, named with a prefix
(``layer.W`` for the layer inside a Residual, ``layers.<i>.W`` inside a
Sequential), so saved files and optimizers see one flat list.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Optional

import numpy as np

from .base import Layer, Shape

__all__ = ["Residual", "build_layer", "spec_param_shapes", "spec_shapes"]


def build_layer(spec: Any, weights: Optional[Dict[str, np.ndarray]] = None,
                where: str = "layer") -> Layer:
    """A layer from ``{"type": name, "config": {...}}`` (as ``get_config`` nests them)."""
    from . import LAYER_TYPES

    if not isinstance(spec, dict) or set(spec) != {"type", "config"}:
        raise ValueError(f"{where}: expected {{'type': ..., 'config': {{...}}}}, got {spec!r:.200}")
    cls = LAYER_TYPES.get(spec["type"]) if isinstance(spec["type"], str) else None
    if cls is None or not isinstance(spec["config"], dict):
        raise ValueError(f"{where}: unknown layer type {spec['type']!r:.100}")
    return cls.from_config(spec["config"], weights=weights)


def spec_param_shapes(spec: Any, where: str = "layer") -> Dict[str, Shape]:
    """Parameter shapes of a nested layer spec, without allocating anything."""
    return spec_shapes(spec, where)


def spec_shapes(spec: Any, where: str = "layer", buffers: bool = False) -> Dict[str, Shape]:
    """Parameter (or, with ``buffers``, buffer) shapes of a nested layer spec,
    without allocating anything."""
    from . import LAYER_TYPES

    if not isinstance(spec, dict) or set(spec) != {"type", "config"}:
        raise ValueError(f"{where}: expected {{'type': ..., 'config': {{...}}}}, got {spec!r:.200}")
    cls = LAYER_TYPES.get(spec["type"]) if isinstance(spec["type"], str) else None
    if cls is None or not isinstance(spec["config"], dict):
        raise ValueError(f"{where}: unknown layer type {spec['type']!r:.100}")
    if buffers:
        return cls.config_buffer_shapes(spec["config"])
    return cls.config_param_shapes(spec["config"])


def _strip(prefix: str, values: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}


class Residual(Layer):
    """``y = x + layer(x)``; the gradient flows through both paths.

    ``layer`` must keep the shape of its input.
    """

    returns_new_array: ClassVar[bool] = True

    def __init__(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"Residual: layer must be a matnet.layers.Layer, got "
                            f"{type(layer).__name__}")
        self.layer = layer

    @property
    def has_training_mode(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.layer, "has_training_mode", False))

    @property
    def dtype(self) -> Optional[np.dtype]:
        return self.layer.dtype

    @property
    def has_buffers(self) -> bool:  # type: ignore[override]
        return bool(self.layer.buffers())

    def buffers(self) -> Dict[str, np.ndarray]:
        return {f"layer.{k}": v for k, v in self.layer.buffers().items()}

    def set_buffers(self, values: Dict[str, np.ndarray]) -> None:
        self.layer.set_buffers(_strip("layer.", values))

    @classmethod
    def config_buffer_shapes(cls, config: Dict[str, Any]) -> Dict[str, Shape]:
        if set(config) != {"layer"}:
            raise ValueError(f"Residual: config must be {{'layer': ...}}, got keys {sorted(config)}")
        return {f"layer.{k}": v for k, v in spec_shapes(config["layer"], buffers=True).items()}

    def params(self) -> Dict[str, np.ndarray]:
        return {f"layer.{k}": v for k, v in self.layer.params().items()}

    def grads(self) -> Dict[str, Optional[np.ndarray]]:
        return {f"layer.{k}": v for k, v in self.layer.grads().items()}

    def zero_grad(self) -> None:
        self.layer.zero_grad()

    def param_shapes(self) -> Dict[str, Shape]:
        return {f"layer.{k}": v for k, v in self.layer.param_shapes().items()}

    def set_params(self, values: Dict[str, np.ndarray]) -> None:
        expected = self.param_shapes()
        if set(values) != set(expected):
            raise ValueError(f"Residual.set_params: expected arrays {sorted(expected)}, "
                             f"got {sorted(values)}")
        self.layer.set_params(_strip("layer.", values))

    def get_config(self) -> Dict[str, Any]:
        return {"layer": {"type": type(self.layer).__name__, "config": self.layer.get_config()}}

    @classmethod
    def from_config(cls, config: Dict[str, Any],
                    weights: Optional[Dict[str, np.ndarray]] = None) -> "Residual":
        if set(config) != {"layer"}:
            raise ValueError(f"Residual: config must be {{'layer': ...}}, got keys {sorted(config)}")
        inner = build_layer(config["layer"], None if weights is None else _strip("layer.", weights),
                            "Residual.layer")
        return cls(inner)

    @classmethod
    def config_param_shapes(cls, config: Dict[str, Any]) -> Dict[str, Shape]:
        if set(config) != {"layer"}:
            raise ValueError(f"Residual: config must be {{'layer': ...}}, got keys {sorted(config)}")
        return {f"layer.{k}": v for k, v in spec_param_shapes(config["layer"]).items()}

    def output_shape(self, input_shape: Shape) -> Shape:
        out = self.layer.output_shape(input_shape)
        if tuple(out) != tuple(input_shape):
            raise ValueError(f"Residual: the inner layer maps {tuple(input_shape)} to {tuple(out)}; "
                             "a residual needs the same shape")
        return tuple(input_shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        y = self.layer.forward(x, training)
        if y.shape != x.shape:
            raise ValueError(f"Residual: the inner layer maps {x.shape} to {y.shape}")
        return x + y

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        inner = self.layer.backward(grad, True)
        return grad + inner
