"""Array operations backed by matnet's C++ kernels.

All functions take NumPy arrays (float32 or float64; both operands of one
dtype) and return NumPy arrays. Other dtypes raise ``TypeError``; shapes that
do not fit raise ``ValueError`` naming both shapes. Non-contiguous inputs are
read through their strides or copied once.
"""

from __future__ import annotations

from typing import List, Literal, Optional, Sequence, Tuple, Union, overload

import numpy as np

from . import _core
from ._validate import check_int, check_number, check_pair, check_padding, float_arg, index_arg

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
    return _core.matmul(a, b, trans_a, trans_b, out)


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
    return _core.matvec(a, x, trans, out)


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
    return _core.gemm(a, b, c, trans_a=trans_a, trans_b=trans_b,
                      **_floats("gemm", alpha=alpha, beta=beta))


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


def _axis(axis: int, fn: str) -> int:
    return index_arg(axis, fn, "axis", -2**31, 2**31 - 1)  # a C int; then checked against ndim


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
    slope = float_arg(negative_slope, "leaky_relu", "negative_slope")
    return _core.activation(x, "leaky_relu", slope)


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
    return _core.softmax(x, _axis(axis, "softmax"), False)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``x - max - log(sum(exp(x - max)))`` along ``axis`` (numerically stable)."""
    return _core.softmax(x, _axis(axis, "log_softmax"), True)


def relu_backward(grad: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``grad * (x > 0)`` (the derivative at 0 is taken as 0, as in PyTorch)."""
    return _core.activation_backward(grad, x, "relu")


