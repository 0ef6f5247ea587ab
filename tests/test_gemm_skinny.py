"""matmul / gemm on the shapes that leave the packed GEMM: products with
m == 1 or n == 1 run on the GEMV kernels, products with a few rows (m up to
about 16) on the unpacked "skinny" path, and the boundary between the paths
moves with the thread count and the ISA. So m, n and k are swept over
{0, 1, 2, 3, 7, 16, 17, 33, 257, 4099} (the cube, but for more than one
dimension above 33), m over every value 1..20 and 31..33 against k, n in
{1, 7, 16, 17, 33, 257, 784}, and m <= 16 against 4096 x 33 and 33 x 4096,
with both transposes, alpha / beta, strided operands, 1 and 2 threads.

Results are checked with numpy_reference.check_result (|C - C_ref| <= (k + 3) *
eps * M + tiny, derived there) and, for the long sums where one wrong
float32 term could hide inside that bound, bit for bit on exact data.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import matnet as mn
from numpy_reference import (DTYPES, TRANS, at_offset, check_exact, check_result,
                             exact_operand, make_operands, one_operand_varied)

pytestmark = pytest.mark.usefixtures("single_thread_blas")

SIZES = [0, 1, 2, 3, 7, 16, 17, 33, 257, 4099]
SKINNY_M = [*range(1, 21), 31, 32, 33]
KN = [1, 7, 16, 17, 33, 257, 784]


def cube_shapes() -> list[tuple[int, int, int]]:
    """(m, n, k) in SIZES^3 with at most one dimension above 33 (896 shapes,
    82M multiply-adds; the full cube would be 10^11)."""
    return [s for s in itertools.product(SIZES, SIZES, SIZES) if sorted(s)[1] <= 33]


def run_cube(dtype, trans_a, trans_b, rng) -> int:
    """matmul over every cube shape for one dtype / transpose pair."""
    for m, n, k in cube_shapes():
        a, b = make_operands(rng, m, n, k, dtype, trans_a, trans_b)
        check_result(mn.ops.matmul(a, b, trans_a=trans_a, trans_b=trans_b), a, b,
                     trans_a=trans_a, trans_b=trans_b,
                     case=f"{np.dtype(dtype).name} m={m} n={n} k={k} ta={trans_a} tb={trans_b}")
    return len(cube_shapes())


def run_skinny(dtype, trans_a, trans_b, rng, *, ms=SKINNY_M, kns=KN, with_beta=True) -> int:
    """matmul (and, with_beta, gemm with alpha = -0.75, beta = 1.5) for every m
    in ms against every k, n in kns; B is drawn once per (k, n) and shared by
    all m. Returns the number of shapes."""
    count = 0
    for k, n in itertools.product(kns, kns):
        _, b = make_operands(rng, 0, n, k, dtype, trans_a, trans_b)
        for m in ms:
            a, _ = make_operands(rng, m, 0, k, dtype, trans_a, trans_b)
            case = f"{np.dtype(dtype).name} m={m} n={n} k={k} ta={trans_a} tb={trans_b}"
            check_result(mn.ops.matmul(a, b, trans_a=trans_a, trans_b=trans_b), a, b,
                         trans_a=trans_a, trans_b=trans_b, case=case)
            if with_beta:
                c0 = rng.standard_normal((m, n)).astype(dtype)
                c = c0.copy()
                assert mn.ops.gemm(a, b, c, alpha=-0.75, beta=1.5, trans_a=trans_a,
                                   trans_b=trans_b) is c
                check_result(c, a, b, trans_a=trans_a, trans_b=trans_b, alpha=-0.75, beta=1.5,
                             c0=c0, case=case + " alpha=-0.75 beta=1.5")
            count += 1
    return count


# ----------------------------------------------------------------- sweeps


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_size_cube(dtype, nthreads, rng, threads):
    mn.set_num_threads(nthreads)
    for ta, tb in TRANS:
        assert run_cube(dtype, ta, tb, rng) == 896


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=["nn", "nt", "tn", "tt"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_every_skinny_m(dtype, trans_a, trans_b, nthreads, rng, threads):
    """Every row count of the skinny path and just past it (17..20, 31..33),
    against inner and column counts below, at and above the SIMD widths,
    through matmul and through gemm with alpha / beta (on two threads each
    thread updates its own part of C: a part scaled twice or missed shows)."""
    mn.set_num_threads(nthreads)
    count = run_skinny(dtype, trans_a, trans_b, rng)
    assert count == len(SKINNY_M) * len(KN) ** 2


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_long_inner_or_wide(dtype, nthreads, rng, threads):
    """m <= 16 against op(B) of 4096 x 33 (long dot products) and 33 x 4096
    (wide rows, where threads split the columns)."""
    mn.set_num_threads(nthreads)
    for ta, tb in TRANS:
        for k, n in [(4096, 33), (33, 4096)]:
            _, b = make_operands(rng, 0, n, k, dtype, ta, tb)
            for m in range(1, 17):
                a, _ = make_operands(rng, m, 0, k, dtype, ta, tb)
                check_result(mn.ops.matmul(a, b, trans_a=ta, trans_b=tb), a, b, trans_a=ta,
                             trans_b=tb, case=f"m={m} k={k} n={n} ta={ta} tb={tb}")


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_exact_long_sums(dtype, nthreads, rng, threads):
    """k = 4099 on exact data (numpy_reference.exact_operand) through gemm with
    alpha = -0.75 and beta = 0.5: any summation order gives the float64
    result exactly, so one dropped, doubled or misrouted term fails."""
    mn.set_num_threads(nthreads)
    k = 4099
    for (ta, tb), n in itertools.product(TRANS, (1, 17, 33)):
        b = exact_operand(rng, (n, k) if tb else (k, n), dtype)
        for m in [*range(1, 18), 33]:
            a = exact_operand(rng, (k, m) if ta else (m, k), dtype)
            c0 = exact_operand(rng, (m, n), dtype)
            c = c0.copy()
            mn.ops.gemm(a, b, c, alpha=-0.75, beta=0.5, trans_a=ta, trans_b=tb)
            check_exact(c, a, b, trans_a=ta, trans_b=tb, alpha=-0.75, beta=0.5, c0=c0,
                        case=f"m={m} n={n} k={k} ta={ta} tb={tb}")


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_sup_kernels_on_a_cached_and_a_streamed_b(dtype, nthreads, rng, threads):
    """The AVX-512 table's sup kernels (by rows of B below
    thresholds.hpp sup_tiled_min_m, C in registers from it) on a B in cache
    and one above 8 MiB: m on both sides of the switch, across the tile
    sizes (16 rows, and 4 to 8 for the rest: sup_tile_rows) and past the sup range, k across the kc
    blocks, n across the 4-vector strips and their tails; exact data, alpha
    and beta."""
    mn.set_num_threads(nthreads)
    itemsize = np.dtype(dtype).itemsize
    for k, n in [(700, 200), (9 * 2**20 // (2000 * itemsize), 2000)]:
        for tb in (False, True):
            b = exact_operand(rng, (n, k) if tb else (k, n), dtype)
            for m in (2, 3, 4, 5, 7, 9, 11, 12, 13, 16, 17, 18, 19, 31, 32, 33, 48, 64, 65):
                a = exact_operand(rng, (m, k), dtype)
                c0 = exact_operand(rng, (m, n), dtype)
                c = c0.copy()
                mn.ops.gemm(a, b, c, alpha=-0.75, beta=0.5, trans_b=tb)
                check_exact(c, a, b, trans_b=tb, alpha=-0.75, beta=0.5, c0=c0,
                            case=f"m={m} n={n} k={k} tb={tb}")


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_layouts(dtype, nthreads, rng, threads):
    """Every layout of one operand (numpy_reference.layouts: Fortran, strided,
    reversed, misaligned, byte-swapped) against a C-ordered other, on GEMV
    and skinny shapes, all transposes."""
    mn.set_num_threads(nthreads)
    for (m, k, n), (ta, tb) in itertools.product(
            [(1, 257, 33), (16, 33, 1), (2, 7, 257), (5, 257, 33), (16, 16, 17), (17, 33, 7),
             (33, 17, 16)], TRANS):
        a0, b0 = make_operands(rng, m, n, k, dtype, ta, tb)
        for name, a, b in one_operand_varied(a0, b0):
            check_result(mn.ops.matmul(a, b, trans_a=ta, trans_b=tb), a, b, trans_a=ta,
                         trans_b=tb, case=f"{name} m={m} k={k} n={n} ta={ta} tb={tb}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("m,n", [(1, 17), (3, 1), (1, 1), (5, 17), (16, 33)])
def test_beta_zero_and_alpha_zero(m, n, dtype, rng):
    """BLAS rules on the GEMV and skinny paths: beta == 0 writes C without
    reading it (NaN there does not propagate); alpha == 0 reads neither A nor
    B (NaN there does not propagate) and gives beta * C exactly."""
    for k in (5, 300):
        for ta, tb in TRANS:
            a, b = make_operands(rng, m, n, k, dtype, ta, tb)
            c = np.full((m, n), np.nan, dtype)
            mn.ops.gemm(a, b, c, alpha=1.0, beta=0.0, trans_a=ta, trans_b=tb)
            check_result(c, a, b, trans_a=ta, trans_b=tb, case=f"beta=0 over NaN m={m} n={n} k={k}")
            c0 = rng.standard_normal((m, n)).astype(dtype)
            c = c0.copy()
            mn.ops.gemm(np.full_like(a, np.nan), np.full_like(b, np.nan), c, alpha=0.0, beta=2.0,
                        trans_a=ta, trans_b=tb)
            np.testing.assert_array_equal(c, 2 * c0, err_msg=f"alpha=0 m={m} n={n} k={k}")


def check_every_alignment_of_b(dtype, rng) -> int:
    """The by-rows sup kernel (sup_by_rows.hpp) shifts its column grid to
    B's vector alignment and stages C in an aligned buffer when C is at most
    sup_stage_max_rows x (8 KiB less B's offset and a line): B at every
    element offset within a cache line, its rows a whole number of lines
    apart (the shifted grid) or not (no shift), C at another offset, n across
    the edge windows and the stage's width, k across the 8-, 4- and 1-row
    passes; beta 0 over a NaN C and beta 0.5; exact data. Returns the count."""
    line = 64 // np.dtype(dtype).itemsize
    stage_cols = 8192 // np.dtype(dtype).itemsize
    count = 0
    for n in (1, 3, line - 1, line, line + 1, 2 * line + 3, 257, stage_cols - 2 * line,
              stage_cols - line + 1, stage_cols + 1):
        for k in (1, 37):
            b0 = exact_operand(rng, (k, n), dtype)
            for ld in {-(-n // line) * line, n + 1}:
                for offset in range(line):
                    b = at_offset(b0, offset, ld)
                    for m in (1, 2, 3, 4, 5):  # m = 1: the GEMV kernels, A transposed
                        a = exact_operand(rng, (m, k), dtype)
                        case = f"m={m} n={n} k={k} ldb={ld} offset={offset}"
                        c = at_offset(np.full((m, n), np.nan, dtype), (offset + 3) % line)
                        mn.ops.gemm(a, b, c, alpha=1.0, beta=0.0)
                        check_exact(c, a, b, case=case + " beta=0 over NaN")
                        c0 = exact_operand(rng, (m, n), dtype)
                        c = at_offset(c0, 0)
                        mn.ops.gemm(a, b, c, alpha=-0.75, beta=0.5)
                        check_exact(c, a, b, alpha=-0.75, beta=0.5, c0=c0, case=case)
                        count += 1
    return count


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_sup_on_every_alignment_of_b(dtype, nthreads, rng, threads):
    mn.set_num_threads(nthreads)
    assert check_every_alignment_of_b(dtype, rng) > 0


# ----------------------------------------------------------------- ISA paths


def test_every_isa_path(isa_path, threads):
    """On each kernel path the CPU has, both dtypes, all transposes: the cube
    and the skinny sweep (k, n up to 257, with alpha / beta) on one thread,
    the skinny sweep over k, n in {1, 17, 257} on two (the 2-thread cube
    costs a second per dtype and transpose, and its thread split is the
    same code on every path)."""
    rng = np.random.default_rng(17)
    n = 0
    for dt in DTYPES:
        mn.set_num_threads(1)
        check_every_alignment_of_b(dt, rng)
        for ta, tb in TRANS:
            mn.set_num_threads(1)
            n += run_cube(dt, ta, tb, rng)
            n += run_skinny(dt, ta, tb, rng, kns=(1, 7, 17, 33, 257))
            mn.set_num_threads(2)
            n += run_skinny(dt, ta, tb, rng, kns=(1, 17, 257), with_beta=False)
    assert mn.cpu_info()["isa"] == isa_path
    assert n == 2 * 4 * (896 + len(SKINNY_M) * (25 + 9))
