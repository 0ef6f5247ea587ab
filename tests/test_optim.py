"""Optimizers and learning-rate schedules: settings, state, configs, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import matnet as mn
import numpy_reference as ref
from matnet import layers as L
from matnet import schedules as S


def _model(dtype=np.float64):
    return mn.Sequential([L.Dense(3, 4, "tanh", seed=0, dtype=dtype), L.Dense(4, 2, seed=1,
                                                                             dtype=dtype)])


def _backward(model, rng):
    x = rng.standard_normal((5, 3)).astype(model.dtype)
    _, g = mn.losses.cross_entropy(model.forward(x), rng.integers(0, 2, 5))
    model.backward(g)


# ---------------------------------------------------------------- schedules


def test_schedules_follow_their_formulas():
    step = S.StepLR(0.1, step_size=3, gamma=0.5)
    assert [step(e) for e in range(7)] == pytest.approx([0.1] * 3 + [0.05] * 3 + [0.025])
    exp = S.ExponentialLR(1.0, gamma=0.9)
    assert exp(3) == pytest.approx(0.729)
    cos = S.CosineLR(1.0, epochs=10, min_lr=0.1)
    assert cos(0) == 1.0 and cos(10) == pytest.approx(0.1) and cos(50) == pytest.approx(0.1)
    assert cos(5) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.5)))
    warm = S.CosineLR(1.0, epochs=10, warmup_epochs=4)
    assert [warm(e) for e in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert warm(4) == 1.0 and warm(7) == pytest.approx(0.5)
    assert S.ConstantLR(0.3)(100) == 0.3


@pytest.mark.parametrize("make", [
    lambda: S.StepLR(0.1, step_size=0), lambda: S.StepLR(-1.0, 2), lambda: S.StepLR(0.1, 2, 1.5),
    lambda: S.CosineLR(0.1, epochs=5, warmup_epochs=5), lambda: S.CosineLR(0.1, 5, min_lr=0.2),
    lambda: S.ExponentialLR(0.1, gamma=-0.1), lambda: S.StepLR(0.1, step_size=2.5),
])
def test_schedule_settings_are_checked(make):
    with pytest.raises((TypeError, ValueError)):
        make()


def test_fit_sets_the_scheduled_rate_each_epoch(rng):
    model = _model()
    opt = mn.optim.SGD(S.StepLR(0.4, step_size=1, gamma=0.5))
    model.compile(optimizer=opt)
    seen = []

    class Spy(mn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append(opt.lr)

    model.fit(rng.standard_normal((6, 3)), rng.integers(0, 2, 6), epochs=3, callbacks=[Spy()],
              verbose=0)
    assert seen == pytest.approx([0.4, 0.2, 0.1])


# ---------------------------------------------------------------- optimizers


@pytest.mark.parametrize("make", [
    lambda: mn.optim.SGD(-0.1), lambda: mn.optim.SGD(0.1, momentum=-1),
    lambda: mn.optim.SGD(0.1, nesterov=True), lambda: mn.optim.SGD(0.1, 0.9, dampening=0.5,
                                                                   nesterov=True),
    lambda: mn.optim.SGD("fast"), lambda: mn.optim.Adam(betas=(0.9, 1.0)),
    lambda: mn.optim.Adam(betas=0.9), lambda: mn.optim.Adam(eps=-1.0),
    lambda: mn.optim.AdamW(weight_decay=-0.1), lambda: mn.optim.RMSprop(alpha=1.5),
    lambda: mn.optim.RMSprop(centered=1),
])
def test_optimizer_settings_are_checked(make):
    with pytest.raises((TypeError, ValueError)):
        make()


@pytest.mark.parametrize("make", [
    lambda: mn.optim.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda: mn.optim.Adam(S.CosineLR(0.01, epochs=3)), lambda: mn.optim.AdamW(0.002),
    lambda: mn.optim.RMSprop(0.01, momentum=0.3, centered=True),
], ids=["sgd", "adam-cosine", "adamw", "rmsprop"])
def test_optimizer_config_round_trip(make):
    opt = make()
    again = type(opt).from_config(opt.get_config())
    assert again.get_config() == opt.get_config()
    assert repr(opt).startswith(type(opt).__name__)


def test_get_by_name():
    assert isinstance(mn.optim.get("adam"), mn.optim.Adam)
    assert isinstance(mn.optim.get("SGD"), mn.optim.SGD)
    opt = mn.optim.RMSprop()
    assert mn.optim.get(opt) is opt
    with pytest.raises(ValueError, match="adamw"):
        mn.optim.get("adagrad")


def test_step_needs_gradients_and_updates_in_place(rng):
    model = _model()
    opt = mn.optim.SGD(0.5)
    with pytest.raises(RuntimeError, match="backward"):
        opt.step(model)
    _backward(model, rng)
    before = [p.copy() for p in model.parameters()]
    ids = [id(p) for p in model.parameters()]
    opt.step(model)
    for p, b, g in zip(model.parameters(), before, model.gradients()):
        np.testing.assert_allclose(p, b - 0.5 * g, rtol=1e-15, atol=1e-17)
    assert [id(p) for p in model.parameters()] == ids
    assert opt.iterations == 1
    opt.zero_grad(model)
    assert model.gradients() == [None] * 4


@pytest.mark.parametrize("make, slots", [
    (lambda: mn.optim.SGD(0.1), []), (lambda: mn.optim.SGD(0.1, momentum=0.9), ["velocity"]),
    (lambda: mn.optim.Adam(), ["m", "v"]), (lambda: mn.optim.AdamW(), ["m", "v"]),
    (lambda: mn.optim.RMSprop(), ["square_avg"]),
    (lambda: mn.optim.RMSprop(momentum=0.5, centered=True),
     ["square_avg", "momentum_buffer", "grad_avg"]),
], ids=["sgd", "sgd-momentum", "adam", "adamw", "rmsprop", "rmsprop-full"])
def test_state_slots_per_parameter(make, slots, rng):
    model = _model(np.float32)
    opt = make()
    assert opt.state_arrays() == []
    _backward(model, rng)
    opt.step(model)
    state = opt.state_arrays()
    assert len(state) == 4
    for s, p in zip(state, model.parameters()):
        assert sorted(s) == sorted(slots)
        assert all(a.shape == p.shape and a.dtype == p.dtype for a in s.values())


def test_one_optimizer_per_model(rng):
    a, b = _model(), mn.Sequential([L.Dense(3, 2, dtype=np.float64)])
    opt = mn.optim.Adam()
    _backward(a, rng)
    opt.step(a)
    b.forward(np.ones((2, 3)))
    b.backward(np.ones((2, 2)))
    with pytest.raises(ValueError, match="one optimizer per model"):
        opt.step(b)


def test_adamw_decays_weights_that_have_zero_gradient():
    model = mn.Sequential([L.Dense(2, 2, seed=0, dtype=np.float64)])
    model.forward(np.zeros((1, 2)))
    model.backward(np.zeros((1, 2)))  # dW = 0, db = 0
    w = model.layers[0].W.copy()
    mn.optim.AdamW(0.1, weight_decay=0.5).step(model)
    np.testing.assert_allclose(model.layers[0].W, w * (1 - 0.1 * 0.5), rtol=1e-15)
    before = model.layers[0].W.copy()
    mn.optim.Adam(0.1).step(model)  # no decay, zero gradient: no change
    np.testing.assert_array_equal(model.layers[0].W, before)


# ---------------------------------------------------------------- all or nothing


@pytest.mark.parametrize("spoil", ["read_only", "misaligned", "fortran"])
@pytest.mark.parametrize("make", [lambda: mn.optim.SGD(0.1, momentum=0.9), lambda: mn.optim.Adam(),
                                  lambda: mn.optim.AdamW(), lambda: mn.optim.RMSprop(
                                      momentum=0.5, centered=True)],
                         ids=["sgd", "adam", "adamw", "rmsprop"])
def test_refused_step_changes_nothing(make, spoil, rng):
    """A parameter the update kernel refuses (here the second layer's W) makes
    step raise before any parameter, state or iterations changes."""
    model, opt = _model(), make()
    _backward(model, rng)
    opt.step(model)  # state exists now
    _backward(model, rng)
    second = model.layers[1]
    if spoil == "read_only":
        second.W.flags.writeable = False
    elif spoil == "misaligned":
        second.W = ref.unaligned(second.W)
    else:
        second.W = np.asfortranarray(np.ones((4, 2)))
    before = [p.copy() for p in model.parameters()]
    state_before = [{k: v.copy() for k, v in s.items()} for s in opt.state_arrays()]
    with pytest.raises(ValueError, match="param"):
        opt.step(model)
    assert opt.iterations == 1
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p, b)
    for s, sb in zip(opt.state_arrays(), state_before):
        for k in s:
            np.testing.assert_array_equal(s[k], sb[k])
