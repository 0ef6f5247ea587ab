"""Layers: construction, forward against NumPy, and whole-model gradients by finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import matnet as mn
from matnet import layers as L
import numpy_reference as ref


# ------------------------------------------------------------------ Dense


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_holds_w_k_by_m_and_zero_bias(dtype):
    d = L.Dense(7, 3, seed=0, dtype=dtype)
    assert d.W.shape == (7, 3) and d.b.shape == (3,)
    assert d.W.dtype == dtype and d.b.dtype == dtype and d.W.flags.c_contiguous
    assert not d.b.any()
    assert d.dW is None and d.db is None


@pytest.mark.parametrize("init, std", [
    ("he", lambda k, m: np.sqrt(2 / k)),
    ("he_uniform", lambda k, m: np.sqrt(2 / k)),
    ("glorot", lambda k, m: np.sqrt(2 / (k + m))),
    ("glorot_normal", lambda k, m: np.sqrt(2 / (k + m))),
    ("lecun", lambda k, m: np.sqrt(1 / k)),
])
def test_dense_init_has_the_stated_variance(init, std):
    k, m = 300, 200
    w = L.Dense(k, m, init=init, seed=1).W
    # 60000 draws: the sample std is within ~0.3% (1/sqrt(2n)) of the truth;
    # 3% cannot be met by a wrong formula (the nearest differ by >= 20%).
    assert abs(w.std() / std(k, m) - 1) < 0.03
    assert abs(w.mean()) < 5 * std(k, m) / np.sqrt(w.size)


def test_dense_seed_reproduces_and_differs():
    a, b, c = L.Dense(5, 4, seed=3), L.Dense(5, 4, seed=3), L.Dense(5, 4, seed=4)
    np.testing.assert_array_equal(a.W, b.W)
    assert not np.array_equal(a.W, c.W)
    assert not L.Dense(5, 4, init="zeros").W.any()


@pytest.mark.parametrize("kwargs, exc", [
    (dict(in_features=0, out_features=3), ValueError),
    (dict(in_features=-2, out_features=3), ValueError),
    (dict(in_features=2.5, out_features=3), TypeError),
    (dict(in_features=True, out_features=3), TypeError),
    (dict(in_features=2, out_features=3, activation="softplus"), ValueError),
    (dict(in_features=2, out_features=3, init="orthogonal"), ValueError),
    (dict(in_features=2, out_features=3, dtype=np.int32), TypeError),
    (dict(in_features=2, out_features=3, dtype="float16"), TypeError),
    (dict(in_features=2, out_features=3, seed=-1), ValueError),
    (dict(in_features=2, out_features=3, seed="x"), TypeError),
    (dict(in_features=2, out_features=3, use_bias=1), TypeError),
    (dict(in_features=1 << 30, out_features=3), ValueError),
], ids=lambda v: str(v) if not isinstance(v, dict) else ",".join(f"{k}={v[k]}" for k in v))
def test_dense_rejects_bad_settings(kwargs, exc):
    with pytest.raises(exc):
        L.Dense(**kwargs)


@pytest.mark.parametrize("act", [a for a in L.DENSE_ACTIVATIONS if a != "gelu_tanh"])
def test_dense_forward_backward_match_numpy_float64(act, rng):
    d = L.Dense(9, 5, activation=act, seed=2, dtype=np.float64)
    d.b[:] = rng.standard_normal(5)
    x = rng.standard_normal((6, 9))
    y = d.forward(x)
    want, z = ref.dense_forward(x, d.W, d.b, act)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-13)
    g = rng.standard_normal(y.shape)
    dx = d.backward(g)
    rdx, rdw, rdb = ref.dense_backward(g, x, d.W, z, act)
    for got, exp, name in ((dx, rdx, "dx"), (d.dW, rdw, "dW"), (d.db, rdb, "db")):
        np.testing.assert_allclose(got, exp, rtol=1e-11, atol=1e-12, err_msg=name)


def test_dense_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError, match="forward"):
        L.Dense(2, 2).backward(np.zeros((1, 2), np.float32))


def test_dense_without_bias_has_only_w():
    d = L.Dense(3, 2, use_bias=False, seed=0, dtype=np.float64)
    assert list(d.params()) == ["W"] and d.b is None
    x = np.ones((4, 3))
    np.testing.assert_allclose(d.forward(x), x @ d.W)
    d.backward(np.ones((4, 2)))
    assert list(d.grads()) == ["W"] and d.dW.shape == (3, 2)


@pytest.mark.parametrize("layer", [
    L.Dense(4, 3, activation="leaky_relu", negative_slope=0.2, init="glorot", seed=5,
            use_bias=False, dtype=np.float64),
    L.LeakyReLU(0.3), L.GELU("tanh"), L.Softmax(axis=1), L.LogSoftmax(), L.Dropout(0.25, seed=2),
    L.Flatten(), L.ReLU(), L.Sigmoid(), L.Tanh(), L.SiLU(),
], ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    cfg = layer.get_config()
    again = type(layer).from_config(cfg)
    assert again.get_config() == cfg
    assert L.LAYER_TYPES[type(layer).__name__] is type(layer)
    assert repr(layer).startswith(type(layer).__name__ + "(")


# ----------------------------------------------------------- other layers


@pytest.mark.parametrize("layer, f", [
    (L.ReLU(), lambda x: np.maximum(x, 0)),
    (L.LeakyReLU(0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    (L.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (L.Tanh(), np.tanh),
    (L.SiLU(), lambda x: x / (1 + np.exp(-x))),
    (L.GELU(), lambda x: ref.activation(x, "gelu")),
    (L.GELU("tanh"), lambda x: ref.activation(x, "gelu_tanh")),
    (L.Softmax(), ref.softmax),
    (L.LogSoftmax(), lambda x: np.log(ref.softmax(x))),
], ids=lambda v: type(v).__name__ if isinstance(v, L.Layer) else "")
def test_activation_layers_forward_float64(layer, f, rng):
    x = rng.standard_normal((5, 7)) * 3
    np.testing.assert_allclose(layer.forward(x), f(x), rtol=1e-12, atol=1e-14)


def test_activation_options_are_checked():
    with pytest.raises(ValueError):
        L.GELU("erf")
    with pytest.raises(ValueError):
        L.LeakyReLU(-1.0)
    with pytest.raises(ValueError):
        L.Softmax(axis=0)
    with pytest.raises(TypeError):
        L.Softmax(axis=1.0)
    with pytest.raises(ValueError):
        L.Dropout(1.0)
    with pytest.raises(ValueError):
        L.Dropout(-0.1)


def test_dropout_is_identity_in_evaluation_and_masks_in_training(rng):
    x = rng.standard_normal((200, 50)).astype(np.float32)
    d = L.Dropout(0.3, seed=0)
    assert d.forward(x) is x
    assert d.backward(x) is x
    y = d.forward(x, training=True)
    kept = y != 0
    # 10000 Bernoulli(0.7) draws: the kept fraction is within 0.7 +- 0.02 (4.4 sigma).
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], x[kept] / np.float32(0.7), rtol=1e-6)
    g = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(d.backward(g), np.where(kept, g / np.float32(0.7), 0), rtol=1e-6)
    # Same seed, same masks; another seed, other masks.
    again = L.Dropout(0.3, seed=0).forward(x, training=True)
    np.testing.assert_array_equal(again, y)
    assert not np.array_equal(L.Dropout(0.3, seed=1).forward(x, training=True), y)


def test_flatten_reshapes_and_restores(rng):
    x = rng.standard_normal((3, 2, 4))
    f = L.Flatten()
    assert f.forward(x).shape == (3, 8)
    assert f.output_shape((2, 4)) == (8,)
    assert f.backward(np.ones((3, 8))).shape == (3, 2, 4)


# ------------------------------------------------ whole-model gradient checks


def _numeric_grad(f, arr, h=1e-6):
    """Central differences of the scalar f() w.r.t. every element of arr (in place)."""
    g = np.zeros_like(arr)
    it = np.nditer(arr, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = arr[i]
        arr[i] = old + h
        fp = f()
        arr[i] = old - h
        fm = f()
        arr[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


def _targets(loss, rng, n, out):
    if loss == "cross_entropy":
        return rng.integers(0, out, n)
    if loss == "binary_cross_entropy":
        return rng.random((n, out))
    return rng.standard_normal((n, out))


ARCHITECTURES = {
    "relu-linear/ce": (lambda: [L.Dense(6, 8, "relu", seed=0, dtype=np.float64),
                                L.Dense(8, 4, seed=1, dtype=np.float64)], "cross_entropy"),
    "tanh-gelu-sigmoid/ce": (lambda: [L.Dense(6, 8, "tanh", seed=0, dtype=np.float64),
                                      L.Dense(8, 7, "gelu", seed=1, dtype=np.float64),
                                      L.Dense(7, 4, "sigmoid", seed=2, dtype=np.float64)],
                             "cross_entropy"),
    "silu-leaky-gelutanh/mse": (lambda: [
        L.Dense(6, 8, "silu", seed=0, dtype=np.float64),
        L.Dense(8, 8, "leaky_relu", negative_slope=0.2, seed=1, dtype=np.float64),
        L.Dense(8, 4, "gelu_tanh", seed=2, use_bias=False, dtype=np.float64)], "mse"),
    "activation-layers/bce": (lambda: [
        L.Dense(6, 8, seed=0, dtype=np.float64), L.Tanh(),
        L.Dense(8, 8, seed=1, dtype=np.float64), L.GELU("tanh"),
        L.Dense(8, 8, seed=2, dtype=np.float64), L.SiLU(),
        L.Dense(8, 8, seed=3, dtype=np.float64), L.LeakyReLU(0.1),
        L.Dense(8, 8, seed=4, dtype=np.float64), L.Sigmoid(),
        L.Dense(8, 8, seed=5, dtype=np.float64), L.GELU(),
        L.Dense(8, 3, seed=6, dtype=np.float64)], "binary_cross_entropy"),
    "flatten-softmax/mse": (lambda: [L.Flatten(), L.Dense(6, 5, seed=0, dtype=np.float64),
                                     L.ReLU(), L.Dense(5, 4, seed=1, dtype=np.float64),
                                     L.Softmax()], "mse"),
    "logsoftmax-dropout-eval/mse": (lambda: [L.Dense(6, 5, "tanh", seed=0, dtype=np.float64),
                                             L.Dropout(0.5, seed=0),
                                             L.Dense(5, 4, seed=1, dtype=np.float64),
                                             L.LogSoftmax()], "mse"),
}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_whole_model_gradients_match_finite_differences(arch, rng):
    make, loss_name = ARCHITECTURES[arch]
    model = mn.Sequential(make())
    for layer in model.layers:
        if isinstance(layer, L.Dense) and layer.use_bias:
            layer.b[:] = 0.1 * rng.standard_normal(layer.b.shape)
    in_shape = (3, 2) if isinstance(model.layers[0], L.Flatten) else (6,)
    x = rng.standard_normal((5, *in_shape))
    y = _targets(loss_name, rng, 5, model.output_shape(in_shape)[0])
    loss_fn = mn.metrics.LOSSES[loss_name]

    def loss():
        # Evaluation mode: Dropout is the identity, so f is deterministic.
        return loss_fn(model.forward(x), y)[0]

    _, grad = loss_fn(model.forward(x), y)
    dx = model.backward(grad)
    analytic = [g.copy() for g in model.gradients()]
    # Central differences with h = 1e-6 in float64: truncation ~h^2 |f'''| ~ 1e-12,
    # rounding ~eps |f| / h ~ 1e-10; the kernels' own float64 error is ~1e-15.
    # So 1e-7 absolute (+ 1e-5 relative) separates right from wrong by orders.
    for (name, p), g in zip(model.named_parameters(), analytic):
        np.testing.assert_allclose(g, _numeric_grad(loss, p), rtol=1e-5, atol=1e-7,
                                   err_msg=f"{arch}: d loss / d {name}")
    np.testing.assert_allclose(dx, _numeric_grad(loss, x), rtol=1e-5, atol=1e-7,
                               err_msg=f"{arch}: d loss / d x")


def test_gradient_check_catches_a_wrong_gradient(rng):
    # The finite-difference comparison above must be able to fail.
    model = mn.Sequential(ARCHITECTURES["relu-linear/ce"][0]())
    x, y = rng.standard_normal((5, 6)), rng.integers(0, 4, 5)
    _, grad = mn.losses.cross_entropy(model.forward(x), y)
    model.backward(grad * 1.01)
    p = model.layers[0].W
    numeric = _numeric_grad(lambda: mn.losses.cross_entropy(model.forward(x), y)[0], p)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(model.layers[0].dW, numeric, rtol=1e-5, atol=1e-7)
