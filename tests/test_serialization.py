"""save -> load round trips, and every malformed-file case load_model must refuse cleanly."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import matnet as mn
from matnet import layers as L
from matnet.serialization import CONFIG_ENTRY


def _model(dtype=np.float32):
    return mn.Sequential([
        L.Flatten(),
        L.Dense(12, 16, "gelu_tanh", seed=0, dtype=dtype), L.Dropout(0.2, seed=3),
        L.Dense(16, 8, seed=1, use_bias=False, dtype=dtype), L.LeakyReLU(0.2), L.GELU("tanh"),
        L.Dense(8, 8, "leaky_relu", negative_slope=0.3, init="glorot", seed=2, dtype=dtype),
        L.SiLU(), L.Tanh(), L.Sigmoid(), L.ReLU(),
        L.Dense(8, 4, seed=4, dtype=dtype), L.LogSoftmax(), L.Softmax(),
    ])


def _data(rng, n=30):
    return rng.standard_normal((n, 3, 4)).astype(np.float32), rng.integers(0, 4, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_gives_identical_predictions(dtype, rng, tmp_path):
    model = _model(dtype)
    x, _ = _data(rng)
    for layer in model.layers:  # non-trivial biases
        if isinstance(layer, L.Dense) and layer.use_bias:
            layer.b[:] = rng.standard_normal(layer.b.shape)
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = mn.load_model(path)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.loss is None and loaded.optimizer is None  # it was never compiled
    for a, b in zip(loaded.parameters(), model.parameters()):
        assert a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
        assert not np.shares_memory(a, b)


def test_compile_settings_and_schedule_are_restored(tmp_path):
    model = mn.Sequential([L.Dense(3, 2, seed=0)])
    sched = mn.schedules.CosineLR(0.1, epochs=10, min_lr=0.01, warmup_epochs=2)
    model.compile(optimizer=mn.optim.SGD(sched, momentum=0.9, nesterov=True, weight_decay=1e-4),
                  loss="cross_entropy", metrics=["accuracy"], label_smoothing=0.1)
    model.save(tmp_path / "m.npz")
    loaded = mn.load_model(tmp_path / "m.npz")
    assert loaded.loss == "cross_entropy" and loaded.metrics == ["accuracy"]
    assert loaded.label_smoothing == 0.1
    assert isinstance(loaded.optimizer, mn.optim.SGD)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.schedule(5) == sched(5)
    assert mn.load_model(tmp_path / "m.npz", compile=False).loss is None


@pytest.mark.parametrize("opt", [lambda: mn.optim.Adam(0.01), lambda: mn.optim.SGD(0.1, 0.9),
                                 lambda: mn.optim.RMSprop(0.01, momentum=0.5, centered=True)],
                         ids=["adam", "sgd", "rmsprop"])
@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_optimizer_state_resumes_training_exactly(opt, suffix, rng, tmp_path):
    x = rng.standard_normal((24, 5)).astype(np.float32)
    y = rng.integers(0, 3, 24)

    def make():
        m = mn.Sequential([L.Dense(5, 7, "relu", seed=0), L.Dense(7, 3, seed=1)])
        m.compile(optimizer=opt())
        return m

    straight = make()
    straight.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    first = make()
    first.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    first.save(tmp_path / f"ckpt{suffix}", include_optimizer=True)
    resumed = mn.load_model(tmp_path / f"ckpt{suffix}")
    assert resumed.optimizer.iterations == 6
    resumed.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(resumed.parameters(), straight.parameters()):
        np.testing.assert_array_equal(a, b)
    # Without the optimizer state the run is different (Adam's moments restart).
    first.save(tmp_path / f"weights-only{suffix}")
    if suffix == ".npz":
        with zipfile.ZipFile(tmp_path / "weights-only.npz") as zf:
            assert not any(n.startswith("optimizer.") for n in zf.namelist())
    else:
        from safetensors.numpy import load_file

        assert any(n.startswith("optimizer.") for n in load_file(str(tmp_path / "ckpt.safetensors")))
        assert not any(n.startswith("optimizer.")
                       for n in load_file(str(tmp_path / "weights-only.safetensors")))


def test_saving_optimizer_of_uncompiled_model_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="compiled"):
        mn.Sequential([L.Dense(2, 2)]).save(tmp_path / "m.npz", include_optimizer=True)
    assert not any(tmp_path.iterdir())  # nothing left behind


# ------------------------------------------------------------ malformed files


@pytest.fixture
def saved(tmp_path):
    """A valid file of a small compiled model with optimizer state; returns its path."""
    model = mn.Sequential([L.Dense(4, 3, "relu", seed=0), L.Dense(3, 2, seed=1)])
    model.compile(optimizer=mn.optim.Adam(0.01))
    model.fit(np.ones((4, 4), np.float32), np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    path = tmp_path / "good.npz"
    model.save(path, include_optimizer=True)
    mn.load_model(path)  # the baseline loads
    return path


def _entries(path):
    with zipfile.ZipFile(path) as zf:
        return {n[:-4]: zf.read(n) for n in zf.namelist()}


def _npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _config_npy(config):
    text = config if isinstance(config, (str, bytes)) else json.dumps(config)
    data = text.encode() if isinstance(text, str) else text
    return _npy(np.frombuffer(data, dtype=np.uint8))


def _write(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name + ".npy", data)
    return path


def _config(path):
    raw = np.load(io.BytesIO(_entries(path)[CONFIG_ENTRY]))
    return json.loads(raw.tobytes())


def _with_config(path, mutate, out):
    entries = _entries(path)
    config = _config(path)
    result = mutate(config)
    entries[CONFIG_ENTRY] = _config_npy(config if result is None else result)
    return _write(out, entries)


def _set(keys, value):
    def mutate(config):
        target = config
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return mutate


def _expect_invalid(path, match=None):
    with pytest.raises(ValueError, match=match):
        mn.load_model(path)


@pytest.mark.parametrize("cut", [0, 1, 10, 100, 0.5, -1, -22, -100])
def test_truncated_files(saved, tmp_path, cut):
    data = saved.read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else cut % len(data) if cut < 0 else cut
    bad = tmp_path / "cut.npz"
    bad.write_bytes(data[:n])
    _expect_invalid(bad)


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes(tmp_path, seed):
    bad = tmp_path / "noise.npz"
    bad.write_bytes(np.random.default_rng(seed).bytes(3000))
    _expect_invalid(bad)


def test_corrupted_weight_bytes_fail_the_checksum(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as zf:
        info = zf.getinfo("layers.0.W.npy")
    # Flip a byte in the middle of the stored (uncompressed) weight data.
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + 128 + 8
    data[offset] ^= 0xFF
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(data))
    _expect_invalid(bad, "CRC|corrupt|readable")


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        mn.load_model(tmp_path / "nope.npz")


def test_plain_npz_without_config(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, a=np.ones(3))
    _expect_invalid(path, "not a matnet model")


@pytest.mark.parametrize("mutate, match", [
    (_set(["format_version"], 2), "version 2"),
    (_set(["format_version"], "1"), "version"),
    (_set(["format_version"], True), "version"),
    (_set(["format"], "keras"), "not a matnet model"),
    (lambda c: c.pop("layers") and None, "keys"),
    (_set(["extra"], 1), "keys"),
    (_set(["layers"], []), "non-empty"),
    (_set(["layers"], {"0": 1}), "non-empty"),
    (_set(["layers", 0, "type"], "os.system"), "not one of"),
    (_set(["layers", 0, "type"], ["Dense"]), "not one of"),
    (_set(["layers", 0, "type"], "Layer"), "not one of"),
    (_set(["layers", 0], "Dense"), "layer 0"),
    (_set(["layers", 0, "config"], []), "config"),
    (_set(["layers", 0, "config", "evil"], 1), "layer 0"),
    (_set(["layers", 0, "config", "in_features"], -4), "layer 0"),
    (_set(["layers", 0, "config", "in_features"], 4.0), "layer 0"),
    (_set(["layers", 0, "config", "activation"], "__import__"), "layer 0"),
    (_set(["layers", 0, "config", "dtype"], "object"), "layer 0"),
    (_set(["layers", 1, "config", "dtype"], "float64"), "dtype"),
    (_set(["layers", 0, "config", "in_features"], 5), "shape"),
    (_set(["training", "loss"], "eval"), "loss"),
    (_set(["training", "metrics"], ["accuracy", 3]), "metrics"),
    (_set(["training", "optimizer", "type"], "Optimizer"), "optimizer type"),
    (_set(["training", "optimizer", "config", "lr"], -1.0), "optimizer"),
    (_set(["training", "optimizer", "config", "lr"], {"type": "Evil", "config": {}}), "optimizer"),
    (_set(["training", "optimizer", "config", "bogus"], 1), "optimizer"),
    (_set(["training"], None), "without 'training'"),
    (_set(["optimizer_state", "iterations"], -1), "optimizer_state"),
    (_set(["optimizer_state", "iterations"], 1.5), "optimizer_state"),
    (_set(["optimizer_state"], [1]), "optimizer_state"),
], ids=lambda v: "" if callable(v) else v)
def test_hostile_or_inconsistent_config(saved, tmp_path, mutate, match):
    _expect_invalid(_with_config(saved, mutate, tmp_path / "bad.npz"), match)


@pytest.mark.parametrize("text, match", [
    ("[1, 2, 3]", "JSON object"),
    ('"a string"', "JSON object"),
    ("null", "JSON object"),
    ("{not json", "not valid JSON"),
    ('{"format": NaN}', "NaN"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
    ("[" * 100000 + "]" * 100000, "not valid JSON|JSON object"),
    ("", "not valid JSON"),
])
def test_config_that_is_not_a_json_object(saved, tmp_path, text, match):
    entries = _entries(saved)
    entries[CONFIG_ENTRY] = _config_npy(text)
    _expect_invalid(_write(tmp_path / "bad.npz", entries), match)


def test_config_entry_of_wrong_type(saved, tmp_path):
    entries = _entries(saved)
    entries[CONFIG_ENTRY] = _npy(np.zeros((2, 2), np.uint8))
    _expect_invalid(_write(tmp_path / "bad.npz", entries), "1-D uint8")
    entries[CONFIG_ENTRY] = _npy(np.array("{}"))
    _expect_invalid(_write(tmp_path / "bad2.npz", entries), "1-D uint8")


@pytest.mark.parametrize("name, value, match", [
    ("layers.0.W", np.zeros((3, 4), np.float32), "shape"),
    ("layers.0.W", np.zeros((4, 3), np.float64), "dtype"),
    ("layers.0.W", np.zeros((4, 3), np.int32), "dtype"),
    ("layers.0.b", np.zeros((), np.float32), "shape"),
    ("optimizer.0.m", np.zeros(3, np.float32), "shape"),
    ("layers.1.W", np.zeros(6, dtype=[("a", np.float32)]), "plain numbers"),
])
def test_arrays_of_wrong_shape_or_dtype(saved, tmp_path, name, value, match):
    entries = _entries(saved)
    entries[name] = _npy(value)
    _expect_invalid(_write(tmp_path / "bad.npz", entries), match)


class _Boom:
    """Unpickling this would create a file; load_model must never do it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_object_arrays_are_never_unpickled(saved, tmp_path):
    marker = tmp_path / "pwned"
    entries = _entries(saved)
    obj = np.empty(12, dtype=object)
    obj[:] = [_Boom(str(marker))] * 12
    entries["layers.0.W"] = _npy(obj)
    _expect_invalid(_write(tmp_path / "bad.npz", entries), "plain numbers|dtype")
    entries = _entries(saved)
    entries[CONFIG_ENTRY] = pickle.dumps(_Boom(str(marker)))  # not even an .npy
    _expect_invalid(_write(tmp_path / "bad2.npz", entries))
    assert not marker.exists()


