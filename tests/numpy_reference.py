"""The one plain-NumPy reference of matnet's tests: no matnet calls, the maths
written the obvious (and, where it matters, the accurate) way.

- float64 references and error bounds for the kernel tests: activations and
  their derivatives (act, act_grad, mixed_bound), softmax, matrix products
  (check_result, check_exact) and operand layouts (layouts, misaligned, ...);
- the network maths of the Python layer: dense layers, losses, the optimizer
  formulas of torch.optim (single-tensor implementations) and ReferenceMLP,
  against which training trajectories are compared.
"""

from __future__ import annotations

import itertools
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


def _clip_below(v):
    """v with -Inf made -max (so -Inf * 0 gives the limit -0); +Inf and NaN kept."""
    return np.maximum(v, -np.finfo(np.float64).max)


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
            return _clip_below(v) * 0.5 * _erfc(-v / math.sqrt(2.0))
        if name == "gelu_tanh":
            c = np.clip(v, -1e4, 1e4)
            return _clip_below(v) * sigmoid(2.0 * K0 * (c + K1 * c**3))
        if name == "silu":
            return _clip_below(v) * sigmoid(v)
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


# ------------------------------------------------------------- matrix products
#
# Error bound of every product check (derivation)
# -----------------------------------------------
# For C = alpha * op(A) @ op(B) + beta * C0 computed in a dtype with unit
# roundoff u = eps / 2, each element is a sum of k products. Whatever the
# order of summation (blocked over KC, split into SIMD lanes or over threads,
# FMA-chained, the partial sum stored to C and reloaded between KC blocks),
# the standard result (Higham, *Accuracy and Stability of Numerical
# Algorithms*, 2nd ed., sec. 3.1) gives |fl(sum) - sum| <= gamma_k * sum_p
# |a_ip| |b_pj| with gamma_k = k u / (1 - k u). Scaling by alpha, multiplying
# beta * C0 and the final addition add at most three more roundings, so
#
#     |C - C_exact|_ij <= gamma_{k+3} * M_ij,
#     M = |alpha| * |op(A)| @ |op(B)| + |beta| * |C0|.
#
# A matrix-vector product is the n == 1 (or m == 1) case; a batched product is
# this bound for each product of the batch. The reference is computed in
# float64 from the very same (exactly converted) inputs, so it has error
# <= gamma_{k+3}(float64) * M. For float64 results the two bounds add up to
# (k + 3) * 2 u = (k + 3) * eps (to first order); for float32 the float64
# reference error is ~1e-9 of the allowance. Hence the check
# |C - C_ref| <= (k + 3) * eps * M * (1 + 1e-3) + tiny, where the 1e-3 covers
# the second-order 1/(1 - k u) factor (k u < 1e-3 while k < 16700 in float32;
# the longest sums in the tests have k = 8191, k u = 4.9e-4) and ``tiny``
# keeps exact zeros (M = 0) comparable. A wrong, missing or doubled block
# changes C by O(M), orders of magnitude above this; a single wrong term in a
# long float32 sum may hide in it, which is what exact_operand() is for.

DTYPES = [np.float32, np.float64]
TRANS = list(itertools.product([False, True], [False, True]))


def make_operands(rng, m, n, k, dtype, trans_a, trans_b):
    """A, B stored so that op(A) is m x k and op(B) is k x n."""
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


def op64(x, trans):
    """x in float64, its last two axes swapped when trans (np.matmul's layout)."""
    x64 = np.asarray(x, dtype=np.float64)
    if trans:
        assert x64.ndim >= 2, "a transpose flag needs an operand with ndim >= 2"
        return np.swapaxes(x64, -1, -2)
    return x64


def _reference(got, a, b, trans_a, trans_b, alpha, beta, c0, case):
    """(alpha op(a) @ op(b) + beta c0, its magnitude M, k, dtype) in float64 by
    np.matmul's shape rules, after asserting got's type, dtype and shape. got
    must be an ndarray (0-d for two 1-D operands) of the operands' common
    dtype: a float32 product returned as float64 would otherwise pass against
    the looser float32 bound and hide a wrong kernel path."""
    A, B = op64(a, trans_a), op64(b, trans_b)
    dtype = np.promote_types(np.asarray(a).dtype, np.asarray(b).dtype)
    assert isinstance(got, np.ndarray), f"{case}: got a {type(got).__name__}, not an ndarray"
    assert got.dtype == dtype, f"{case}: dtype {got.dtype} != {dtype}"
    ref = alpha * np.matmul(A, B)
    mag = abs(alpha) * np.matmul(np.abs(A), np.abs(B))
    assert got.shape == np.shape(ref), f"{case}: shape {got.shape} != {np.shape(ref)}"
    if c0 is not None and beta != 0.0:
        c064 = np.asarray(c0, dtype=np.float64)
        ref = ref + beta * c064
        mag = mag + abs(beta) * np.abs(c064)
    return ref, mag, A.shape[-1], dtype