def leaky_relu_backward(grad: np.ndarray, x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """``grad * (1 if x > 0 else negative_slope)``."""
    slope = float_arg(negative_slope, "leaky_relu_backward", "negative_slope")
    return _core.activation_backward(grad, x, "leaky_relu", slope)


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
    return _core.softmax_backward(grad, y, _axis(axis, "softmax_backward"), False)


def log_softmax_backward(grad: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """``grad - exp(y) * sum(grad, axis)`` with y = ``log_softmax(x, axis)``, the forward output."""
    return _core.softmax_backward(grad, y, _axis(axis, "log_softmax_backward"), True)


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
    slope = float_arg(negative_slope, "dense_forward", "negative_slope")
    return _core.dense_forward(x, w, b, act, slope)


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
    slope = float_arg(negative_slope, "dense_backward", "negative_slope")
    return _core.dense_backward(grad_y, x, w, z, act, slope, bool(need_dx), dw_out, db_out)


# ---------------------------------------------------------------- convolution
# NCHW like PyTorch. Geometry arguments: an int or an (h, w) pair; conv
# padding also "valid" (0) or "same" (output size = input size, stride 1;
# an odd total goes to the bottom/right, as PyTorch).

#: A geometry argument: an int for both axes or an (h, w) pair.
_Pair = Union[int, Sequence[int]]
#: Convolution padding: a _Pair, "same" or "valid".
_Padding = Union[int, str, Sequence[int]]

__all__ += [
    "conv2d", "conv2d_forward", "conv2d_backward", "conv2d_output_shape", "conv2d_padding",
    "max_pool2d", "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d",
    "avg_pool2d_backward", "pool2d_output_shape", "global_avg_pool2d",
    "global_avg_pool2d_backward", "batch_norm", "batch_norm_backward",
]


def conv2d_padding(padding: _Padding, kernel_size: _Pair, stride: _Pair = 1,
                   dilation: _Pair = 1, who: str = "conv2d") -> Tuple[int, int, int, int]:
    """(top, bottom, left, right) zero padding for ``padding`` = int, pair, "same" or "valid"."""
    pad = check_padding(padding, who)
    if isinstance(pad, str):  # "valid" or "same" (check_padding refuses other strings)
        if pad == "valid":
            return (0, 0, 0, 0)
        if check_pair(stride, "stride", who) != (1, 1):
            raise ValueError(f"{who}: padding='same' needs stride 1, got stride={stride!r}")
        kh, kw = check_pair(kernel_size, "kernel_size", who)
        dh, dw = check_pair(dilation, "dilation", who)
        th, tw = dh * (kh - 1), dw * (kw - 1)
        return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    return (pad[0], pad[0], pad[1], pad[1])


def _conv_geometry(w_shape: Tuple[int, ...], stride: _Pair, padding: _Padding, dilation: _Pair,
                   groups: int, who: str) -> Tuple[List[int], List[int], List[int], int]:
    if len(w_shape) != 4:
        raise ValueError(f"{who}: w must have shape (out_channels, in_channels/groups, kh, kw), "
                         f"got {tuple(w_shape)}")
    s = check_pair(stride, "stride", who)
    d = check_pair(dilation, "dilation", who)
    pads = conv2d_padding(padding, w_shape[2:], s, d, who)
    return list(s), list(pads), list(d), check_int(groups, "groups", who)


def conv2d_output_shape(input_shape: Sequence[int], out_channels: int, kernel_size: _Pair,
                        stride: _Pair = 1, padding: _Padding = 0,
                        dilation: _Pair = 1) -> Tuple[int, int, int]:
    """Per-sample output shape (F, OH, OW) for a per-sample input shape (C, H, W)."""
    kh, kw = check_pair(kernel_size, "kernel_size", "conv2d")
    sh, sw = check_pair(stride, "stride", "conv2d")
    dh, dw = check_pair(dilation, "dilation", "conv2d")
    pt, pb, pl, pr = conv2d_padding(padding, (kh, kw), (sh, sw), (dh, dw))
    _, h, w = input_shape
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"conv2d: a {kh}x{kw} kernel (dilation {dh}x{dw}) does not fit an "
                         f"input of shape {tuple(input_shape)} with padding {padding!r}")
    return (int(out_channels), oh, ow)


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None,
                   stride: _Pair = 1, padding: _Padding = 0, dilation: _Pair = 1,
                   groups: int = 1, activation: Optional[str] = None, *,
                   negative_slope: float = 0.01,
                   keep_z: bool = True) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Fused 2-D convolution: ``z = conv2d(x, w) + b``, ``y = activation(z)``.

    Args:
        x: (N, C, H, W) input.  w: (F, C/groups, KH, KW) weights (PyTorch's layout).
        b: (F,) bias or None.
        stride, dilation: int or (h, w) pair, >= 1.
        padding: int or (h, w) pair >= 0, "valid" or "same" (stride 1).
        groups: divides C and F (groups == C is depthwise).
        activation, negative_slope: as :func:`dense_forward`.
        keep_z: also return the pre-activation for :func:`conv2d_backward`.

    Returns:
        ``(y, z)``, both (N, F, OH, OW); ``z is y`` for activation None,
        ``z`` is None unless ``keep_z``.

    Implicit GEMM: the im2col panels are gathered straight into the GEMM's
    packed buffers (nothing materialised); bias and activation are applied
    per output tile in cache. GIL released, up to get_num_threads() threads.
    """
    act = _dense_activation(activation, "conv2d")
    s, pads, d, g = _conv_geometry(np.shape(w), stride, padding, dilation, groups, "conv2d")
    return _core.conv2d_forward(x, w, b, s, pads, d, g, act, float(negative_slope),
                                bool(keep_z))


def conv2d(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None, stride: _Pair = 1,
           padding: _Padding = 0, dilation: _Pair = 1, groups: int = 1,
           activation: Optional[str] = None, *, negative_slope: float = 0.01) -> np.ndarray:
    """``activation(conv2d(x, w) + b)`` (N, F, OH, OW), as ``torch.nn.functional.conv2d``
    followed by the activation; arguments as :func:`conv2d_forward`."""
    return conv2d_forward(x, w, b, stride, padding, dilation, groups, activation,
                          negative_slope=negative_slope, keep_z=False)[0]


def conv2d_backward(
    grad_y: np.ndarray, x: np.ndarray, w: np.ndarray, z: Optional[np.ndarray],
    stride: _Pair = 1, padding: _Padding = 0, dilation: _Pair = 1, groups: int = 1,
    activation: Optional[str] = None, *, negative_slope: float = 0.01, need_dx: bool = True,
    need_db: bool = True,
) -> Tuple[Optional[np.ndarray], np.ndarray, Optional[np.ndarray]]:
    """Backward of :func:`conv2d_forward`: ``(dx, dw, db)``.

    ``dZ = grad_y * activation'(z)``; ``db`` sums dZ over N, OH, OW;
    ``dw = sum_n dZ[n] . im2col(x[n])^T`` (one implicit GEMM per group);
    ``dx``: for stride 1 the convolution of dZ with the flipped kernel
    (implicit), else ``col2im(w^T . dZ)``. Fresh arrays; None where
    ``need_dx``/``need_db`` is False. ``z`` may be None for activation None.
    """
    act = _dense_activation(activation, "conv2d_backward")
    s, pads, d, g = _conv_geometry(np.shape(w), stride, padding, dilation, groups,
                                   "conv2d_backward")
    return _core.conv2d_backward(grad_y, x, w, z, s, pads, d, g, act, float(negative_slope),
                                 bool(need_dx), bool(need_db))


# ---------------------------------------------------------------- pooling


def _pool_geometry(kernel_size: _Pair, stride: Optional[_Pair], padding: _Pair,
                   who: str) -> Tuple[List[int], List[int], List[int]]:
    kernel = check_pair(kernel_size, "kernel_size", who)
    s = kernel if stride is None else check_pair(stride, "stride", who)
    p = check_pair(padding, "padding", who, minimum=0)
    return list(kernel), list(s), list(p)


def pool2d_output_shape(input_shape: Sequence[int], kernel_size: _Pair,
                        stride: Optional[_Pair] = None, padding: _Pair = 0,
                        who: str = "pool2d") -> Tuple[int, int, int]:
    """Per-sample output shape (C, OH, OW) of max/avg pooling for (C, H, W)."""
    (kh, kw), (sh, sw), (ph, pw) = _pool_geometry(kernel_size, stride, padding, who)
    if len(input_shape) != 3:
        raise ValueError(f"{who}: expects samples of shape (C, H, W), got {tuple(input_shape)}")
    c, h, w = input_shape
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"{who}: padding {(ph, pw)} must be at most half the window "
                         f"{(kh, kw)}")
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    if h + 2 * ph < kh or w + 2 * pw < kw:
        raise ValueError(f"{who}: a {kh}x{kw} window does not fit samples of shape "
                         f"{tuple(input_shape)}")
    return (c, oh, ow)


def max_pool2d_forward(x: np.ndarray, kernel_size: _Pair, stride: Optional[_Pair] = None,
                       padding: _Pair = 0) -> Tuple[np.ndarray, np.ndarray]:
    """``(y, argmax)``: max over each window of x (N, C, H, W) (stride defaults to the
    window, -inf padding); argmax (int64, indices into each H*W plane) for backward."""
    k, s, p = _pool_geometry(kernel_size, stride, padding, "max_pool2d")
    return _core.max_pool2d_forward(x, k, s, p)


def max_pool2d(x: np.ndarray, kernel_size: _Pair, stride: Optional[_Pair] = None,
               padding: _Pair = 0) -> np.ndarray:
    """Max pooling, as ``torch.nn.functional.max_pool2d``."""
    return max_pool2d_forward(x, kernel_size, stride, padding)[0]


def max_pool2d_backward(grad_y: np.ndarray, argmax: np.ndarray, x_shape: Sequence[int],
                        kernel_size: _Pair, stride: Optional[_Pair] = None,
                        padding: _Pair = 0) -> np.ndarray:
    """dx (x_shape): grad_y added at the argmax positions of :func:`max_pool2d_forward`."""
    k, s, p = _pool_geometry(kernel_size, stride, padding, "max_pool2d_backward")
    return _core.max_pool2d_backward(grad_y, argmax, [int(d) for d in x_shape], k, s, p)


def avg_pool2d(x: np.ndarray, kernel_size: _Pair, stride: Optional[_Pair] = None,
               padding: _Pair = 0, count_include_pad: bool = True) -> np.ndarray:
    """Average pooling, as ``torch.nn.functional.avg_pool2d`` (zero padding counted in
    the divisor unless ``count_include_pad`` is False)."""
    k, s, p = _pool_geometry(kernel_size, stride, padding, "avg_pool2d")
    return _core.avg_pool2d_forward(x, k, s, p, bool(count_include_pad))


def avg_pool2d_backward(grad_y: np.ndarray, x_shape: Sequence[int], kernel_size: _Pair,
                        stride: Optional[_Pair] = None, padding: _Pair = 0,
                        count_include_pad: bool = True) -> np.ndarray:
    """dx (x_shape): each grad_y element spread evenly over its window."""
    k, s, p = _pool_geometry(kernel_size, stride, padding, "avg_pool2d_backward")
    return _core.avg_pool2d_backward(grad_y, [int(d) for d in x_shape], k, s, p,
                                     bool(count_include_pad))


def _nchw(x: np.ndarray, who: str) -> Tuple[int, ...]:
    shape = np.shape(x)
    if len(shape) != 4:
        raise ValueError(f"{who}: x must have shape (N, C, H, W), got {tuple(shape)}")
    if shape[2] < 1 or shape[3] < 1:
        raise ValueError(f"{who}: x of shape {tuple(shape)} has an empty plane")
    return shape


def global_avg_pool2d(x: np.ndarray) -> np.ndarray:
    """(N, C): the mean of each (H, W) plane of x (N, C, H, W)."""
    n, c, h, w = _nchw(x, "global_avg_pool2d")
    return avg_pool2d(x, (h, w)).reshape(n, c)


def global_avg_pool2d_backward(grad_y: np.ndarray, x_shape: Sequence[int]) -> np.ndarray:
    """dx (x_shape) from grad_y (N, C): grad_y / (H*W) over each plane."""
    n, c, h, w = _nchw(np.empty(tuple(x_shape), dtype=np.int8), "global_avg_pool2d_backward")
    g = np.asarray(grad_y)
    if g.shape != (n, c):
        raise ValueError(f"global_avg_pool2d_backward: grad_y must have shape {(n, c)}, "
                         f"got {g.shape}")
    return avg_pool2d_backward(g.reshape(n, c, 1, 1), x_shape, (h, w))


# ---------------------------------------------------------------- batch normalization


def batch_norm(x: np.ndarray, gamma: Optional[np.ndarray], beta: Optional[np.ndarray],
               running_mean: np.ndarray, running_var: np.ndarray, training: bool, *,
               momentum: float = 0.1,
               eps: float = 1e-5) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch normalization of x (N, C, ...) per channel: ``(y, mean, invstd)``.

    Training: batch mean and biased variance; ``running_mean``/``running_var``
    (C,) updated in place with ``momentum`` (the unbiased variance, as PyTorch);
    needs more than one value per channel. Evaluation: the running statistics.
    gamma/beta (C,) or None. ``mean``/``invstd`` are what
    :func:`batch_norm_backward` needs.
    """
    momentum = check_number(momentum, "momentum", "batch_norm", 0.0, 1.0)
    eps = check_number(eps, "eps", "batch_norm", 0.0)
    return _core.batchnorm_forward(x, gamma, beta, running_mean, running_var, bool(training),
                                   momentum, eps)


def batch_norm_backward(
    grad_y: np.ndarray, x: np.ndarray, gamma: Optional[np.ndarray], mean: np.ndarray,
    invstd: np.ndarray, training: bool = True, *, need_dx: bool = True,
) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
    """Backward of :func:`batch_norm`: ``(dx, dgamma, dbeta)``.

    ``training`` says whether the forward used batch statistics (then dx
    includes their dependence on x) or the running ones.
    """
    return _core.batchnorm_backward(grad_y, x, gamma, mean, invstd, bool(training),
                                    bool(need_dx))


# ---------------------------------------------------------------- optimizer updates
# One in-place pass over a parameter and its state, torch.optim formulas.
# param and every state array: same dtype (TypeError otherwise) and shape,
# C-contiguous and writeable (ValueError otherwise). Return None. With
# check_only=True every argument is checked and nothing is written (an
# optimizer validates all parameters before it updates any).


def _floats(fn: str, **values: float) -> dict[str, float]:
    return {name: float_arg(value, fn, name) for name, value in values.items()}


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
    check_only: bool = False,
) -> None:
    """SGD step in place, as ``torch.optim.SGD``::

        g = grad + weight_decay * param
        if momentum: velocity = g (first_step) or momentum * velocity + (1 - dampening) * g
                     g = g + momentum * velocity (nesterov) or velocity
        param -= lr * g

    ``velocity`` may be None when ``momentum == 0``.
    """
    _core.sgd_update(
        param, grad, velocity, nesterov=bool(nesterov), first_step=bool(first_step),
        check_only=bool(check_only),
        **_floats("sgd_update", lr=lr, momentum=momentum, dampening=dampening,
                  weight_decay=weight_decay),
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
    check_only: bool = False,
) -> None:
    """Adam step in place (AdamW when ``decoupled``), as ``torch.optim.Adam/AdamW``::

        decoupled: param *= 1 - lr * weight_decay   else: g = grad + weight_decay * param
        m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
        param -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)

    ``step`` is the 1-based number of this update (at most 2**63 - 1); m and v
    start at zero.
    """
    _core.adam_update(
        param, grad, m, v, step=index_arg(step, "adam_update", "step"), decoupled=bool(decoupled),
        check_only=bool(check_only),
        **_floats("adam_update", lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                  weight_decay=weight_decay),
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
    check_only: bool = False,
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
        param, grad, square_avg, momentum_buffer=momentum_buffer, centered=bool(centered),
        grad_avg=grad_avg, check_only=bool(check_only),
        **_floats("rmsprop_update", lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                  momentum=momentum),
    )


