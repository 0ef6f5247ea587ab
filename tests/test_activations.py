"""Activations and softmax: forward vs float64 references, backward vs central
finite differences, the stated float32 error bounds, special values, every ISA
path, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

import matnet as mn
import numpy_reference as ref

ACTS = ref.ACTIVATIONS
SHAPES = [(0,), (1,), (7,), (8,), (9,), (3, 5), (2, 3, 4), (1000,), (0, 3)]


def forward(name, x, slope=0.01):
    if name == "gelu_tanh":
        return mn.ops.gelu(x, approximate="tanh")
    if name == "leaky_relu":
        return mn.ops.leaky_relu(x, slope)
    return getattr(mn.ops, name)(x)


def backward(name, g, x, slope=0.01):
    if name == "gelu_tanh":
        return mn.ops.gelu_backward(g, x, approximate="tanh")
    if name == "leaky_relu":
        return mn.ops.leaky_relu_backward(g, x, slope)
    return getattr(mn.ops, name + "_backward")(g, x)


def check_within(got, want, bound, what):
    """|got - want| <= bound where want is finite; where want is +-Inf or NaN,
    got must be the same (an infinite difference is never within a bound, even
    an infinite one, and a finite got never matches an infinite want)."""
    got = np.asarray(got, np.float64)
    want = np.broadcast_to(np.asarray(want, np.float64), got.shape)
    finite = np.isfinite(want)
    with np.errstate(invalid="ignore"):
        bad = finite & ~(np.abs(got - want) <= bound) | ~finite & ~(
            (got == want) | (np.isnan(got) & np.isnan(want)))
    if bad.any():
        i = np.flatnonzero(bad)[:5]
        raise AssertionError(f"{what}: {bad.sum()} elements off; got {got.ravel()[i]}, "
                             f"want {want.ravel()[i]}, bound {np.broadcast_to(bound, want.shape).ravel()[i]}")


# k of the stated bound (matnet/activations.hpp): k=4 forward, 6 derivatives, in
# eps of the dtype; float64 results are compared with a float64 reference that
# has errors of its own of a few eps64, so k doubles there.
def k_for(dtype, derivative):
    k = 6 if derivative else 4
    return k if np.dtype(dtype) == np.float32 else 2 * k


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", ACTS)
def test_forward_matches_reference(name, shape, dtype, rng, isa_path):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    y = forward(name, x)
    assert y.shape == x.shape and y.dtype == np.dtype(dtype)
    xd = x.astype(np.float64)
    slope = float(np.asarray(0.01, dtype))  # the kernel multiplies by the slope rounded to dtype
    f = lambda v: ref.act(name, v, slope)  # noqa: E731
    check_within(y, f(xd), ref.mixed_bound(f, xd, k_for(dtype, False), dtype), f"{name} {shape}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ACTS)
def test_backward_matches_reference(name, dtype, rng, isa_path):
    x = (rng.standard_normal((5, 37)) * 4).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    dx = backward(name, g, x)
    assert dx.shape == x.shape and dx.dtype == np.dtype(dtype)
    xd, gd = x.astype(np.float64), g.astype(np.float64)
    slope = float(np.asarray(0.01, dtype))
    fp = lambda v: ref.act_grad(name, v, slope)  # noqa: E731
    # dx = g * f'(x): one more rounding (1 eps) on top of the derivative's bound.
    bound = np.abs(gd) * (ref.mixed_bound(fp, xd, k_for(dtype, True) + 1, dtype))
    check_within(dx, gd * fp(xd), bound, name)


@pytest.mark.parametrize("name", ACTS)
def test_backward_matches_finite_differences(name, rng):
    # Central differences in float64 on the elementwise f: truncation error
    # h^2/6 |f'''| <= 2e-11 (|f'''| <= 1.2 for these f on [-3, 3]) and rounding
    # eps64 |f| / h <= 7e-11 (|f| <= 3): tolerance 1e-8 leaves a factor > 100.
    h = 1e-5
    x = rng.uniform(-3, 3, 400)
    x = x[np.abs(x) > 1e-3]  # keep the relu / leaky_relu kink out of [x-h, x+h]
    g = rng.standard_normal(x.shape)
    fd = (forward(name, x + h) - forward(name, x - h)) / (2 * h)
    np.testing.assert_allclose(backward(name, g, x), g * fd, rtol=1e-7, atol=1e-8, err_msg=name)


def test_stated_float32_bounds_dense_sweep(isa_path):
    """The bounds in activations.hpp over a dense sweep and log-spaced magnitudes."""
    lin = np.linspace(-40, 40, 400_001, dtype=np.float32)
    mag = np.logspace(-38, 38, 20_000).astype(np.float32)
    x = np.concatenate([lin, mag, -mag])
    xd = x.astype(np.float64)
    one = np.ones_like(x)
    for name in ACTS:
        f = lambda v: ref.act(name, v)  # noqa: E731
        fp = lambda v: ref.act_grad(name, v)  # noqa: E731
        if name != "leaky_relu":  # (slope 0.01 is not a float32: checked above with the rounded slope)
            check_within(forward(name, x), f(xd), ref.mixed_bound(f, xd, 4, np.float32), name)
            check_within(backward(name, one, x), fp(xd), ref.mixed_bound(fp, xd, 6, np.float32),
                         name + "'")
    eps, tiny = 2.0**-23, float(np.finfo(np.float32).tiny)
    for name in ("sigmoid", "tanh"):  # also 2 eps relative
        want = ref.act(name, xd)
        check_within(forward(name, x), want, 2 * eps * np.abs(want) + tiny, name + " relative")


SPECIALS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e30, 3.4e38, -3.4e38,
                     1e-30, -1e-30, 88.8, -88.8, 104.0, -104.0, 20.0, -20.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ACTS)
def test_special_values(name, dtype, isa_path):
    x = SPECIALS.astype(dtype)
    y = forward(name, x)
    want = ref.act(name, x.astype(np.float64), float(np.asarray(0.01, dtype)))
    # NaN in -> NaN out; +-Inf -> the limits; large finite -> no overflow to NaN
    assert np.isnan(y[4]), name
    fin = ~np.isnan(want)
    assert not np.isnan(y[fin]).any(), (name, x[fin][np.isnan(y[fin])])
    check_within(y, want,
                 ref.mixed_bound(lambda v: ref.act(name, v, float(np.asarray(0.01, dtype))),
                                 x.astype(np.float64), 8, dtype), name)
    d = backward(name, np.ones_like(x), x)
    dwant = ref.act_grad(name, x.astype(np.float64), float(np.asarray(0.01, dtype)))
    if name not in ("relu", "leaky_relu"):  # their derivative at NaN is the x <= 0 branch
        assert np.isnan(d[4]), name
    dfin = ~np.isnan(dwant)
    assert not np.isnan(d[dfin]).any(), (name, x[dfin][np.isnan(d[dfin])])
    # derivatives' limits at +-Inf are exact (0, 1 or the slope)
    np.testing.assert_array_equal(d[2:4], dwant[2:4].astype(dtype), err_msg=name)
    # sign of zero: odd functions keep -0 (and x * p(x) gives -0 * p(0) = -0)
    if name in ("tanh", "gelu_tanh", "silu", "gelu", "leaky_relu", "relu"):
        assert y[1] == 0
        assert np.signbit(y[1]) == (name != "relu" or np.signbit(want[1])), name
    # +Inf goes to the limit +Inf, not the largest finite value
    if name in ("relu", "leaky_relu", "gelu", "gelu_tanh", "silu"):
        assert y[2] == np.inf, (name, y[2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 8, 9, 17, 1000])
def test_tanh_keeps_negative_zero_every_lane(n, dtype, isa_path):
    """tanh(-0) = -0 in every SIMD lane and in the tail (the AVX2 float32 path gave +0)."""
    y = mn.ops.tanh(np.full(n, -0.0, dtype))
    assert (y == 0).all() and np.signbit(y).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "silu", "relu"])
def test_inf_is_not_clamped_in_dense_epilogue(activation, dtype, isa_path):
    """+Inf reaches the fused GEMM epilogue as +Inf and comes out +Inf (was FLT_MAX)."""
    x = np.ones((3, 2), dtype)
    w = np.array([[np.inf] * 9, [0.0] * 9], dtype)
    y, z = mn.ops.dense_forward(x, w, np.zeros(9, dtype), activation=activation)
    assert (z == np.inf).all()
    assert (y == np.inf).all(), y


def test_activations_nd_noncontiguous_and_threads(rng, threads):
    base = rng.standard_normal((300, 700)).astype(np.float32)
    x = base[:, ::3]  # strided view: read correctly, result C-contiguous
    for name in ACTS:
        mn.set_num_threads(1)
        y1 = forward(name, x)
        d1 = backward(name, x, x)
        mn.set_num_threads(2)
        y2 = forward(name, x)
        d2 = backward(name, x, x)
        np.testing.assert_array_equal(y1, y2, err_msg=name)
        np.testing.assert_array_equal(d1, d2, err_msg=name)
        np.testing.assert_array_equal(y1, forward(name, np.ascontiguousarray(x)), err_msg=name)
        assert y1.flags.c_contiguous


# ---------------------------------------------------------------- softmax


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", [((1, 1), -1), ((4, 10), -1), ((4, 10), 0),
                                        ((3, 4, 5), 1), ((3, 4, 5), 0), ((2, 3, 300), -1),
                                        ((7,), 0), ((0, 5), -1), ((5, 0), -1), ((2, 33, 17), 1)],
                         ids=str)
@pytest.mark.parametrize("log", [False, True])
def test_softmax_matches_reference(shape, axis, dtype, log, rng, isa_path):
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    fn = mn.ops.log_softmax if log else mn.ops.softmax
    y = fn(x, axis=axis)
    want = (ref.log_softmax if log else ref.softmax)(x, axis)
    n = shape[axis] if len(shape) else 1
    eps = ref.EPS[np.dtype(dtype)]
    # softmax: exp (<= 2 eps) of x - max (exact-ish: 1 eps relative of |x|), the sum
    # (n eps) and the division: (4 + n) eps relative. log_softmax: |x - max| + log(sum)
    # each to a few eps of their magnitude.
    if log:
        bound = (4 + n) * eps * (np.abs(want) + np.abs(x).max(initial=0) + 1)
    else:
        bound = (4 + n + 2 * np.abs(x).max(initial=0)) * eps * np.abs(want) + ref.TINY[np.dtype(dtype)]
    check_within(y, want, bound, f"{shape} axis {axis}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_huge_inf_nan_rows(dtype, isa_path):
    big = np.finfo(dtype).max
    x = np.array([[big, 0.0, -big], [1e30, 1e30, 1e30], [-np.inf, 0.0, 1.0], [np.nan, 1.0, 2.0]],
                 dtype)
    y = mn.ops.softmax(x)
    np.testing.assert_allclose(y[0], [1, 0, 0])
    np.testing.assert_allclose(y[1], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(y[2], ref.softmax(np.array([-np.inf, 0.0, 1.0])), rtol=1e-6)
    assert np.isnan(y[3]).all()
    ly = mn.ops.log_softmax(x)
    assert ly[0, 0] == 0 and ly[0, 1] == -big and ly[0, 2] == -np.inf
    assert np.isnan(ly[3]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_of_inf_is_its_limit(axis, dtype, isa_path):
    """A slice holding +Inf: its limit, [1, 0, 0] (log: [0, -Inf, -Inf]); k
    entries at +Inf share the mass (1/k, log: -log k). NaN anywhere stays NaN."""
    rows = np.array([[np.inf, 1.0, 2.0], [-np.inf, np.inf, 5.0], [np.inf, np.inf, -np.inf],
                     [np.inf, np.nan, 1.0], [1.0, 2.0, 3.0]], dtype)
    want = np.array([[1, 0, 0], [0, 1, 0], [0.5, 0.5, 0], [np.nan] * 3, ref.softmax(rows[4])])
    x = rows if axis == -1 else np.ascontiguousarray(rows.T)
    y = mn.ops.softmax(x, axis=axis)
    ly = mn.ops.log_softmax(x, axis=axis)
    if axis == 0:
        y, ly = y.T, ly.T
    with np.errstate(divide="ignore"):
        lwant = np.log(want)
    np.testing.assert_allclose(y, want, rtol=1e-6)
    np.testing.assert_allclose(ly, lwant, rtol=1e-6)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape,axis", [((3, 5), -1), ((3, 4, 2), 1), ((4, 3), 0)], ids=str)
def test_softmax_backward_finite_differences(shape, axis, log, rng):
    # L(x) = sum(g * f(x)); f has bounded third derivatives for |x| <= 2:
    # truncation h^2 |L'''| / 6 <= 1e-10 (|L'''| <~ 6 sum|g|), rounding eps |L| / h <= 1e-10.
    h = 1e-5
    x = rng.uniform(-2, 2, shape)
    g = rng.standard_normal(shape)
    f = mn.ops.log_softmax if log else mn.ops.softmax
    b = mn.ops.log_softmax_backward if log else mn.ops.softmax_backward
    fd = ref.central_diff(lambda v: float(np.sum(g * f(v, axis=axis))), x.copy(), h)
    np.testing.assert_allclose(b(g, f(x, axis=axis), axis=axis), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_backward_formulas(dtype, rng, isa_path):
    x = rng.standard_normal((6, 300)).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    y = mn.ops.softmax(x)
    yd, gd = y.astype(np.float64), g.astype(np.float64)
    want = yd * (gd - (gd * yd).sum(-1, keepdims=True))
    eps = ref.EPS[np.dtype(dtype)]
    np.testing.assert_allclose(mn.ops.softmax_backward(g, y), want, rtol=0,
                               atol=310 * eps * np.abs(gd).max())
    ly = mn.ops.log_softmax(x)
    want = gd - np.exp(ly.astype(np.float64)) * gd.sum(-1, keepdims=True)
    np.testing.assert_allclose(mn.ops.log_softmax_backward(g, ly), want, rtol=0,
                               atol=310 * eps * np.abs(gd).sum(-1).max())


# ---------------------------------------------------------------- errors


def test_bad_inputs():
    x32, x64 = np.ones(3, np.float32), np.ones(3)
    with pytest.raises(TypeError, match="float32 or float64"):
        mn.ops.relu(np.ones(3, np.int64))
    with pytest.raises(TypeError, match="float32.*float64|float64.*float32"):
        mn.ops.sigmoid_backward(x32, x64)
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        mn.ops.tanh_backward(x32, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="approximate"):
        mn.ops.gelu(x32, approximate="fast")
    with pytest.raises(ValueError, match="axis"):
        mn.ops.softmax(np.ones((2, 3)), axis=2)
    with pytest.raises(TypeError):
        mn.ops.softmax(np.ones((2, 3)), axis=0.5)
    with pytest.raises(ValueError, match="scalar"):
        mn.ops.softmax(np.float64(1.0))
    with pytest.raises(ValueError, match="same shape"):
        mn.ops.softmax_backward(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(TypeError):
        mn.ops.relu("abc")
    assert mn.ops.relu(np.float32(-2.0)).shape == ()  # 0-d arrays work element-wise
    assert mn.ops.sigmoid([0.0, 1.0]).dtype == np.float64  # lists become float64 arrays
