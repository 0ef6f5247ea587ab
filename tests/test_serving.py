"""Serving: safetensors model files, weights in torch layout, and C++ inference.

The C++ side is exercised three ways: examples/serve built against the
installed package (it must reproduce Python's accuracy and predictions),
the same program on hostile files (every one refused, never a crash), and
tests/cpp/model_file_fuzz.cpp compiled with the reader's sources under
AddressSanitizer and UBSan, fed thousands of mutations of a valid file.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import matnet as mn
from matnet import layers as L

import numpy_reference as ref

safetensors_numpy = pytest.importorskip("safetensors.numpy")

REPO = Path(__file__).resolve().parents[1]
EPS = {np.dtype(np.float32): 2.0**-24, np.dtype(np.float64): 2.0**-53}  # unit roundoff u


def _all_layers_model(dtype=np.float32) -> mn.Sequential:
    """Every layer type a file can hold, with non-trivial biases."""
    model = mn.Sequential([
        L.Flatten(),
        L.Dense(12, 16, "gelu_tanh", seed=0, dtype=dtype), L.Dropout(0.2, seed=3),
        L.Dense(16, 8, seed=1, use_bias=False, dtype=dtype), L.LeakyReLU(0.2), L.GELU("tanh"),
        L.Dense(8, 8, "leaky_relu", negative_slope=0.3, init="glorot", seed=2, dtype=dtype),
        L.SiLU(), L.Tanh(), L.Sigmoid(), L.ReLU(), L.GELU(),
        L.Dense(8, 6, "silu", seed=5, dtype=dtype), L.Dense(6, 5, "sigmoid", seed=6, dtype=dtype),
        L.Dense(5, 4, seed=4, dtype=dtype), L.LogSoftmax(), L.Softmax(),
    ])
    rng = np.random.default_rng(7)
    for layer in model.layers:
        if isinstance(layer, L.Dense) and layer.use_bias:
            layer.b[:] = rng.standard_normal(layer.b.shape) * 0.5
    return model


def _small_model(dtype=np.float32) -> mn.Sequential:
    return mn.Sequential([L.Dense(6, 5, "relu", seed=0, dtype=dtype), L.Dense(5, 3, seed=1, dtype=dtype)])


def _randomize(model: mn.Sequential, seed: int) -> mn.Sequential:
    """Non-trivial values for every parameter and buffer: biases, norms'
    affine terms, BatchNorm's running statistics (variances in [0.5, 2])."""
    rng = np.random.default_rng(seed)
    for name, a in model.named_parameters() + model.named_buffers():
        leaf = name.rsplit(".", 1)[1]
        if leaf == "running_var":
            a[...] = rng.uniform(0.5, 2.0, a.shape)
        elif leaf == "num_batches_tracked":
            a[...] = 5
        elif leaf in ("b", "b_qkv", "b_o", "beta", "bias", "running_mean"):
            a[...] = rng.standard_normal(a.shape) * 0.3
        elif leaf in ("gamma", "weight"):
            a[...] = rng.uniform(0.5, 1.5, a.shape)
    return model


def _cnn_model(dtype=np.float32) -> mn.Sequential:
    """Reshape, Conv2D (dilated "same", grouped, strided), BatchNorm (affine
    or not, on images and on features, nested in a Residual), every pooling
    layer; 72 inputs (2 x 6 x 6), 3 outputs."""
    return _randomize(mn.Sequential([
        L.Reshape((2, 6, 6)),
        L.Conv2D(2, 4, 3, padding="same", dilation=2, activation="relu", seed=0, dtype=dtype),
        L.BatchNorm(4, dtype=dtype),
        L.MaxPool2D(2),                                                # (4, 3, 3)
        L.Conv2D(4, 6, 3, padding=1, groups=2, activation="gelu", seed=1, dtype=dtype),
        L.AvgPool2D(2, stride=1, padding=1, count_include_pad=False),  # (6, 4, 4)
        L.AvgPool2D(3, stride=2, padding=1),                           # (6, 2, 2)
        L.Conv2D(6, 6, (1, 2), stride=(1, 2), use_bias=False, seed=2, dtype=dtype),  # (6, 2, 1)
        L.BatchNorm(6, affine=False, dtype=dtype),
        L.GlobalAvgPool2D(),
        L.Residual(L.BatchNorm(6, dtype=dtype)),  # buffers named layers.10.layer.running_mean, ...
        L.Dense(6, 3, seed=3, dtype=dtype), L.Softmax(),
    ]), 11)


