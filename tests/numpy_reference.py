"""Plain-NumPy reference for the Python layer's tests.

The same network maths as matnet's kernels, written the obvious way in NumPy
(no matnet calls), so training trajectories and gradients can be compared
against something independent. Optimizer formulas follow torch.optim (the
single-tensor implementations), as matnet's update kernels document.
"""

from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------- activations

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _erf(x: np.ndarray) -> np.ndarray:
    # math.erf is exact to rounding; vectorize keeps this file NumPy-only.
    return np.vectorize(math.erf, otypes=[x.dtype])(x)


def activation(z: np.ndarray, name: str | None, negative_slope: float = 0.01) -> np.ndarray:
    if name is None:
        return z.copy()
    if name == "relu":
        return np.maximum(z, 0)
    if name == "leaky_relu":
        return np.where(z > 0, z, negative_slope * z)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "gelu":
        return 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0)))
    if name == "gelu_tanh":
        return 0.5 * z * (1.0 + np.tanh(_SQRT_2_OVER_PI * (z + 0.044715 * z**3)))
    if name == "silu":
        return z / (1.0 + np.exp(-z))
    raise ValueError(name)


def activation_grad(z: np.ndarray, name: str | None, negative_slope: float = 0.01) -> np.ndarray:
    """d activation(z) / dz, elementwise."""
    if name is None:
        return np.ones_like(z)
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, negative_slope).astype(z.dtype)
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-z))
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if name == "gelu":
        cdf = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
        pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        return cdf + z * pdf
    if name == "silu":
        s = 1.0 / (1.0 + np.exp(-z))
        return s * (1.0 + z * (1.0 - s))
    raise ValueError(name)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


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
    p = softmax(logits)
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
