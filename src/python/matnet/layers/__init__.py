"""Layers over matnet's kernels, one module per family.

- :mod:`.base`: :class:`Layer`, the forward/backward/config contract.
- :mod:`.core`: Dense, Dropout, Flatten.
- :mod:`.activation`: ReLU, LeakyReLU, Sigmoid, Tanh, GELU, SiLU, Softmax, LogSoftmax.
- :mod:`.attention`: MultiHeadAttention, LayerNorm, PositionalEmbedding, SequenceMean.
- :mod:`.containers`: Residual (and :class:`matnet.Sequential`, itself a Layer).

:data:`LAYER_TYPES` is the whitelist of types a ``Sequential`` config or a
saved file may name.
"""

from __future__ import annotations

from typing import Dict, Type

from .activation import GELU, LeakyReLU, LogSoftmax, ReLU, SiLU, Sigmoid, Softmax, Tanh
from .attention import LayerNorm, MultiHeadAttention, PositionalEmbedding, SequenceMean
from .base import Layer
from .containers import Residual
from .core import DENSE_ACTIVATIONS, INITIALIZERS, Dense, Dropout, Flatten

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
    "MultiHeadAttention",
    "LayerNorm",
    "PositionalEmbedding",
    "SequenceMean",
    "Residual",
    "LAYER_TYPES",
    "DENSE_ACTIVATIONS",
    "INITIALIZERS",
]

#: Layer types by name: what ``Sequential`` configs and saved files may contain
#: (matnet.model adds "Sequential" itself, which nests).
LAYER_TYPES: Dict[str, Type[Layer]] = {
    cls.__name__: cls
    for cls in (Dense, ReLU, LeakyReLU, Sigmoid, Tanh, GELU, SiLU, Softmax, LogSoftmax,
                Dropout, Flatten, MultiHeadAttention, LayerNorm, PositionalEmbedding,
                SequenceMean, Residual)
}
