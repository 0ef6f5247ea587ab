"""Scaled dot-product attention: forward vs an explicit-softmax NumPy
reference, backward vs finite differences (float64) and the textbook
backward, masks (boolean, additive, broadcast, blocking whole rows), causal,
odd sizes and block edges, threads, every ISA path, bad inputs; PyTorch as an
optional oracle."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import matnet as mn
import numpy_reference as ref

sdpa = mn.ops.scaled_dot_product_attention
sdpa_backward = mn.ops.scaled_dot_product_attention_backward

# (leading dims, Lq, Lk, D, Dv): odd and prime sizes, L = 1, Lq != Lk, and
# lengths that straddle the query blocks (64) and key blocks (128 backward,
# 256 forward) and the microkernel tiles (6 x 16, 6 x 8).
CASES = [
    ((1,), 1, 1, 1, 1),
    ((2,), 1, 9, 8, 8),
    ((1, 2), 5, 7, 3, 4),
    ((2, 3), 17, 13, 16, 16),
    ((1, 2), 65, 63, 64, 64),
    ((1, 1), 64, 257, 24, 40),
    ((3,), 130, 129, 33, 7),
    ((1, 1), 300, 300, 64, 64),
    ((2, 1, 2), 20, 40, 5, 6),
]
IDS = ["x".join(map(str, lead)) + f"-{lq}-{lk}-{d}-{dv}" for lead, lq, lk, d, dv in CASES]


def tol(dtype, scale=1.0):
    """Absolute tolerance for O(1) values after a reduction over keys and D."""
    return scale * (2e-5 if dtype == np.float32 else 1e-12)


def make(rng, lead, lq, lk, d, dv, dtype):
    q = rng.standard_normal(lead + (lq, d)).astype(dtype)
    k = rng.standard_normal(lead + (lk, d)).astype(dtype)
    v = rng.standard_normal(lead + (lk, dv)).astype(dtype)
    return q, k, v


def assert_close(got, want, atol, what):
    got = np.asarray(got)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert np.all(np.isfinite(got) == np.isfinite(want)), f"{what}: finiteness differs"
    fin = np.isfinite(want)
    if fin.any():
        err = np.abs(got[fin] - want[fin]).max()
        assert err <= atol, f"{what}: max error {err:.3g} > {atol:.3g}"
    assert np.array_equal(got[~fin], want[~fin]), f"{what}: non-finite values differ"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_matches_reference(rng, case, causal, dtype):
    lead, lq, lk, d, dv = case
    q, k, v = make(rng, lead, lq, lk, d, dv, dtype)
    out, lse = sdpa(q, k, v, causal=causal, return_lse=True)
    want, want_lse, _ = ref.attention(q, k, v, causal=causal)
    assert out.dtype == dtype and lse.dtype == dtype
    name = f"{case} causal={causal} {np.dtype(dtype).name}"
    assert_close(out, want, tol(dtype), name + " out")
    assert_close(lse, want_lse, tol(dtype), name + " lse")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_matches_reference(rng, case, causal, dtype):
    lead, lq, lk, d, dv = case
    q, k, v = make(rng, lead, lq, lk, d, dv, dtype)
    g = rng.standard_normal(lead + (lq, dv)).astype(dtype)
    out, lse = sdpa(q, k, v, causal=causal, return_lse=True)
    got = sdpa_backward(g, q, k, v, out, lse, causal=causal)
    want = ref.attention_backward(g, q, k, v, causal=causal)
    for name, a, b in zip(("dq", "dk", "dv"), got, want):
        assert a.dtype == dtype
        assert_close(a, b, tol(dtype, 4.0), f"{case} causal={causal} {name}")


def numeric_grads(f, arrays, h=1e-6):
    """Central differences of the scalar f(*arrays) w.r.t. every array."""
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + h
            up = f(*arrays)
            a[idx] = old - h
            down = f(*arrays)
            a[idx] = old
            g[idx] = (up - down) / (2 * h)
        grads.append(g)
    return grads


@pytest.mark.parametrize(
    "mask_kind,causal",
    [(None, False), (None, True), ("bool", False), ("additive", True)],
)
def test_backward_finite_differences(rng, mask_kind, causal):
    lead, lq, lk, d, dv = (1, 2), 5, 7, 3, 4
    q, k, v = make(rng, lead, lq, lk, d, dv, np.float64)
    g = rng.standard_normal(lead + (lq, dv))
    mask = None
    if mask_kind == "bool":
        mask = rng.random((lq, lk)) < 0.7
        mask[:, 0] = True
    elif mask_kind == "additive":
        mask = rng.standard_normal((1, 1, lq, lk))
    scale = 0.7

    def loss(q, k, v):
        return float((sdpa(q, k, v, mask=mask, causal=causal, scale=scale) * g).sum())

    out, lse = sdpa(q, k, v, mask=mask, causal=causal, scale=scale, return_lse=True)
    got = sdpa_backward(g, q, k, v, out, lse, mask=mask, causal=causal, scale=scale)
    for name, a, b in zip(("dq", "dk", "dv"), got, numeric_grads(loss, [q, k, v])):
        assert_close(a, b, 1e-7, f"{mask_kind} causal={causal} {name}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masks_bool_additive_and_broadcast(rng, dtype):
    lead, lq, lk, d = (2, 3), 70, 90, 16
    q, k, v = make(rng, lead, lq, lk, d, d, dtype)
    masks = {
        "bool (Lq, Lk)": rng.random((lq, lk)) < 0.5,
        "bool (B, 1, Lq, Lk)": rng.random((2, 1, lq, lk)) < 0.5,
        "bool (1, Lk) key padding": np.arange(lk)[None, :] < 50,
        "additive (H, Lq, Lk)": rng.standard_normal((3, lq, lk)).astype(dtype),
        "additive transposed view": rng.standard_normal((lk, lq)).astype(dtype).T,
    }
    g = rng.standard_normal(lead + (lq, d)).astype(dtype)
    for name, mask in masks.items():
        out, lse = sdpa(q, k, v, mask=mask, return_lse=True)
        want, want_lse, _ = ref.attention(q, k, v, mask=mask)
        assert_close(out, want, tol(dtype), name + " out")
        assert_close(lse, want_lse, tol(dtype), name + " lse")
        got = sdpa_backward(g, q, k, v, out, lse, mask=mask)
        for gname, a, b in zip(("dq", "dk", "dv"), got, ref.attention_backward(g, q, k, v, mask)):
            assert_close(a, b, tol(dtype, 4.0), f"{name} {gname}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lk", [5, 300])
def test_fully_masked_rows_are_zero_without_nan(rng, dtype, lk):
    lead, lq, d = (1, 2), 9, 8
    q, k, v = make(rng, lead, lq, lk, d, d, dtype)
    mask = rng.random((lq, lk)) < 0.5
    mask[[0, 4, 8]] = False  # rows that attend nothing
    mask[1] = True
    g = rng.standard_normal(lead + (lq, d)).astype(dtype)
    for m in (mask, np.where(mask, 0.0, -np.inf).astype(dtype)):
        out, lse = sdpa(q, k, v, mask=m, return_lse=True)
        assert np.all(np.isfinite(out))
        assert np.all(out[..., [0, 4, 8], :] == 0)
        assert np.all(lse[..., [0, 4, 8]] == -np.inf)
        want, _, _ = ref.attention(q, k, v, mask=mask)
        assert_close(out, want, tol(dtype), "out")
        dq, dk, dv = sdpa_backward(g, q, k, v, out, lse, mask=m)
        for a in (dq, dk, dv):
            assert np.all(np.isfinite(a))
        assert np.all(dq[..., [0, 4, 8], :] == 0)
        for a, b in zip((dq, dk, dv), ref.attention_backward(g, q, k, v, mask)):
            assert_close(a, b, tol(dtype, 4.0), "grads")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_propagates(rng, dtype):
    q, k, v = make(rng, (1, 2), 70, 300, 16, 16, dtype)
    q[0, 1, 5, 3] = np.nan
    out, lse = sdpa(q, k, v, return_lse=True)
    assert np.all(np.isnan(out[0, 1, 5])) and np.isnan(lse[0, 1, 5])
    out[0, 1, 5] = 0
    assert np.all(np.isfinite(out))
    dq, dk, dv = sdpa_backward(np.ones_like(out), q, k, v, out, lse)
    assert np.all(np.isnan(dq[0, 1, 5])) and np.all(np.isnan(dk[0, 1]))


def test_no_keys_gives_zeros(rng):
    q = rng.standard_normal((2, 4, 8))
    k = np.zeros((2, 0, 8))
    v = np.zeros((2, 0, 3))
    out, lse = sdpa(q, k, v, return_lse=True)
    assert out.shape == (2, 4, 3) and np.all(out == 0) and np.all(lse == -np.inf)
    dq, dk, dv = sdpa_backward(np.ones_like(out), q, k, v, out, lse)
    assert np.all(dq == 0) and dk.shape == k.shape and dv.shape == v.shape
    out = sdpa(np.zeros((2, 0, 8)), rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 3, 3)))
    assert out.shape == (2, 0, 3)


def test_memory_is_linear_in_length():
    # L = 8192: the L x L scores would be 256 MiB (float32); forward and
    # backward together may use the outputs (16 MiB) and O(L d) scratch.
    code = """