# ---------------------------------------------------------------- attention
__all__ += ["scaled_dot_product_attention", "scaled_dot_product_attention_backward"]


def _attention_mask(mask: Optional[np.ndarray], q: np.ndarray, k: np.ndarray, fn: str) -> Optional[np.ndarray]:
    """The mask as an additive array of q's dtype, broadcast (a view) to
    (..., Lq, Lk); None stays None."""
    if mask is None:
        return None
    m = np.asarray(mask)
    dtype = np.result_type(q) if np.asarray(q).dtype.kind == "f" else np.float32
    if m.dtype == np.bool_:
        # True = attend (torch's boolean mask): 0 there, -inf where blocked.
        m = np.where(m, 0.0, -np.inf).astype(dtype)
    elif m.dtype.kind not in "fiu":
        raise TypeError(f"{fn}: mask must be boolean or floating, got dtype {m.dtype}")
    else:
        m = m.astype(dtype, copy=False)
    q = np.asarray(q)
    k = np.asarray(k)
    if q.ndim < 2 or k.ndim < 2:
        return m  # the kernel's shape check names the problem
    target = q.shape[:-1] + (k.shape[-2],)
    try:
        return np.broadcast_to(m, target)
    except ValueError:
        raise ValueError(
            f"{fn}: mask of shape {m.shape} does not broadcast to (..., Lq, Lk) = {target}"
        ) from None


