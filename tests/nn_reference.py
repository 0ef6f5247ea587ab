"""float64 references and error bounds for the NN-kernel tests (test_activations,
test_dense, test_losses). Written the plain way in NumPy, no matnet calls."""

from __future__ import annotations

import math

import numpy as np

K0 = math.sqrt(2.0 / math.pi)
K1 = 0.044715
ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "gelu_tanh", "silu"]
EPS = {np.dtype(np.float32): 2.0**-23, np.dtype(np.float64): 2.0**-52}
TINY = {np.dtype(np.float32): float(np.finfo(np.float32).tiny),
        np.dtype(np.float64): float(np.finfo(np.float64).tiny)}

_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def sigmoid(v: np.ndarray) -> np.ndarray:
    """sigmoid accurate in both tails (exp(-|v|) never overflows)."""
    e = np.exp(-np.abs(v))
    r = 1.0 / (1.0 + e)
    return np.where(v >= 0, r, e * r)


def _clip_finite(v):
    return np.clip(v, -np.finfo(np.float64).max, np.finfo(np.float64).max)


def act(name: str, v: np.ndarray, slope: float = 0.01) -> np.ndarray:
    """f(v) in float64 (v float64)."""
    with np.errstate(all="ignore"):
        if name in (None, "identity"):
            return v.copy()
        if name == "relu":
            return np.where(v < 0, 0.0, v)
        if name == "leaky_relu":
            return np.where(v > 0, v, slope * v)
        if name == "sigmoid":
            return sigmoid(v)
        if name == "tanh":
            return np.tanh(v)
        if name == "gelu":
            return _clip_finite(v) * 0.5 * _erfc(-v / math.sqrt(2.0))
        if name == "gelu_tanh":
            c = np.clip(v, -1e4, 1e4)
            return _clip_finite(v) * sigmoid(2.0 * K0 * (c + K1 * c**3))
        if name == "silu":
            return _clip_finite(v) * sigmoid(v)
    raise ValueError(name)


def act_grad(name: str, v: np.ndarray, slope: float = 0.01) -> np.ndarray:
    """f'(v) in float64, analytic."""
    with np.errstate(all="ignore"):
        if name in (None, "identity"):
            return np.ones_like(v)
        if name == "relu":
            return (v > 0).astype(np.float64)
        if name == "leaky_relu":
            return np.where(v > 0, 1.0, slope)
        if name == "sigmoid":
            return sigmoid(v) * sigmoid(-v)
        if name == "tanh":
            return 1.0 / np.cosh(v) ** 2
        if name == "gelu":
            c = _clip_finite(v)
            return 0.5 * _erfc(-v / math.sqrt(2.0)) + c * np.exp(-0.5 * c * c) / math.sqrt(2 * math.pi)
        if name == "gelu_tanh":
            c = np.clip(v, -1e4, 1e4)
            u = K0 * (c + K1 * c**3)
            s = sigmoid(2 * u)
            return s + c * s * sigmoid(-2 * u) * 2 * K0 * (1 + 3 * K1 * c * c)
        if name == "silu":
            return sigmoid(v) * (1 + _clip_finite(v) * sigmoid(-v))
    raise ValueError(name)


def mixed_bound(f, v: np.ndarray, k: float, dtype) -> np.ndarray:
    """k * eps * (|f(v)| + |v f'(v)|) + tiny: k eps of the result plus the effect
    of a k-eps perturbation of v (the bound stated in matnet/activations.hpp).
    f' comes from a float64 central difference, accurate enough for a bound."""
    dt = np.dtype(dtype)
    h = 1e-6 * np.maximum(1.0, np.abs(v))
    with np.errstate(all="ignore"):
        fp = (f(v + h) - f(v - h)) / (2 * h)
        b = k * EPS[dt] * (np.abs(f(v)) + np.abs(v * fp)) + TINY[dt]
    return np.where(np.isfinite(b), b, np.inf)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x.astype(np.float64)
    if x.size == 0:
        return x.copy()
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x.astype(np.float64)
    if x.size == 0:
        return x.copy()
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def central_diff(f, x: np.ndarray, h: float) -> np.ndarray:
    """Gradient of the scalar function f at x (float64) by central differences."""
    g = np.zeros_like(x)
    flat, gf = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f(x)
        flat[i] = old - h
        fm = f(x)
        flat[i] = old
        gf[i] = (fp - fm) / (2 * h)
    return g
