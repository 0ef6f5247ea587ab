"""Curvature of a model's loss: the seeds' convergence rule made usable.

Gradient descent on a loss whose Hessian has largest eigenvalue λ_max is
stable only for learning rates η < 2/λ_max (on a quadratic, the error along
the top eigenvector is multiplied by |1 - η λ_max| each step). This module
measures λ_max and friends for matnet models:

* :func:`hessian` — the full Hessian (small models, up to a few thousand
  parameters), column by column from Hessian-vector products;
* :func:`sharpness` — λ_max by Lanczos on Hessian-vector products (any
  size), and ``max_lr = 2 / λ_max``;
* :func:`condition_number` — λ_max / λ_min of the full Hessian;
* :func:`gradcheck` — backprop against central differences, per parameter.

Hessian-vector products are central differences of matnet's own float64
gradients, ``H v ≈ (g(θ + h v) - g(θ - h v)) / 2h``: the error is O(h²)
(third derivatives) plus O(ε/h) rounding, balanced at h ~ ε^(1/3) ≈ 6e-6
relative to θ. For a quadratic loss (linear model, MSE) the difference is
exact up to rounding. A float32 model is analysed through a float64 copy
(the model itself is never modified); the loss is the model's compiled loss
unless ``loss`` is given.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from . import linalg as _linalg
from .metrics import LOSSES
from .model import Sequential

__all__ = ["hessian", "hessian_vector_product", "sharpness", "condition_number", "gradcheck"]

#: Full Hessians are refused beyond this many parameters (P² memory, 2P gradients).
MAX_HESSIAN_PARAMS = 6000


class _Objective:
    """The loss of a float64 copy of a model as a function of its flat parameters."""

    def __init__(self, model: Sequential, x: Any, y: Any, loss: Optional[str]) -> None:
        if not isinstance(model, Sequential):
            raise TypeError(f"expected a matnet Sequential model, got {type(model).__name__}")
        name = loss if loss is not None else model.loss
        if name is None:
            raise ValueError("the model is not compiled: pass loss='mse' (or another name from "
                             f"{sorted(LOSSES)}) or compile it first")
        if name not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
        smoothing = model.label_smoothing if loss is None else 0.0
        fn: Callable[..., Any] = LOSSES[name]  # cross_entropy also takes label_smoothing
        self.loss_fn: Callable = (lambda o, t: fn(o, t, label_smoothing=smoothing)) \
            if smoothing else fn
        config = model.get_config()
        for spec in config["layers"]:
            if "dtype" in spec["config"]:
                spec["config"]["dtype"] = "float64"
        self.model = Sequential.from_config(config)
        self.names, self.slices, self.shapes = [], [], []
        start = 0
        for i, (src, dst) in enumerate(zip(model.layers, self.model.layers)):
            params = src.params()
            if params:
                dst.set_params({k: np.asarray(v, np.float64) for k, v in params.items()})
            for k, v in params.items():
                self.names.append(f"layers.{i}.{k}")
                self.slices.append(slice(start, start + v.size))
                self.shapes.append(v.shape)
                start += v.size
        self.size = start
        self.theta0 = self.flat()
        self.x = np.ascontiguousarray(x, dtype=np.float64)
        y = np.asarray(y)
        self.y = np.ascontiguousarray(y, dtype=np.float64) if y.dtype.kind == "f" else y

    def flat(self) -> np.ndarray:
        return np.concatenate([p.ravel() for p in self.model.parameters()]) if self.size \
            else np.zeros(0)

    def _set(self, theta: np.ndarray) -> None:
        for p, sl in zip(self.model.parameters(), self.slices):
            p[...] = theta[sl].reshape(p.shape)

    def loss(self, theta: np.ndarray) -> float:
        self._set(theta)
        return float(self.loss_fn(self.model.forward(self.x), self.y)[0])

    def grad(self, theta: np.ndarray) -> np.ndarray:
        self._set(theta)
        _, dout = self.loss_fn(self.model.forward(self.x), self.y)
        self.model.backward(dout, need_input_grad=False)
        return np.concatenate([np.asarray(g, np.float64).ravel() for g in self.model.gradients()])

    def hvp(self, v: np.ndarray) -> np.ndarray:
        """H(θ0) v by central differences of the gradient."""
        nv = float(np.linalg.norm(v))
        if nv == 0:
            return np.zeros_like(v)
        h = np.cbrt(np.finfo(np.float64).eps) * max(1.0, float(np.linalg.norm(self.theta0))) / nv
        return (self.grad(self.theta0 + h * v) - self.grad(self.theta0 - h * v)) / (2 * h)


def hessian_vector_product(model: Sequential, x: Any, y: Any, v: Any,
                           loss: Optional[str] = None) -> np.ndarray:
    """H v for the flat vector v (parameters in ``model.parameters()`` order)."""
    obj = _Objective(model, x, y, loss)
    v = np.asarray(v, np.float64).ravel()
    if v.size != obj.size:
        raise ValueError(f"v must have {obj.size} elements (the model's parameters), got {v.size}")
    return obj.hvp(v)


def hessian(model: Sequential, x: Any, y: Any, loss: Optional[str] = None) -> np.ndarray:
    """The full Hessian of the loss at the current parameters, (P, P) float64.

    Parameters are flattened in ``model.parameters()`` order (W then b per
    Dense layer, W row-major). Column j is H e_j from central differences
    of the float64 gradient (2P gradient evaluations); the result is
    symmetrised. For P > MAX_HESSIAN_PARAMS use :func:`sharpness`.
    """
    obj = _Objective(model, x, y, loss)
    p = obj.size
    if p > MAX_HESSIAN_PARAMS:
        raise ValueError(f"hessian: the model has {p} parameters; a full Hessian is limited to "
                         f"{MAX_HESSIAN_PARAMS} (use sharpness() for larger models)")
    h = np.empty((p, p))
    e = np.zeros(p)
    for j in range(p):
        e[j] = 1.0
        h[:, j] = obj.hvp(e)
        e[j] = 0.0
    return (h + h.T) / 2


def sharpness(model: Sequential, x: Any, y: Any, iters: int = 20,
              loss: Optional[str] = None, seed: int = 0) -> Tuple[float, float]:
    """Top Hessian eigenvalue λ_max and the largest stable SGD step 2/λ_max.

    Lanczos with full reorthogonalisation on Hessian-vector products
    (``iters`` products, capped at the number of parameters): the largest
    eigenvalue of the Lanczos tridiagonal converges to λ_max much faster
    than power iteration (about as the square of it) and never overshoots.
    Returns ``(lambda_max, max_lr)``; ``max_lr`` is inf when λ_max <= 0.
    """
    if isinstance(iters, bool) or not isinstance(iters, (int, np.integer)) or iters < 1:
        raise ValueError(f"sharpness: iters must be a positive int, got {iters!r}")
    obj = _Objective(model, x, y, loss)
    k = min(int(iters), obj.size)
    if k == 0:
        raise ValueError("sharpness: the model has no parameters")
    rng = np.random.default_rng(seed)
    q = rng.standard_normal(obj.size)
    basis = [q / np.linalg.norm(q)]
    alpha, beta = [], []
    for j in range(k):
        w = obj.hvp(basis[j])
        alpha.append(float(basis[j] @ w))
        for b in basis:  # full reorthogonalisation (twice is enough)
            w -= (b @ w) * b
        for b in basis:
            w -= (b @ w) * b
        nb = float(np.linalg.norm(w))
        if j == k - 1 or nb <= 1e-12 * max(1.0, abs(alpha[-1])):
            break
        beta.append(nb)
        basis.append(w / nb)
    t = np.diag(alpha) + np.diag(beta[:len(alpha) - 1], 1) + np.diag(beta[:len(alpha) - 1], -1)
    lam = float(_linalg.eigvalsh(t)[-1])
    return lam, (2.0 / lam if lam > 0 else float("inf"))


def condition_number(model: Sequential, x: Any, y: Any, loss: Optional[str] = None) -> float:
    """κ = λ_max / λ_min of the full Hessian (:func:`hessian`).

    Defined when the Hessian is positive definite (a strictly convex
    point, e.g. least squares with full-rank inputs); inf otherwise
    (λ_min <= 0: a flat or negative direction)."""
    w = _linalg.eigvalsh(hessian(model, x, y, loss))
    if w.size == 0:
        raise ValueError("condition_number: the model has no parameters")
    return float(w[-1] / w[0]) if w[0] > 0 else float("inf")


def gradcheck(model: Sequential, x: Any, y: Any, loss: Optional[str] = None,
              eps: float = 1e-6) -> Dict[str, float]:
    """Backprop against central differences of the loss, in float64.

    Returns ``{"layers.<i>.<name>": worst relative error}`` over that
    array's entries, with relative error |g_bp - g_fd| / max(|g_bp|, |g_fd|,
    1e-8). Healthy backprop gives ~1e-7 or less (the finite difference's own
    error); a wrong gradient gives O(1)."""
    obj = _Objective(model, x, y, loss)
    g = obj.grad(obj.theta0)
    theta = obj.theta0.copy()
    fd = np.empty_like(g)
    for j in range(obj.size):
        h = eps * max(1.0, abs(theta[j]))
        theta[j] += h
        up = obj.loss(theta)
        theta[j] -= 2 * h
        down = obj.loss(theta)
        theta[j] += h
        fd[j] = (up - down) / (2 * h)
    rel = np.abs(g - fd) / np.maximum(np.maximum(np.abs(g), np.abs(fd)), 1e-8)
    return {name: float(rel[sl].max()) if sl.stop > sl.start else 0.0
            for name, sl in zip(obj.names, obj.slices)}