def _transformer_model(dtype=np.float32, causal=True) -> mn.Sequential:
    """A pre-norm transformer over 4 tokens of 8 features (32 inputs):
    PositionalEmbedding, Residual(Sequential([LayerNorm, MHA])), a nested
    Sequential with a Residual MLP, Dense on (L, E) samples, SequenceMean."""
    return _randomize(mn.Sequential([
        L.Reshape((4, 8)),
        L.PositionalEmbedding(4, 8, seed=0, dtype=dtype),
        L.Residual(mn.Sequential([L.LayerNorm(8, dtype=dtype),
                                  L.MultiHeadAttention(8, 2, causal=causal, seed=1, dtype=dtype)])),
        mn.Sequential([
            L.Residual(mn.Sequential([L.LayerNorm(8, dtype=dtype),
                                      L.Dense(8, 16, "gelu", seed=2, dtype=dtype),
                                      L.Dense(16, 8, seed=3, dtype=dtype)])),
            L.Residual(L.Dropout(0.1)),
        ]),
        L.LayerNorm(8, elementwise_affine=False, dtype=dtype),
        L.Dense(8, 8, "tanh", seed=4, dtype=dtype),
        L.SequenceMean(),
        L.Dense(8, 3, seed=5, dtype=dtype), L.LogSoftmax(),
    ]), 12)


def _as_float64(model: mn.Sequential, build) -> mn.Sequential:
    """build(np.float64) holding model's (float32) values exactly."""
    wide = build(np.float64)
    for (_, a), (_, b) in zip(model.named_parameters() + model.named_buffers(),
                              wide.named_parameters() + wide.named_buffers()):
        b[...] = a
    return wide


# ------------------------------------------------------------ a derived bound for predictions

_LIPSCHITZ = {"relu": 1.0, "sigmoid": 0.25, "tanh": 1.0, "gelu": 1.13, "gelu_tanh": 1.13,
              "silu": 1.1, None: 1.0}


def forward_with_bound(model: mn.Sequential, x: np.ndarray):
    """The float64 forward pass of ``model`` and, per output, a bound on how
    far any evaluation in the model's dtype may be from it.

    Dense (K inputs): a computed z differs by at most e·|W| (the incoming
    error) + γ_{K+1}(|a|·|W| + |b|), γ_n = n·u/(1−n·u), the classical bound of
    a length-K dot product plus a bias. An activation f with Lipschitz
    constant L_f maps an input error e to L_f·e, plus its own evaluation
    error 4·eps·(|f(z)| + L_f·|z|) as activations.hpp states (eps = 2u).
    Softmax changes log y_i by at most 2·max e; log-softmax by 2·max e plus a
    rounding of (len + 8)·eps of its terms. The comparison allows twice the
    bound, for the second-order terms the linearisation drops.
    """
    u = EPS[np.dtype(model.layers[1].dtype or np.float32)]
    eps = 2 * u
    a = x.reshape(len(x), -1).astype(np.float64)
    e = np.zeros_like(a)

    def act(name, z, ez, slope):
        lip = max(1.0, slope) if name == "leaky_relu" else _LIPSCHITZ[name]
        y = ref.activation(z, name, slope)
        return y, lip * ez + 4 * eps * (np.abs(y) + lip * (np.abs(z) + ez)) + 1e-300

    for layer in model.layers:
        if isinstance(layer, L.Dense):
            w = layer.W.astype(np.float64)
            b = layer.b.astype(np.float64) if layer.use_bias else np.zeros(w.shape[1])
            k = w.shape[0] + 1
            gamma = k * u / (1 - k * u)
            z = a @ w + b
            ez = e @ np.abs(w) + gamma * (np.abs(a) @ np.abs(w) + np.abs(b))
            a, e = act(layer.activation, z, ez, layer.negative_slope) if layer.activation \
                else (z, ez)
        elif isinstance(layer, (L.Flatten, L.Dropout)):
            continue
        elif isinstance(layer, L.Softmax):
            y = ref.softmax(a)
            spread = 2 * e.max(axis=1, keepdims=True)
            a, e = y, y * (np.expm1(spread) + (a.shape[1] + 8) * eps)
        elif isinstance(layer, L.LogSoftmax):
            m = a.max(axis=1, keepdims=True)
            lse = m + np.log(np.exp(a - m).sum(axis=1, keepdims=True))
            y = a - lse
            a, e = y, 2 * e.max(axis=1, keepdims=True) + (a.shape[1] + 8) * eps * (
                np.abs(a) + np.abs(lse) + 1)
        else:
            name = {"ReLU": "relu", "LeakyReLU": "leaky_relu", "Sigmoid": "sigmoid",
                    "Tanh": "tanh", "SiLU": "silu"}.get(type(layer).__name__)
            if isinstance(layer, L.GELU):
                name = "gelu_tanh" if layer.approximate == "tanh" else "gelu"
            slope = getattr(layer, "negative_slope", 0.01)
            a, e = act(name, a, e, slope)
    return a, 2 * e


