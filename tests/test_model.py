"""Sequential: compile/fit/evaluate/predict, batching, input checks, callbacks, progress."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import matnet as mn
from matnet import layers as L


def _mlp(dtype=np.float32, n_in=6, n_out=3, seed=0):
    return mn.Sequential([L.Dense(n_in, 10, "relu", seed=seed, dtype=dtype),
                          L.Dense(10, n_out, seed=seed + 1, dtype=dtype)])


def _blobs(rng, n=60, n_in=6, classes=3):
    """Separable classes: class c centred at 3*e_c."""
    y = rng.integers(0, classes, n)
    x = rng.standard_normal((n, n_in)).astype(np.float32)
    x[np.arange(n), y] += 3.0
    return x, y


# ------------------------------------------------------------- structure


def test_constructor_checks_layers_and_dtypes():
    with pytest.raises(ValueError):
        mn.Sequential([])
    with pytest.raises(TypeError, match=r"layers\[1\]"):
        mn.Sequential([L.Dense(2, 2), "relu"])
    with pytest.raises(TypeError, match="dtype"):
        mn.Sequential([L.Dense(2, 2), L.Dense(2, 2, dtype=np.float64)])


def test_parameters_gradients_and_summary():
    model = _mlp()
    assert [p.shape for p in model.parameters()] == [(6, 10), (10,), (10, 3), (3,)]
    assert [n for n, _ in model.named_parameters()] == [
        "layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b"]
    assert model.count_params() == 6 * 10 + 10 + 10 * 3 + 3
    assert model.gradients() == [None] * 4
    text = model.summary()
    assert "Dense(6->10, relu)" in text and "(None, 3)" in text and "Total params: 103" in text
    assert model.input_shape == (6,) and model.output_shape((6,)) == (3,)


def test_backward_fills_gradients_and_returns_input_gradient(rng):
    model = _mlp(np.float64)
    x = rng.standard_normal((4, 6))
    _, g = mn.losses.cross_entropy(model.forward(x, training=True), np.array([0, 1, 2, 0]))
    dx = model.backward(g)
    assert dx.shape == x.shape
    assert all(gr is not None and gr.shape == p.shape
               for gr, p in zip(model.gradients(), model.parameters()))
    assert model.backward(g, need_input_grad=False) is None
    model.zero_grad()
    assert model.gradients() == [None] * 4


# ------------------------------------------------------------ fit & co.


def test_fit_learns_and_returns_history(rng):
    x, y = _blobs(rng)
    model = _mlp()
    model.compile(optimizer=mn.optim.Adam(0.05), loss="cross_entropy")
    hist = model.fit(x, y, epochs=15, batch_size=16, validation_data=(x, y), seed=0, verbose=0)
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 15 for v in hist.history.values()) and hist.epoch == list(range(15))
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    scores = model.evaluate(x, y)
    assert scores["accuracy"] >= 0.95
    assert scores["loss"] == pytest.approx(hist.history["val_loss"][-1], rel=1e-6)


@pytest.mark.parametrize("n, batch", [(10, 3), (10, 10), (10, 64), (1, 4), (7, 1)])
def test_batching_remainders(n, batch, rng):
    x, y = _blobs(rng, n=n)
    model = _mlp(np.float64)
    full = model.forward(x.astype(np.float64))
    pred = model.predict(x, batch_size=batch)
    assert pred.shape == (n, 3) and pred.dtype == np.float64
    np.testing.assert_allclose(pred, full, rtol=1e-13)
    model.compile(optimizer=mn.optim.SGD(0.0), loss="cross_entropy")  # lr 0: weights stay
    steps = []
    model.optimizer.step = lambda m: steps.append(len(m.layers[0]._x))
    hist = model.fit(x, y, epochs=2, batch_size=batch, shuffle=False, verbose=0)
    sizes = [min(batch, n - s) for s in range(0, n, batch)]
    assert steps == sizes * 2
    # The epoch loss is the mean over samples, whatever the batching.
    want, _ = mn.losses.cross_entropy(full, y)
    assert hist.history["loss"][0] == pytest.approx(want, rel=1e-12)
    assert model.evaluate(x, y, batch_size=batch)["loss"] == pytest.approx(want, rel=1e-12)


def test_predict_of_zero_rows_and_dtype_conversion():
    model = _mlp()
    assert model.predict(np.zeros((0, 6))).shape == (0, 3)
    out = model.predict(np.ones((2, 6), dtype=np.int64))  # ints converted to float32 once
    assert out.dtype == np.float32


def test_mse_and_bce_losses_train(rng):
    x = rng.standard_normal((50, 4)).astype(np.float32)
    w = rng.standard_normal((4, 1)).astype(np.float32)
    y = x @ w
    reg = mn.Sequential([L.Dense(4, 1, seed=0)])
    reg.compile(optimizer=mn.optim.SGD(0.1), loss="mse", metrics=[])
    hist = reg.fit(x, y[:, 0], epochs=30, batch_size=10, verbose=0, seed=1)  # (n,) accepted
    assert hist.history["loss"][-1] < 1e-3 and set(hist.history) == {"loss"}
    clf = mn.Sequential([L.Dense(4, 1, seed=0)])
    clf.compile(optimizer="adam", loss="binary_cross_entropy", metrics=["accuracy"])
    clf.optimizer.lr = 0.05
    clf.fit(x, (y > 0).astype(np.float32), epochs=30, batch_size=10, verbose=0, seed=1)
    assert clf.evaluate(x, (y > 0).astype(np.float32))["accuracy"] >= 0.9


@pytest.mark.parametrize("x, y, exc, match", [
    (np.full((4, 6), np.nan, np.float32), np.zeros(4, np.int64), ValueError, "NaN"),
    (np.ones((4, 5), np.float32), np.zeros(4, np.int64), ValueError, r"\(4, 5\)"),
    (np.ones(6, np.float32), np.zeros(1, np.int64), ValueError, "batch"),
    (np.array([["a"] * 6]), np.zeros(1, np.int64), TypeError, "numeric"),
    (np.ones((4, 6), np.float32), np.zeros(3, np.int64), ValueError, "4 rows"),
    (np.ones((4, 6), np.float32), np.array([0, 1, 2, 3]), ValueError, r"\[0, 3\)"),
    (np.ones((4, 6), np.float32), np.array([0, -1, 2, 1]), ValueError, r"\[0, 3\)"),
    (np.ones((4, 6), np.float32), np.zeros(4, np.float32), TypeError, "integer"),
    (np.ones((4, 6), np.float32), np.zeros((4, 1), np.int64), ValueError, "1-D"),
    (np.ones((0, 6), np.float32), np.zeros(0, np.int64), ValueError, "no rows"),
], ids=["nan-x", "features", "1-d-x", "strings", "rows", "label-high", "label-negative",
        "float-labels", "2-d-labels", "empty"])
def test_fit_validates_inputs(x, y, exc, match):
    model = _mlp()
    model.compile()
    with pytest.raises(exc, match=match):
        model.fit(x, y, verbose=0)


@pytest.mark.parametrize("x, exc, match", [
    (np.array([[0, 1, 2, np.nan, 4, 5]], np.float32), ValueError, "NaN"),
    (np.full((2, 6), np.inf, np.float32), ValueError, "NaN"),
    (np.ones((1, 5), np.float32), ValueError, r"\(1, 5\)"),
    (np.ones((1, 7), np.float64), ValueError, r"\(1, 7\)"),
    (np.array([["a"] * 6]), TypeError, "numeric"),
], ids=["nan-row", "inf", "features", "features-f64", "strings"])
def test_predict_rejects_what_fit_rejects(x, exc, match):
    """predict hands a 2-D array straight to the C++ plan; what the plan
    refuses goes through the Python checks, which raise fit's errors."""
    model = _mlp()
    with pytest.raises(exc, match=match):
        model.predict(x)