def check_result(got, a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c0=None,
                 case=""):
    """Assert got == alpha op(a) @ op(b) + beta c0 within the bound derived
    above. Shapes follow np.matmul: N-D operands broadcast their leading axes,
    a 1-D a (b) is a row (column) whose axis is dropped from the result, so a
    matrix-vector product is checked as check_result(y, a, x)."""
    ref, mag, k, dtype = _reference(got, a, b, trans_a, trans_b, alpha, beta, c0, case)
    eps = np.finfo(dtype).eps
    bound = (k + 3) * eps * mag * (1 + 1e-3) + np.finfo(dtype).tiny
    err = np.abs(got.astype(np.float64) - ref)
    bad = ~(err <= bound)  # NaN in got counts as bad
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{case}: {int(bad.sum())} of {bad.size} elements off; first at {at}: "
            f"got {got[at]!r}, want {np.asarray(ref)[at]!r}, |err| {err[at]:.3g} > bound "
            f"{np.asarray(bound)[at]:.3g}"
        )


def check_exact(got, a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c0=None,
                case=""):
    """Assert got == alpha op(a) @ op(b) + beta c0 bit for bit: for operands
    from exact_operand with alpha, beta in {+-0.75, +-0.5, 0, 1}, where no
    summation order rounds. Shape rules and checks as check_result."""
    ref, _, _, _ = _reference(got, a, b, trans_a, trans_b, alpha, beta, c0, case)
    np.testing.assert_array_equal(got, ref, err_msg=case)


def exact_operand(rng, shape, dtype):
    """Random multiples of 1/8 in [-1, 1]: every product of two is a multiple of
    1/64 of magnitude <= 1, so every partial sum of k of them (times alpha =
    +-0.75, plus beta * c0 with beta = +-0.5 and c0 of this kind) is a multiple
    of 1/256 below k + 1 in magnitude - exact in float32 (24 bits) while
    (k + 1) * 256 <= 2**24, i.e. k < 65535. Products of such operands are exact
    in any summation order, so the result must equal the float64 reference bit
    for bit; a single dropped, doubled or misplaced term shows, which the
    rounding bound of check_result cannot promise for long float32 sums."""
    return (rng.integers(-8, 9, size=shape) / 8).astype(dtype)


