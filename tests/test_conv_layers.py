"""Conv2D, pooling, BatchNorm and Reshape layers: agreement with mn.ops, training,
save/load with buffers (safetensors, npz, weights in matnet and torch layouts),
summary(), and the CNN of ``python -m matnet train --model cnn``."""

from __future__ import annotations

import numpy as np
import pytest

import matnet as mn
from matnet import layers as L


def _cnn(dtype=np.float32, bn_affine=True) -> mn.Sequential:
    model = mn.Sequential([
        L.Reshape((2, 6, 5)),
        L.Conv2D(2, 4, 3, padding=1, activation="relu", seed=0, dtype=dtype),
        L.BatchNorm(4, momentum=0.2, affine=bn_affine, dtype=dtype),
        L.MaxPool2D(2, stride=1),
        L.Conv2D(4, 6, (2, 3), stride=(1, 2), padding="valid", groups=2, activation="tanh",
                 seed=1, dtype=dtype),
        L.AvgPool2D(2, padding=1, count_include_pad=False),
        L.Conv2D(6, 6, 1, groups=6, seed=2, dtype=dtype),
        L.GlobalAvgPool2D(),
        L.BatchNorm(6, dtype=dtype),
        L.Dense(6, 3, seed=3, dtype=dtype),
    ])
    rng = np.random.default_rng(5)
    model.forward(rng.standard_normal((16, 60)).astype(dtype), training=True)  # running stats
    for layer in model.layers:
        if isinstance(layer, L.BatchNorm) and layer.affine:
            layer.gamma[:] = rng.uniform(0.5, 1.5, layer.gamma.shape)
            layer.beta[:] = rng.standard_normal(layer.beta.shape) * 0.1
    return model


def test_layer_types_and_configs_round_trip():
    for name in ("Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "BatchNorm", "Reshape"):
        assert name in L.LAYER_TYPES and name in L.__all__
    model = _cnn()
    again = mn.Sequential.from_config(model.get_config())
    assert again.get_config() == model.get_config()


def test_conv_layer_is_the_op_and_backward_fills_gradients(rng):
    layer = L.Conv2D(3, 5, 3, stride=2, padding=1, activation="relu", seed=0, dtype=np.float64)
    assert layer.W.shape == (5, 3, 3, 3) and layer.b.shape == (5,)
    x = rng.standard_normal((2, 3, 7, 7))
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y, mn.ops.conv2d(x, layer.W, layer.b, 2, 1, activation="relu"))
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g)
    _, z = mn.ops.conv2d_forward(x, layer.W, layer.b, 2, 1, activation="relu")
    want = mn.ops.conv2d_backward(g, x, layer.W, z, 2, 1, activation="relu")
    for got, exp in zip((dx, layer.dW, layer.db), want):
        np.testing.assert_allclose(got, exp, rtol=1e-13)
    # backward after an evaluation forward recomputes z
    layer.forward(x)
    np.testing.assert_allclose(layer.backward(g), dx, rtol=1e-13)
    assert layer.output_shape((3, 7, 7)) == y.shape[1:]
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        layer.output_shape((4, 7, 7))


