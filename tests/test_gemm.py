"""Tests of matnet.ops.matmul / matnet.ops.gemm on 2-D operands against a
float64 NumPy reference.

Every result is checked with numpy_reference.check_result: |C - C_ref| <=
(k + 3) * eps * (|alpha| |op(A)| @ |op(B)| + |beta| |C0|), the worst-case
rounding bound of a k-term sum in any order, derived in numpy_reference.py.
The skinny products (the GEMV and small-m paths) are swept in
test_gemm_skinny.py, N-D and 1-D operands in test_matmul_batched.py.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import matnet as mn
from matnet import _core
from numpy_reference import DTYPES, TRANS, check_result, make_operands

pytestmark = pytest.mark.usefixtures("single_thread_blas")


def blocking(dtype) -> dict[str, int]:
    """Block sizes of the active kernel for dtype (mr, nr, mc, kc, nc)."""
    return dict(_core._gemm_blocking(np.dtype(dtype).name))


def boundary_shapes(blk: dict[str, int]) -> list[tuple[int, int, int]]:
    """(m, n, k) triples just below / at / above every block size, with the other
    two dimensions small (primes) so the NC cases stay cheap."""
    mr, nr, mc, kc, nc = (blk[x] for x in ("mr", "nr", "mc", "kc", "nc"))
    shapes = set()
    for m in (1, 2, 3, 5, 7, mr - 1, mr, mr + 1, 2 * mr + 1, mc - 1, mc, mc + 1, 2 * mc + 3):
        shapes.add((max(m, 1), 11, 13))
    for n in (1, 2, 3, 5, 7, nr - 1, nr, nr + 1, 2 * nr + 1):
        shapes.add((7, max(n, 1), 13))
    for n in (nc - 1, nc, nc + 1):
        shapes.add((5, n, 3))
    for k in (1, 2, 3, 5, 7, kc - 1, kc, kc + 1, 2 * kc + 1):
        shapes.add((7, 11, max(k, 1)))
    # All at once: several A blocks, K blocks and micro-tiles, with edges.
    shapes.add((mc + mr + 1, 2 * nr + 3, kc + 1))
    shapes.add((2 * mr + 1, nc + nr + 1, kc + 3))
    return sorted(shapes)


def run_sweep(dtype, trans_a, trans_b, rng, *, with_beta=True) -> int:
    """Check every boundary shape for one dtype / transpose combination."""
    count = 0
    for m, n, k in boundary_shapes(blocking(dtype)):
        a, b = make_operands(rng, m, n, k, dtype, trans_a, trans_b)
        case = f"{np.dtype(dtype).name} m={m} n={n} k={k} ta={trans_a} tb={trans_b}"
        got = mn.ops.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
        check_result(got, a, b, trans_a=trans_a, trans_b=trans_b, case=case)
        if with_beta:
            c0 = rng.standard_normal((m, n)).astype(dtype)
            c = c0.copy()
            res = mn.ops.gemm(a, b, c, alpha=-0.75, beta=1.5, trans_a=trans_a, trans_b=trans_b)
            assert res is c
            check_result(c, a, b, trans_a=trans_a, trans_b=trans_b, alpha=-0.75, beta=1.5,
                         c0=c0, case=case + " alpha=-0.75 beta=1.5")
        count += 1
    return count


# ----------------------------------------------------------------- correctness


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=["nn", "nt", "tn", "tt"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_block_boundaries(dtype, trans_a, trans_b, nthreads, rng, threads):
    mn.set_num_threads(nthreads)
    assert run_sweep(dtype, trans_a, trans_b, rng) > 30


@pytest.mark.parametrize("nthreads", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(
    "m,n,k",
    [(0, 0, 0), (1, 1, 1), (2, 2, 2), (97, 101, 103), (256, 256, 256), (130, 10, 128),
     (512, 256, 784), (32, 256, 784), (128, 784, 256), (5, 900, 300), (900, 5, 300),
     (200, 4097, 300)],
)
def test_shapes_and_threads(m, n, k, dtype, nthreads, rng, threads):
    """Square, prime, MLP-like and skinny shapes, split over 1-3 threads. With
    several threads, the small products run one independent rectangle per
    thread (split along m or n), the large ones (512 x 256 x 784 and the last,
    which also crosses NC and KC) share packed B panels."""
    mn.set_num_threads(nthreads)
    for ta, tb in TRANS:
        a, b = make_operands(rng, m, n, k, dtype, ta, tb)
        got = mn.ops.matmul(a, b, trans_a=ta, trans_b=tb)
        check_result(got, a, b, trans_a=ta, trans_b=tb, case=f"m={m} n={n} k={k} ta={ta} tb={tb}")


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_every_row_remainder(dtype, nthreads, rng, threads):
    """Every m mod MR, small and across A blocks: the driver covers a block's
    last rows with MR-row tiles, shorter tail tiles or one zero-padded tile,
    whichever costs least. Both A paths (read in place with few column
    panels, packed with many), both A layouts, two K blocks (tail tiles
    accumulate into C) and beta != 0."""
    mn.set_num_threads(nthreads)
    blk = blocking(dtype)
    mr, nr, mc, kc = (blk[x] for x in ("mr", "nr", "mc", "kc"))
    k = kc + 7
    for n in (3 * nr, 20 * nr + 5):
        for m in [*range(1, 3 * mr + 1), mc - 2, mc + 2, 2 * mc + 1]:
            for ta in (False, True):
                a, b = make_operands(rng, m, n, k, dtype, ta, False)
                c0 = rng.standard_normal((m, n)).astype(dtype)
                c = c0.copy()
                mn.ops.gemm(a, b, c, alpha=1.25, beta=-0.5, trans_a=ta)
                check_result(c, a, b, trans_a=ta, alpha=1.25, beta=-0.5, c0=c0,
                             case=f"m={m} n={n} k={k} ta={ta}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(
    "alpha,beta", [(1.0, 0.0), (2.5, 0.0), (1.0, 1.0), (-1.0, 0.5), (0.5, -2.0), (0.0, 3.0),
                   (0.0, 0.0)]
)
def test_alpha_beta(alpha, beta, dtype, rng):
    m, n, k = 37, 41, 300  # edges in m and n, two K blocks
    for ta, tb in TRANS:
        a, b = make_operands(rng, m, n, k, dtype, ta, tb)
        c0 = rng.standard_normal((m, n)).astype(dtype)
        c = c0.copy()
        out = mn.ops.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=ta, trans_b=tb)
        assert out is c
        check_result(c, a, b, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, c0=c0,
                     case=f"alpha={alpha} beta={beta} ta={ta} tb={tb}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(7, 11, 5), (150, 170, 300)], ids=["small", "blocked"])
def test_beta_zero_ignores_nan_in_c(shape, dtype, rng):
    """BLAS rule: with beta == 0, C is written without being read."""
    m, n, k = shape
    a, b = make_operands(rng, m, n, k, dtype, False, False)
    c = np.full((m, n), np.nan, dtype=dtype)
    mn.ops.gemm(a, b, c, alpha=1.0, beta=0.0)
    check_result(c, a, b, case="gemm beta=0 over NaN")
    out = np.full((m, n), np.inf, dtype=dtype)
    mn.ops.matmul(a, b, out=out)
    check_result(out, a, b, case="matmul out= over inf")


def test_alpha_zero_does_not_read_a_b(rng):
    """BLAS rule: alpha == 0 (or k == 0) gives beta * C without reading A or B."""
    a = np.full((4, 5), np.nan, dtype=np.float32)
    b = np.full((5, 3), np.nan, dtype=np.float32)
    c = np.ones((4, 3), dtype=np.float32)
    mn.ops.gemm(a, b, c, alpha=0.0, beta=2.0)
    np.testing.assert_array_equal(c, 2.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_non_contiguous_and_fortran(dtype, rng):
    """Strided, reversed, Fortran-ordered, transposed-view and byte-swapped inputs."""
    base_a = rng.standard_normal((90, 120)).astype(dtype)
    base_b = rng.standard_normal((140, 100)).astype(dtype)
    views_a = {
        "C": base_a[:40, :50],
        "step": base_a[::2, ::2][:40, :50],
        "neg-rows": base_a[::-1][:40, :50],
        "neg-cols": base_a[:, ::-1][:40, :50],
        "neg-both-step": base_a[::-2, ::-2][:40, :50],
        "F": np.asfortranarray(base_a[:40, :50]),
        "T-view": np.ascontiguousarray(base_a[:50, :40]).T,
        "col-vector-stride": base_a[:40, 3:4].repeat(50, axis=1)[:, ::1],
        "byteswapped": base_a[:40, :50].astype(np.dtype(dtype).newbyteorder(">")),
    }
    views_b = {
        "C": base_b[:50, :30],
        "step": base_b[::2, ::3][:50, :30],
        "neg": base_b[::-1, ::-1][:50, :30],
        "F": np.asfortranarray(base_b[:50, :30]),
    }
    for (na, va), (nb, vb) in itertools.product(views_a.items(), views_b.items()):
        for ta, tb in TRANS:
            a = va.T if ta else va  # op(a) is always the same 40 x 50 matrix
            b = vb.T if tb else vb
            got = mn.ops.matmul(a, b, trans_a=ta, trans_b=tb)
            check_result(got, a, b, trans_a=ta, trans_b=tb, case=f"a={na} b={nb} ta={ta} tb={tb}")


def test_single_row_and_column_views(rng):
    """1 x k and k x 1 views whose other stride is arbitrary (or zero, via broadcasting)."""
    a = rng.standard_normal((8, 8)).astype(np.float32)
    b = rng.standard_normal((8, 5)).astype(np.float32)
    row = a[2:3, :]  # 1 x 8
    check_result(mn.ops.matmul(row, b), row, b, case="row view")
    col = a[:, 3:4]  # 8 x 1
    check_result(mn.ops.matmul(col, row), col, row, case="outer product of views")
    bcast = np.broadcast_to(np.float32(2.0), (8, 5))  # zero strides
    check_result(mn.ops.matmul(a, bcast), a, bcast, case="broadcast (zero-stride) b")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_out_argument(dtype, rng):
    a, b = make_operands(rng, 33, 47, 29, dtype, False, False)
    out = np.empty((33, 47), dtype=dtype)
    res = mn.ops.matmul(a, b, out=out)
    assert res is out
    check_result(out, a, b, case="out=")
    out2 = np.empty((47, 33), dtype=dtype)
    mn.ops.matmul(b, a, trans_a=True, trans_b=True, out=out2)
    check_result(out2, b, a, trans_a=True, trans_b=True, case="out= transposed")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_overlapping_out(dtype, rng):
    """out / c may be (or overlap) an input: inputs are read as they were before the call."""
    a0 = rng.standard_normal((64, 64)).astype(dtype)
    a = a0.copy()
    mn.ops.matmul(a, a, out=a)
    check_result(a, a0, a0, case="out is a and b")

    buf0 = rng.standard_normal((40, 80)).astype(dtype)
    buf = buf0.copy()
    out = buf[:, :40]  # not C-contiguous -> refused, so use a contiguous overlapping block
    with pytest.raises(ValueError, match="C-contiguous"):
        mn.ops.matmul(buf0[:, 40:].T.copy(), buf0[:, 40:], out=out)
    flat0 = rng.standard_normal(3000).astype(dtype)
    flat = flat0.copy()
    b_view = flat[:1600].reshape(40, 40)
    out_view = flat[1000:2600].reshape(40, 40)  # overlaps the tail of b_view
    a_in = rng.standard_normal((40, 40)).astype(dtype)
    mn.ops.matmul(a_in, b_view, out=out_view)
    check_result(out_view, a_in, flat0[:1600].reshape(40, 40), case="out overlaps b")

    c0 = rng.standard_normal((30, 30)).astype(dtype)
    c = c0.copy()
    mn.ops.gemm(c, c, c, alpha=1.0, beta=1.0, trans_b=True)
    check_result(c, c0, c0, trans_b=True, alpha=1.0, beta=1.0, c0=c0, case="gemm c is a and b")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_zero_size(dtype):
    z = np.zeros
    assert mn.ops.matmul(z((0, 3), dtype), z((3, 4), dtype)).shape == (0, 4)
    assert mn.ops.matmul(z((3, 4), dtype), z((4, 0), dtype)).shape == (3, 0)
    r = mn.ops.matmul(z((3, 0), dtype), z((0, 4), dtype))
    assert r.shape == (3, 4) and r.dtype == dtype and not r.any()
    out = np.full((3, 4), np.nan, dtype=dtype)
    mn.ops.matmul(z((3, 0), dtype), z((0, 4), dtype), out=out)
    np.testing.assert_array_equal(out, 0.0)
    c = np.ones((3, 4), dtype=dtype)
    mn.ops.gemm(z((0, 3), dtype), z((0, 4), dtype), c, beta=2.0, trans_a=True)
    np.testing.assert_array_equal(c, 2.0)
    assert mn.ops.gemm(z((0, 0), dtype), z((0, 0), dtype)).shape == (0, 0)


def test_array_likes_and_results_dtype(rng):
    got = mn.ops.matmul([[1.0, 2.0]], [[3.0], [4.0]])
    assert got.dtype == np.float64 and got.tolist() == [[11.0]]
    a, b = make_operands(rng, 5, 6, 7, np.float32, False, False)
    assert mn.ops.matmul(a, b).dtype == np.float32
    assert mn.ops.gemm(a, b).flags.c_contiguous


def test_team_smaller_than_requested():
    """OMP_THREAD_LIMIT=1 with 2 threads requested: the parallel region gets a
    team of one, and the driver must still compute every tile (small, shared-B
    static and shared-B dynamic products)."""
    code = (
        "import numpy as np, matnet as mn\n"
        "mn.set_num_threads(2)\n"
        "rng = np.random.default_rng(3)\n"
        "for m, n, k in [(150, 170, 130), (200, 700, 600), (1000, 300, 300)]:\n"
        "    a = rng.standard_normal((m, k)); b = rng.standard_normal((k, n))\n"
        "    err = np.abs(mn.ops.matmul(a, b) - a @ b).max()\n"
        "    assert err < 1e-9 * k, (m, n, k, err)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "bad,name",
    [(np.ones((3, 3), np.int64), "int64"), (np.ones((3, 3), np.int32), "int32"),
     (np.ones((3, 3), np.complex128), "complex128"), (np.ones((3, 3), np.float16), "float16"),
     (np.ones((3, 3), bool), "bool"), (np.array([[1.0, None, 2.0]] * 3, dtype=object), "object"),
     (np.array([["a", "b", "c"]] * 3), "<U1")],
)
@pytest.mark.parametrize("position", ["a", "b"])
def test_bad_dtype_raises_type_error(bad, name, position):
    good = np.ones((3, 3), np.float32)
    args = (bad, good) if position == "a" else (good, bad)
    with pytest.raises(TypeError, match=name):
        mn.ops.matmul(*args)
    with pytest.raises(TypeError, match=name):
        mn.ops.gemm(*args)


def test_mixed_float_dtypes_raise_type_error():
    a = np.ones((3, 3), np.float32)
    b = np.ones((3, 3), np.float64)
    with pytest.raises(TypeError, match=r"float32.*float64"):
        mn.ops.matmul(a, b)
    with pytest.raises(TypeError, match=r"float64.*float32"):
        mn.ops.gemm(b, a)


def test_non_array_raises_type_error():
    with pytest.raises(TypeError):
        mn.ops.matmul(object(), np.ones((2, 2)))
    with pytest.raises(TypeError, match="out"):
        mn.ops.matmul(np.ones((2, 2)), np.ones((2, 2)), out=[[0.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("shape", [(3,), (2, 3, 3), ()], ids=["1d", "3d", "0d"])
def test_gemm_wrong_ndim_raises_value_error(shape):
    """gemm stays 2-D; matmul follows np.matmul for 1-D and N-D operands and
    refuses only 0-d ones (test_matmul_batched.py)."""
    bad = np.ones(shape, np.float32)
    good = np.ones((3, 3), np.float32)
    shape_text = str(shape).replace(" ", "").replace(",", ", ").replace(", )", ",)")
    with pytest.raises(ValueError, match=r"2-D.*" + re.escape(shape_text)):
        mn.ops.gemm(bad, good)
    with pytest.raises(ValueError, match="2-D"):
        mn.ops.gemm(good, bad)


@pytest.mark.parametrize("ta,tb", TRANS, ids=["nn", "nt", "tn", "tt"])
def test_mismatched_shapes_name_both(ta, tb):
    a = np.ones((2, 3), np.float32)
    b = np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        mn.ops.matmul(a, b, trans_a=ta, trans_b=tb)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        mn.ops.gemm(a, b, trans_a=ta, trans_b=tb)


def test_bad_out_raises_value_error():
    a = np.ones((4, 5), np.float32)
    b = np.ones((5, 6), np.float32)
    with pytest.raises(ValueError, match=r"shape \(4, 6\)"):
        mn.ops.matmul(a, b, out=np.empty((6, 4), np.float32))
    with pytest.raises(TypeError, match="dtype float32"):  # NumPy's convention: a dtype is a type
        mn.ops.matmul(a, b, out=np.empty((4, 6), np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        mn.ops.matmul(a, b, out=np.empty((6, 4), np.float32).T)
    with pytest.raises(ValueError, match="C-contiguous"):
        mn.ops.matmul(a, b, out=np.empty((4, 12), np.float32)[:, ::2])
    ro = np.empty((4, 6), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        mn.ops.matmul(a, b, out=ro)


def test_bad_gemm_c_raises_value_error():
    a = np.ones((4, 5), np.float64)
    b = np.ones((5, 6), np.float64)
    with pytest.raises(ValueError, match="beta"):
        mn.ops.gemm(a, b, beta=1.0)
    with pytest.raises(ValueError, match=r"shape \(4, 6\)"):
        mn.ops.gemm(a, b, np.zeros((4, 5)), beta=1.0)
    with pytest.raises(TypeError, match="dtype float64"):
        mn.ops.gemm(a, b, np.zeros((4, 6), np.float32), beta=1.0)
    ro = np.zeros((4, 6))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        mn.ops.gemm(a, b, ro)


# ----------------------------------------------------------------- ISA paths


def test_every_isa_path(isa_path, threads):
    """Compact correctness sweep (every boundary shape, all transposes, both
    dtypes, 1 and 2 threads) on each kernel path the CPU has."""
    rng = np.random.default_rng(7)
    n = 0
    for nt in (1, 2):
        mn.set_num_threads(nt)
        for dt in DTYPES:
            for ta, tb in TRANS:
                n += run_sweep(dt, ta, tb, rng, with_beta=(nt == 1))
    assert n > 0
    info = mn.cpu_info()
    assert info["isa"] == isa_path
    assert ("ref" in info["gemm_kernel_float32"]) == (isa_path == "generic"), info
