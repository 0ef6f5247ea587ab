"""Losses: values and gradients vs float64 references and central finite
differences, huge logits, label smoothing, NaN, batch of 1, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

import matnet as mn
import numpy_reference as ref


def ce_reference(logits, labels, s=0.0):
    x = logits.astype(np.float64)
    n, c = x.shape
    lp = ref.log_softmax(x)
    q = np.full((n, c), s / c)
    q[np.arange(n), labels] += 1 - s
    loss = -(q * lp).sum() / n
    grad = (np.exp(lp) - q) / n
    return loss, grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,c", [(1, 1), (1, 10), (7, 3), (128, 10), (33, 1000)], ids=str)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_matches_reference(n, c, smoothing, dtype, rng, isa_path):
    x = (rng.standard_normal((n, c)) * 3).astype(dtype)
    y = rng.integers(0, c, n)
    loss, grad = mn.losses.cross_entropy(x, y, label_smoothing=smoothing)
    want_loss, want_grad = ce_reference(x, y, smoothing)
    assert isinstance(loss, float) and grad.dtype == np.dtype(dtype) and grad.shape == (n, c)
    eps = ref.EPS[np.dtype(dtype)]
    # loss: logsumexp and the target sum, accumulated in double from dtype
    # values: a few eps of dtype per row magnitude (c terms in the sums).
    scale = np.abs(x.astype(np.float64)).max() + 1
    assert abs(loss - want_loss) <= (8 + c) * eps * scale
    # grad: softmax (<= (4 + c) eps relative, the exp of x - max) minus q, / n
    assert (np.abs(grad - want_grad) <= (6 + c + 2 * scale) * eps * (np.abs(want_grad) + 1.0 / n)).all()


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_grad_finite_differences(smoothing, rng):
    # float64; h = 1e-6; truncation h^2 |L'''| ~ 1e-12, rounding eps |L| / h ~ 1e-9.
    x = rng.standard_normal((5, 4))
    y = rng.integers(0, 4, 5)
    _, grad = mn.losses.cross_entropy(x, y, label_smoothing=smoothing)
    fd = ref.central_diff(lambda v: mn.losses.cross_entropy(v, y, label_smoothing=smoothing)[0],
                          x.copy(), 1e-6)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_huge_logits(dtype, isa_path):
    big = float(np.finfo(dtype).max) / 4
    x = np.array([[big, 0.0, -big], [0.0, big, big], [1e4, -1e4, 0.0]], dtype)
    y = np.array([0, 0, 2])
    loss, grad = mn.losses.cross_entropy(x, y)
    # row 0: correct and certain -> 0; row 1: -log(softmax)[0] = big + log 2; row 2: 1e4
    want = (0.0 + (big + np.log(2.0)) + 1e4) / 3
    assert np.isfinite(loss) and abs(loss - want) <= 1e-6 * want
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(grad, [[0, 0, 0], [-1 / 3, 1 / 6, 1 / 6], [1 / 3, 0, -1 / 3]],
                               atol=1e-7)


def test_cross_entropy_nan_and_errors():
    x = np.array([[np.nan, 1.0], [0.0, 1.0]])
    loss, grad = mn.losses.cross_entropy(x, np.array([0, 1]))
    assert np.isnan(loss) and np.isnan(grad[0]).all() and np.isfinite(grad[1]).all()
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="label 4 at row 1"):
        mn.losses.cross_entropy(x, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="label -1"):
        mn.losses.cross_entropy(x, np.array([0, -1, 1]))
    with pytest.raises(TypeError, match="integer"):
        mn.losses.cross_entropy(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        mn.losses.cross_entropy(x, np.array([0, 1]))
    with pytest.raises(ValueError, match="empty"):
        mn.losses.cross_entropy(np.zeros((0, 4)), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="label_smoothing"):
        mn.losses.cross_entropy(x, np.array([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(TypeError, match="float32 or float64"):
        mn.losses.cross_entropy(x.astype(int), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="2-D"):
        mn.losses.cross_entropy(np.zeros(4), np.array([0]))
    # other integer dtypes are accepted
    a = mn.losses.cross_entropy(x, np.array([0, 1, 2], np.uint8))[0]
    assert a == pytest.approx(np.log(4.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1,), (7,), (4, 5), (2, 3, 4), (100_000,)], ids=str)
def test_mse_and_bce_match_reference(shape, dtype, rng, isa_path):
    a = (rng.standard_normal(shape) * 3).astype(dtype)
    t = rng.standard_normal(shape).astype(dtype)
    n = a.size
    eps = ref.EPS[np.dtype(dtype)]
    loss, grad = mn.losses.mse(a, t)
    d = a.astype(np.float64) - t
    # one rounding of the difference (in dtype) per element, squared: 2 eps relative;
    # the sum of n positive terms in double: n eps64 relative (sequential order).
    sum_err = n * ref.EPS[np.dtype(np.float64)]
    assert abs(loss - np.mean(d * d)) <= (3 * eps + sum_err) * np.mean(d * d)
    assert (np.abs(grad - 2 * d / n) <= 3 * eps * np.abs(2 * d / n)).all()
    u = rng.uniform(0, 1, shape).astype(dtype)
    loss, grad = mn.losses.binary_cross_entropy(a, u)
    x = a.astype(np.float64)
    want = np.mean(np.maximum(x, 0) - x * u + np.log1p(np.exp(-np.abs(x))))
    # log1p/exp in double from dtype inputs; each term a few eps of its magnitude
    assert abs(loss - want) <= (8 * eps + sum_err) * np.mean(np.abs(x) + 1)
    assert (np.abs(grad - (ref.sigmoid(x) - u) / n) <= 8 * eps / n).all()


def test_mse_bce_finite_differences(rng):
    a = rng.standard_normal((3, 4))
    t = rng.standard_normal((3, 4))
    u = rng.uniform(0, 1, (3, 4))
    for fn, tgt in ((mn.losses.mse, t), (mn.losses.binary_cross_entropy, u)):
        _, grad = fn(a, tgt)
        fd = ref.central_diff(lambda v: fn(v, tgt)[0], a.copy(), 1e-6)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9, err_msg=fn.__name__)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_huge_logits_are_stable(dtype, isa_path):
    x = np.array([1e4, -1e4, 1e30, -1e30, 0.0], dtype)
    t = np.array([1.0, 0.0, 0.0, 1.0, 0.5], dtype)
    loss, grad = mn.losses.binary_cross_entropy(x, t)
    want = (0 + 0 + 1e30 + 1e30 + np.log(2)) / 5
    assert np.isfinite(loss) and abs(loss - want) <= 1e-6 * want
    np.testing.assert_allclose(grad, np.array([0, 0, 1, -1, 0]) / 5, atol=1e-7)


def test_mse_bce_errors():
    with pytest.raises(ValueError, match=r"pred \(3,\) and target \(4,\)"):
        mn.losses.mse(np.ones(3), np.ones(4))
    with pytest.raises(TypeError, match="pred=float32, target=float64"):
        mn.losses.mse(np.ones(3, np.float32), np.ones(3))
    with pytest.raises(ValueError, match="empty"):
        mn.losses.mse(np.ones(0), np.ones(0))
    with pytest.raises(ValueError, match="same shape"):
        mn.losses.binary_cross_entropy(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="empty"):
        mn.losses.binary_cross_entropy(np.ones((0, 3)), np.ones((0, 3)))
    loss, grad = mn.losses.mse(np.array([np.nan, 1.0]), np.array([0.0, 0.0]))
    assert np.isnan(loss) and np.isnan(grad[0]) and grad[1] == 1.0


@pytest.mark.torch
def test_losses_match_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((9, 6))
    y = rng.integers(0, 6, 9)
    for s in (0.0, 0.3):
        xt = torch.tensor(x, requires_grad=True)
        lt = torch.nn.functional.cross_entropy(xt, torch.tensor(y), label_smoothing=s)
        lt.backward()
        loss, grad = mn.losses.cross_entropy(x, y, label_smoothing=s)
        assert loss == pytest.approx(lt.item(), rel=1e-12)
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-10, atol=1e-14)
    u = rng.uniform(0, 1, (9, 6))
    xt = torch.tensor(x, requires_grad=True)
    lt = torch.nn.functional.binary_cross_entropy_with_logits(xt, torch.tensor(u))
    lt.backward()
    loss, grad = mn.losses.binary_cross_entropy(x, u)
    assert loss == pytest.approx(lt.item(), rel=1e-12)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-10, atol=1e-14)