def at_offset(x, offset: int, row_stride: int | None = None):
    """A copy of the 2-D x whose data starts `offset` elements past a 64-byte
    boundary, its rows `row_stride` elements apart (default: contiguous; the
    gap between rows is filled with NaN, which no kernel may read)."""
    x = np.asarray(x)
    item = x.dtype.itemsize
    rows, cols = x.shape
    ld = cols if row_stride is None else row_stride
    assert ld >= cols
    buf = np.full(rows * ld + 64 // item + offset, np.nan, dtype=x.dtype)
    start = (-buf.ctypes.data % 64) // item + offset
    out = np.lib.stride_tricks.as_strided(buf[start:], x.shape, (ld * item, item), writeable=True)
    out[...] = x
    assert out.ctypes.data % 64 == offset * item % 64
    return out


def misaligned(x):
    """A C-ordered copy of x whose data starts one element past a 64-byte
    boundary: kernels that assume aligned rows or peel a loop to reach
    alignment see the awkward case (NumPy's own buffers are 16- or 64-byte
    aligned, so a plain copy never tests it)."""
    x = np.asarray(x)
    return at_offset(x.reshape(1, -1), 1).reshape(x.shape)


def unaligned(x):
    """A C-contiguous copy of x whose data starts one BYTE past an aligned
    address (np.frombuffer at an odd offset): not even element-aligned, so
    NumPy flags it unaligned and the bindings must copy it before a kernel
    dereferences it."""
    x = np.asarray(x)
    buf = np.zeros(x.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, x.dtype, x.size, offset=1).reshape(x.shape)
    out[...] = x
    assert out.flags.c_contiguous and (x.size == 0 or x.dtype.itemsize == 1 or not out.flags.aligned)
    return out


def strided_copy(x, step):
    """Same values as x, stored every |step|-th element along each axis (in
    reverse when step < 0) inside a NaN-filled buffer: reading a gap between
    elements shows as NaN in the result."""
    x = np.asarray(x)
    big = np.full(tuple(abs(step) * s + 1 for s in x.shape), np.nan, dtype=x.dtype)
    view = big[tuple(slice(1, 1 + abs(step) * s, abs(step)) for s in x.shape)]
    if step < 0:
        view = view[(slice(None, None, -1),) * x.ndim]
    view[...] = x
    return view


def layouts(x) -> dict:
    """name -> an array equal to x stored another way: C order, Fortran order
    (for N-D: the batch axis fastest), every second element, reversed along
    every axis, reversed with step 3, off a 64-byte boundary, byte-swapped.
    The kernels read strided operands through their strides or copy them; each
    layout takes another branch of that choice."""
    x = np.asarray(x)
    return {
        "C": np.ascontiguousarray(x),
        "F": np.asfortranarray(x),
        "step2": strided_copy(x, 2),
        "neg": strided_copy(x, -1),
        "neg-step3": strided_copy(x, -3),
        "unaligned": misaligned(x),
        "byteswapped": x.astype(x.dtype.newbyteorder("S")),
    }


def one_operand_varied(a, b, views=layouts):
    """(name, a', b') for every view of a with b as it is, then every view of b
    with a as it is: each layout of each operand, the other plain, so a
    failure names the one unusual operand."""
    pairs = [(f"a {name}", view, b) for name, view in views(a).items()]
    return pairs + [(f"b {name}", a, view) for name, view in views(b).items()]


# ---------------------------------------------------------------- in the input's dtype
# The layer references below compute in the dtype they are given (float32
# training trajectories are compared with float32 maths).


def activation(z: np.ndarray, name: str | None, negative_slope: float = 0.01) -> np.ndarray:
    """act(name, z) in z's dtype."""
    return act(name, z, negative_slope).astype(z.dtype, copy=False)


def activation_grad(z: np.ndarray, name: str | None, negative_slope: float = 0.01) -> np.ndarray:
    """act_grad(name, z) in z's dtype."""
    return act_grad(name, z, negative_slope).astype(z.dtype, copy=False)


def _softmax_like(x: np.ndarray) -> np.ndarray:
    return softmax(x).astype(x.dtype, copy=False)


# --------------------------------------------------------------------- layers


def dense_forward(x, w, b, act=None, negative_slope=0.01):
    """Returns (y, z) with z = x @ w + b and y = act(z)."""
    z = x @ w
    if b is not None:
        z = z + b
    return activation(z, act, negative_slope), z


def dense_backward(grad_y, x, w, z, act=None, negative_slope=0.01):
    """Returns (dx, dw, db) for y = act(x @ w + b)."""
    dz = grad_y * activation_grad(z, act, negative_slope)
    return dz @ w.T, x.T @ dz, dz.sum(axis=0)


# --------------------------------------------------------------------- losses


def cross_entropy(logits, labels, label_smoothing=0.0):
    n, c = logits.shape
    p = _softmax_like(logits)
    q = np.full_like(logits, label_smoothing / c)
    q[np.arange(n), labels] += 1.0 - label_smoothing
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-(q * logp).sum() / n)
    return loss, (p - q) / n


def mse(pred, target):
    d = pred - target
    return float((d * d).mean()), 2.0 * d / d.size


def binary_cross_entropy(logits, targets):
    x, t = logits, targets
    loss = float((np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))).mean())
    return loss, (1.0 / (1.0 + np.exp(-x)) - t) / x.size


# ------------------------------------------------------------------ optimizers


def sgd_update(param, grad, velocity, *, lr, momentum=0.0, dampening=0.0, nesterov=False,
               weight_decay=0.0, first_step=False):
    g = grad + weight_decay * param if weight_decay else grad.copy()
    if momentum:
        if first_step:
            velocity[...] = g
        else:
            velocity[...] = momentum * velocity + (1.0 - dampening) * g
        g = g + momentum * velocity if nesterov else velocity.copy()
    param -= lr * g


