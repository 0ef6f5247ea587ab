"""Property tests (hypothesis): random shapes (0 and 1 included), dtypes,
layouts (strided, reversed, transposed, byte-offset so unaligned), values with
the special ones (+-0, +-Inf, NaN, huge, tiny) for the ops, each compared with
the float64 reference of numpy_reference within its derived bound."""

from __future__ import annotations

import os

import numpy as np
import pytest

import matnet as mn
import numpy_reference as ref

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

# 60 cases per property keeps the module to seconds; the seed varies from run
# to run (hypothesis' default) and a failure prints its example. A longer
# hunt: MATNET_HYPOTHESIS_EXAMPLES=1500 (passes, 80 s).
SETTINGS = settings(max_examples=int(os.environ.get("MATNET_HYPOTHESIS_EXAMPLES", "60")),
                    deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DTYPES = st.sampled_from([np.float32, np.float64])
SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e30, 1e-30, 3e38, -3e38, 88.8, -104.0]


def _values(dtype, specials: bool) -> st.SearchStrategy:
    finite = st.floats(-30, 30, width=32 if dtype == np.float32 else 64)
    if not specials:
        return finite
    return st.one_of(finite, st.sampled_from([float(np.asarray(v, dtype)) for v in SPECIAL]))


@st.composite
def arrays(draw, dtype, max_dims=3, max_side=9, specials=True, min_side=0):
    """An array of random shape, values and layout (C, Fortran, strided,
    reversed, one byte off an aligned address)."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=max_dims, min_side=min_side,
                                  max_side=max_side))
    x = draw(hnp.arrays(dtype, shape, elements=_values(dtype, specials)))
    return _relayout(draw, x)


def _relayout(draw, x):
    layout = draw(st.sampled_from(["C", "F", "step", "reversed", "unaligned"]))
    if layout == "F":
        return np.asfortranarray(x)
    if layout == "step":
        return ref.strided_copy(x, draw(st.sampled_from([2, 3])))
    if layout == "reversed":
        return ref.strided_copy(x, -1)
    if layout == "unaligned":
        return ref.unaligned(x)
    return np.ascontiguousarray(x)


def _check(got, want, bound, what):
    got = np.asarray(got, np.float64)
    finite = np.isfinite(want)
    with np.errstate(invalid="ignore"):
        ok = np.where(finite, np.abs(got - want) <= bound,
                      (got == want) | (np.isnan(got) & np.isnan(want)))
    assert ok.all(), (what, got[~ok][:5], want[~ok][:5])


@SETTINGS
@given(data=st.data(), dtype=DTYPES, name=st.sampled_from(ref.ACTIVATIONS))
def test_activations_forward_and_backward(data, dtype, name):
    x = data.draw(arrays(dtype))
    xd = x.astype(np.float64)
    y = (mn.ops.gelu(x, approximate="tanh") if name == "gelu_tanh"
         else getattr(mn.ops, name)(x))
    assert y.shape == x.shape and y.dtype == x.dtype
    k = 4 if dtype == np.float32 else 8
    f = lambda v: ref.act(name, v)  # noqa: E731
    _check(y, f(xd), ref.mixed_bound(f, xd, 2 * k, dtype), name)
    g = np.ones_like(x)
    d = (mn.ops.gelu_backward(g, x, approximate="tanh") if name == "gelu_tanh"
         else getattr(mn.ops, name + "_backward")(g, x))
    fp = lambda v: ref.act_grad(name, v)  # noqa: E731
    fin = np.isfinite(xd)  # derivatives: finite inputs (the limits are tested elsewhere)
    _check(d[fin], fp(xd[fin]), ref.mixed_bound(fp, xd[fin], 3 * k, dtype), name + "'")


@SETTINGS
@given(data=st.data(), dtype=DTYPES, log=st.booleans())
def test_softmax_any_axis(data, dtype, log):
    x = data.draw(arrays(dtype, specials=False, min_side=1))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    y = (mn.ops.log_softmax if log else mn.ops.softmax)(x, axis=axis)
    want = (ref.log_softmax if log else ref.softmax)(x, axis=axis)
    eps = np.finfo(dtype).eps
    n = x.shape[axis]
    # exp(x - max) carries the rounding of x - max: |x - max| eps relative;
    # the sum and the division add about n + 8 eps.
    spread = np.abs(x.astype(np.float64) - x.max(axis=axis, keepdims=True))
    scale = np.abs(want) + 1.0 if log else np.abs(want) * (1.0 + spread)
    bound = (8 + n) * eps * scale + np.finfo(dtype).tiny
    _check(y, want, bound, f"softmax log={log} axis={axis}")


@SETTINGS
@given(data=st.data(), dtype=DTYPES, trans_a=st.booleans(), trans_b=st.booleans(),
       m=st.integers(0, 40), n=st.integers(0, 40), k=st.integers(0, 40))
def test_matmul_any_layout(data, dtype, trans_a, trans_b, m, n, k):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    a, b = _relayout(data.draw, a), _relayout(data.draw, b)
    got = mn.ops.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
    ref.check_result(got, a, b, trans_a=trans_a, trans_b=trans_b, case="hypothesis")


@SETTINGS
@given(data=st.data(), dtype=DTYPES, n=st.integers(1, 20), c=st.integers(1, 20),
       smoothing=st.sampled_from([0.0, 0.1]))
def test_cross_entropy(data, dtype, n, c, smoothing):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    logits = _relayout(data.draw, (rng.standard_normal((n, c)) * 5).astype(dtype))
    labels = rng.integers(0, c, n)
    loss, grad = mn.losses.cross_entropy(logits, labels, label_smoothing=smoothing)
    want_loss, want_grad = ref.cross_entropy(logits.astype(np.float64), labels, smoothing)
    eps = np.finfo(dtype).eps
    assert abs(loss - want_loss) <= 16 * c * eps * (abs(want_loss) + np.abs(logits).max() + 1)
    _check(grad, want_grad, 16 * c * eps / n + np.finfo(dtype).tiny, "cross_entropy grad")