import numpy as np, matnet as mn
def hwm():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024
q, k, v, g = (np.ones((1, 1, 8192, 64), np.float32) for _ in range(4))
mn.ops.scaled_dot_product_attention(q[:, :, :64], k[:, :, :64], v[:, :, :64])
before = hwm()
out, lse = mn.ops.scaled_dot_product_attention(q, k, v, return_lse=True)
mn.ops.scaled_dot_product_attention_backward(g, q, k, v, out, lse)
print(hwm() - before)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) < 64, f"peak grew by {float(proc.stdout):.0f} MiB"


def test_non_contiguous_inputs(rng):
    q, k, v = make(rng, (2, 3), 20, 30, 8, 8, np.float32)
    qt = np.ascontiguousarray(np.swapaxes(q, -1, -2)).swapaxes(-1, -2)  # Fortran-like view
    kv = np.stack([k, -k], axis=-1)[..., 0]                              # strided view
    assert not qt.flags.c_contiguous and not kv.flags.c_contiguous
    np.testing.assert_array_equal(sdpa(qt, k, v), sdpa(q, k, v))
    np.testing.assert_array_equal(sdpa(q, kv, v), sdpa(q, k, v))


@pytest.mark.parametrize("lead", [(1, 1), (3,), (1, 8)])
def test_threads_agree(rng, threads, lead):
    # One entry on two threads splits its keys over tasks (partial dQ sums).
    q, k, v = make(rng, lead, 200, 300, 32, 32, np.float64)
    g = rng.standard_normal(lead + (200, 32))
    results = []
    for n in (1, 2):
        mn.set_num_threads(n)
        out, lse = sdpa(q, k, v, causal=True, return_lse=True)
        results.append((out, lse) + sdpa_backward(g, q, k, v, out, lse, causal=True))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    want = ref.attention_backward(g, q, k, v, causal=True)
    for a, b in zip(results[1][2:], want):
        assert_close(a, b, tol(np.float64, 4.0), "2 threads")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