def adam_update(param, grad, m, v, *, step, lr, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0, decoupled=False):
    g = grad
    if weight_decay:
        if decoupled:
            param *= 1.0 - lr * weight_decay
        else:
            g = grad + weight_decay * param
    m += (1.0 - beta1) * (g - m)
    v[...] = beta2 * v + (1.0 - beta2) * g * g
    bc1 = 1.0 - beta1**step
    bc2 = 1.0 - beta2**step
    param -= (lr / bc1) * m / (np.sqrt(v) / math.sqrt(bc2) + eps)


def rmsprop_update(param, grad, square_avg, *, lr, alpha=0.99, eps=1e-8, weight_decay=0.0,
                   momentum=0.0, momentum_buffer=None, centered=False, grad_avg=None):
    g = grad + weight_decay * param if weight_decay else grad
    square_avg[...] = alpha * square_avg + (1.0 - alpha) * g * g
    if centered:
        grad_avg += (1.0 - alpha) * (g - grad_avg)
        avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = np.sqrt(square_avg) + eps
    if momentum > 0:
        momentum_buffer[...] = momentum * momentum_buffer + g / avg
        param -= lr * momentum_buffer
    else:
        param -= lr * g / avg


# --------------------------------------------------------------- an MLP in NumPy


class ReferenceMLP:
    """Dense layers [(W, b, activation)], trained with one of the optimizers above."""

    def __init__(self, weights, activations, optimizer: str, **hyper):
        self.w = [w.copy() for w, _ in weights]
        self.b = [b.copy() for _, b in weights]
        self.acts = list(activations)
        self.optimizer = optimizer
        self.hyper = hyper
        params = self.w + self.b
        self.slots = [{k: np.zeros_like(p) for k in ("a", "b", "c")} for p in params]
        self.t = 0

    def forward(self, x):
        self.cache = []
        for w, b, act in zip(self.w, self.b, self.acts):
            y, z = dense_forward(x, w, b, act)
            self.cache.append((x, z))
            x = y
        return x

    def train_step(self, x, labels):
        logits = self.forward(x)
        loss, grad = cross_entropy(logits, labels)
        gw, gb = [None] * len(self.w), [None] * len(self.w)
        for i in reversed(range(len(self.w))):
            xin, z = self.cache[i]
            grad, gw[i], gb[i] = dense_backward(grad, xin, self.w[i], z, self.acts[i])
        self.t += 1
        for p, g, s in zip(self.w + self.b, gw + gb, self.slots):
            if self.optimizer == "sgd":
                sgd_update(p, g, s["a"], first_step=self.t == 1, **self.hyper)
            elif self.optimizer == "adam":
                adam_update(p, g, s["a"], s["b"], step=self.t, **self.hyper)
            elif self.optimizer == "rmsprop":
                rmsprop_update(p, g, s["a"], momentum_buffer=s["b"], grad_avg=s["c"],
                               **self.hyper)
            else:
                raise ValueError(self.optimizer)
        return loss


# ------------------------------------------------------ attention and norms


