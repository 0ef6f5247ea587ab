"""Array operations backed by matnet's C++ kernels.

All functions take NumPy arrays (float32 or float64; both operands of one
dtype) and return NumPy arrays. Other dtypes raise ``TypeError``; shapes that
do not fit raise ``ValueError`` naming both shapes. Non-contiguous inputs are
read through their strides or copied once.
"""

from __future__ import annotations

import operator
from typing import Optional, Tuple

import numpy as np

from . import _core

__all__ = ["matmul", "matvec", "gemm"]


def matmul(
    a: np.ndarray,
    b: np.ndarray,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Matrix product ``op(a) @ op(b)`` with :func:`numpy.matmul` semantics.

    ``op(x)`` is ``x``, or ``x`` with its last two axes swapped when the
    ``trans_*`` flag is set (no copy is made).

    Args:
        a: array of shape (..., m, k), or (..., k, m) when ``trans_a``; a 1-D
            ``a`` of shape (k,) is a single row whose axis is dropped from the
            result, as in NumPy.
        b: array of shape (..., k, n), or (..., n, k) when ``trans_b``; a 1-D
            ``b`` is a single column, likewise.
        trans_a, trans_b: transpose the last two axes (operands of >= 2 dims).
        out: optional C-contiguous, writeable array of the result's shape and
            dtype to write into; it may overlap the inputs (they are copied
            first).

    Returns:
        The product, of shape ``broadcast(a.shape[:-2], b.shape[:-2]) + (m, n)``
        (less the axes of 1-D operands); ``out`` when given.

    Raises:
        TypeError: an operand is not float32/float64, or the dtypes differ.
        ValueError: an operand is 0-d, the inner dimensions differ, the batch
            dimensions do not broadcast, a ``trans_*`` flag is set on a 1-D
            operand, or ``out`` has the wrong shape/dtype, is not C-contiguous
            or is read-only.

    Paths: m == 1 or n == 1 runs as a GEMV, few rows (m <= 16) on unpacked
    kernels, everything else on the packed GEMM; a batch of small products
    runs one product per thread, large products each on all threads. Runs
    with the GIL released, on up to :func:`matnet.get_num_threads` threads.
    """
    return _core.matmul(a, b, trans_a=trans_a, trans_b=trans_b, out=out)


def matvec(
    a: np.ndarray,
    x: np.ndarray,
    *,
    trans: bool = False,
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Matrix-vector product ``a @ x``, or ``a.T @ x`` when ``trans`` (GEMV).

    Bandwidth-bound: ``a`` is read once, in place, whatever its strides
    (row-major, Fortran-ordered or a sliced view; other layouts are copied
    once), and the output is split over threads when ``a`` is large.

    Args:
        a: 2-D array (m, n), float32 or float64.
        x: 1-D array of n elements (m when ``trans``), same dtype; any stride,
            negative included.
        trans: multiply by the transpose of ``a``.
        out: optional writeable 1-D array of the result's length and dtype
            (any non-zero stride) to write into; returned.

    Returns:
        The (m,) product (``(n,)`` when ``trans``).

    Raises:
        TypeError: an operand is not float32/float64, or the dtypes differ.
        ValueError: wrong number of dimensions, lengths that do not fit, or a
            bad ``out``.
    """
    return _core.matvec(a, x, trans=trans, out=out)


def gemm(
    a: np.ndarray,
    b: np.ndarray,
    c: Optional[np.ndarray] = None,
    *,
    alpha: float = 1.0,
    beta: float = 0.0,
    trans_a: bool = False,
    trans_b: bool = False,
) -> np.ndarray:
    """General matrix multiply ``alpha * op(a) @ op(b) + beta * c``, BLAS style.

    When ``c`` is given it must be a C-contiguous, writeable (m, n) array of
    the operands' dtype; it is updated in place and returned. With ``beta == 0``
    the old contents of ``c`` are not read (NaN there does not propagate).
    Without ``c``, a new array ``alpha * op(a) @ op(b)`` is returned and
    ``beta`` must be 0. With ``alpha == 0`` (or an inner dimension of 0)
    ``a`` and ``b`` are not read. Arguments and errors otherwise as
    :func:`matmul`; ``c`` may overlap ``a`` or ``b``.
    """
    return _core.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)


# ---------------------------------------------------------------- activations
# Element-wise, any shape; a new array of the input's shape and dtype. Backward
# functions take the FORWARD INPUT x (softmax/log_softmax: the forward OUTPUT
# y) and return grad * d act / d x. On the AVX2 path float32 uses vectorised
# exp/tanh/erfc approximations with the maximum errors stated in
# src/cpp/include/matnet/activations.hpp (a few float32 eps); float64 uses libm.

