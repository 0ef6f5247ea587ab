"""matnet.analysis on models whose Hessian is known in closed form.

A linear model y = X w + b under MSE (mean over N samples, one output) has
the constant Hessian H = 2/N Aᵀ A with A = [X, 1] (parameters W then b), so
its spectrum, λ_max, κ and the stable step 2/λ_max are known exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

import matnet as mn
from matnet import analysis


def linear_problem(rng, n=64, d=5, dtype=np.float64):
    x = rng.standard_normal((n, d)) * np.array([3.0, 1.0, 0.5, 2.0, 1.5])[:d]
    y = (x @ rng.standard_normal((d, 1)) + 0.3 + 0.1 * rng.standard_normal((n, 1)))
    model = mn.Sequential([mn.layers.Dense(d, 1, seed=1, dtype=dtype)])
    model.compile(optimizer=mn.optim.SGD(lr=0.01), loss="mse", metrics=[])
    a = np.column_stack([x, np.ones(n)])
    return model, x.astype(dtype), y.astype(dtype), 2.0 / n * a.T @ a


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hessian_of_linear_regression(dtype, rng):
    model, x, y, h_exact = linear_problem(rng, dtype=dtype)
    before = [p.copy() for p in model.parameters()]
    h = analysis.hessian(model, x, y)
    # x, y rounded to dtype: compare with the Hessian of the rounded data
    a = np.column_stack([x.astype(float), np.ones(len(x))])
    np.testing.assert_allclose(h, 2.0 / len(x) * a.T @ a, rtol=1e-6, atol=1e-7)
    for p, q in zip(model.parameters(), before):  # the model is not modified
        np.testing.assert_array_equal(p, q)


def test_sharpness_and_condition_number(rng):
    model, x, y, h = linear_problem(rng)
    w = np.linalg.eigvalsh(h)
    lam, max_lr = analysis.sharpness(model, x, y, iters=6)  # 6 = P: Lanczos is exact
    np.testing.assert_allclose(lam, w[-1], rtol=1e-6)
    np.testing.assert_allclose(max_lr, 2 / w[-1], rtol=1e-6)
    lam20, _ = analysis.sharpness(model, x, y)               # default iters, capped at P
    np.testing.assert_allclose(lam20, w[-1], rtol=1e-6)
    np.testing.assert_allclose(analysis.condition_number(model, x, y), w[-1] / w[0], rtol=1e-5)


def test_max_lr_separates_convergence_from_divergence(rng):
    """The seeds' rule: full-batch gradient descent converges just below
    2/λ_max and diverges just above it."""
    model, x, y, h = linear_problem(rng)
    _, max_lr = analysis.sharpness(model, x, y)
    start = [p.copy() for p in model.parameters()]

    def final_loss(lr):
        for layer in model.layers:
            layer.set_params({"W": start[0], "b": start[1]})
        opt = mn.optim.SGD(lr=lr)
        for _ in range(300):
            out = model.forward(x)
            loss, grad = mn.losses.mse(out, y)
            model.backward(grad, need_input_grad=False)
            opt.step(model)
        return mn.losses.mse(model.forward(x), y)[0]

    initial = mn.losses.mse(model.forward(x), y)[0]
    assert final_loss(0.95 * max_lr) < initial
    assert final_loss(1.05 * max_lr) > 1e3 * initial


def test_gradcheck(rng):
    x = rng.standard_normal((16, 4))
    labels = rng.integers(0, 3, 16)
    model = mn.Sequential([mn.layers.Dense(4, 6, activation="tanh", seed=0, dtype=np.float64),
                           mn.layers.Dense(6, 3, seed=1, dtype=np.float64)])
    model.compile(loss="cross_entropy")
    err = analysis.gradcheck(model, x, labels)
    assert set(err) == {"layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b"}
    assert max(err.values()) < 1e-5, err


def test_errors(rng):
    model, x, y, _ = linear_problem(rng)
    with pytest.raises(ValueError, match="not compiled"):
        analysis.hessian(mn.Sequential([mn.layers.Dense(5, 1)]), x, y)
    with pytest.raises(ValueError, match="iters"):
        analysis.sharpness(model, x, y, iters=0)
    with pytest.raises(TypeError, match="Sequential"):
        analysis.hessian(object(), x, y)
    big = mn.Sequential([mn.layers.Dense(100, 100)])
    with pytest.raises(ValueError, match="sharpness"):
        analysis.hessian(big, np.zeros((2, 100)), np.zeros((2, 100)), loss="mse")