def attention(q, k, v, mask=None, causal=False, scale=None):
    """Explicit softmax attention in float64: returns (out, lse, p).

    mask: boolean (True = attend) or additive, broadcastable to (..., Lq, Lk);
    causal: query i attends keys j <= i. Rows that attend no key give out 0,
    lse -inf and p 0."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1]) if q.shape[-1] else 1.0
    s = scale * (q @ np.swapaxes(k, -1, -2))
    if mask is not None:
        mask = np.asarray(mask)
        s = s + (np.where(mask, 0.0, -np.inf) if mask.dtype == bool else mask.astype(np.float64))
    if causal:
        lq, lk = s.shape[-2:]
        s = np.where(np.tril(np.ones((lq, lk), bool)), s, -np.inf)
    mx = s.max(axis=-1, keepdims=True) if s.shape[-1] else np.full(s.shape[:-1] + (1,), -np.inf)
    live = np.isfinite(mx)
    e = np.exp(s - np.where(live, mx, 0.0))
    denom = e.sum(axis=-1, keepdims=True)
    p = np.where(live, e / np.where(live, denom, 1.0), 0.0)
    lse = np.where(live, np.log(np.where(live, denom, 1.0)) + np.where(live, mx, 0.0), -np.inf)
    return p @ v, lse[..., 0], p


def attention_backward(grad_out, q, k, v, mask=None, causal=False, scale=None):
    """(dq, dk, dv) of attention() by the textbook formulas on the full P."""
    q, k, v, g = (np.asarray(a, np.float64) for a in (q, k, v, grad_out))
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1]) if q.shape[-1] else 1.0
    _, _, p = attention(q, k, v, mask, causal, scale)
    dv = np.swapaxes(p, -1, -2) @ g
    dp = g @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    return scale * (ds @ k), scale * (np.swapaxes(ds, -1, -2) @ q), dv


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """Textbook layer norm over the last axis in float64: (y, mean, rstd)."""
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=-1)
    rstd = 1.0 / np.sqrt(x.var(axis=-1) + eps)
    y = (x - mean[..., None]) * rstd[..., None]
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, mean, rstd
# ---------------------------------------------------------------- convolution, pooling, batch norm
# NCHW like PyTorch; written with sliding_window_view + einsum, float64.


def conv2d(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """Cross-correlation; pads = (top, bottom, left, right) zeros."""
    sh, sw = stride
    dh, dw = dilation
    pt, pb, pl, pr = pads
    f, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    win = np.lib.stride_tricks.sliding_window_view(
        xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
    fg = f // groups
    y = np.concatenate([
        np.einsum("ncijpq,fcpq->nfij", win[:, g * cg:(g + 1) * cg], w[g * fg:(g + 1) * fg])
        for g in range(groups)], axis=1)
    return y if b is None else y + b[None, :, None, None]


# Winograd F(2x2, 3x3) (Lavin & Gray 2015), the matrices of nn/winograd_kernels.hpp:
# a 2x2 output tile is A^T [(G g G^T) . (B^T d B)] A of a 4x4 input patch d.
WINOGRAD_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float)
WINOGRAD_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
WINOGRAD_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], float)


def winograd_abs(x, w, pads=(0, 0, 0, 0), groups=1):
    """|A^T| (sum_c |G||g_c||G^T| . |B^T||d_c||B|) |A| at every output of a
    3x3, stride-1 convolution (N, F, OH, OW), float64: the sum of the
    absolute values of all the terms Winograd F(2x2, 3x3) adds up for that
    output, its cancelling cross terms included (the scale of its rounding
    errors, as conv2d(|x|, |w|) is the direct sum's). pads (top, bottom,
    left, right) may be negative (cropping)."""
    x, w = np.abs(np.asarray(x, np.float64)), np.abs(np.asarray(w, np.float64))
    n, c, h, wd = x.shape
    f, cg = w.shape[:2]
    pt, pb, pl, pr = pads
    oh, ow = h + pt + pb - 2, wd + pl + pr - 2
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    # the input on the tiles' grid: rows / columns [-pt, 2 th + 2 - pt), zeros outside the image
    xp = np.zeros((n, c, 2 * th + 2, 2 * tw + 2))
    r0, r1 = max(0, -pt), min(h, 2 * th + 2 - pt)
    c0, c1 = max(0, -pl), min(wd, 2 * tw + 2 - pl)
    xp[:, :, r0 + pt:r1 + pt, c0 + pl:c1 + pl] = x[:, :, r0:r1, c0:c1]
    d = np.lib.stride_tricks.sliding_window_view(xp, (4, 4), axis=(2, 3))[:, :, ::2, ::2]
    bt, g, at = np.abs(WINOGRAD_BT), np.abs(WINOGRAD_G), np.abs(WINOGRAD_AT)
    v = np.einsum("ir,nctwrs,js->nctwij", bt, d, bt)
    u = np.einsum("ir,fcrs,js->fcij", g, w, g)
    fg = f // groups
    m = np.concatenate([
        np.einsum("fcij,nctwij->nftwij", u[k * fg:(k + 1) * fg], v[:, k * cg:(k + 1) * cg])
        for k in range(groups)], axis=1)
    y = np.einsum("ki,nftwij,lj->nftkwl", at, m, at).reshape(n, f, 2 * th, 2 * tw)
    return y[:, :, :oh, :ow]


def _pool_windows(x, kernel, stride, padding, fill):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    return np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


def max_pool2d(x, kernel, stride, padding):
    return _pool_windows(x, kernel, stride, padding, -np.inf).max(axis=(4, 5))


def avg_pool2d(x, kernel, stride, padding):
    """count_include_pad=True: windows never pass the padded border (pad <= k/2, floor)."""
    return _pool_windows(x, kernel, stride, padding, 0.0).mean(axis=(4, 5))


def batch_norm_train(x, gamma, beta, eps):
    """Textbook batch norm over all axes but 1; returns y, batch mean, biased variance."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    xhat = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return xhat * gamma.reshape(shape) + beta.reshape(shape), mean, var