@pytest.mark.parametrize("kwargs, exc", [
    (dict(groups=2), ValueError), (dict(kernel_size=0), ValueError),
    (dict(padding="same", stride=2), ValueError), (dict(stride=(1, 2, 3)), ValueError),
    (dict(activation="swish"), ValueError), (dict(dtype=np.int32), TypeError),
    (dict(in_channels=2.5), TypeError),
])
def test_conv_layer_bad_arguments(kwargs, exc):
    args = dict(in_channels=3, out_channels=4, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(exc):
        L.Conv2D(**args)


def test_batchnorm_layer_modes_and_batch_one(rng):
    bn = L.BatchNorm(3, dtype=np.float64)
    x = rng.standard_normal((8, 3, 2, 2)) * 2 + 1
    y = bn.forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    assert bn.num_batches_tracked == 1
    np.testing.assert_allclose(bn.running_mean, 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-12)
    ye = bn.forward(x, training=False)
    np.testing.assert_allclose(ye, (x - bn.running_mean[:, None, None])
                               / np.sqrt(bn.running_var[:, None, None] + 1e-5), rtol=1e-12)
    bn.backward(np.ones_like(x))
    assert bn.dgamma.shape == (3,) and set(bn.grads()) == {"gamma", "beta"}
    bn1 = L.BatchNorm(3, dtype=np.float64)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn1.forward(np.ones((1, 3)), training=True)
    assert bn1.forward(np.ones((1, 3))).shape == (1, 3)
    with pytest.raises(ValueError, match=r"\(N, 3, \.\.\.\)"):
        bn1.forward(np.ones((4, 2)))


def test_summary_shows_shapes_and_counts():
    text = _cnn().summary((60,))
    for piece in ("Conv2D(2->4, 3x3, relu)", "(None, 4, 6, 5)", "(None, 4, 5, 4)",
                  "(None, 6, 4, 1)", "(None, 6)", "BatchNorm(4)", "(None, 3)", "76", "Total params"):
        assert piece in text, piece
    assert "?" in _cnn().summary()  # no input shape: unknown


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["m.safetensors", "m.npz"])
def test_save_load_keeps_weights_and_buffers(tmp_path, dtype, name, rng):
    model = _cnn(dtype)
    model.compile(optimizer="adam", loss="cross_entropy")
    x = rng.standard_normal((7, 60)).astype(dtype)
    model.fit(x, np.arange(7) % 3, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / name, include_optimizer=True)
    loaded = mn.load_model(tmp_path / name)
    assert loaded.get_config() == model.get_config()
    for (n1, a), (n2, b) in zip(model.named_buffers(), loaded.named_buffers()):
        assert n1 == n2
        np.testing.assert_array_equal(a, b)
    assert any("running_var" in n for n, _ in loaded.named_buffers())
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("layout", ["matnet", "torch"])
def test_weights_files_carry_buffers(tmp_path, layout, rng):
    model = _cnn(np.float64)
    model.save_weights(tmp_path / "w.safetensors", layout=layout)
    other = _cnn(np.float64)
    for layer in other.layers:
        for arr in (*layer.params().values(), *layer.buffers().values()):
            if arr is not None:
                arr[...] = 0
    other.load_weights(tmp_path / "w.safetensors", layout=layout)
    x = rng.standard_normal((5, 60))
    np.testing.assert_array_equal(other.predict(x), model.predict(x))


@pytest.mark.torch
def test_torch_interchange_cnn(tmp_path, rng):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file

    nn = torch.nn
    model = mn.Sequential([
        L.Conv2D(2, 4, 3, padding=1, activation="relu", seed=0, dtype=np.float64),
        L.BatchNorm(4, dtype=np.float64), L.MaxPool2D(2),
        L.Conv2D(4, 4, 3, groups=4, padding="same", seed=1, dtype=np.float64),
        L.AvgPool2D(2, stride=1), L.Flatten(), L.Dense(4 * 2 * 2, 3, seed=2, dtype=np.float64),
    ])
    model.forward(rng.standard_normal((6, 2, 6, 6)), training=True)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(4),
                        nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, groups=4, padding="same"),
                        nn.AvgPool2d(2, stride=1), nn.Flatten(), nn.Linear(16, 3)).double().eval()
    model.save_weights(tmp_path / "m.safetensors", layout="torch")
    net.load_state_dict(load_file(str(tmp_path / "m.safetensors")), strict=True)
    x = rng.standard_normal((3, 2, 6, 6))
    with torch.inference_mode():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-12, atol=1e-13)
    net.train()
    net(torch.from_numpy(rng.standard_normal((5, 2, 6, 6))))  # new running statistics
    net.eval()
    save_file(net.state_dict(), str(tmp_path / "t.safetensors"))
    model.load_weights(tmp_path / "t.safetensors", layout="torch")
    with torch.inference_mode():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-12, atol=1e-13)


def test_cnn_learns_a_separable_task(rng):
    # Bright blob in the top vs the bottom half of a 6x6 image.
    n = 64
    y = np.arange(n) % 2
    x = rng.standard_normal((n, 1, 6, 6)).astype(np.float32) * 0.3
    x[y == 0, :, :3] += 1.0
    x[y == 1, :, 3:] += 1.0
    model = mn.Sequential([
        L.Conv2D(1, 4, 3, padding=1, activation="relu", seed=0), L.BatchNorm(4),
        L.MaxPool2D(2), L.Flatten(), L.Dense(36, 2, seed=1)])
    model.compile(optimizer=mn.optim.Adam(1e-2), loss="cross_entropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=15, batch_size=16, verbose=0, seed=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert model.evaluate(x, y)["accuracy"] >= 0.95


def test_cli_cnn_builds_the_documented_model():
    from matnet.cli import _build_cnn

    model = _build_cnn(64, 10, seed=0)
    assert model.output_shape((64,)) == (10,)
    assert [type(layer).__name__ for layer in model.layers] == [
        "Reshape", "Conv2D", "Conv2D", "MaxPool2D", "Flatten", "Dropout", "Dense"]
    with pytest.raises(ValueError, match="square"):
        _build_cnn(60, 10, seed=0)