def test_every_isa_path(isa_path, dtype, causal):
    rng = np.random.default_rng(1)
    q, k, v = make(rng, (2,), 37, 45, 13, 9, dtype)
    g = rng.standard_normal((2, 37, 9)).astype(dtype)
    out, lse = mn.ops.scaled_dot_product_attention(q, k, v, causal=causal, return_lse=True)
    assert_close(out, ref.attention(q, k, v, causal=causal)[0], tol(dtype), "out")
    got = mn.ops.scaled_dot_product_attention_backward(g, q, k, v, out, lse, causal=causal)
    for a, b in zip(got, ref.attention_backward(g, q, k, v, causal=causal)):
        assert_close(a, b, tol(dtype, 4.0), "grad")


@pytest.mark.torch
@pytest.mark.parametrize("causal", [False, True])
def test_against_torch(rng, causal):
    torch = pytest.importorskip("torch")
    lead, lq, lk, d = (2, 4), 100, 100, 64
    q, k, v = make(rng, lead, lq, lk, d, d, np.float32)
    mask = rng.random((lq, lk)) < 0.8
    g = rng.standard_normal(lead + (lq, d)).astype(np.float32)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    tmask = None if causal else torch.tensor(mask)
    to = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask,
                                                          is_causal=causal)
    to.backward(torch.tensor(g))
    m = None if causal else mask
    out, lse = sdpa(q, k, v, mask=m, causal=causal, return_lse=True)
    np.testing.assert_allclose(out, to.detach().numpy(), atol=2e-5)
    for a, t in zip(sdpa_backward(g, q, k, v, out, lse, mask=m, causal=causal), (tq, tk, tv)):
        np.testing.assert_allclose(a, t.grad.numpy(), atol=1e-4)


def test_bad_inputs(rng):
    q, k, v = make(rng, (2,), 4, 5, 8, 8, np.float32)
    with pytest.raises(TypeError, match="int64"):
        sdpa(q.astype(np.int64), k, v)
    with pytest.raises(TypeError):
        sdpa(q, k.astype(np.float64), v)
    with pytest.raises(ValueError, match=r"\(2, 5, 7\)"):
        sdpa(q, k[..., :7], v)
    with pytest.raises(ValueError, match=r"\(2, 6, 8\)"):
        sdpa(q, k, np.zeros((2, 6, 8), np.float32))
    with pytest.raises(ValueError, match="leading"):
        sdpa(q, k[:1], v[:1])
    with pytest.raises(ValueError, match="at least 2"):
        sdpa(q[0, 0], k[0, 0], v[0, 0])
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        sdpa(q, k, v, mask=np.ones((3, 3), bool))
    with pytest.raises(TypeError, match="mask"):
        sdpa(q, k, v, mask=np.array([["a"] * 5] * 4))
    out, lse = sdpa(q, k, v, return_lse=True)
    with pytest.raises(ValueError, match="lse"):
        sdpa_backward(out, q, k, v, out, lse[:, :2])
    with pytest.raises(ValueError, match="grad_out"):
        sdpa_backward(out[:, :2], q, k, v, out, lse)
