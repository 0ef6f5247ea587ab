"""Optimizer update kernels: several steps against the textbook (torch.optim)
formulas in float64, float32 against the float64 trajectory, torch.optim
itself when installed, in-place semantics and bad inputs."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import matnet as mn

STEPS = 5


def sgd_ref(p, grads, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    p = p.copy()
    buf = None
    for g in grads:
        d = g + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
    return p


def adam_ref(p, grads, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False):
    p = p.copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        if weight_decay:
            if decoupled:
                p = p * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        mhat = m / (1 - beta1**t)
        vhat = v / (1 - beta2**t)
        p = p - lr * mhat / (np.sqrt(vhat) + eps)
    return p


def rmsprop_ref(p, grads, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                centered=False):
    p = p.copy()
    sq = np.zeros_like(p)
    buf = np.zeros_like(p)
    ga = np.zeros_like(p)
    for g in grads:
        g = g + weight_decay * p
        sq = alpha * sq + (1 - alpha) * g * g
        if centered:
            ga = alpha * ga + (1 - alpha) * g
            avg = np.sqrt(sq - ga * ga) + eps
        else:
            avg = np.sqrt(sq) + eps
        if momentum > 0:
            buf = momentum * buf + g / avg
            p = p - lr * buf
        else:
            p = p - lr * g / avg
    return p


SGD_CASES = [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, dampening=0.3),
             dict(lr=0.05, momentum=0.8, nesterov=True), dict(lr=0.1, weight_decay=0.01),
             dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05)]
ADAM_CASES = [dict(lr=1e-2), dict(lr=1e-2, beta1=0.5, beta2=0.9, eps=1e-6),
              dict(lr=1e-2, weight_decay=0.1), dict(lr=1e-2, weight_decay=0.1, decoupled=True)]
RMS_CASES = [dict(lr=1e-2), dict(lr=1e-2, momentum=0.9), dict(lr=1e-2, centered=True),
             dict(lr=1e-2, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01)]


def run_sgd(p, grads, **kw):
    v = np.zeros_like(p) if kw.get("momentum") else None
    for i, g in enumerate(grads):
        mn.ops.sgd_update(p, g, v, first_step=i == 0, **kw)


def run_adam(p, grads, **kw):
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        mn.ops.adam_update(p, g, m, v, step=t, **kw)


def run_rmsprop(p, grads, **kw):
    sq = np.zeros_like(p)
    buf = np.zeros_like(p) if kw.get("momentum") else None
    ga = np.zeros_like(p) if kw.get("centered") else None
    for g in grads:
        mn.ops.rmsprop_update(p, g, sq, momentum_buffer=buf, grad_avg=ga, **kw)


ALL = ([("sgd", run_sgd, sgd_ref, c) for c in SGD_CASES]
       + [("adam", run_adam, adam_ref, c) for c in ADAM_CASES]
       + [("rmsprop", run_rmsprop, rmsprop_ref, c) for c in RMS_CASES])


@pytest.mark.parametrize("kind,run,reference,kw", ALL, ids=lambda v: str(v) if isinstance(v, dict) else None)
@pytest.mark.parametrize("shape", [(1,), (37,), (8, 9), (300_001,)], ids=str)
def test_update_matches_textbook(kind, run, reference, kw, shape, rng):
    p0 = rng.standard_normal(shape)
    grads = [rng.standard_normal(shape) for _ in range(STEPS)]
    want = reference(p0, grads, **kw)
    p = p0.copy()
    run(p, grads, **kw)
    # float64: same formulas, a few roundings per step, each amplified at most by
    # the update's sensitivity (|d update / d state| <= ~1/(1-beta)); 1e-12 relative
    # to the step sizes leaves a wide margin over ~STEPS * 10 eps64.
    np.testing.assert_allclose(p, want, rtol=1e-12, atol=1e-12, err_msg=f"{kind} {kw}")
    # float32 follows the same trajectory within float32 rounding: roundings of
    # ~1e-7 relative per operation, amplified through the 1/sqrt(v) of Adam /
    # RMSprop by up to ~10x in the first steps -> 1e-4 of the total movement.
    p32 = p0.astype(np.float32)
    run(p32, [g.astype(np.float32) for g in grads], **kw)
    move = np.abs(want - p0) + 1e-3
    assert (np.abs(p32 - want) <= 1e-4 * move + 2e-6 * np.abs(p0)).all(), f"{kind} {kw} float32"


def test_state_updated_in_place_and_threads_agree(rng, threads):
    p0 = rng.standard_normal(200_003).astype(np.float32)
    g = rng.standard_normal(p0.shape).astype(np.float32)
    out = []
    for nt in (1, 2):
        mn.set_num_threads(nt)
        p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
        assert mn.ops.adam_update(p, g, m, v, step=1, lr=1e-3) is None
        assert np.abs(m).max() > 0 and np.abs(v).max() > 0
        out.append((p, m, v))
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


def test_sgd_first_step_ignores_old_velocity(rng):
    p = rng.standard_normal(10)
    g = rng.standard_normal(10)
    v = np.full(10, np.nan)  # never read on the first step
    mn.ops.sgd_update(p, g, v, lr=0.1, momentum=0.9, first_step=True)
    np.testing.assert_array_equal(v, g)
    assert np.isfinite(p).all()


# Every loop variant (SGD plain / momentum first and later / Nesterov, each with
# and without weight decay; Adam, L2 Adam, AdamW; RMSprop x centered x momentum
# x weight decay), on sizes with a vector tail and one split over threads.
_ISA_SCRIPT = r"""
import sys, numpy as np, matnet as mn
mn.set_num_threads(2)
out = {}
for n in (1003, 300_001):
    rng = np.random.default_rng(n)
    for dt in (np.float32, np.float64):
        p0 = rng.standard_normal(n).astype(dt)
        grads = [rng.standard_normal(n).astype(dt) for _ in range(3)]
        for i, wd in enumerate((0.0, 0.05)):
            for mom, nest in ((0.0, False), (0.9, False), (0.8, True)):
                p, v = p0.copy(), np.zeros_like(p0)
                for t, g in enumerate(grads):
                    mn.ops.sgd_update(p, g, v if mom else None, lr=0.05, momentum=mom,
                                      nesterov=nest, weight_decay=wd, first_step=t == 0)
                out[f"sgd {n} {dt.__name__} {wd} {mom} {nest}"] = p
            for dec in (False, True):
                p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
                for t, g in enumerate(grads, 1):
                    mn.ops.adam_update(p, g, m, v, step=t, lr=1e-2, weight_decay=wd,
                                       decoupled=dec)
                out[f"adam {n} {dt.__name__} {wd} {dec}"] = p
            for centered in (False, True):
                for mom in (0.0, 0.5):
                    p, sq, buf, ga = (p0.copy(), np.zeros_like(p0), np.zeros_like(p0),
                                      np.zeros_like(p0))
                    for g in grads:
                        mn.ops.rmsprop_update(p, g, sq, lr=1e-2, weight_decay=wd, momentum=mom,
                                              momentum_buffer=buf if mom else None,
                                              centered=centered, grad_avg=ga if centered else None)
                    out[f"rmsprop {n} {dt.__name__} {wd} {centered} {mom}"] = p