def test_predict_converts_like_the_python_path(rng):
    """float64, integer, Fortran-ordered and strided inputs of a float32
    model: the plan takes what it can, the rest is converted once, and every
    route gives the same result."""
    model = _mlp()
    x = rng.standard_normal((3, 6))
    want = model.predict(x.astype(np.float32))
    for variant in (x, np.asfortranarray(x.astype(np.float32)),
                    np.repeat(x.astype(np.float32), 2, axis=1)[:, ::2]):
        got = model.predict(variant)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)


def test_fit_validates_arguments(rng):
    x, y = _blobs(rng, n=8)
    model = _mlp()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y)
    model.compile()
    for kwargs in (dict(epochs=-1), dict(batch_size=0), dict(verbose=3),
                   dict(validation_data=(x,)), dict(validation_data=(x[:, :2], y))):
        with pytest.raises(ValueError):
            model.fit(x, y, **kwargs)
    with pytest.raises(TypeError):
        model.fit(x, y, callbacks=[object()], verbose=0)
    with pytest.raises(ValueError):
        model.compile(loss="hinge")
    with pytest.raises(ValueError):
        model.compile(loss="mse", metrics=["accuracy"])
    with pytest.raises(ValueError):
        model.compile(optimizer="lbfgs")
    with pytest.raises(ValueError):
        model.compile(loss="mse", metrics=[], label_smoothing=0.1)