__all__ += [
    "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "silu", "softmax", "log_softmax",
    "relu_backward", "leaky_relu_backward", "sigmoid_backward", "tanh_backward",
    "gelu_backward", "silu_backward", "softmax_backward", "log_softmax_backward",
    "dense_forward", "dense_backward", "sgd_update", "adam_update", "rmsprop_update",
]

#: Activation names accepted by :func:`dense_forward` / :func:`dense_backward`.
DENSE_ACTIVATIONS = (None, "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "gelu_tanh", "silu")


def _gelu_kind(approximate: str, fn: str) -> str:
    if approximate == "none":
        return "gelu"
    if approximate == "tanh":
        return "gelu_tanh"
    raise ValueError(f"{fn}: approximate must be 'none' or 'tanh', got {approximate!r}")


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` element-wise (NaN stays NaN)."""
    return _core.activation(x, "relu")


def leaky_relu(x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """``x if x > 0 else negative_slope * x`` element-wise."""
    return _core.activation(x, "leaky_relu", float(negative_slope))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))``, accurate in both tails (no overflow for any x)."""
    return _core.activation(x, "sigmoid")


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent element-wise."""
    return _core.activation(x, "tanh")


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """GELU: ``x * Phi(x)`` (``approximate="none"``, the exact erf form) or
    ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (``approximate="tanh"``),
    as ``torch.nn.functional.gelu``."""
    return _core.activation(x, _gelu_kind(approximate, "gelu"))


def silu(x: np.ndarray) -> np.ndarray:
    """SiLU / swish: ``x * sigmoid(x)``."""
    return _core.activation(x, "silu")


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis`` (numerically stable)."""
    return _core.softmax(x, operator.index(axis), False)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``x - max - log(sum(exp(x - max)))`` along ``axis`` (numerically stable)."""
    return _core.softmax(x, operator.index(axis), True)


def relu_backward(grad: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``grad * (x > 0)`` (the derivative at 0 is taken as 0, as in PyTorch)."""
    return _core.activation_backward(grad, x, "relu")


def leaky_relu_backward(grad: np.ndarray, x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """``grad * (1 if x > 0 else negative_slope)``."""
    return _core.activation_backward(grad, x, "leaky_relu", float(negative_slope))


def sigmoid_backward(grad: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``grad * s * (1 - s)`` with ``s = sigmoid(x)``, x the forward input."""
    return _core.activation_backward(grad, x, "sigmoid")


def tanh_backward(grad: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``grad * (1 - tanh(x)^2)``, x the forward input (no cancellation for large |x|)."""
    return _core.activation_backward(grad, x, "tanh")


def gelu_backward(grad: np.ndarray, x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """``grad * gelu'(x)``, x the forward input; ``approximate`` as in :func:`gelu`."""
    return _core.activation_backward(grad, x, _gelu_kind(approximate, "gelu_backward"))


def silu_backward(grad: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``grad * s * (1 + x (1 - s))`` with ``s = sigmoid(x)``, x the forward input."""
    return _core.activation_backward(grad, x, "silu")


def softmax_backward(grad: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """``y * (grad - sum(grad * y, axis))`` with y = ``softmax(x, axis)``, the forward output."""
    return _core.softmax_backward(grad, y, operator.index(axis), False)


def log_softmax_backward(grad: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """``grad - exp(y) * sum(grad, axis)`` with y = ``log_softmax(x, axis)``, the forward output."""
    return _core.softmax_backward(grad, y, operator.index(axis), True)


# ---------------------------------------------------------------- dense layer


def _dense_activation(activation: Optional[str], fn: str) -> Optional[str]:
    if activation is not None and activation not in DENSE_ACTIVATIONS:
        raise ValueError(
            f"{fn}: unknown activation {activation!r}; use one of {DENSE_ACTIVATIONS}"
        )
    return activation


def dense_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: Optional[np.ndarray] = None,
    activation: Optional[str] = None,
    *,
    negative_slope: float = 0.01,
) -> Tuple[np.ndarray, np.ndarray]:
    """Fused dense layer: ``z = x @ w + b``, ``y = activation(z)``.

    The bias and the activation are applied to each tile of the product while
    it is still in cache (one pass over the output).

    Args:
        x: (batch, in) input.
        w: (in, out) weights.
        b: (out,) bias, or None.
        activation: None or one of "relu", "leaky_relu", "sigmoid", "tanh",
            "gelu", "gelu_tanh", "silu".
        negative_slope: slope for "leaky_relu".

    Returns:
        ``(y, z)``, both (batch, out): the output and the pre-activation to keep
        for :func:`dense_backward`. With ``activation=None``, ``z is y``.
    """
    act = _dense_activation(activation, "dense_forward")
    return _core.dense_forward(x, w, b, act, float(negative_slope))


def dense_backward(
    grad_y: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    z: Optional[np.ndarray],
    activation: Optional[str] = None,
    *,
    negative_slope: float = 0.01,
    need_dx: bool = True,
    dw_out: Optional[np.ndarray] = None,
    db_out: Optional[np.ndarray] = None,
) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
    """Backward of :func:`dense_forward`.

    ``dZ = grad_y * activation'(z)`` fused with ``db = dZ.sum(axis=0)`` in one
    pass; then ``dw = x.T @ dZ`` and ``dx = dZ @ w.T`` by transposed GEMMs (no
    transposed copies). Gradients are fresh arrays (never accumulated).

    Args:
        grad_y: (batch, out) gradient of the loss w.r.t. y.
        x: (batch, in) forward input.  w: (in, out) weights.
        z: (batch, out) pre-activation from :func:`dense_forward` (may be None
            when ``activation`` is None).
        activation, negative_slope: as given to :func:`dense_forward`.
        need_dx: False skips dx (first layer).
        dw_out, db_out: optional C-contiguous arrays of the dtype and shape
            that receive dw and db (and are returned) instead of new arrays.

    Returns:
        ``(dx, dw, db)``: (batch, in) or None, (in, out), (out,).
    """
    act = _dense_activation(activation, "dense_backward")
    return _core.dense_backward(grad_y, x, w, z, act, float(negative_slope), bool(need_dx),
                                dw_out, db_out)


# ---------------------------------------------------------------- optimizer updates
# One in-place pass over a parameter and its state, torch.optim formulas.
# param and every state array: same dtype (TypeError otherwise) and shape,
# C-contiguous and writeable (ValueError otherwise). Return None.


def sgd_update(
    param: np.ndarray,
    grad: np.ndarray,
    velocity: Optional[np.ndarray],
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    first_step: bool = False,
) -> None:
    """SGD step in place, as ``torch.optim.SGD``::

        g = grad + weight_decay * param
        if momentum: velocity = g (first_step) or momentum * velocity + (1 - dampening) * g
                     g = g + momentum * velocity (nesterov) or velocity
        param -= lr * g

    ``velocity`` may be None when ``momentum == 0``.
    """
    _core.sgd_update(
        param, grad, velocity, lr=float(lr), momentum=float(momentum),
        dampening=float(dampening), nesterov=bool(nesterov),
        weight_decay=float(weight_decay), first_step=bool(first_step),
    )


def adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    *,
    step: int,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = False,
) -> None:
    """Adam step in place (AdamW when ``decoupled``), as ``torch.optim.Adam/AdamW``::

        decoupled: param *= 1 - lr * weight_decay   else: g = grad + weight_decay * param
        m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
        param -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)

    ``step`` is the 1-based number of this update; m and v start at zero.
    """
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"adam_update: step must be an int, got {type(step).__name__}")
    _core.adam_update(
        param, grad, m, v, step=int(step), lr=float(lr), beta1=float(beta1),
        beta2=float(beta2), eps=float(eps), weight_decay=float(weight_decay),
        decoupled=bool(decoupled),
    )


def rmsprop_update(
    param: np.ndarray,
    grad: np.ndarray,
    square_avg: np.ndarray,
    *,
    lr: float,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    momentum_buffer: Optional[np.ndarray] = None,
    centered: bool = False,
    grad_avg: Optional[np.ndarray] = None,
) -> None:
    """RMSprop step in place, as ``torch.optim.RMSprop``::

        g = grad + weight_decay * param
        square_avg = alpha * square_avg + (1 - alpha) * g^2
        centered: grad_avg += (1 - alpha)(g - grad_avg); avg = sqrt(square_avg - grad_avg^2) + eps
        else:     avg = sqrt(square_avg) + eps
        momentum > 0: momentum_buffer = momentum * momentum_buffer + g / avg; param -= lr * buffer
        else:         param -= lr * g / avg

    State arrays start at zero; ``momentum_buffer`` is required when
    ``momentum > 0`` and ``grad_avg`` when ``centered``.
    """
    _core.rmsprop_update(
        param, grad, square_avg, lr=float(lr), alpha=float(alpha), eps=float(eps),
        weight_decay=float(weight_decay), momentum=float(momentum),
        momentum_buffer=momentum_buffer, centered=bool(centered), grad_avg=grad_avg,
    )
