"""Containers and sequence layers: Sequential nested as a layer, Residual,
Dense on (..., features), PositionalEmbedding, SequenceMean, LayerNorm and
MultiHeadAttention: forward against NumPy, backward against central
differences in float64, save/load round trips, and a pre-norm transformer
block trained a few steps.

Finite differences: f(x ± h) with h = 1e-6 in float64 has truncation error
h²/6·|f'''| (~1e-13 for these O(1)-curvature maps) and rounding error
~eps·|f|/h (~1e-10·|f|); gradients are compared with a tolerance of
1e-7·(1 + max|g|), two orders above both.
"""

from __future__ import annotations

import numpy as np
import pytest

import matnet as mn
from matnet import layers as L

import numpy_reference as ref

H = 1e-6


def _grad_check(layer, x, rng, *, check_input=True):
    """Backprop of sum(w_out * layer(x)) against central differences, for x
    and every parameter."""
    y = layer.forward(x, training=True)
    w_out = rng.standard_normal(y.shape)
    dx = layer.backward(w_out, True)
    grads = {k: None if g is None else g.copy() for k, g in layer.grads().items()}

    def f(_):
        return float(np.sum(layer.forward(x, training=True) * w_out))

    def tol(g):
        return 1e-7 * (1 + float(np.abs(g).max()))

    if check_input:
        num = ref.central_diff(f, x, H)
        assert np.abs(dx - num).max() <= tol(num), "d input"
    for name, p in layer.params().items():
        num = ref.central_diff(f, p, H)
        assert grads[name] is not None, name
        assert np.abs(grads[name] - num).max() <= tol(num), name


def _f64(*layers):
    return layers


def test_dense_on_leading_dims_matches_2d(rng):
    dense = L.Dense(5, 3, "tanh", seed=0, dtype=np.float64)
    x = rng.standard_normal((2, 4, 5))
    y = dense.forward(x)
    assert y.shape == (2, 4, 3)
    np.testing.assert_array_equal(y, dense.forward(x.reshape(8, 5)).reshape(2, 4, 3))
    assert dense.output_shape((4, 5)) == (4, 3)
    _grad_check(dense, x, rng)
    with pytest.raises(ValueError):
        dense.output_shape((4, 6))


def test_residual_and_nested_sequential_gradients(rng):
    inner = mn.Sequential([L.Dense(6, 6, "gelu", seed=1, dtype=np.float64), L.Tanh(),
                           L.Dense(6, 6, seed=2, dtype=np.float64)])
    block = L.Residual(inner)
    x = rng.standard_normal((5, 6))
    y = block.forward(x)
    np.testing.assert_allclose(y, x + inner.forward(x), rtol=0, atol=0)
    assert sorted(block.params()) == ["layer.layers.0.W", "layer.layers.0.b",
                                      "layer.layers.2.W", "layer.layers.2.b"]
    _grad_check(block, x, rng)
    with pytest.raises(ValueError, match="same shape"):
        L.Residual(L.Dense(6, 3)).output_shape((6,))


def test_positional_embedding_and_sequence_mean(rng):
    pos = L.PositionalEmbedding(4, 3, seed=0, dtype=np.float64)
    x = rng.standard_normal((2, 4, 3))
    np.testing.assert_array_equal(pos.forward(x), x + pos.P)
    _grad_check(pos, x, rng)
    mean = L.SequenceMean()
    np.testing.assert_allclose(mean.forward(x), x.mean(axis=1), rtol=1e-15)
    _grad_check(mean, x, rng)
    with pytest.raises(ValueError):
        pos.forward(rng.standard_normal((2, 5, 3)))


def test_layer_norm_matches_textbook_and_gradients(rng):
    ln = L.LayerNorm(7, dtype=np.float64)
    ln.weight[:] = rng.standard_normal(7)
    ln.bias[:] = rng.standard_normal(7)
    x = rng.standard_normal((3, 5, 7)) * 3 + 1
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    want = (x - mu) / np.sqrt(var + 1e-5) * ln.weight + ln.bias
    np.testing.assert_allclose(ln.forward(x), want, rtol=1e-12, atol=1e-12)
    _grad_check(ln, x, rng)


def _attention_reference(x, mha):
    n, length, e = x.shape
    h, d = mha.num_heads, e // mha.num_heads
    qkv = x @ mha.W_qkv + mha.b_qkv
    q, k, v = (qkv[..., i * e:(i + 1) * e].reshape(n, length, h, d).transpose(0, 2, 1, 3)
               for i in range(3))
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d)
    if mha.causal:
        s = np.where(np.tril(np.ones((length, length), bool)), s, -np.inf)
    o = ref.softmax(s, axis=-1) @ v
    return o.transpose(0, 2, 1, 3).reshape(n, length, e) @ mha.W_o + mha.b_o


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_forward_and_gradients(rng, causal):
    mha = L.MultiHeadAttention(8, 2, causal=causal, seed=0, dtype=np.float64)
    mha.b_qkv[:] = rng.standard_normal(24) * 0.1
    mha.b_o[:] = rng.standard_normal(8) * 0.1
    x = rng.standard_normal((2, 5, 8))
    np.testing.assert_allclose(mha.forward(x), _attention_reference(x, mha), rtol=1e-10,
                               atol=1e-12)
    _grad_check(mha, x, rng)


def _transformer(dtype=np.float64, seed=0):
    return mn.Sequential([
        L.Dense(4, 8, seed=seed, dtype=dtype), L.PositionalEmbedding(3, 8, seed=seed, dtype=dtype),
        L.Residual(mn.Sequential([L.LayerNorm(8, dtype=dtype),
                                  L.MultiHeadAttention(8, 2, seed=seed, dtype=dtype)])),
        L.Residual(mn.Sequential([L.LayerNorm(8, dtype=dtype), L.Dense(8, 16, seed=seed, dtype=dtype),
                                  L.GELU(), L.Dense(16, 8, seed=seed, dtype=dtype)])),
        L.LayerNorm(8, dtype=dtype), L.SequenceMean(), L.Dense(8, 3, seed=seed, dtype=dtype),
    ])


def test_transformer_block_gradients_and_round_trip(rng, tmp_path):
    model = _transformer()
    x = rng.standard_normal((2, 3, 4))
    _grad_check(model, x, rng)
    assert model.output_shape((3, 4)) == (3,)
    for name in ("t.safetensors", "t.npz"):
        model.save(tmp_path / name)
        loaded = mn.load_model(tmp_path / name)
        assert loaded.get_config() == model.get_config()
        np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    summary = model.summary()
    assert "Residual" in summary and "MultiHeadAttention" not in summary.split("Residual")[0]


def test_transformer_trains(rng):
    x = rng.standard_normal((64, 3, 4)).astype(np.float32)
    y = (x[:, 0, 0] > 0).astype(np.int64) + (x[:, 2, 1] > 0)
    model = _transformer(np.float32)
    model.compile(optimizer=mn.optim.Adam(3e-3), loss="cross_entropy")
    history = model.fit(x, y, epochs=30, batch_size=16, seed=0, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