def _attention_scale(q: np.ndarray, scale: Optional[float]) -> float:
    if scale is not None:
        return float(scale)
    d = np.shape(q)[-1] if np.ndim(q) >= 1 else 0
    return 1.0 / float(np.sqrt(d)) if d > 0 else 1.0


@overload
def scaled_dot_product_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, *, mask: Optional[np.ndarray] = ...,
    causal: bool = ..., scale: Optional[float] = ..., return_lse: Literal[False] = ...,
) -> np.ndarray: ...
@overload
def scaled_dot_product_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, *, mask: Optional[np.ndarray] = ...,
    causal: bool = ..., scale: Optional[float] = ..., return_lse: Literal[True],
) -> Tuple[np.ndarray, np.ndarray]: ...
@overload
def scaled_dot_product_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, *, mask: Optional[np.ndarray] = ...,
    causal: bool = ..., scale: Optional[float] = ..., return_lse: bool,
) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]: ...
def scaled_dot_product_attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    *,
    mask: Optional[np.ndarray] = None,
    causal: bool = False,
    scale: Optional[float] = None,
    return_lse: bool = False,
) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """Scaled dot-product attention, as ``torch.nn.functional.scaled_dot_product_attention``::

        S = scale * q @ k^T + mask  (-inf where causal hides a key)
        out = softmax(S, axis=-1) @ v,   lse = logsumexp(S, axis=-1)

    Flash-style: blocks of queries against blocks of keys with an online
    softmax, so memory is O(L * D) and the Lq x Lk scores are never held
    whole; threads over batch x heads x query blocks.

    Args:
        q: (..., Lq, D) float32 or float64.
        k: (..., Lk, D), same leading dimensions and dtype (Lk may differ from Lq).
        v: (..., Lk, Dv).
        mask: optional, broadcastable to (..., Lq, Lk). Boolean: True = attend
            (PyTorch's convention); floating: added to the scores (use -inf to
            block). Read through its strides (broadcasting copies nothing).
        causal: query i attends keys j <= i (top-left aligned, as PyTorch's
            ``is_causal``); may be combined with ``mask``.
        scale: defaults to 1/sqrt(D).
        return_lse: also return the row log-sum-exp (..., Lq), which
            :func:`scaled_dot_product_attention_backward` needs.

    Returns:
        out (..., Lq, Dv), and lse when ``return_lse``. A query row that
        attends no key (its mask blocks every key, or Lk == 0) gives an out
        row of zeros and lse = -inf, never NaN.

    Raises:
        TypeError: an input is not float32/float64 or the dtypes differ.
        ValueError: the shapes do not fit (the message names them).
    """
    fn = "scaled_dot_product_attention"
    m = _attention_mask(mask, q, k, fn)
    out, lse = _core.attention(q, k, v, m, scale=_attention_scale(q, scale), causal=bool(causal))
    return (out, lse) if return_lse else out


