"""Layers over matnet's kernels, one module per family.

- :mod:`.base`: :class:`Layer`, the forward/backward/config contract.
- :mod:`.core`: Dense, Dropout, Flatten, Reshape.
- :mod:`.activation`: ReLU, LeakyReLU, Sigmoid, Tanh, GELU, SiLU, Softmax, LogSoftmax.
- :mod:`.attention`: MultiHeadAttention, LayerNorm, PositionalEmbedding, SequenceMean.
- :mod:`.containers`: Residual (and :class:`matnet.Sequential`, itself a Layer).
- :mod:`.conv`: Conv2D.  :mod:`.pool`: MaxPool2D, AvgPool2D, GlobalAvgPool2D.
- :mod:`.normalization`: BatchNorm.

:data:`LAYER_TYPES` is the whitelist of types a ``Sequential`` config or a
saved file may name.
"""

from __future__ import annotations

from typing import Dict, Type

from .activation import GELU, LeakyReLU, LogSoftmax, ReLU, SiLU, Sigmoid, Softmax, Tanh
from .attention import LayerNorm, MultiHeadAttention, PositionalEmbedding, SequenceMean
from .base import Layer
from .containers import Residual
from .conv import Conv2D
from .core import DENSE_ACTIVATIONS, INITIALIZERS, Dense, Dropout, Flatten, Reshape
from .normalization import BatchNorm
from .pool import AvgPool2D, GlobalAvgPool2D, MaxPool2D

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
    "Reshape",
    "Conv2D",
    "MaxPool2D",
    "AvgPool2D",
    "GlobalAvgPool2D",
    "BatchNorm",
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
                SequenceMean, Residual, Reshape, Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D,
                BatchNorm)
}