def assert_within_bound(got: np.ndarray, model: mn.Sequential, x: np.ndarray) -> None:
    want, bound = forward_with_bound(model, x)
    err = np.abs(got.astype(np.float64) - want)
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert np.all(err <= bound), (
        f"error {err[worst]:.3g} > bound {bound[worst]:.3g} at {worst} (got {got[worst]}, "
        f"want {want[worst]})")


# ------------------------------------------------------------ Python: model files


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["m.safetensors", "m.npz", "m.weights"])
def test_every_layer_round_trips(tmp_path, dtype, name, rng):
    model = _all_layers_model(dtype)
    model.save(tmp_path / name)
    loaded = mn.load_model(tmp_path / name)
    assert loaded.get_config() == model.get_config()
    x = rng.standard_normal((9, 3, 4)).astype(dtype)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_save_picks_the_format_from_the_name_or_the_argument(tmp_path):
    model = _small_model()
    for name, fmt, magic in [("a.npz", None, b"PK\x03\x04"), ("a.safetensors", None, None),
                             ("a.bin", None, None), ("b.bin", "npz", b"PK\x03\x04"),
                             ("b.npz", "safetensors", None)]:
        model.save(tmp_path / name, format=fmt)
        head = (tmp_path / name).read_bytes()[:8]
        if magic is not None:
            assert head[:4] == magic, name
        else:  # safetensors: a little-endian header length, then JSON
            assert (tmp_path / name).read_bytes()[8:9] == b"{", name
        assert mn.load_model(tmp_path / name).get_config() == model.get_config()
    with pytest.raises(ValueError, match="format"):
        model.save(tmp_path / "c.safetensors", format="pickle")
    assert not (tmp_path / "c.safetensors").exists()


def test_safetensors_file_is_plain_safetensors(tmp_path):
    model = _small_model()
    model.save(tmp_path / "m.safetensors")
    tensors = safetensors_numpy.load_file(str(tmp_path / "m.safetensors"))
    assert sorted(tensors) == ["layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b"]
    np.testing.assert_array_equal(tensors["layers.0.W"], model.layers[0].W)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "m.safetensors"), framework="numpy") as f:
        meta = f.metadata()
    assert meta["format"] == "matnet.Sequential" and meta["format_version"] == "1"
    assert json.loads(meta["matnet_config"])["layers"] == model.get_config()["layers"]


# ------------------------------------------------------------ hostile safetensors files