def scaled_dot_product_attention_backward(
    grad_out: np.ndarray,
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    out: np.ndarray,
    lse: np.ndarray,
    *,
    mask: Optional[np.ndarray] = None,
    causal: bool = False,
    scale: Optional[float] = None,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dq, dk, dv) of :func:`scaled_dot_product_attention`.

    ``out`` and ``lse`` are the forward's (``return_lse=True``); ``mask``,
    ``causal`` and ``scale`` must be the forward's. Flash-attention-2
    backward: P is recomputed block by block from q, k and lse, D =
    rowsum(grad_out * out), dS = P * (dP - D); no Lq x Lk buffer. Rows that
    attended no key get zero gradients.
    """
    fn = "scaled_dot_product_attention_backward"
    m = _attention_mask(mask, q, k, fn)
    dq, dk, dv = _core.attention_backward(grad_out, q, k, v, out, lse, m,
                                          scale=_attention_scale(q, scale), causal=bool(causal))
    return dq, dk, dv


# ---------------------------------------------------------------- normalization
__all__ += ["layer_norm", "layer_norm_backward"]


_Stats = Tuple[np.ndarray, np.ndarray, np.ndarray]  # layer_norm's (y, mean, rstd)


@overload
def layer_norm(x: np.ndarray, weight: Optional[np.ndarray] = ...,
               bias: Optional[np.ndarray] = ..., eps: float = ...,
               return_stats: Literal[False] = ...) -> np.ndarray: ...
@overload
def layer_norm(x: np.ndarray, weight: Optional[np.ndarray], bias: Optional[np.ndarray],
               eps: float, return_stats: Literal[True]) -> _Stats: ...
@overload
def layer_norm(x: np.ndarray, weight: Optional[np.ndarray] = ...,
               bias: Optional[np.ndarray] = ..., eps: float = ..., *,
               return_stats: Literal[True]) -> _Stats: ...
@overload
def layer_norm(x: np.ndarray, weight: Optional[np.ndarray] = ...,
               bias: Optional[np.ndarray] = ..., eps: float = ...,
               return_stats: bool = ...) -> Union[np.ndarray, _Stats]: ...
def layer_norm(
    x: np.ndarray,
    weight: Optional[np.ndarray] = None,
    bias: Optional[np.ndarray] = None,
    eps: float = 1e-5,
    return_stats: bool = False,
) -> Union[np.ndarray, _Stats]:
    """Layer normalization over the last axis, as ``torch.nn.functional.layer_norm(x, (C,))``::

        mean = x.mean(-1), var = x.var(-1) (biased), rstd = 1 / sqrt(var + eps)
        y = (x - mean) * rstd * weight + bias

    Args:
        x: (..., C) float32 or float64.
        weight, bias: optional (C,) arrays of x's dtype (default 1 and 0).
        eps: added to the variance, >= 0.
        return_stats: also return ``mean`` and ``rstd`` (shape x.shape[:-1]),
            which :func:`layer_norm_backward` needs.

    Returns:
        y of x's shape, or (y, mean, rstd) when ``return_stats``.
    """
    y, mean, rstd = _core.layer_norm(x, weight, bias, eps=float(eps))
    return (y, mean, rstd) if return_stats else y


def layer_norm_backward(
    grad_y: np.ndarray,
    x: np.ndarray,
    weight: Optional[np.ndarray],
    mean: np.ndarray,
    rstd: np.ndarray,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dweight, dbias) of :func:`layer_norm` from grad_y, the
    forward input x, weight (None: 1) and the forward's mean and rstd::

        g = grad_y * weight, xhat = (x - mean) * rstd
        dx = rstd * (g - mean(g, -1) - xhat * mean(g * xhat, -1))
        dweight = sum(grad_y * xhat over all but the last axis), dbias = sum(grad_y likewise)
    """
    return _core.layer_norm_backward(grad_y, x, weight, mean, rstd)