np.savez(sys.argv[1], **out)
"""


def test_avx2_loops_give_the_portable_bits(tmp_path):
    """The AVX2 build of the update loops (no FMA contraction) rounds exactly
    as the portable build: same results bit for bit, every variant."""
    if not mn.cpu_info()["supported_isas"].get("avx2"):
        pytest.skip("this CPU has no AVX2: only the portable loops run")
    files = {}
    for isa in ("generic", "avx2"):
        files[isa] = tmp_path / f"{isa}.npz"
        out = subprocess.run([sys.executable, "-c", _ISA_SCRIPT, str(files[isa])],
                             env=dict(os.environ, MATNET_ISA=isa), capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    with np.load(files["generic"]) as a, np.load(files["avx2"]) as b:
        assert sorted(a.files) == sorted(b.files) and len(a.files) == 2 * 2 * 2 * 9
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_strided_grad_is_read_correctly(rng):
    p = rng.standard_normal((4, 5))
    g_full = rng.standard_normal((4, 10))
    want = p - 0.5 * g_full[:, ::2]
    mn.ops.sgd_update(p, g_full[:, ::2], None, lr=0.5)
    np.testing.assert_allclose(p, want, rtol=1e-15)


def test_bad_inputs():
    p = np.zeros(4, np.float32)
    g = np.zeros(4, np.float32)
    with pytest.raises(TypeError, match="param=float32, grad=float64"):
        mn.ops.sgd_update(p, g.astype(np.float64), None, lr=0.1)
    with pytest.raises(TypeError, match="v=float64"):
        mn.ops.adam_update(p, g, np.zeros(4, np.float32), np.zeros(4), step=1, lr=0.1)
    with pytest.raises(ValueError, match=r"grad must have the shape of param \(4,\), got \(5,\)"):
        mn.ops.sgd_update(p, np.zeros(5, np.float32), None, lr=0.1)
    with pytest.raises(ValueError, match="C-contiguous"):
        mn.ops.sgd_update(np.zeros(8, np.float32)[::2], g, None, lr=0.1)
    ro = np.zeros(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        mn.ops.sgd_update(ro, g, None, lr=0.1)
    with pytest.raises(ValueError, match="velocity"):
        mn.ops.sgd_update(p, g, None, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="m must have the shape"):
        mn.ops.adam_update(p, g, np.zeros(3, np.float32), np.zeros(4, np.float32), step=1, lr=0.1)
    with pytest.raises(ValueError, match="step"):
        mn.ops.adam_update(p, g, np.zeros(4, np.float32), np.zeros(4, np.float32), step=0, lr=0.1)
    with pytest.raises(ValueError, match="beta1"):
        mn.ops.adam_update(p, g, np.zeros(4, np.float32), np.zeros(4, np.float32), step=1,
                           lr=0.1, beta1=1.0)
    with pytest.raises(ValueError, match="lr"):
        mn.ops.sgd_update(p, g, None, lr=-1.0)
    with pytest.raises(ValueError, match="nesterov"):
        mn.ops.sgd_update(p, g, np.zeros(4, np.float32), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="grad_avg"):
        mn.ops.rmsprop_update(p, g, np.zeros(4, np.float32), lr=0.1, centered=True)
    with pytest.raises(ValueError, match="shares memory"):
        mn.ops.adam_update(p, g, p, np.zeros(4, np.float32), step=1, lr=0.1)
    with pytest.raises(TypeError, match="param must be a NumPy array"):
        mn.ops.sgd_update([0.0, 1.0], [0.0, 1.0], None, lr=0.1)
    with pytest.raises(TypeError, match="float32 or float64"):
        mn.ops.sgd_update(np.zeros(4, np.int32), np.zeros(4, np.int32), None, lr=0.1)
    # an empty parameter is a valid no-op
    mn.ops.adam_update(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), step=1, lr=0.1)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch_optim(dtype, rng):
    torch = pytest.importorskip("torch")
    cases = ([(torch.optim.SGD, run_sgd, c) for c in SGD_CASES]
             + [(torch.optim.AdamW if c.get("decoupled") else torch.optim.Adam, run_adam, c)
                for c in ADAM_CASES]
             + [(torch.optim.RMSprop, run_rmsprop, c) for c in RMS_CASES])
    p0 = rng.standard_normal((6, 7)).astype(dtype)
    grads = [rng.standard_normal(p0.shape).astype(dtype) for _ in range(STEPS)]
    for cls, run, kw in cases:
        tkw = dict(kw)
        if cls in (torch.optim.Adam, torch.optim.AdamW):
            tkw["betas"] = (tkw.pop("beta1", 0.9), tkw.pop("beta2", 0.999))
            tkw.pop("decoupled", None)
            if cls is torch.optim.AdamW:
                tkw.setdefault("weight_decay", 0.0)
        tp = torch.nn.Parameter(torch.tensor(p0.copy()))
        opt = cls([tp], foreach=False, **tkw)
        for g in grads:
            tp.grad = torch.tensor(g)
            opt.step()
        p = p0.copy()
        run(p, grads, **kw)
        tol = 1e-13 if dtype == np.float64 else 2e-6
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=tol, atol=tol,
                                   err_msg=f"{cls.__name__} {kw}")
