"""Training trajectories of whole models against independent references.

``fit`` (shuffling, batching, fused dense kernels, fused loss, update
kernels) is compared step by step with the plain-NumPy network in
numpy_reference.py fed the same initial weights and the same batches, and
optionally with PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest

import matnet as mn
from numpy_reference import ReferenceMLP

N, FEATURES, CLASSES, BATCH = 40, 12, 5, 8  # 5 steps per epoch
EPOCHS = 2  # -> 10 steps
STEPS = EPOCHS * (N // BATCH)
HIDDEN = ((FEATURES, 16, "relu"), (16, 10, "tanh"), (10, CLASSES, None))
K_MAX = 16  # largest reduction length in any GEMM of the network (fan-in or batch)
AMPLIFICATION = 10  # allowed growth of rounding differences over the STEPS updates

OPTIMIZERS = {
    # id: (matnet optimizer factory, reference name, reference hyper-parameters)
    "sgd-momentum": (lambda: mn.optim.SGD(0.1, momentum=0.9), "sgd",
                     dict(lr=0.1, momentum=0.9)),
    "sgd-nesterov-wd": (lambda: mn.optim.SGD(0.05, momentum=0.8, nesterov=True, weight_decay=1e-3),
                        "sgd", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3)),
    "adam": (lambda: mn.optim.Adam(1e-2), "adam", dict(lr=1e-2)),
    "adamw": (lambda: mn.optim.AdamW(1e-2, weight_decay=0.1), "adam",
              dict(lr=1e-2, weight_decay=0.1, decoupled=True)),
    "rmsprop-centered-momentum": (
        lambda: mn.optim.RMSprop(1e-2, momentum=0.5, centered=True), "rmsprop",
        dict(lr=1e-2, momentum=0.5, centered=True)),
}


def _data(rng, dtype):
    x = rng.standard_normal((N, FEATURES)).astype(dtype)
    y = rng.integers(0, CLASSES, N)
    return x, y


def _model(dtype):
    return mn.Sequential([mn.layers.Dense(k, m, activation=act, seed=i, dtype=dtype)
                          for i, (k, m, act) in enumerate(HIDDEN)])


def _reference_run(model, x, y, optimizer, hyper, seed):
    weights = [(layer.W.astype(np.float64), layer.b.astype(np.float64)) for layer in model.layers]
    ref = ReferenceMLP(weights, [a for *_, a in HIDDEN], optimizer, **hyper)
    x = x.astype(np.float64)
    rng = np.random.default_rng(seed)  # fit's shuffling: one permutation per epoch
    losses = []
    for _ in range(EPOCHS):
        order = rng.permutation(N)
        xs, ys = x[order], y[order]
        for b in range(0, N, BATCH):
            losses.append(ref.train_step(xs[b:b + BATCH], ys[b:b + BATCH]))
    return ref, losses


def _matnet_run(model, x, y, optimizer, seed, monkeypatch):
    # Per-step losses are not in fit's logs: record them through the loss table.
    losses = []
    real = mn.metrics.LOSSES["cross_entropy"]

    def recording(out, labels, **kw):
        loss, grad = real(out, labels, **kw)
        losses.append(loss)
        return loss, grad

    monkeypatch.setitem(mn.metrics.LOSSES, "cross_entropy", recording)
    model.compile(optimizer=optimizer, loss="cross_entropy")
    model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, seed=seed, verbose=0)
    return losses


def _compare(model, ref, losses, ref_losses, tol):
    assert len(losses) == len(ref_losses) == STEPS
    np.testing.assert_allclose(losses, ref_losses, rtol=tol, atol=0, err_msg="per-step losses")
    for i, layer in enumerate(model.layers):
        for name, got, want in (("W", layer.W, ref.w[i]), ("b", layer.b, ref.b[i])):
            scale = np.abs(want).max()
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale,
                                       err_msg=f"layer {i} {name} after {STEPS} steps")


@pytest.mark.parametrize("opt_id", sorted(OPTIMIZERS))
def test_float64_trajectory_matches_numpy(opt_id, rng, monkeypatch):
    # Tolerance: every kernel result differs from NumPy's only by rounding,
    # at most ~K*eps relative for a K-term dot product (K <= K_MAX) and a few
    # ulps for tanh/exp/log. Ten steps of training carry such perturbations
    # forward; the step maps here are contractive-to-mildly-expanding, so we
    # allow an amplification of 10: tol = STEPS * K_MAX * eps64 * 10 ~ 3.6e-12.
    # (Measured: ~2e-16, i.e. the kernels round like NumPy here.)
    tol = STEPS * K_MAX * np.finfo(np.float64).eps * AMPLIFICATION
    factory, ref_name, hyper = OPTIMIZERS[opt_id]
    x, y = _data(rng, np.float64)
    model = _model(np.float64)
    ref, ref_losses = _reference_run(model, x, y, ref_name, hyper, seed=7)
    losses = _matnet_run(model, x, y, factory(), seed=7, monkeypatch=monkeypatch)
    _compare(model, ref, losses, ref_losses, tol)


@pytest.mark.parametrize("opt_id", ["sgd-momentum", "sgd-nesterov-wd"])
def test_float32_trajectory_tracks_float64_numpy(opt_id, rng, monkeypatch):
    # float32 kernels against the float64 reference: the same argument as
    # above with eps32, and the inputs/initial weights themselves rounded to
    # float32 (exactly representable, so no extra term):
    # tol = STEPS * K_MAX * eps32 * 10 ~ 1.9e-4 (measured: ~2e-7). (Adam is left to the float64
    # test: it divides by sqrt(v), which magnifies the float32 rounding of
    # gradients that are near zero by cancellation.)
    tol = STEPS * K_MAX * float(np.finfo(np.float32).eps) * AMPLIFICATION
    factory, ref_name, hyper = OPTIMIZERS[opt_id]
    x, y = _data(rng, np.float32)
    model = _model(np.float32)
    ref, ref_losses = _reference_run(model, x, y, ref_name, hyper, seed=3)
    losses = _matnet_run(model, x, y, factory(), seed=3, monkeypatch=monkeypatch)
    _compare(model, ref, losses, ref_losses, tol)


def test_trajectory_differs_when_the_optimizer_differs(rng, monkeypatch):
    # Guard against a comparison that cannot fail: momentum 0.9 vs 0.8 must
    # be caught at the float64 tolerance.
    x, y = _data(rng, np.float64)
    model = _model(np.float64)
    ref, ref_losses = _reference_run(model, x, y, "sgd", dict(lr=0.1, momentum=0.8), seed=7)
    losses = _matnet_run(model, x, y, mn.optim.SGD(0.1, momentum=0.9), seed=7,
                         monkeypatch=monkeypatch)
    with pytest.raises(AssertionError):
        _compare(model, ref, losses, ref_losses, STEPS * K_MAX * np.finfo(np.float64).eps * AMPLIFICATION)


@pytest.mark.torch
@pytest.mark.parametrize("opt_id", sorted(OPTIMIZERS))
def test_float64_trajectory_matches_pytorch(opt_id, rng, monkeypatch):
    torch = pytest.importorskip("torch")
    tol = STEPS * K_MAX * np.finfo(np.float64).eps * AMPLIFICATION  # as in the NumPy test
    factory, _, hyper = OPTIMIZERS[opt_id]
    x, y = _data(rng, np.float64)
    model = _model(np.float64)

    linears = []
    for layer in model.layers:
        lin = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(layer.W.T.copy()))
            lin.bias.copy_(torch.from_numpy(layer.b.copy()))
        linears.append(lin)
    acts = {"relu": torch.relu, "tanh": torch.tanh, None: lambda t: t}
    params = [p for lin in linears for p in lin.parameters()]
    name = {"sgd-momentum": "SGD", "sgd-nesterov-wd": "SGD", "adam": "Adam", "adamw": "AdamW",
            "rmsprop-centered-momentum": "RMSprop"}[opt_id]
    kw = {k: v for k, v in hyper.items() if k != "decoupled"}
    opt = getattr(torch.optim, name)(params, **kw)

    rng_shuffle = np.random.default_rng(11)
    torch_losses = []
    for _ in range(EPOCHS):
        order = rng_shuffle.permutation(N)
        for b in range(0, N, BATCH):
            idx = order[b:b + BATCH]
            h = torch.from_numpy(x[idx])
            for lin, (*_, act) in zip(linears, HIDDEN):
                h = acts[act](lin(h))
            loss = torch.nn.functional.cross_entropy(h, torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            torch_losses.append(loss.item())

    losses = _matnet_run(model, x, y, factory(), seed=11, monkeypatch=monkeypatch)
    np.testing.assert_allclose(losses, torch_losses, rtol=tol, atol=0)
    for i, (layer, lin) in enumerate(zip(model.layers, linears)):
        w = lin.weight.detach().numpy().T
        np.testing.assert_allclose(layer.W, w, rtol=tol, atol=tol * np.abs(w).max(),
                                   err_msg=f"layer {i} W")
        bias = lin.bias.detach().numpy()
        np.testing.assert_allclose(layer.b, bias, rtol=tol, atol=tol * np.abs(bias).max(),
                                   err_msg=f"layer {i} b")
