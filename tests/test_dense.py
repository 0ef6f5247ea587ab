"""Fused dense layer: forward vs a float64 reference (GEMM bound + activation
bound), backward vs the reference formulas and central finite differences,
layouts, empty and single-row batches, the generic ISA path, bad inputs."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import matnet as mn
import numpy_reference as ref

ACTS = [None] + ref.ACTIVATIONS


def gemm_bound(a, b, dtype, extra=0.0):
    """|fl(a @ b) - a @ b| <= K eps (|a| @ |b|): the classic gamma_K bound
    (K u / (1 - K u), u = eps / 2) with a factor 2 for blocked/FMA orders;
    `extra` adds the magnitude of a bias that is added once more."""
    k = a.shape[1]
    eps = ref.EPS[np.dtype(dtype)]
    return (k + 2) * eps * (np.abs(a) @ np.abs(b) + extra)


SHAPES = [(0, 5, 3), (1, 1, 1), (1, 784, 256), (7, 5, 17), (32, 64, 10), (128, 784, 256),
          (13, 0, 4), (6, 17, 1), (50, 300, 33)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("n,k,m", SHAPES, ids=str)
def test_forward_matches_reference(n, k, m, act, dtype, rng, isa_path):
    x = rng.standard_normal((n, k)).astype(dtype)
    w = (rng.standard_normal((k, m)) / np.sqrt(max(k, 1))).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    y, z = mn.ops.dense_forward(x, w, b, act)
    assert y.shape == z.shape == (n, m) and y.dtype == z.dtype == np.dtype(dtype)
    xd, wd, bd = (a.astype(np.float64) for a in (x, w, b))
    zref = xd @ wd + bd
    # z: the GEMM bound, plus one rounding of the bias add
    check = np.abs(z - zref) <= gemm_bound(xd, wd, dtype, np.abs(bd)) + ref.EPS[np.dtype(dtype)] * np.abs(bd)
    assert check.all(), f"z off at {np.argwhere(~check)[:3]}"
    if act is None:
        assert z is y
    else:
        # y = act(z) for the z actually computed, within the activation bound
        zd = z.astype(np.float64)
        f = lambda v: ref.act(act, v, float(np.asarray(0.01, dtype)))  # noqa: E731
        k_bound = 4 if dtype == np.float32 else 8
        assert (np.abs(y - f(zd)) <= ref.mixed_bound(f, zd, k_bound, dtype)).all()


def test_forward_without_bias_and_layouts(rng):
    x = rng.standard_normal((40, 30))
    w = rng.standard_normal((20, 30)).T  # Fortran-ordered view
    y, z = mn.ops.dense_forward(x[:, :], w, None, "tanh")
    zref = x @ w
    np.testing.assert_allclose(z, zref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, np.tanh(zref), rtol=1e-12, atol=1e-12)
    xs = rng.standard_normal((40, 60))[:, ::2]  # strided
    y2, _ = mn.ops.dense_forward(xs, w, np.ones(20), "relu")
    np.testing.assert_allclose(y2, np.maximum(xs @ w + 1, 0), rtol=1e-12, atol=1e-12)


def test_forward_threads_agree(rng, threads):
    x = rng.standard_normal((256, 300)).astype(np.float32)
    w = rng.standard_normal((300, 200)).astype(np.float32)
    b = rng.standard_normal(200).astype(np.float32)
    mn.set_num_threads(1)
    y1, z1 = mn.ops.dense_forward(x, w, b, "gelu")
    d1 = mn.ops.dense_backward(y1, x, w, z1, "gelu")
    mn.set_num_threads(2)
    y2, z2 = mn.ops.dense_forward(x, w, b, "gelu")
    d2 = mn.ops.dense_backward(y2, x, w, z2, "gelu")
    assert mn.get_num_threads() == 2  # the backward's per-thread settings do not leak
    # Same tiles, same K order per element: the partition over threads does not
    # change any element's arithmetic, only db's partial sums (in thread order).
    np.testing.assert_array_equal(z1, z2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(d1[0], d2[0])
    np.testing.assert_array_equal(d1[1], d2[1])
    np.testing.assert_allclose(d1[2], d2[2], rtol=1e-5, atol=1e-5 * np.abs(d1[2]).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("n,k,m", [(1, 3, 2), (7, 5, 17), (128, 784, 256), (0, 4, 3), (5, 0, 3)],
                         ids=str)
def test_backward_matches_reference(n, k, m, act, dtype, rng, isa_path):
    x = rng.standard_normal((n, k)).astype(dtype)
    w = (rng.standard_normal((k, m)) / np.sqrt(max(k, 1))).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    y, z = mn.ops.dense_forward(x, w, b, act)
    gy = rng.standard_normal((n, m)).astype(dtype)
    dx, dw, db = mn.ops.dense_backward(gy, x, w, z, act)
    assert dx.shape == (n, k) and dw.shape == (k, m) and db.shape == (m,)
    zd, xd, wd, gd = (a.astype(np.float64) for a in (z, x, w, gy))
    slope = float(np.asarray(0.01, dtype))
    fp = ref.act_grad(act, zd, slope)
    dz = gd * fp
    eps = ref.EPS[np.dtype(dtype)]
    # dZ carries the derivative's bound (6 eps mixed, + 1 for the product); the
    # GEMMs add their K-bound on |.| products of the perturbed dZ.
    dz_err = np.abs(gd) * ref.mixed_bound(lambda v: ref.act_grad(act, v, slope), zd,
                                          7 if dtype == np.float32 else 14, dtype)
    adz = np.abs(dz) + dz_err
    assert (np.abs(db - dz.sum(0)) <= (n + 1) * eps * adz.sum(0) + dz_err.sum(0)).all()
    assert (np.abs(dw - xd.T @ dz) <= gemm_bound(np.abs(xd).T, adz, dtype) + np.abs(xd).T @ dz_err).all()
    assert (np.abs(dx - dz @ wd.T) <= gemm_bound(adz, np.abs(wd).T, dtype) + dz_err @ np.abs(wd).T).all()
    dx2, dw2, db2 = mn.ops.dense_backward(gy, x, w, z, act, need_dx=False)
    assert dx2 is None
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)


@pytest.mark.parametrize("act", ACTS)
def test_backward_finite_differences(act, rng):
    # L(x, w, b) = sum(G * y) in float64; central differences with h = 1e-6:
    # truncation h^2 |L'''| / 6 ~ 1e-12 * O(10), rounding eps |L| / h ~ 1e-10 * O(10):
    # tolerance 1e-7 absolute / 1e-6 relative.
    n, k, m = 4, 5, 3
    x = rng.standard_normal((n, k))
    w = rng.standard_normal((k, m)) * 0.7
    b = rng.standard_normal(m)
    _, z = mn.ops.dense_forward(x, w, b, act)
    if act in ("relu", "leaky_relu"):
        assert np.abs(z).min() > 1e-4, "seed puts a pre-activation on the kink"
    g = rng.standard_normal((n, m))

    def loss(xx, ww, bb):
        return float(np.sum(g * mn.ops.dense_forward(xx, ww, bb, act)[0]))

    h = 1e-6
    dx, dw, db = mn.ops.dense_backward(g, x, w, z, act)
    np.testing.assert_allclose(dx, ref.central_diff(lambda v: loss(v, w, b), x.copy(), h),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, ref.central_diff(lambda v: loss(x, v, b), w.copy(), h),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, ref.central_diff(lambda v: loss(x, w, v), b.copy(), h),
                               rtol=1e-6, atol=1e-7)


def test_backward_identity_accepts_none_z_and_relu_accepts_y(rng):
    x = rng.standard_normal((6, 4))
    w = rng.standard_normal((4, 3))
    g = rng.standard_normal((6, 3))
    dx, dw, db = mn.ops.dense_backward(g, x, w, None)
    np.testing.assert_allclose(dx, g @ w.T, rtol=1e-13)
    np.testing.assert_allclose(dw, x.T @ g, rtol=1e-13)
    np.testing.assert_allclose(db, g.sum(0), rtol=1e-13)
    y, z = mn.ops.dense_forward(x, w, None, "relu")
    a = mn.ops.dense_backward(g, x, w, z, "relu")
    c = mn.ops.dense_backward(g, x, w, y, "relu")  # relu'(z) = [y > 0]
    for u, v in zip(a, c):
        np.testing.assert_array_equal(u, v)


def test_empty_batch_gives_zero_weight_gradients():
    x = np.zeros((0, 4), np.float32)
    w = np.ones((4, 3), np.float32)
    y, z = mn.ops.dense_forward(x, w, np.ones(3, np.float32), "relu")
    assert y.shape == (0, 3)
    dx, dw, db = mn.ops.dense_backward(np.zeros((0, 3), np.float32), x, w, z, "relu")
    assert dx.shape == (0, 4)
    np.testing.assert_array_equal(dw, 0)
    np.testing.assert_array_equal(db, 0)


def test_nan_propagates(rng, isa_path):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    x[1, 2] = np.nan
    w = rng.standard_normal((4, 5)).astype(np.float32)
    y, z = mn.ops.dense_forward(x, w, None, "sigmoid")
    assert np.isnan(y[1]).all() and np.isfinite(y[[0, 2]]).all()


def test_bad_inputs():
    x = np.ones((2, 3), np.float32)
    w = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 4\)"):
        mn.ops.dense_forward(x, np.ones((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"b must have shape \(4,\)"):
        mn.ops.dense_forward(x, w, np.ones(3, np.float32))
    with pytest.raises(TypeError, match="x=float32, w=float64"):
        mn.ops.dense_forward(x, w.astype(np.float64))
    with pytest.raises(TypeError, match="float32 or float64"):
        mn.ops.dense_forward(x.astype(int), w.astype(int))
    with pytest.raises(ValueError, match="unknown activation"):
        mn.ops.dense_forward(x, w, None, "softplus")
    with pytest.raises(ValueError, match="-D"):
        mn.ops.dense_forward(np.ones(3, np.float32), w)
    y, z = mn.ops.dense_forward(x, w, None, "relu")
    with pytest.raises(ValueError, match="grad_y must have shape"):
        mn.ops.dense_backward(np.ones((2, 5), np.float32), x, w, z, "relu")
    with pytest.raises(ValueError, match="z must have shape"):
        mn.ops.dense_backward(y, x, w, z[:1], "relu")
    with pytest.raises(ValueError, match="z .*required"):
        mn.ops.dense_backward(y, x, w, None, "relu")
    with pytest.raises(TypeError, match="z=float64"):
        mn.ops.dense_backward(y, x, w, z.astype(np.float64), "relu")


@pytest.mark.parametrize("env", [{"OMP_THREAD_LIMIT": "1"}, {"OMP_DYNAMIC": "true"}], ids=str)
def test_dense_correct_when_teams_come_out_smaller(env):
    """The fused layer stays exact when OpenMP may give fewer threads than
    get_num_threads() (thread limit, dynamic teams)."""
    code = r"""
import numpy as np, matnet as mn
mn.set_num_threads(2)
a = np.ones((300, 300), np.float32)
y, z = mn.ops.dense_forward(a, a, None, "relu")
dx, dw, db = mn.ops.dense_backward(a, a, a, z, "relu")
assert (y == 300).all() and (dx == 300).all() and (dw == 300).all() and (db == 300).all()
assert mn.get_num_threads() == 2
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
