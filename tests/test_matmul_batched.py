"""Tests of matnet.ops.matmul on N-D and 1-D operands: np.matmul's rules
(leading axes broadcast, a 1-D operand is a row or column whose axis leaves
the result, two 1-D operands give a 0-d array), trans_a / trans_b swapping the
last two axes, and out=.

Each product of a batch is a plain matrix product, so every result is checked
with numpy_reference.check_result, whose bound (k + 3) * eps * (|op(A)| @ |op(B)|)
+ tiny per element is derived there; the reference is np.matmul in float64,
which also fixes the expected shape. The batch sizes include both ways of
threading a batch: many small products ((512, 8, 8): one product per thread)
and a few large ones ((3, 130, 257) @ (3, 257, 70): threads inside each
product).
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

import matnet as mn
from numpy_reference import (DTYPES, TRANS, check_exact, check_result, exact_operand, layouts,
                          one_operand_varied)

pytestmark = pytest.mark.usefixtures("single_thread_blas")

# Per-product (m, k, n): the GEMV paths (m == 1, n == 1), the skinny path,
# the packed path, an empty inner dimension and an empty result.
PRODUCTS = [(1, 7, 5), (6, 9, 1), (3, 16, 17), (17, 33, 9), (33, 7, 40), (4, 0, 3), (0, 5, 3)]

# Leading (batch) shapes of a and b, as np.matmul broadcasts them.
BATCHES = [
    ((2, 3), ()),         # (2, 3, m, k) @ (k, n)
    ((), (2, 3)),         # (m, k) @ (2, 3, k, n)
    ((1,), (4,)),         # size-1 broadcast
    ((5, 1), (1, 3)),     # both broadcast -> (5, 3)
    ((2, 1, 3), (4, 1)),  # different ranks -> (2, 4, 3)
    ((3,), (3,)),
    ((1,), (1,)),         # a batch of one
    ((0,), (0,)),         # empty batch
    ((0,), ()),
    ((2, 0), (1,)),
]


def stored(rng, batch, rows, cols, trans, dtype):
    """An operand whose op() is batch + (rows, cols): stored transposed when trans."""
    return rng.standard_normal(batch + ((cols, rows) if trans else (rows, cols))).astype(dtype)


def run_broadcast_sweep(dtype, rng) -> int:
    """Every BATCHES x PRODUCTS x TRANS case; returns the case count."""
    count = 0
    for (batch_a, batch_b), (m, k, n), (ta, tb) in itertools.product(BATCHES, PRODUCTS, TRANS):
        a = stored(rng, batch_a, m, k, ta, dtype)
        b = stored(rng, batch_b, k, n, tb, dtype)
        got = mn.ops.matmul(a, b, trans_a=ta, trans_b=tb)
        check_result(got, a, b, trans_a=ta, trans_b=tb,
                     case=f"a {a.shape} b {b.shape} ta={ta} tb={tb}")
        count += 1
    return count


# ----------------------------------------------------------------- broadcasting


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_broadcasting(dtype, nthreads, rng, threads):
    mn.set_num_threads(nthreads)
    assert run_broadcast_sweep(dtype, rng) == len(BATCHES) * len(PRODUCTS) * len(TRANS)


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(
    "a_shape,b_shape",
    [((512, 8, 8), (512, 8, 8)), ((512, 8, 8), (8, 8)), ((8, 8), (512, 8, 8)),
     ((512, 1, 8), (512, 8, 8)), ((512, 8, 8), (512, 8, 1)), ((64, 16, 33), (64, 33, 17)),
     ((3, 130, 257), (3, 257, 70)), ((3, 130, 257), (257, 70)), ((2, 2, 200, 64), (2, 1, 64, 300))],
    ids=["512x8x8", "512x8x8@shared", "shared@512x8x8", "512-rows", "512-columns", "64x16x33x17",
         "3x130x257x70", "3x130x257@shared", "2x2x200x64x300"],
)
def test_many_small_and_few_large(a_shape, b_shape, dtype, nthreads, rng, threads):
    """Both ways of threading a batch (across the products, inside each one),
    with a shared (broadcast) operand and with GEMV-shaped products, all
    transposes; then the same shapes on exact data, bit for bit."""
    mn.set_num_threads(nthreads)
    for ta, tb in TRANS:
        a = stored(rng, a_shape[:-2], *a_shape[-2:], ta, dtype)
        b = stored(rng, b_shape[:-2], *b_shape[-2:], tb, dtype)
        case = f"a {a.shape} b {b.shape} ta={ta} tb={tb} threads={nthreads}"
        check_result(mn.ops.matmul(a, b, trans_a=ta, trans_b=tb), a, b, trans_a=ta, trans_b=tb,
                     case=case)
    a, b = exact_operand(rng, a_shape, dtype), exact_operand(rng, b_shape, dtype)
    check_exact(mn.ops.matmul(a, b), a, b, case=f"exact a {a_shape} b {b_shape}")


# ----------------------------------------------------------------- 1-D operands


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_one_d_operands(dtype, rng):
    """A 1-D a is a (1, k) row and a 1-D b a (k, 1) column, whose axis is
    dropped from the result; the other operand may be transposed or N-D."""
    for k in (0, 1, 7, 33, 257):
        v, w = rng.standard_normal(k).astype(dtype), rng.standard_normal(k).astype(dtype)
        cases = [
            (v, stored(rng, (), k, 5, False, dtype), False, False),
            (v, stored(rng, (), k, 5, True, dtype), False, True),
            (stored(rng, (), 6, k, False, dtype), w, False, False),
            (stored(rng, (), 6, k, True, dtype), w, True, False),
            (v, w, False, False),                                      # -> 0-d
            (v, stored(rng, (3,), k, 4, False, dtype), False, False),  # -> (3, 4)
            (v, stored(rng, (2, 1), k, 4, True, dtype), False, True),  # -> (2, 1, 4)
            (stored(rng, (3,), 6, k, False, dtype), w, False, False),  # -> (3, 6)
            (stored(rng, (2, 3), 6, k, True, dtype), w, True, False),  # -> (2, 3, 6)
            (v, stored(rng, (0,), k, 4, False, dtype), False, False),  # -> (0, 4)
        ]
        for a, b, ta, tb in cases:
            got = mn.ops.matmul(a, b, trans_a=ta, trans_b=tb)
            check_result(got, a, b, trans_a=ta, trans_b=tb,
                         case=f"a {a.shape} b {b.shape} ta={ta} tb={tb}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_two_one_d_operands_give_a_0d_array(dtype, rng):
    v, w = exact_operand(rng, 300, dtype), exact_operand(rng, 300, dtype)
    got = mn.ops.matmul(v, w)
    assert isinstance(got, np.ndarray) and got.shape == () and got.dtype == dtype
    check_exact(got, v, w, case="dot")
    empty = mn.ops.matmul(np.zeros(0, dtype), np.zeros(0, dtype))
    assert isinstance(empty, np.ndarray) and empty.shape == () and empty == 0.0


@pytest.mark.parametrize("which", ["a", "b"])
def test_trans_flag_on_one_d_operand_raises(which):
    v = np.ones(3, np.float32)
    m = np.ones((3, 3), np.float32)
    with pytest.raises(ValueError):
        if which == "a":
            mn.ops.matmul(v, m, trans_a=True)
        else:
            mn.ops.matmul(m, v, trans_b=True)


# ----------------------------------------------------------------- layouts


def batch_views(x) -> dict:
    """name -> an N-D array equal to x (batch axis first) with the batch stored
    unusually: every second matrix of a larger stack, the batch axis inside
    the matrices' rows (transpose(1, 0, 2) of a contiguous array), matrices
    with reversed rows, plus the element-level layouts of numpy_reference.layouts
    (zero batch strides: test_zero_stride_batch)."""
    x = np.asarray(x)
    doubled = np.repeat(np.full_like(x, np.nan), 2, axis=0)
    doubled[::2] = x
    interleaved = np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2)
    rows_reversed = np.ascontiguousarray(x[:, ::-1, :])[:, ::-1, :]
    return {"every-second": doubled[::2], "batch-inside-rows": interleaved,
            "rows-reversed": rows_reversed, **layouts(x)}


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("m,k,n", [(1, 33, 17), (5, 33, 1), (7, 16, 17), (40, 70, 33)])
def test_non_contiguous_batches(m, k, n, dtype, nthreads, rng, threads):
    """Every batch view of a against a C-ordered b and the other way round,
    all transposes (op() of each view is the same stack of matrices)."""
    mn.set_num_threads(nthreads)
    for ta, tb in TRANS:
        a0, b0 = stored(rng, (3,), m, k, ta, dtype), stored(rng, (3,), k, n, tb, dtype)
        for name, a, b in one_operand_varied(a0, b0, batch_views):
            check_result(mn.ops.matmul(a, b, trans_a=ta, trans_b=tb), a, b, trans_a=ta,
                         trans_b=tb, case=f"{name} m={m} k={k} n={n} ta={ta} tb={tb}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_zero_stride_batch(dtype, rng):
    """One matrix repeated through a zero batch stride (np.broadcast_to), on
    either side, against a real batch."""
    a2 = rng.standard_normal((7, 16)).astype(dtype)
    b = rng.standard_normal((4, 16, 9)).astype(dtype)
    a = np.broadcast_to(a2, (4, 7, 16))
    check_result(mn.ops.matmul(a, b), a, b, case="a batch stride 0")
    b2 = rng.standard_normal((16, 9)).astype(dtype)
    bb = np.broadcast_to(b2, (4, 16, 9))
    a3 = rng.standard_normal((4, 7, 16)).astype(dtype)
    check_result(mn.ops.matmul(a3, bb), a3, bb, case="b batch stride 0")


# ----------------------------------------------------------------- out=


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_out(dtype, rng):
    """out of the exact result shape is written (never read: NaN there does
    not propagate) and returned, for N-D, 1-D and 0-d results and an empty
    inner dimension."""
    cases = [
        (stored(rng, (2, 3), 5, 7, False, dtype), stored(rng, (), 7, 4, False, dtype)),
        (stored(rng, (512,), 8, 8, False, dtype), stored(rng, (512,), 8, 8, False, dtype)),
        (stored(rng, (3,), 130, 257, False, dtype), stored(rng, (3,), 257, 70, False, dtype)),
        (rng.standard_normal(7).astype(dtype), stored(rng, (3,), 7, 4, False, dtype)),
        (stored(rng, (), 6, 7, False, dtype), rng.standard_normal(7).astype(dtype)),
        (rng.standard_normal(7).astype(dtype), rng.standard_normal(7).astype(dtype)),
        (stored(rng, (2,), 5, 0, False, dtype), stored(rng, (2,), 0, 4, False, dtype)),
    ]
    for a, b in cases:
        out = np.full(np.matmul(a, b).shape, np.nan, dtype)
        res = mn.ops.matmul(a, b, out=out)
        assert res is out, f"a {a.shape} b {b.shape}"
        check_result(out, a, b, case=f"out= a {a.shape} b {b.shape}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_out_overlapping_inputs(dtype, rng):
    """As np.matmul and matmul's 2-D out=: out may be an input; the inputs are
    read as they were before the call."""
    a0 = rng.standard_normal((4, 24, 24)).astype(dtype)
    a = a0.copy()
    mn.ops.matmul(a, a, out=a)
    check_result(a, a0, a0, case="out is a and b")
    b0 = rng.standard_normal((4, 24, 24)).astype(dtype)
    b = b0.copy()
    mn.ops.matmul(a0, b, trans_b=True, out=b)
    check_result(b, a0, b0, trans_b=True, case="out is b")


def test_bad_out_raises_value_error():
    a = np.ones((2, 4, 5), np.float32)
    b = np.ones((5, 6), np.float32)
    with pytest.raises(ValueError, match=re.escape("(2, 4, 6)")):
        mn.ops.matmul(a, b, out=np.empty((8, 6), np.float32))
    with pytest.raises(ValueError, match=re.escape("(2, 4, 6)")):
        mn.ops.matmul(a, b, out=np.empty((1, 4, 6), np.float32))  # broadcastable is not enough
    with pytest.raises(TypeError, match="dtype float32"):
        mn.ops.matmul(a, b, out=np.empty((2, 4, 6), np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        mn.ops.matmul(a, b, out=np.asfortranarray(np.empty((2, 4, 6), np.float32)))
    with pytest.raises(ValueError, match="C-contiguous"):
        mn.ops.matmul(a, b, out=np.empty((4, 4, 6), np.float32)[::2])
    ro = np.empty((2, 4, 6), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        mn.ops.matmul(a, b, out=ro)
    v = np.ones(5, np.float32)
    with pytest.raises(ValueError):
        mn.ops.matmul(v, v, out=np.empty(1, np.float32))  # the result is 0-d
    with pytest.raises(ValueError):
        mn.ops.matmul(np.ones((4, 5), np.float32), v, out=np.empty((4, 1), np.float32))


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize("which", ["a", "b", "both"])
def test_0d_operand_raises_value_error(which):
    s = np.ones((), np.float32)
    m = np.ones((3, 3), np.float32)
    a, b = (s if which in ("a", "both") else m), (s if which in ("b", "both") else m)
    with pytest.raises(ValueError):
        mn.ops.matmul(a, b)


@pytest.mark.parametrize(
    "a_shape,b_shape",
    [((2, 4, 5), (6, 3)), ((4,), (5, 3)), ((4, 5), (4,)), ((3,), (4,)), ((2, 4, 5), (3, 5, 6)),
     ((2, 1, 4, 5), (3, 2, 5, 6))],
    ids=["inner", "1d-a", "1d-b", "1d-both", "batch", "batch-4d"],
)
def test_shapes_that_do_not_fit_name_both(a_shape, b_shape):
    with pytest.raises(ValueError, match=re.escape(str(a_shape)) + ".*" + re.escape(str(b_shape))):
        mn.ops.matmul(np.ones(a_shape, np.float32), np.ones(b_shape, np.float32))


def test_bad_dtypes_raise_type_error():
    good = np.ones((2, 3, 3), np.float32)
    for bad in (np.ones((2, 3, 3), np.int64), np.ones(3, np.complex128),
                np.ones((2, 3, 3), object)):
        with pytest.raises(TypeError):
            mn.ops.matmul(bad, good)
        with pytest.raises(TypeError):
            mn.ops.matmul(good, bad)
    with pytest.raises(TypeError, match=r"float32.*float64"):
        mn.ops.matmul(good, np.ones((2, 3, 3), np.float64))
    with pytest.raises(TypeError):
        mn.ops.matmul(good, object())


# ----------------------------------------------------------------- threads, ISA paths


def test_team_smaller_than_requested(python_subprocess):
    """OMP_THREAD_LIMIT=1 with 2 threads requested: however the batch is split
    (across products or inside them), every product must be computed."""
    out = python_subprocess((
        "import numpy as np, matnet as mn, numpy_reference as ref\n"
        "mn.set_num_threads(2)\n"
        "rng = np.random.default_rng(5)\n"
        "for sa, sb in [((512, 8, 8), (512, 8, 8)), ((3, 130, 257), (3, 257, 70)),\n"
        "               ((64, 1, 40), (40, 30)), ((64, 40, 30), (64, 30, 1))]:\n"
        "    a = ref.exact_operand(rng, sa, np.float32)\n"
        "    b = ref.exact_operand(rng, sb, np.float32)\n"
        "    ref.check_exact(mn.ops.matmul(a, b), a, b, case=f'{sa} @ {sb}')\n"
        "print('ok')\n"
    ), extra_env={"OMP_THREAD_LIMIT": "1"})
    assert out.strip() == "ok"


def test_every_isa_path(isa_path, threads):
    """The broadcasting sweep, both dtypes, 1 and 2 threads, on each kernel
    path the CPU has."""
    rng = np.random.default_rng(13)
    n = 0
    for nt in (1, 2):
        mn.set_num_threads(nt)
        for dt in DTYPES:
            n += run_broadcast_sweep(dt, rng)
    assert mn.cpu_info()["isa"] == isa_path
    assert n == 2 * 2 * len(BATCHES) * len(PRODUCTS) * len(TRANS)
