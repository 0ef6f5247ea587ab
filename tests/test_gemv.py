"""Tests of matnet.ops.matvec (y = a @ x, or a.T @ x with trans) against a
float64 NumPy reference.

A matrix-vector product is the n == 1 case of a matrix product, so every
result is checked with numpy_reference.check_result(y, a, x, trans_a=trans):
|y - y_ref| <= (k + 3) * eps * (|op(a)| @ |x|) + tiny elementwise, k the
length of each dot product (n, or m with trans). That is gamma_{k+3}, the
worst-case rounding of a k-term sum in any order (SIMD lanes, unrolled
accumulators, FMA, a split over threads) plus the float64 reference's own
error; the derivation is in numpy_reference.py. No alpha or beta scaling
happens here, so the "+ 3" is slack the derivation does not need, not a
tuned allowance. Long float32 sums are also checked exactly on data whose
every partial sum is representable (test_exact_long_sums), where a single
dropped or doubled term shows.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

import matnet as mn
from numpy_reference import (DTYPES, check_exact, check_result, exact_operand, layouts,
                          strided_copy)

pytestmark = pytest.mark.usefixtures("single_thread_blas")

SIZES = [0, 1, 2, 3, 7, 16, 17, 33, 257, 4099]


def grid_shapes() -> list[tuple[int, int]]:
    """(m, n) over SIZES x SIZES but for 4099 x 257 and larger (cost only:
    the threaded sizes have their own test)."""
    return [(m, n) for m, n in itertools.product(SIZES, SIZES)
            if min(m, n) <= 33 or max(m, n) <= 257]


def make_matvec_operands(rng, m, n, dtype, trans):
    """a (m, n) and x of the length op(a) needs: n, or m with trans."""
    a = rng.standard_normal((m, n)).astype(dtype)
    x = rng.standard_normal(m if trans else n).astype(dtype)
    return a, x


def run_sweep(dtype, trans, rng) -> int:
    """Every grid shape for one dtype and transpose; returns the case count."""
    count = 0
    for m, n in grid_shapes():
        a, x = make_matvec_operands(rng, m, n, dtype, trans)
        got = mn.ops.matvec(a, x, trans=trans)
        check_result(got, a, x, trans_a=trans,
                     case=f"{np.dtype(dtype).name} m={m} n={n} trans={trans}")
        count += 1
    return count


def run_layout_sweep(dtype, trans, rng) -> int:
    """Every layout of a against every layout of x (numpy_reference.layouts:
    Fortran, strided, reversed, misaligned, byte-swapped) on shapes that take
    the short, the tail-only and the vectorised loops."""
    count = 0
    for m, n in [(7, 33), (33, 7), (1, 17), (17, 1), (257, 16)]:
        a0, x0 = make_matvec_operands(rng, m, n, dtype, trans)
        for (na, a), (nx, x) in itertools.product(layouts(a0).items(), layouts(x0).items()):
            got = mn.ops.matvec(a, x, trans=trans)
            check_result(got, a, x, trans_a=trans, case=f"m={m} n={n} trans={trans} a={na} x={nx}")
            count += 1
    return count


# ----------------------------------------------------------------- correctness


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("trans", [False, True], ids=["n", "t"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_sizes(dtype, trans, nthreads, rng, threads):
    mn.set_num_threads(nthreads)
    assert run_sweep(dtype, trans, rng) == len(grid_shapes())


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("trans", [False, True], ids=["n", "t"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_layouts(dtype, trans, nthreads, rng, threads):
    mn.set_num_threads(nthreads)
    assert run_layout_sweep(dtype, trans, rng) == 5 * 7 * 7


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("trans", [False, True], ids=["n", "t"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("m,n", [(4099, 1024), (1024, 4099), (8191, 5), (5, 8191)])
def test_large_enough_to_thread(m, n, dtype, trans, nthreads, rng, threads):
    """Sizes where two threads split the rows of y (or, with trans, of a) or
    the long dot products; the long sums stay below k = 8192, where the
    second-order factor of the bound is still < 1e-3 in float32."""
    mn.set_num_threads(nthreads)
    a, x = make_matvec_operands(rng, m, n, dtype, trans)
    check_result(mn.ops.matvec(a, x, trans=trans), a, x, trans_a=trans,
                 case=f"m={m} n={n} trans={trans} threads={nthreads}")


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("trans", [False, True], ids=["n", "t"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_exact_long_sums(dtype, trans, nthreads, rng, threads):
    """Short binary fractions: every partial sum is exact (exact_operand), so
    the product must equal the float64 reference bit for bit."""
    mn.set_num_threads(nthreads)
    for m, n in [(4099, 17), (17, 4099), (1, 4099), (4099, 1), (257, 257), (8191, 3), (3, 8191)]:
        a = exact_operand(rng, (m, n), dtype)
        x = exact_operand(rng, m if trans else n, dtype)
        check_exact(mn.ops.matvec(a, x, trans=trans), a, x, trans_a=trans,
                    case=f"m={m} n={n} trans={trans}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_zero_stride_operands(dtype, rng):
    """Broadcast views (stride 0): a zero increment is invalid for the C++
    gemv, so the binding must copy (or otherwise handle) such operands."""
    x = np.broadcast_to(np.asarray(0.5, dtype), (9,))
    a = rng.standard_normal((5, 9)).astype(dtype)
    check_result(mn.ops.matvec(a, x), a, x, case="x stride 0")
    row = rng.standard_normal(9).astype(dtype)
    a_rows = np.broadcast_to(row, (5, 9))  # row stride 0
    xt = rng.standard_normal(5).astype(dtype)
    check_result(mn.ops.matvec(a_rows, xt, trans=True), a_rows, xt, trans_a=True,
                 case="a row stride 0, trans")
    x9 = rng.standard_normal(9).astype(dtype)
    check_result(mn.ops.matvec(a_rows, x9), a_rows, x9, case="a row stride 0")


# ----------------------------------------------------------------- out=


@pytest.mark.parametrize("trans", [False, True], ids=["n", "t"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_out(dtype, trans, rng):
    """out is written, not read (NaN or inf there does not propagate), and
    returned; a strided or reversed out gets the result at its own elements
    and leaves the gaps between them alone."""
    m, n = 37, 29
    a, x = make_matvec_operands(rng, m, n, dtype, trans)
    length = n if trans else m
    gap = 1234.5  # exact in both dtypes, never a result here
    for name, fill, step in [("contiguous NaN", np.nan, 1), ("contiguous inf", np.inf, 1),
                             ("step 2", np.nan, 2), ("reversed", np.nan, -1),
                             ("reversed step 3", np.nan, -3)]:
        out = strided_copy(np.zeros(length, dtype), step)
        buffer = out.base  # the whole allocation: out's elements and the gaps around them
        buffer[...] = gap
        out[...] = fill
        res = mn.ops.matvec(a, x, trans=trans, out=out)
        assert res is out, name
        check_result(out, a, x, trans_a=trans, case=f"out {name}")
        assert np.count_nonzero(buffer == gap) == buffer.size - out.size, f"{name}: gap written"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_bad_out(dtype):
    a = np.ones((4, 6), dtype)
    x = np.ones(6, dtype)
    other = np.float64 if dtype == np.float32 else np.float32
    for bad in (np.empty(6, dtype), np.empty(3, dtype), np.empty((4, 1), dtype),
                np.empty((1, 4), dtype), np.empty((), dtype)):
        with pytest.raises(ValueError):
            mn.ops.matvec(a, x, out=bad)
    for bad in (np.empty(4, other), np.empty(4, np.int64)):  # a wrong dtype is a TypeError
        with pytest.raises(TypeError, match="dtype"):
            mn.ops.matvec(a, x, out=bad)
    read_only = np.empty(4, dtype)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        mn.ops.matvec(a, x, out=read_only)
    with pytest.raises(TypeError, match="out"):
        mn.ops.matvec(a, x, out=[0.0] * 4)
    # With trans the result has n elements: an out of length m is now wrong.
    with pytest.raises(ValueError):
        mn.ops.matvec(a, np.ones(4, dtype), trans=True, out=np.empty(4, dtype))


@pytest.mark.parametrize("trans", [False, True], ids=["n", "t"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_zero_sizes(dtype, trans):
    """An empty result is empty; an empty inner length gives zeros, written
    over whatever out held."""
    for m, n in [(0, 5), (5, 0), (0, 0)]:
        a = np.zeros((m, n), dtype)
        x = np.zeros(m if trans else n, dtype)
        length = n if trans else m
        got = mn.ops.matvec(a, x, trans=trans)
        assert got.shape == (length,) and got.dtype == dtype
        np.testing.assert_array_equal(got, 0.0)
        out = np.full(length, np.nan, dtype)
        assert mn.ops.matvec(a, x, trans=trans, out=out) is out
        np.testing.assert_array_equal(out, 0.0)


# ----------------------------------------------------------------- bad input


def test_array_likes_and_result_dtype(rng):
    got = mn.ops.matvec([[1.0, 2.0], [3.0, 4.0]], [5.0, 6.0])
    assert got.dtype == np.float64 and got.tolist() == [17.0, 39.0]
    assert mn.ops.matvec([[1.0, 2.0], [3.0, 4.0]], [5.0, 6.0], trans=True).tolist() == [23.0, 34.0]
    a, x = make_matvec_operands(rng, 5, 6, np.float32, False)
    assert mn.ops.matvec(a, x).dtype == np.float32


@pytest.mark.parametrize(
    "bad,name",
    [(np.int64, "int64"), (np.int32, "int32"), (np.complex128, "complex128"),
     (np.float16, "float16"), (bool, "bool"), (object, "object")],
)
@pytest.mark.parametrize("position", ["a", "x"])
def test_bad_dtype_raises_type_error(bad, name, position):
    a = np.ones((3, 3), bad if position == "a" else np.float32)
    x = np.ones(3, bad if position == "x" else np.float32)
    with pytest.raises(TypeError, match=name):
        mn.ops.matvec(a, x)


def test_mixed_float_dtypes_raise_type_error():
    with pytest.raises(TypeError, match=r"float32.*float64"):
        mn.ops.matvec(np.ones((3, 3), np.float32), np.ones(3, np.float64))
    with pytest.raises(TypeError, match=r"float64.*float32"):
        mn.ops.matvec(np.ones((3, 3), np.float64), np.ones(3, np.float32))


def test_non_array_raises_type_error():
    with pytest.raises(TypeError):
        mn.ops.matvec(object(), np.ones(2))
    with pytest.raises(TypeError):
        mn.ops.matvec(np.ones((2, 2)), object())


def _shape_text(shape) -> str:
    """How NumPy (and matnet's messages) print a shape: (3,), (2, 3, 3), ()."""
    return re.escape(str(tuple(shape)))


@pytest.mark.parametrize(
    "a_shape,x_shape,named",
    [((4,), (3,), "a"), ((2, 3, 3), (3,), "a"), ((), (3,), "a"), ((3, 3), (3, 1), "x"),
     ((3, 3), (), "x"), ((3, 3), (1, 3), "x")],
    ids=["a-1d", "a-3d", "a-0d", "x-column", "x-0d", "x-row"],
)
def test_wrong_ndim_raises_value_error(a_shape, x_shape, named):
    a = np.ones(a_shape, np.float32)
    x = np.ones(x_shape, np.float32)
    with pytest.raises(ValueError, match=_shape_text(a_shape if named == "a" else x_shape)):
        mn.ops.matvec(a, x)


@pytest.mark.parametrize("trans", [False, True], ids=["n", "t"])
def test_mismatched_lengths_name_both_shapes(trans):
    a = np.ones((3, 4), np.float32)
    x = np.ones(5, np.float32)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5,\)"):
        mn.ops.matvec(a, x, trans=trans)
    # The length that fits one orientation is wrong for the other.
    x_other = np.ones(3 if not trans else 4, np.float32)
    with pytest.raises(ValueError, match=r"\(3, 4\).*" + _shape_text(x_other.shape)):
        mn.ops.matvec(a, x_other, trans=trans)


# ----------------------------------------------------------------- ISA paths


def test_every_isa_path(isa_path, threads):
    """The size and layout sweeps, both dtypes, both orientations, 1 and 2
    threads, on each kernel path the CPU has."""
    rng = np.random.default_rng(11)
    n = 0
    for nt in (1, 2):
        mn.set_num_threads(nt)
        for dt in DTYPES:
            for trans in (False, True):
                n += run_sweep(dt, trans, rng)
                if nt == 1:
                    n += run_layout_sweep(dt, trans, rng)
    assert mn.cpu_info()["isa"] == isa_path
    assert n == 2 * 2 * 2 * len(grid_shapes()) + 2 * 2 * 5 * 7 * 7
