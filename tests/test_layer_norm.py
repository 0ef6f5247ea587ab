"""LayerNorm over the last axis: forward vs the textbook formulas, backward vs
central finite differences (float64) and PyTorch (optional), with and without
weight/bias, odd sizes, threads, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

import matnet as mn
import numpy_reference as ref

SHAPES = [(1, 1), (3, 5), (2, 3, 17), (7, 64), (1000, 33), (4, 1)]


def tol(dtype):
    return 5e-6 if dtype == np.float32 else 1e-12


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_matches_formula(rng, shape, affine, dtype):
    x = (3.0 + 2.0 * rng.standard_normal(shape)).astype(dtype)
    w = rng.standard_normal(shape[-1]).astype(dtype) if affine else None
    b = rng.standard_normal(shape[-1]).astype(dtype) if affine else None
    y, mean, rstd = mn.ops.layer_norm(x, w, b, eps=1e-5, return_stats=True)
    wy, wmean, wrstd = ref.layer_norm(x, w, b, eps=1e-5)
    assert y.dtype == dtype and mean.shape == shape[:-1] and rstd.shape == shape[:-1]
    np.testing.assert_allclose(y, wy, atol=tol(dtype) * 10, rtol=0, err_msg=f"{shape} y")
    np.testing.assert_allclose(mean, wmean, atol=tol(dtype) * 10, err_msg=f"{shape} mean")
    np.testing.assert_allclose(rstd, wrstd, rtol=tol(dtype) * 10, err_msg=f"{shape} rstd")
    np.testing.assert_array_equal(mn.ops.layer_norm(x, w, b), y)


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("shape", [(3, 5), (2, 2, 7)], ids=str)
def test_backward_finite_differences(rng, shape, affine):
    x = rng.standard_normal(shape)
    w = rng.standard_normal(shape[-1]) if affine else None
    b = rng.standard_normal(shape[-1]) if affine else None
    g = rng.standard_normal(shape)

    def loss(x, w, b):
        return float((mn.ops.layer_norm(x, w, b, eps=1e-3) * g).sum())

    y, mean, rstd = mn.ops.layer_norm(x, w, b, eps=1e-3, return_stats=True)
    dx, dw, db = mn.ops.layer_norm_backward(g, x, w, mean, rstd)
    params = [x] + ([w, b] if affine else [])
    h = 1e-6
    for name, p, got in zip(("dx", "dw", "db"), params, (dx, dw, db)):
        num = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + h
            up = loss(x, w, b)
            p[idx] = old - h
            down = loss(x, w, b)
            p[idx] = old
            num[idx] = (up - down) / (2 * h)
        np.testing.assert_allclose(got, num, atol=1e-7, err_msg=f"{shape} {name}")
    if not affine:  # dweight, dbias of the implicit weight 1 and bias 0
        xhat = (x - mean[..., None]) * rstd[..., None]
        axes = tuple(range(x.ndim - 1))
        np.testing.assert_allclose(dw, (g * xhat).sum(axis=axes), atol=1e-12)
        np.testing.assert_allclose(db, g.sum(axis=axes), atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threads_agree(rng, threads, dtype):
    x = rng.standard_normal((3000, 48)).astype(dtype)
    w = rng.standard_normal(48).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    res = []
    for n in (1, 2):
        mn.set_num_threads(n)
        y, mean, rstd = mn.ops.layer_norm(x, w, None, return_stats=True)
        res.append((y, mean, rstd) + mn.ops.layer_norm_backward(g, x, w, mean, rstd))
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=tol(dtype), atol=tol(dtype))


@pytest.mark.torch
def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((5, 7, 33))
    w, b = rng.standard_normal(33), rng.standard_normal(33)
    g = rng.standard_normal(x.shape)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.layer_norm(tx, (33,), tw, tb, eps=1e-5)
    ty.backward(torch.tensor(g))
    y, mean, rstd = mn.ops.layer_norm(x, w, b, return_stats=True)
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-12)
    for a, t in zip(mn.ops.layer_norm_backward(g, x, w, mean, rstd), (tx, tw, tb)):
        np.testing.assert_allclose(a, t.grad.numpy(), atol=1e-11)


def test_empty_and_bad_inputs(rng):
    y, mean, rstd = mn.ops.layer_norm(np.zeros((0, 4), np.float32), return_stats=True)
    assert y.shape == (0, 4) and mean.shape == (0,)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    with pytest.raises(TypeError, match="int64"):
        mn.ops.layer_norm(x.astype(np.int64))
    with pytest.raises(TypeError, match="weight"):
        mn.ops.layer_norm(x, np.ones(4))
    with pytest.raises(ValueError, match=r"\(5,\)"):
        mn.ops.layer_norm(x, np.ones(5, np.float32))
    with pytest.raises(ValueError, match="scalar"):
        mn.ops.layer_norm(np.float32(1.0))
    with pytest.raises(ValueError, match="empty"):
        mn.ops.layer_norm(np.zeros((3, 0), np.float32))
    with pytest.raises(ValueError, match="eps"):
        mn.ops.layer_norm(x, eps=-1.0)
    y, mean, rstd = mn.ops.layer_norm(x, return_stats=True)
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        mn.ops.layer_norm_backward(np.zeros((3, 5), np.float32), x, None, mean, rstd)
    with pytest.raises(ValueError, match="mean"):
        mn.ops.layer_norm_backward(y, x, None, mean[:2], rstd)
