"""Sequence layers: multi-head self-attention, layer normalisation, a learned
positional embedding and the mean over the sequence.

Inputs are (N, L, E): N sequences of L tokens of E features, as
``torch.nn.MultiheadAttention(batch_first=True)`` takes them.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Dict, Optional, Tuple

import numpy as np

from .. import ops
from .._validate import check_dtype, check_int, check_number, check_seed
from .base import Layer, Shape

__all__ = ["MultiHeadAttention", "LayerNorm", "PositionalEmbedding", "SequenceMean"]


def _require_3d(x: np.ndarray, cls: str, features: int) -> None:
    if x.ndim != 3 or x.shape[2] != features:
        raise ValueError(f"{cls}: expected input (N, L, {features}), got shape {x.shape}")


class MultiHeadAttention(Layer):
    """Self-attention ``y = concat_h(softmax(Q_h K_hᵀ/√d) V_h) · W_o + b_o``.

    ``Q, K, V = x · W_qkv + b_qkv`` split in three along the features, each
    split into ``num_heads`` heads of ``d = embed_dim / num_heads``. The
    attention itself is :func:`matnet.ops.scaled_dot_product_attention`
    (flash-style: O(L·d) memory), whose saved log-sum-exp makes the backward
    exact without keeping the L×L probabilities.

    Shapes: input (N, L, E) -> output (N, L, E). Parameters: ``W_qkv`` (E, 3E),
    ``b_qkv`` (3E,), ``W_o`` (E, E), ``b_o`` (E,) — the transposes of
    ``torch.nn.MultiheadAttention``'s ``in_proj_weight`` and ``out_proj.weight``.
    """

    returns_new_array: ClassVar[bool] = True
    dW_qkv: Optional[np.ndarray]
    db_qkv: Optional[np.ndarray]
    dW_o: Optional[np.ndarray]
    db_o: Optional[np.ndarray]

    def __init__(self, embed_dim: int, num_heads: int, causal: bool = False,
                 seed: Optional[int] = None, dtype: Any = np.float32) -> None:
        self._configure(embed_dim, num_heads, causal, seed, dtype)
        rng = np.random.default_rng(seed)
        e = self.embed_dim
        limit = math.sqrt(6.0 / (e + e))  # Glorot, as torch's xavier_uniform_ for in_proj
        self.W_qkv = rng.uniform(-limit, limit, (e, 3 * e)).astype(self._dtype)
        self.b_qkv = np.zeros(3 * e, self._dtype)
        self.W_o = rng.uniform(-1 / math.sqrt(e), 1 / math.sqrt(e), (e, e)).astype(self._dtype)
        self.b_o = np.zeros(e, self._dtype)
        self.zero_grad()
        self._cache: Optional[Tuple[np.ndarray, ...]] = None

    def _configure(self, embed_dim: int, num_heads: int, causal: bool = False,
                   seed: Optional[int] = None, dtype: Any = np.float32) -> None:
        cls = "MultiHeadAttention"
        self.embed_dim = check_int(embed_dim, "embed_dim", cls)
        self.num_heads = check_int(num_heads, "num_heads", cls)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"{cls}: embed_dim {embed_dim} is not a multiple of num_heads "
                             f"{num_heads}")
        if not isinstance(causal, bool):
            raise TypeError(f"{cls}: causal must be a bool, got {causal!r}")
        self.causal = causal
        self.seed = check_seed(seed, cls)
        self._dtype = check_dtype(dtype, cls)

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def param_shapes(self) -> Dict[str, Shape]:
        e = self.embed_dim
        return {"W_qkv": (e, 3 * e), "b_qkv": (3 * e,), "W_o": (e, e), "b_o": (e,)}

    def params(self) -> Dict[str, np.ndarray]:
        return {"W_qkv": self.W_qkv, "b_qkv": self.b_qkv, "W_o": self.W_o, "b_o": self.b_o}

    def grads(self) -> Dict[str, Optional[np.ndarray]]:
        return {"W_qkv": self.dW_qkv, "b_qkv": self.db_qkv, "W_o": self.dW_o, "b_o": self.db_o}

    def zero_grad(self) -> None:
        self.dW_qkv = self.db_qkv = self.dW_o = self.db_o = None

    def get_config(self) -> Dict[str, Any]:
        return {"embed_dim": self.embed_dim, "num_heads": self.num_heads, "causal": self.causal,
                "seed": self.seed, "dtype": self._dtype.name}

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 2 or input_shape[1] != self.embed_dim:
            raise ValueError(f"MultiHeadAttention: samples must be (L, {self.embed_dim}), "
                             f"got {tuple(input_shape)}")
        return tuple(input_shape)

    def _heads(self, t: np.ndarray, n: int, length: int) -> np.ndarray:
        """(N·L, E) -> (N, H, L, d), contiguous."""
        h = self.num_heads
        return np.ascontiguousarray(
            t.reshape(n, length, h, self.embed_dim // h).transpose(0, 2, 1, 3))

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        _require_3d(x, "MultiHeadAttention", self.embed_dim)
        n, length, e = x.shape
        x2 = x.reshape(n * length, e)
        qkv, _ = ops.dense_forward(x2, self.W_qkv, self.b_qkv)
        q, k, v = (self._heads(qkv[:, i * e:(i + 1) * e], n, length) for i in range(3))
        o, lse = ops.scaled_dot_product_attention(q, k, v, causal=self.causal, return_lse=True)
        o2 = np.ascontiguousarray(o.transpose(0, 2, 1, 3)).reshape(n * length, e)
        y, _ = ops.dense_forward(o2, self.W_o, self.b_o)
        self._cache = (x2, q, k, v, o, lse, o2)
        return y.reshape(n, length, e)

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        if self._cache is None:
            raise RuntimeError("MultiHeadAttention.backward: call forward first")
        x2, q, k, v, o, lse, o2 = self._cache
        n, h, length, d = q.shape
        e = self.embed_dim
        g2 = np.ascontiguousarray(grad).reshape(n * length, e)
        do2, self.dW_o, self.db_o = ops.dense_backward(g2, o2, self.W_o, None)
        assert do2 is not None  # need_dx defaults to True
        do = self._heads(do2, n, length)
        dq, dk, dv = ops.scaled_dot_product_attention_backward(
            do, q, k, v, o, lse, causal=self.causal)
        dqkv = np.concatenate([t.transpose(0, 2, 1, 3).reshape(n * length, e)
                               for t in (dq, dk, dv)], axis=1)
        dx, self.dW_qkv, self.db_qkv = ops.dense_backward(dqkv, x2, self.W_qkv, None,
                                                          need_dx=need_input_grad)
        return None if dx is None else dx.reshape(n, length, e)


class LayerNorm(Layer):
    """``y = (x − mean) / sqrt(var + eps) · weight + bias`` over the last axis.

    As ``torch.nn.LayerNorm(normalized_shape=features)``: biased variance,
    ``weight`` starts at ones and ``bias`` at zeros (both trainable when
    ``elementwise_affine``).
    """

    returns_new_array: ClassVar[bool] = True
    dweight: Optional[np.ndarray]
    dbias: Optional[np.ndarray]

    def __init__(self, features: int, eps: float = 1e-5, elementwise_affine: bool = True,
                 dtype: Any = np.float32) -> None:
        self._configure(features, eps, elementwise_affine, dtype)
        if self.elementwise_affine:
            self.weight = np.ones(self.features, self._dtype)
            self.bias = np.zeros(self.features, self._dtype)
        self.zero_grad()
        self._cache: Optional[Tuple[np.ndarray, ...]] = None

    def _configure(self, features: int, eps: float = 1e-5, elementwise_affine: bool = True,
                   dtype: Any = np.float32) -> None:
        self.features = check_int(features, "features", "LayerNorm")
        self.eps = check_number(eps, "eps", "LayerNorm", 0.0, 1.0)
        if self.eps == 0.0:
            raise ValueError("LayerNorm: eps must be > 0 (a constant row would divide by zero)")
        if not isinstance(elementwise_affine, bool):
            raise TypeError(f"LayerNorm: elementwise_affine must be a bool, got "
                            f"{elementwise_affine!r}")
        self.elementwise_affine = elementwise_affine
        self._dtype = check_dtype(dtype, "LayerNorm")

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def param_shapes(self) -> Dict[str, Shape]:
        f = self.features
        return {"weight": (f,), "bias": (f,)} if self.elementwise_affine else {}

    def params(self) -> Dict[str, np.ndarray]:
        return {"weight": self.weight, "bias": self.bias} if self.elementwise_affine else {}

    def grads(self) -> Dict[str, Optional[np.ndarray]]:
        return {"weight": self.dweight, "bias": self.dbias} if self.elementwise_affine else {}

    def zero_grad(self) -> None:
        self.dweight = self.dbias = None

    def get_config(self) -> Dict[str, Any]:
        return {"features": self.features, "eps": self.eps,
                "elementwise_affine": self.elementwise_affine, "dtype": self._dtype.name}

    def output_shape(self, input_shape: Shape) -> Shape:
        if not input_shape or input_shape[-1] != self.features:
            raise ValueError(f"LayerNorm: samples must end in {self.features} features, "
                             f"got {tuple(input_shape)}")
        return tuple(input_shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.shape[-1:] != (self.features,):
            raise ValueError(f"LayerNorm: expected (..., {self.features}), got shape {x.shape}")
        w = self.weight if self.elementwise_affine else None
        b = self.bias if self.elementwise_affine else None
        y, mean, rstd = ops.layer_norm(x, w, b, eps=self.eps, return_stats=True)
        self._cache = (x, mean, rstd)
        return y

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        if self._cache is None:
            raise RuntimeError("LayerNorm.backward: call forward first")
        x, mean, rstd = self._cache
        w = self.weight if self.elementwise_affine else None
        dx, dw, db = ops.layer_norm_backward(grad, x, w, mean, rstd)
        if self.elementwise_affine:
            self.dweight, self.dbias = dw, db
        return dx


class PositionalEmbedding(Layer):
    """``y = x + P``: a learned (L, E) table added to every sequence (x is (N, L, E))."""

    returns_new_array: ClassVar[bool] = True

    def __init__(self, length: int, features: int, seed: Optional[int] = None,
                 dtype: Any = np.float32) -> None:
        self._configure(length, features, seed, dtype)
        rng = np.random.default_rng(seed)
        self.P = (0.02 * rng.standard_normal((self.length, self.features))).astype(self._dtype)
        self.dP: Optional[np.ndarray] = None

    def _configure(self, length: int, features: int, seed: Optional[int] = None,
                   dtype: Any = np.float32) -> None:
        self.length = check_int(length, "length", "PositionalEmbedding")
        self.features = check_int(features, "features", "PositionalEmbedding")
        self.seed = check_seed(seed, "PositionalEmbedding")
        self._dtype = check_dtype(dtype, "PositionalEmbedding")

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def param_shapes(self) -> Dict[str, Shape]:
        return {"P": (self.length, self.features)}

    def params(self) -> Dict[str, np.ndarray]:
        return {"P": self.P}

    def grads(self) -> Dict[str, Optional[np.ndarray]]:
        return {"P": self.dP}

    def zero_grad(self) -> None:
        self.dP = None

    def get_config(self) -> Dict[str, Any]:
        return {"length": self.length, "features": self.features, "seed": self.seed,
                "dtype": self._dtype.name}

    def output_shape(self, input_shape: Shape) -> Shape:
        if tuple(input_shape) != (self.length, self.features):
            raise ValueError(f"PositionalEmbedding: samples must be ({self.length}, "
                             f"{self.features}), got {tuple(input_shape)}")
        return tuple(input_shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim != 3 or x.shape[1:] != self.P.shape:
            raise ValueError(f"PositionalEmbedding: expected (N, {self.length}, {self.features}), "
                             f"got shape {x.shape}")
        return x + self.P

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        self.dP = grad.sum(axis=0).astype(self._dtype, copy=False)
        return grad


class SequenceMean(Layer):
    """The mean over the tokens: (N, L, E) -> (N, E)."""

    returns_new_array: ClassVar[bool] = True

    def __init__(self) -> None:
        self._length: Optional[int] = None

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 2:
            raise ValueError(f"SequenceMean: samples must be (L, E), got {tuple(input_shape)}")
        return (input_shape[1],)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if x.ndim != 3:
            raise ValueError(f"SequenceMean: expected (N, L, E), got shape {x.shape}")
        self._length = x.shape[1]
        return x.mean(axis=1)

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        if self._length is None:
            raise RuntimeError("SequenceMean.backward: call forward first")
        g = grad / grad.dtype.type(self._length)
        return np.broadcast_to(g[:, None, :], (g.shape[0], self._length, g.shape[1])).copy()