def test_missing_and_extra_entries(saved, tmp_path):
    entries = _entries(saved)
    del entries["layers.1.b"]
    _expect_invalid(_write(tmp_path / "a.npz", entries), "missing entries")
    entries = _entries(saved)
    del entries["optimizer.2.v"]
    _expect_invalid(_write(tmp_path / "b.npz", entries), "missing entries")
    entries = _entries(saved)
    entries["../../etc/passwd"] = _npy(np.zeros(1))
    _expect_invalid(_write(tmp_path / "c.npz", entries), "unexpected entries")


def test_entry_with_trailing_or_missing_data(saved, tmp_path):
    entries = _entries(saved)
    entries["layers.0.W"] = entries["layers.0.W"] + b"\0" * 8
    _expect_invalid(_write(tmp_path / "a.npz", entries), "past its declared shape")
    entries = _entries(saved)
    entries["layers.0.W"] = entries["layers.0.W"][:-8]
    _expect_invalid(_write(tmp_path / "b.npz", entries), "truncated")


def test_huge_declared_sizes_are_refused_without_allocating(saved, tmp_path):
    # The architecture claims 2^24 x 2^24 weights (a petabyte).
    big = _with_config(saved, _set(["layers", 0, "config", "in_features"], 1 << 24),
                       tmp_path / "big.npz")
    _expect_invalid(big, "max_bytes|shape")
    huge = _with_config(
        saved, lambda c: [_set(["layers", 0, "config", k], 1 << 24)(c)
                          for k in ("in_features", "out_features")] and None,
        tmp_path / "huge.npz")
    _expect_invalid(huge, "max_bytes")
    # A header that declares a huge array over a few bytes of data.
    entries = _entries(saved)
    header = _npy(np.zeros((4, 3), np.float32))
    entries["layers.0.W"] = header.replace(b"(4, 3)", b"(4000000000, 3)", 1)
    _expect_invalid(_write(tmp_path / "hdr.npz", entries), "shape")
    # A sizes-consistent file is still refused past max_bytes.
    with pytest.raises(ValueError, match="max_bytes"):
        mn.load_model(saved, max_bytes=16)
    # Dimensions beyond the per-layer limit are refused by the layer check.
    _expect_invalid(_with_config(saved, _set(["layers", 0, "config", "in_features"], 1 << 40),
                                 tmp_path / "dims.npz"), "layer 0")


def test_not_a_zip_but_an_npy(tmp_path):
    path = tmp_path / "w.npz"
    np.save(path.with_suffix(""), np.zeros(3))
    os.replace(str(path.with_suffix("")) + ".npy", path)
    _expect_invalid(path)


def test_saved_file_honours_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        mn.Sequential([L.Dense(2, 2)]).save(tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary left