def test_nonfinite_loss_stops_with_epoch_and_batch(rng):
    x, y = _blobs(rng, n=40)
    model = _mlp()
    model.compile(optimizer=mn.optim.SGD(1e30), loss="cross_entropy")
    with pytest.raises(FloatingPointError, match=r"epoch \d+, batch \d+ of 4"):
        model.fit(x, y, epochs=5, batch_size=10, verbose=0)
    # Opting out trains on (and the NaN shows in the history).
    model = _mlp()
    model.compile(optimizer=mn.optim.SGD(1e30), loss="cross_entropy")
    with np.errstate(all="ignore"):
        hist = model.fit(x, y, epochs=3, batch_size=10, verbose=0, check_finite=False)
    assert not np.isfinite(hist.history["loss"][-1])


def test_shuffle_seed_reproduces_training(rng):
    x, y = _blobs(rng)
    runs = []
    for seed in (5, 5, 6):
        model = _mlp()
        model.compile(optimizer=mn.optim.SGD(0.1, momentum=0.9))
        model.fit(x, y, epochs=2, batch_size=8, seed=seed, verbose=0)
        runs.append(model.layers[0].W.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_dropout_is_off_in_predict_and_evaluate(rng):
    x, y = _blobs(rng, n=20)
    model = mn.Sequential([L.Dense(6, 10, "relu", seed=0), L.Dropout(0.5, seed=1),
                           L.Dense(10, 3, seed=2)])
    model.compile()
    np.testing.assert_array_equal(model.predict(x), model.predict(x))
    assert not np.array_equal(model.forward(x, training=True), model.forward(x, training=True))


# ------------------------------------------------------- callbacks & output


def test_early_stopping_restores_the_best_weights(rng):
    x, y = _blobs(rng)
    xv, yv = _blobs(rng, n=30)
    model = _mlp()
    model.compile(optimizer=mn.optim.SGD(0.05))
    snapshots = []

    class Snap(mn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            snapshots.append(self.model.layers[0].W.copy())

    # Monitor training loss with mode "max": it "improves" only at epoch 0, so
    # training must stop after 1 + patience epochs and roll back to epoch 0.
    stop = mn.callbacks.EarlyStopping(monitor="loss", patience=2, mode="max")
    hist = model.fit(x, y, epochs=20, batch_size=8, validation_data=(xv, yv), seed=0,
                     callbacks=[stop, Snap()], verbose=0)
    assert len(hist.epoch) == 3 and stop.stopped_epoch == 2 and stop.best_epoch == 0
    np.testing.assert_array_equal(model.layers[0].W, snapshots[0])
    with pytest.raises(KeyError, match="val_nothing"):
        model.fit(x, y, callbacks=[mn.callbacks.EarlyStopping("val_nothing")], verbose=0)


def test_model_checkpoint_writes_improving_epochs(rng, tmp_path):
    x, y = _blobs(rng)
    model = _mlp()
    model.compile(optimizer=mn.optim.Adam(0.02))
    ckpt = mn.callbacks.ModelCheckpoint(tmp_path / "m-{epoch:02d}.npz", monitor="val_accuracy")
    model.fit(x, y, epochs=4, batch_size=8, validation_data=(x, y), callbacks=[ckpt], seed=0,
              verbose=0)
    assert ckpt.saved and all((tmp_path / p.split("/")[-1]).exists() for p in ckpt.saved)
    best = mn.load_model(ckpt.saved[-1])
    assert best.evaluate(x, y)["accuracy"] == pytest.approx(ckpt.best)
    every = mn.callbacks.ModelCheckpoint(tmp_path / "last.npz", save_best_only=False)
    model.fit(x, y, epochs=2, callbacks=[every], verbose=0)
    assert len(every.saved) == 2


def test_history_plot_writes_a_png(rng, tmp_path):
    pytest.importorskip("matplotlib")
    x, y = _blobs(rng)
    model = _mlp()
    model.compile()
    hist = model.fit(x, y, epochs=3, validation_data=(x, y), verbose=0)
    path = hist.plot(tmp_path / "curves.png", title="t")
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    with pytest.raises(ValueError, match="empty"):
        mn.callbacks.History().plot(tmp_path / "empty.png")


def test_verbose_prints_epoch_lines_and_progress(rng, capsys):
    pytest.importorskip("tqdm")
    x, y = _blobs(rng, n=20)
    model = _mlp()
    model.compile()
    model.fit(x, y, epochs=2, batch_size=5, verbose=1)
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2") and "accuracy:" in lines[1]
    assert "0/4" in err and "batch" in err  # a tqdm bar over the 4 batches
    model.fit(x, y, epochs=1, verbose=0)
    assert capsys.readouterr() == ("", "")


def test_training_does_not_need_tqdm_when_quiet(rng, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` fail
    x, y = _blobs(rng, n=20)
    model = _mlp()
    model.compile()
    model.fit(x, y, epochs=1, verbose=0)
    model.fit(x, y, epochs=1, verbose=1)  # falls back to epoch lines
    assert capsys.readouterr().out.startswith("epoch 1/1")


# ---------------------------------------------------------------- inference path


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 3, 8, 300])
def test_predict_matches_training_forward(dtype, rows, rng):
    """predict (one C++ call through the Dense chain, or layer by layer with
    reused buffers) gives what the training forward gives."""
    layer_sets = [
        [mn.layers.Dense(20, 16, activation="relu", seed=0, dtype=dtype),
         mn.layers.Dropout(0.5, seed=0),
         mn.layers.Dense(16, 8, activation="tanh", seed=1, dtype=dtype),
         mn.layers.Dense(8, 3, seed=2, dtype=dtype)],
        [mn.layers.Dense(20, 16, seed=0, dtype=dtype), mn.layers.ReLU(),
         mn.layers.Dense(16, 3, seed=1, dtype=dtype), mn.layers.Dropout(0.1)],
    ]
    x = rng.standard_normal((rows, 20)).astype(dtype)
    for layers in layer_sets:
        model = mn.Sequential(layers)
        want = x
        for layer in model.layers:
            want = want if isinstance(layer, mn.layers.Dropout) else layer.forward(want, True)
        first = model.predict(x, batch_size=256)
        second = model.predict(x + 1, batch_size=256)  # reuses every buffer
        np.testing.assert_array_equal(first, model.predict(x, batch_size=256))
        np.testing.assert_allclose(first, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)
        assert first.dtype == dtype and first.shape == (rows, 3)
        assert not np.shares_memory(first, second)


# Widths: the output layer narrower or wider than a thread's block of 16
# columns; a hidden layer of 8 (the second thread's block of its columns,
# and of the next layer's features, is empty) in a chain of four layers.
CHAIN_WIDTHS = [(700, 100, 100, 10), (700, 100, 100, 100), (2000, 40, 8, 6, 5)]


@pytest.mark.parametrize("widths", CHAIN_WIDTHS, ids=["-".join(map(str, w)) for w in CHAIN_WIDTHS])
@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 2, 7, 16, 17])
def test_predict_large_layers_every_path(dtype, rows, nthreads, widths, rng, threads):
    """Weights large enough (>= 256 KiB) that one-request inference on two
    threads runs every layer in one parallel region (features split over
    threads, partial outputs summed, the output layer's after the region).
    Exact arithmetic makes the check exact whatever the order of additions:
    x, W and b are integers in [-1, 1], the first layer's slope is 0.5 and
    the second layer's activation relu, so every value is a multiple of 1/2
    and below 2**23 in magnitude (700-100-100-100: 701, 100 * 701 + 1,
    100 * 70101 + 1 = 7.0e6; 2000-40-8-6-5: 2001, 80041, 640329, 3.8e6):
    every partial sum is exact in float32."""
    mn.set_num_threads(nthreads)
    acts = ["leaky_relu", "relu"] + [None] * (len(widths) - 3)
    model = mn.Sequential([
        mn.layers.Dense(k, m, activation=act, negative_slope=0.5, seed=i, dtype=dtype)
        for i, (k, m, act) in enumerate(zip(widths, widths[1:], acts))
    ])
    for layer in model.layers:
        layer.set_params({"W": rng.integers(-1, 2, layer.W.shape).astype(dtype),
                          "b": rng.integers(-1, 2, layer.b.shape).astype(dtype)})
    x = rng.integers(-1, 2, (rows, widths[0])).astype(dtype)
    want = x.astype(np.float64)
    for layer, act in zip(model.layers, acts):
        want = want @ layer.W.astype(np.float64) + layer.b
        if act == "leaky_relu":
            want = np.where(want > 0, want, 0.5 * want)
        elif act == "relu":
            want = np.maximum(want, 0)
    assert np.abs(want).max() < 2**23
    got = model.predict(x)
    assert got.shape == (rows, widths[-1]) and got.dtype == dtype
    np.testing.assert_array_equal(got, want.astype(dtype))


def test_predict_follows_replaced_weights(rng):
    model = mn.Sequential([mn.layers.Dense(4, 3, seed=0), mn.layers.Dense(3, 2, seed=1)])
    x = rng.standard_normal((2, 4)).astype(np.float32)
    before = model.predict(x)
    model.layers[1].set_params({"W": np.zeros((3, 2), np.float32), "b": np.ones(2, np.float32)})
    np.testing.assert_array_equal(model.predict(x), np.ones((2, 2), np.float32))
    assert not np.array_equal(before, model.predict(x))


def test_backward_after_evaluation_forward(rng):
    """forward(training=False) keeps no pre-activation; backward recomputes it."""
    layer = mn.layers.Dense(5, 4, activation="gelu", seed=0, dtype=np.float64)
    x = rng.standard_normal((3, 5))
    g = rng.standard_normal((3, 4))
    layer.forward(x)
    dx_eval = layer.backward(g)
    dw_eval = layer.dW.copy()
    layer.forward(x, training=True)
    np.testing.assert_array_equal(layer.backward(g), dx_eval)
    np.testing.assert_array_equal(layer.dW, dw_eval)


def test_dense_chain_rejects_bad_plans():
    from matnet import _core

    x = np.ones((2, 3), np.float32)
    w = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError):
        _core.DenseChain([])
    with pytest.raises(TypeError):
        _core.DenseChain([(w, None)])
    with pytest.raises(TypeError):
        _core.DenseChain([("w", None, None, 0.0)])
    with pytest.raises(TypeError):
        _core.DenseChain([(w, None, None, 0.0), (np.ones((4, 2)), None, None, 0.0)])
    with pytest.raises(ValueError):
        _core.DenseChain([(w, None, None, 0.0), (np.ones((5, 2), np.float32), None, None, 0.0)])
    with pytest.raises(ValueError):
        _core.DenseChain([(w, np.ones(3, np.float32), None, 0.0)])
    with pytest.raises(ValueError):
        _core.DenseChain([(w, None, "softplus", 0.0)])
    chain = _core.DenseChain([(w, None, "relu", 0.0)])
    with pytest.raises(ValueError):
        chain(np.ones((2, 5), np.float32))
    with pytest.raises(TypeError):
        chain(x.astype(np.float64))
    with pytest.raises(ValueError, match="row 1"):
        chain(np.array([[1, 2, 3], [1, np.nan, 3]], np.float32), True)
    np.testing.assert_array_equal(chain(x), np.full((2, 4), 3, np.float32))
    np.testing.assert_array_equal(chain(x[:, ::-1]), np.full((2, 4), 3, np.float32))