def _container(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def _parts(path: Path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _hostile_files(valid: Path, out: Path) -> dict:
    """name -> path of a malformed variant of the valid model file ``valid``."""
    raw = valid.read_bytes()
    header, data = _parts(valid)
    files = {}

    def put(name, content):
        files[name] = out / f"{name}.safetensors"
        files[name].write_bytes(content)

    def edit(name, change):
        h = json.loads(json.dumps(header))
        change(h)
        put(name, _container(h, data))

    put("truncated_data", raw[:-5])
    put("truncated_header", raw[:20])
    put("truncated_length", raw[:5])
    put("empty", b"")
    put("header_length_beyond_file", struct.pack("<Q", len(raw)) + raw[8:])
    put("header_length_huge", struct.pack("<Q", 2**63 + 5) + raw[8:])
    put("header_not_json", struct.pack("<Q", 12) + b"not json at!" + data)
    put("header_not_object", _container([1, 2], data))  # type: ignore[arg-type]
    w0, w1 = header["layers.0.W"]["data_offsets"], header["layers.1.W"]["data_offsets"]

    def overlap(h):
        h["layers.1.W"]["data_offsets"] = [w0[0], w0[0] + w1[1] - w1[0]]
    edit("overlapping_offsets", overlap)

    def beyond(h):
        h["layers.1.W"]["data_offsets"] = [w1[0] + len(data), w1[1] + len(data)]
    edit("offsets_out_of_range", beyond)

    def dtype(h):
        h["layers.0.W"]["dtype"] = "I32"
    edit("dtype_contradicts_architecture", dtype)

    def shape(h):
        h["layers.0.W"]["shape"] = h["layers.0.W"]["shape"][::-1]
    edit("shape_contradicts_architecture", shape)

    def absurd(h):
        h["layers.0.W"]["shape"] = [2**40, 2**40]
    edit("absurd_declared_size", absurd)

    def unknown_layer(h):
        config = json.loads(h["__metadata__"]["matnet_config"])
        config["layers"][1]["type"] = "EvilLayer"
        h["__metadata__"]["matnet_config"] = json.dumps(config)
    edit("unknown_layer_type", unknown_layer)

    def wrong_features(h):
        config = json.loads(h["__metadata__"]["matnet_config"])
        config["layers"][0]["config"]["out_features"] = 7
        h["__metadata__"]["matnet_config"] = json.dumps(config)
    edit("architecture_disagrees_with_tensors", wrong_features)

    def no_config(h):
        del h["__metadata__"]["matnet_config"]
    edit("no_architecture", no_config)

    def config_not_json(h):
        h["__metadata__"]["matnet_config"] = "{'layers': ["
    edit("architecture_not_json", config_not_json)

    def version(h):
        h["__metadata__"]["format_version"] = "99"
    edit("future_format_version", version)

    tensors = safetensors_numpy.load_file(str(valid))
    meta = header["__metadata__"]
    put("missing_tensor", safetensors_numpy.save(
        {k: v for k, v in tensors.items() if k != "layers.1.b"}, metadata=meta))
    put("extra_tensor", safetensors_numpy.save(
        dict(tensors, **{"layers.7.W": np.ones(3, np.float32)}), metadata=meta))
    deep = b"[" * 100000 + b"]" * 100000
    put("deeply_nested_header", struct.pack("<Q", len(deep)) + deep)
    return files


def _hostile_layer_files(out: Path) -> dict:
    """name -> path of valid CNN/transformer files with a contradictory architecture."""
    files = {}

    def variant(name, build, change, drop=()):
        src = out / f"{name}.valid.safetensors"
        build().save(src)
        header, _ = _parts(src)
        meta = dict(header["__metadata__"])
        config = json.loads(meta["matnet_config"])
        change(config["layers"])
        meta["matnet_config"] = json.dumps(config)
        tensors = {k: v for k, v in safetensors_numpy.load_file(str(src)).items() if k not in drop}
        files[name] = out / f"{name}.safetensors"
        files[name].write_bytes(safetensors_numpy.save(tensors, metadata=meta))

    def cfg(i):
        return lambda layers: layers[i]["config"]

    def setter(i, key, value):
        return lambda layers: cfg(i)(layers).__setitem__(key, value)

    variant("conv_weight_contradicts_channels", _cnn_model, setter(1, "out_channels", 8))
    variant("conv_groups_do_not_divide", _cnn_model, setter(4, "groups", 3))
    variant("conv_padding_unknown", _cnn_model, setter(1, "padding", "full"))
    variant("conv_without_input_shape", _cnn_model,
            lambda layers: layers.__setitem__(0, {"type": "Dropout", "config": {"p": 0.1}}))
    variant("reshape_contradicts_conv_channels", _cnn_model, setter(0, "target_shape", [1, 12, 6]))
    variant("reshape_does_not_fit", _cnn_model, lambda layers: layers.__setitem__(
        9, {"type": "Reshape", "config": {"target_shape": [7]}}))
    variant("pool_window_beyond_input", _cnn_model, setter(3, "kernel_size", [50, 50]))
    variant("pool_padding_beyond_half_window", _cnn_model, setter(3, "padding", [2, 2]))
    variant("batchnorm_missing_running_var", _cnn_model, lambda layers: None,
            drop=("layers.2.running_var",))
    variant("batchnorm_eps_negative", _cnn_model, setter(2, "eps", -1.0))
    variant("attention_heads_do_not_divide", _transformer_model,
            lambda layers: layers[2]["config"]["layer"]["config"]["layers"][1]["config"]
            .__setitem__("num_heads", 3))
    variant("residual_changes_the_shape", _transformer_model,
            lambda layers: layers[3]["config"]["layers"][1]["config"].__setitem__(
                "layer", {"type": "SequenceMean", "config": {}}))
    variant("positional_embedding_wrong_length", _transformer_model, setter(1, "length", 5))
    deep = {"type": "Dropout", "config": {"p": 0.1}}
    for _ in range(100):
        deep = {"type": "Residual", "config": {"layer": deep}}
    variant("residuals_nested_too_deeply", _transformer_model,
            lambda layers: layers[3]["config"]["layers"].__setitem__(1, deep))
    variant("sequential_without_layers", _transformer_model,
            lambda layers: layers[3]["config"].__setitem__("layers", []))
    return files


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile")
    valid = out / "valid.safetensors"
    _small_model().save(valid)
    return valid, _hostile_files(valid, out)


@pytest.fixture(scope="module")
def hostile_layers(tmp_path_factory):
    """Files whose architecture only C++'s shape inference refuses (some load in Python)."""
    return _hostile_layer_files(tmp_path_factory.mktemp("hostile-layers"))


def test_hostile_files_raise_value_error_in_python(hostile):
    valid, files = hostile
    assert mn.load_model(valid).get_config() == _small_model().get_config()
    for name, path in files.items():
        with pytest.raises(ValueError) as info:
            mn.load_model(path)
        assert str(path) in str(info.value), name


def test_non_regular_files_are_refused_without_reading(tmp_path):
    if os.path.exists("/dev/zero"):
        with pytest.raises(ValueError, match="regular file"):
            mn.load_model("/dev/zero")
    with pytest.raises(ValueError, match="regular file"):
        mn.load_model(tmp_path)  # a directory
    with pytest.raises(FileNotFoundError):
        mn.load_model(tmp_path / "absent.safetensors")


# ------------------------------------------------------------ weights-only files and torch layout


def test_torch_keys_number_modules_like_torch_sequential():
    model = mn.Sequential([L.Dense(4, 3, "relu"), L.Dense(3, 2)])
    assert mn.weights.torch_state_keys(model) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    model = mn.Sequential([L.Flatten(), L.Dense(4, 3), L.ReLU(), L.Dropout(0.1),
                           L.Dense(3, 2, "gelu", use_bias=False), L.Dense(2, 2), L.Softmax()])
    assert mn.weights.torch_state_keys(model) == [
        "1.weight", "1.bias", "4.weight", "6.weight", "6.bias"]


@pytest.mark.parametrize("layout", ["matnet", "torch"])
def test_weights_round_trip(tmp_path, layout, rng):
    src, dst = _all_layers_model(), _all_layers_model()
    for p in dst.parameters():
        p[...] = 0
    src.save_weights(tmp_path / "w.safetensors", layout=layout)
    dst.load_weights(tmp_path / "w.safetensors", layout=layout)
    for a, b in zip(src.parameters(), dst.parameters()):
        np.testing.assert_array_equal(a, b)
    keys = set(safetensors_numpy.load_file(str(tmp_path / "w.safetensors")))
    if layout == "torch":
        assert keys == set(mn.weights.torch_state_keys(src))
        w = safetensors_numpy.load_file(str(tmp_path / "w.safetensors"))["1.weight"]
        np.testing.assert_array_equal(w, src.layers[1].W.T)  # Linear: (out, in)


def test_failed_load_weights_changes_nothing(tmp_path):
    model = mn.Sequential([L.Dense(4, 3, "relu", seed=0), L.Dense(3, 2, seed=1)])
    before = [p.copy() for p in model.parameters()]
    good = {"0.weight": np.ones((3, 4), np.float32), "0.bias": np.ones(3, np.float32),
            "2.weight": np.ones((3, 2), np.float32), "2.bias": np.ones(2, np.float32)}  # 2.weight transposed
    safetensors_numpy.save_file(good, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="2.weight"):
        model.load_weights(tmp_path / "bad.safetensors", layout="torch")
    for name, arr in [("extra", {**good, "9.weight": np.ones(1, np.float32)}),
                      ("missing", {k: v for k, v in good.items() if k != "2.bias"})]:
        safetensors_numpy.save_file(arr, str(tmp_path / f"{name}.safetensors"))
        with pytest.raises(ValueError, match="keys"):
            model.load_weights(tmp_path / f"{name}.safetensors", layout="torch")
    nan = dict(good, **{"2.weight": np.full((2, 3), np.nan, np.float32)})
    safetensors_numpy.save_file(nan, str(tmp_path / "nan.safetensors"))
    with pytest.raises(ValueError, match="NaN"):
        model.load_weights(tmp_path / "nan.safetensors", layout="torch")
    with pytest.raises(ValueError, match="layout"):
        model.load_weights(tmp_path / "nan.safetensors", layout="keras")
    for a, b in zip(before, model.parameters()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.torch
def test_torch_interchange_both_ways(tmp_path, rng):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file

    def torch_twin():
        nn = torch.nn
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Dropout(0.1),
                             nn.Linear(16, 8), nn.GELU(approximate="tanh"), nn.Linear(8, 8),
                             nn.Tanh(), nn.Linear(8, 4), nn.Softmax(dim=-1)).double().eval()

    def matnet_twin():
        return mn.Sequential([L.Flatten(), L.Dense(12, 16, "relu", seed=0, dtype=np.float64),
                              L.Dropout(0.1), L.Dense(16, 8, "gelu_tanh", seed=1, dtype=np.float64),
                              L.Dense(8, 8, seed=2, dtype=np.float64), L.Tanh(),
                              L.Dense(8, 4, seed=3, dtype=np.float64), L.Softmax()])

    x = rng.standard_normal((7, 3, 4))
    # matnet -> torch: load_state_dict(strict=True) accepts the file as it is.
    model = matnet_twin()
    model.save_weights(tmp_path / "m.safetensors", layout="torch")
    net = torch_twin()
    net.load_state_dict(load_file(str(tmp_path / "m.safetensors")), strict=True)
    with torch.inference_mode():
        want = net(torch.from_numpy(x)).numpy()
    # float64 throughout: the two differ by rounding only (a few eps64 of each term).
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-12, atol=1e-14)
    # torch -> matnet
    net = torch_twin()
    save_file(net.state_dict(), str(tmp_path / "t.safetensors"))
    model = matnet_twin()
    model.load_weights(tmp_path / "t.safetensors", layout="torch")
    with torch.inference_mode():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------ C++: examples/serve


def _run(cmd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600,
                          **kwargs)
    if proc.returncode != 0:
        pytest.fail(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
                    f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


needs_toolchain = pytest.mark.skipif(
    not (os.environ.get("CXX") or __import__("shutil").which("g++")) or
    not __import__("shutil").which("cmake"), reason="needs cmake and a C++ compiler")


@pytest.fixture(scope="module")
def serve_program(tmp_path_factory) -> Path:
    """examples/serve configured against the installed package and built."""
    build = tmp_path_factory.mktemp("serve-build")
    _run(["cmake", "-S", REPO / "examples" / "serve", "-B", build, "-DCMAKE_BUILD_TYPE=Release",
          f"-Dmatnet_DIR={mn.get_cmake_dir()}"])
    _run(["cmake", "--build", build, "-j", "2"])
    return build / "serve"


@needs_toolchain
def test_cpp_serves_the_model_python_trained(serve_program, tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "run"
    train = _run([sys.executable, "-m", "matnet", "train", "--epochs", "3", "--no-progress",
                  "--out", out])
    python_accuracy = train.stdout.strip().splitlines()[-1]
    served = _run([serve_program, out / "model.safetensors", out / "test_data.safetensors",
                   "--repeat", "1", "--predictions", tmp_path / "p.f32"])
    lines = served.stdout.strip().splitlines()
    assert lines[-1] == python_accuracy  # "test accuracy: 0.XXXX"
    assert re.match(r"latency: [0-9.]+ us per call of 1 row", lines[-2]), lines
    model = mn.load_model(out / "model.safetensors")
    data = safetensors_numpy.load_file(str(out / "test_data.safetensors"))
    got = np.fromfile(tmp_path / "p.f32", np.float32).reshape(len(data["x"]), -1)
    assert_within_bound(got, model, data["x"])
    assert_within_bound(model.predict(data["x"]), model, data["x"])


@needs_toolchain
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 5])
def test_cpp_runs_every_layer_type(serve_program, tmp_path, dtype, batch, rng):
    model = _all_layers_model(dtype)
    model.save(tmp_path / "m.safetensors")
    x = rng.standard_normal((11, 12)).astype(np.float32)
    safetensors_numpy.save_file({"x": x, "y": np.zeros(11, np.int64)},
                                str(tmp_path / "x.safetensors"))
    _run([serve_program, tmp_path / "m.safetensors", tmp_path / "x.safetensors", "--repeat", "1",
          "--batch", batch, "--predictions", tmp_path / "p.bin"])
    got = np.fromfile(tmp_path / "p.bin", dtype).reshape(11, 4)
    assert_within_bound(got, model, x.astype(dtype))


def _serve_predictions(serve_program, model, x, tmp_path, dtype, batch=3) -> np.ndarray:
    model.save(tmp_path / "m.safetensors")
    safetensors_numpy.save_file({"x": x.astype(np.float32), "y": np.zeros(len(x), np.int64)},
                                str(tmp_path / "x.safetensors"))
    _run([serve_program, tmp_path / "m.safetensors", tmp_path / "x.safetensors", "--repeat", "1",
          "--batch", batch, "--predictions", tmp_path / "p.bin"])
    return np.fromfile(tmp_path / "p.bin", dtype).reshape(len(x), -1)


@needs_toolchain
@pytest.mark.parametrize("build", [_cnn_model, _transformer_model,
                                   lambda dtype: _transformer_model(dtype, causal=False)],
                         ids=["cnn", "transformer_causal", "transformer"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpp_runs_conv_norm_attention_layers(serve_program, tmp_path, build, dtype, rng):
    model = build(dtype)
    n_in = 72 if build is _cnn_model else 32
    x = rng.standard_normal((7, n_in)).astype(np.float32)
    got = _serve_predictions(serve_program, model, x, tmp_path, dtype)
    if dtype == np.float64:
        # The same float64 kernels on both sides, up to summation order (the
        # batch split differs: C++ runs 3 rows at a time): a few ulps of the
        # O(1) values flowing through ~10 layers of short sums.
        np.testing.assert_allclose(got, model.predict(x.astype(dtype)), rtol=1e-10, atol=1e-12)
        return
    # float32 against the float64 evaluation of the same (float32) weights.
    # Each layer computes its outputs as short sums (<= 72 terms) of products
    # of O(1) values and adds at most K·u·(sum of |terms|) <= 72·u·scale of
    # rounding error (u = 2^-24), and the layers that follow (Lipschitz ~1 for
    # the activations, pooling, softmax; LayerNorm/BatchNorm scale by
    # 1/std <= ~2 here) carry it on without amplifying it much; with ~10
    # layers 64·eps·(1 + max|reference|) (eps = 2u) leaves a margin for the
    # worst case while still catching any wrong index, weight or constant.
    want = _as_float64(model, build).predict(x.astype(np.float64))
    bound = 64 * EPS[np.dtype(np.float32)] * 2 * (1 + np.abs(want).max())
    err = np.abs(got.astype(np.float64) - want).max()
    assert err <= bound, (err, bound)


@needs_toolchain
@pytest.mark.parametrize("kind", ["cnn", "transformer"])
def test_cpp_serves_the_cnn_and_transformer_python_trained(serve_program, tmp_path, kind):
    pytest.importorskip("sklearn")
    out = tmp_path / "run"
    train = _run([sys.executable, "-m", "matnet", "train", "--model", kind, "--epochs", "1",
                  "--no-progress", "--out", out])
    python_accuracy = train.stdout.strip().splitlines()[-1]
    served = _run([serve_program, out / "model.safetensors", out / "test_data.safetensors",
                   "--repeat", "1", "--predictions", tmp_path / "p.f32"])
    assert served.stdout.strip().splitlines()[-1] == python_accuracy  # "test accuracy: 0.XXXX"
    model = mn.load_model(out / "model.safetensors")
    data = safetensors_numpy.load_file(str(out / "test_data.safetensors"))
    got = np.fromfile(tmp_path / "p.f32", np.float32).reshape(len(data["x"]), -1)
    want = model.predict(data["x"])
    # Both float32 with the same kernels; the logits differ only by the
    # summation order of the convolutions', attention's and Dense's dot
    # products (<= 576 terms) and the layer norms' sums: far below 1e-3 of
    # the logits' scale.
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-3 * (1 + np.abs(want).max()))


@needs_toolchain
def test_cpp_refuses_hostile_files(serve_program, hostile, hostile_layers, tmp_path):
    valid, files = hostile
    files = {**files, **hostile_layers}
    x = np.zeros((2, 6), np.float32)
    safetensors_numpy.save_file({"x": x, "y": np.zeros(2, np.int64)}, str(tmp_path / "x.safetensors"))
    _run([serve_program, valid, tmp_path / "x.safetensors", "--repeat", "1"])
    for name, path in list(files.items()) + [("dev_zero", Path("/dev/zero")), ("dir", tmp_path)]:
        if not path.exists():
            continue
        proc = subprocess.run([str(serve_program), str(path), str(tmp_path / "x.safetensors")],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1, (name, proc.returncode, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("serve: "), (name, proc.stderr)


# ------------------------------------------------------------ C++: the reader under sanitizers


@pytest.fixture(scope="module")
def fuzz_program(tmp_path_factory) -> Path:
    cxx = os.environ.get("CXX") or "g++"
    out = tmp_path_factory.mktemp("fuzz") / "model_file_fuzz"
    kernels = REPO / "src" / "cpp" / "kernels"
    sources = [REPO / "tests" / "cpp" / "model_file_fuzz.cpp"] + [
        kernels / "serve" / f for f in ("json.cpp", "safetensors.cpp", "model_spec.cpp")] + [
        kernels / "ops" / "activation_names.cpp"]
    proc = subprocess.run(
        [cxx, "-std=c++17", "-O1", "-g", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=all", "-fno-omit-frame-pointer",
         "-I", str(REPO / "src" / "cpp" / "include"), "-I", str(kernels),
         *map(str, sources), "-o", str(out)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 and "asan" in proc.stderr.lower():
        pytest.skip(f"this compiler cannot build with AddressSanitizer: {proc.stderr[-500:]}")
    assert proc.returncode == 0, proc.stderr
    return out


def _sanitized_env() -> dict:
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:halt_on_error=1"
    env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
    return env


@needs_toolchain
def test_reader_refuses_hostile_files_under_sanitizers(fuzz_program, hostile, hostile_layers):
    files = {**hostile[1], **hostile_layers}
    proc = subprocess.run([str(fuzz_program), "reject", *map(str, files.values())],
                          capture_output=True, text=True, timeout=120, env=_sanitized_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "runtime error" not in proc.stderr and "Sanitizer" not in proc.stderr, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == len(files)


@needs_toolchain
@pytest.mark.parametrize("seed, build", [(1, _all_layers_model), (2, _all_layers_model),
                                         (3, _cnn_model), (4, _transformer_model)])
def test_reader_survives_fuzzing_under_sanitizers(fuzz_program, tmp_path, seed, build):
    build().save(tmp_path / "m.safetensors")
    proc = subprocess.run([str(fuzz_program), "fuzz", str(tmp_path / "m.safetensors"), "20000",
                           str(seed)], capture_output=True, text=True, timeout=300,
                          env=_sanitized_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "runtime error" not in proc.stderr and "Sanitizer" not in proc.stderr, proc.stderr
    counts = json.loads(proc.stdout)
    assert counts["refused"] > counts["iterations"] // 2  # the mutations do reach the checks
