"""matnet.linalg against LAPACK's accuracy tests and NumPy.

Every factorisation is checked by a dimensionless backward-error ratio, as
in LAPACK's TESTING/ (the thresholds are LAPACK's, in THRESHOLD below):

  LU        ||P A - L U||_1 / (n ||A||_1 eps)
  solve     ||B - A X||_1 / (||A||_1 ||X||_1 eps)
  QR        ||A - Q R||_1 / (m ||A||_1 eps),  ||I - Q^T Q||_1 / (m eps)
  eigh      ||A - V W V^T||_1 / (n ||A||_1 eps),  ||I - V^T V||_1 / (n eps)
  SVD       ||A - U S V^T||_1 / (max(m, n) ||A||_1 eps),  orthogonality likewise

eps is the dtype's (float32 results are checked against float32's eps);
residuals are evaluated in float64. Matrix types are a table (MATRIX_TYPES)
run for every routine.
"""

from __future__ import annotations

import numpy as np
import pytest

import matnet as mn

L = mn.linalg

THRESHOLD = {"lu": 30.0, "cholesky": 30.0, "qr": 30.0, "solve": 30.0, "eigh": 60.0, "svd": 50.0}
DTYPES = [np.float32, np.float64]


def eps(dtype) -> float:
    return float(np.finfo(dtype).eps)


def n1(x) -> float:
    """1-norm (max column sum) of the last two axes, max over a stack."""
    x = np.asarray(x, np.float64)
    if x.size == 0:
        return 0.0
    return float(np.max(np.sum(np.abs(x), axis=-2)))


def ratio(residual, scale, dtype) -> float:
    """||residual|| / (scale eps); 0 when both are 0 (empty or zero matrices)."""
    r = n1(residual)
    return 0.0 if r == 0 else r / (max(scale, np.finfo(np.float64).tiny) * eps(dtype))


# ---------------------------------------------------------------- matrix types

def _orthogonal(rng, n):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _with_singular_values(rng, m, n, s):
    k = min(m, n)
    return (_orthogonal(rng, m)[:, :k] * s[:k]) @ _orthogonal(rng, n)[:, :k].T


def make_matrix(kind: str, m: int, n: int, dtype, rng) -> np.ndarray:
    k = min(m, n)
    if kind == "random":
        a = rng.standard_normal((m, n))
    elif kind == "ill":  # kappa = 1/eps of the dtype, geometric singular values
        s = np.logspace(0, np.log10(eps(dtype)), k) if k else np.zeros(0)
        a = _with_singular_values(rng, m, n, s)
    elif kind == "rankdef":  # rank about k/2
        r = max(k // 2, 1) if k else 0
        a = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))
    elif kind == "diagonal":
        a = np.zeros((m, n))
        a[np.arange(k), np.arange(k)] = rng.uniform(0.5, 2, k) * rng.choice([-1, 1], k)
    elif kind == "triangular":
        a = np.triu(rng.standard_normal((m, n))) + np.eye(m, n) * 3
    elif kind == "graded":  # rows scaled over 8 orders of magnitude
        a = rng.standard_normal((m, n)) * np.logspace(0, -8, m)[:, None]
    elif kind == "zero":
        a = np.zeros((m, n))
    else:
        raise ValueError(kind)
    return a.astype(dtype)


MATRIX_TYPES = ["random", "ill", "rankdef", "diagonal", "triangular", "graded", "zero"]
SQUARE_SIZES = [0, 1, 2, 3, 8, 17, 33, 70, 131]
RECT_SHAPES = [(0, 3), (3, 0), (1, 5), (5, 1), (40, 7), (7, 40), (130, 45), (45, 130), (97, 97),
               (300, 6), (6, 300)]


def rect_cases(kind, dtype, rng):
    """(a, m, n, min(m, n)) over RECT_SHAPES and the square sizes."""
    for m, n in RECT_SHAPES + [(s, s) for s in SQUARE_SIZES]:
        yield make_matrix(kind, m, n, dtype, rng), m, n, min(m, n)


# ---------------------------------------------------------------- LU / solve / inv / det

def lu_residual(a, lu, piv):
    n = a.shape[-1]
    lo = np.tril(lu, -1).astype(np.float64) + np.eye(n)
    up = np.triu(lu).astype(np.float64)
    pa = a.astype(np.float64).copy()
    for i, p in enumerate(piv):
        pa[[i, p]] = pa[[p, i]]
    return pa - lo @ up


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MATRIX_TYPES)
def test_lu_backward_error(kind, dtype, rng):
    for n in SQUARE_SIZES:
        a = make_matrix(kind, n, n, dtype, rng)
        lu, piv = L.lu_factor(a)
        assert lu.dtype == dtype and piv.shape == (n,)
        r = ratio(lu_residual(a, lu, piv), n * n1(a), dtype)
        assert r < THRESHOLD["lu"], f"{kind} n={n} {dtype.__name__}: LU ratio {r:.1f}"
        # partial pivoting: |L| <= 1
        assert np.all(np.abs(np.tril(lu, -1)) <= 1 + 4 * eps(dtype)), f"{kind} n={n}"


def solve_ratio(a, x, b, dtype):
    res = b.astype(np.float64) - np.matmul(a.astype(np.float64), x.astype(np.float64))
    return ratio(res, n1(a) * n1(x), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["random", "ill", "diagonal", "triangular", "graded"])
def test_solve_backward_error(kind, dtype, rng):
    for n in [1, 2, 5, 16, 33, 65, 130]:
        a = make_matrix(kind, n, n, dtype, rng)
        for k in [1, 3, 70]:
            b = rng.standard_normal((n, k)).astype(dtype)
            x = L.solve(a, b)
            assert x.dtype == dtype and x.shape == (n, k)
            r = solve_ratio(a, x, b, dtype)
            assert r < THRESHOLD["solve"], f"{kind} n={n} k={k}: solve ratio {r:.1f}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_solve_shapes_and_broadcasting(dtype, rng):
    a = rng.standard_normal((4, 3, 6, 6)).astype(dtype)
    b = rng.standard_normal((3, 6, 2)).astype(dtype)        # broadcasts over the 4
    x = L.solve(a, b)
    assert x.shape == (4, 3, 6, 2)
    assert solve_ratio(a, x, np.broadcast_to(b, x.shape), dtype) < THRESHOLD["solve"]
    v = rng.standard_normal(6).astype(dtype)                   # 1-D b: a vector
    xv = L.solve(a[0, 0], v)
    assert xv.shape == (6,)
    np.testing.assert_allclose(a[0, 0].astype(float) @ xv, v, rtol=0, atol=1e3 * eps(dtype))
    # stacked vector right-hand sides are (..., n, 1) as NumPy 2
    assert L.solve(a, rng.standard_normal((4, 3, 6, 1)).astype(dtype)).shape == (4, 3, 6, 1)
    # the seeds' worked example: diag(2, 3) x = [2, 6] -> x = [1, 2]
    np.testing.assert_array_equal(L.solve(np.diag([2.0, 3.0]), np.array([2.0, 6.0])), [1, 2])


@pytest.mark.parametrize("dtype", DTYPES)
def test_solve_large(dtype, rng):
    n = 1024 if dtype == np.float64 else 1000
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, 4)).astype(dtype)
    x = L.solve(a, b)
    assert solve_ratio(a, x, b, dtype) < THRESHOLD["solve"]
    lu, piv = L.lu_factor(a)
    assert ratio(lu_residual(a, lu, piv), n * n1(a), dtype) < THRESHOLD["lu"]


# inv's orders from thresholds::inv_getri_min_n (core/thresholds.hpp) on
# run LU, then the inverse from the factors (LAPACK's DGETRI); below, LU and
# the solve A X = I.
INV_GETRI_MIN_N = 20
# Around the small path (16/17), the DGETRI switch (19/20), the triangular
# inverse's unblocked base and trsm_block (64), and the halvings above them.
INV_SIZES = [1, 2, 16, 17, 19, 20, 63, 64, 65, 127, 128, 129, 200, 257, 513]


def inv_ratio(a, x, dtype):
    """The residual that inv's method bounds, as a LAPACK-style ratio.

    The solve with B = I is backward stable column by column, A X - I =
    -dA_j x_j with |dA_j| <= c_n eps |L| |U|, so ||A X - I||_1 <=
    c_n eps ||L| |U|||_1 ||X||_1. DGETRI's path (U^{-1}, then X L = U^{-1})
    is Du Croz & Higham's method B (IMA J. Numer. Anal. 12, 1992): its
    bound is on the left residual, |X A - I| <= c_n eps |X| |L| |U|. With
    partial pivoting ||L| |U|||_1 <= n rho ||A||_1 (rho the growth factor,
    O(1) for these matrices), so either ratio below is O(1) whatever
    cond(A) is: no tolerance depends on the conditioning."""
    n = a.shape[-1]
    a64, x64 = a.astype(np.float64), x.astype(np.float64)
    res = x64 @ a64 - np.eye(n) if n >= INV_GETRI_MIN_N else a64 @ x64 - np.eye(n)
    return ratio(res, n * n1(a) * n1(x), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["random", "ill", "graded", "triangular"])
@pytest.mark.parametrize("nt", [1, 2])
def test_inv_backward_error(kind, dtype, nt, rng, threads):
    mn.set_num_threads(nt)
    for n in INV_SIZES:
        a = make_matrix(kind, n, n, dtype, rng)
        x = L.inv(a)
        assert x.dtype == dtype and x.shape == (n, n)
        r = inv_ratio(a, x, dtype)
        assert r < THRESHOLD["solve"], f"{kind} n={n} threads={nt}: inv ratio {r:.2f}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_inv_against_numpy(dtype, rng):
    """Well-conditioned input (I + G / (4 sqrt(n)), cond <= 3 for the 2-norm):
    |X - A^{-1}| <= cond(A) * (backward error) ~ c_n eps ||X||, so an
    entrywise tolerance of n eps max|X| (c_n ~ n) covers it; a stack of
    such matrices too, past the per-thread stack order."""
    for n in [1, 17, 20, 64, 65, 200, 513]:
        a = (np.eye(n) + rng.standard_normal((n, n)) / (4 * np.sqrt(n))).astype(dtype)
        want = np.linalg.inv(a.astype(np.float64))
        np.testing.assert_allclose(L.inv(a), want, rtol=0,
                                   atol=n * eps(dtype) * np.abs(want).max(), err_msg=f"n={n}")
    stack = (np.eye(33) + rng.standard_normal((5, 33, 33)) / 24).astype(dtype)
    want = np.linalg.inv(stack.astype(np.float64))
    np.testing.assert_allclose(L.inv(stack), want, rtol=0,
                               atol=33 * eps(dtype) * np.abs(want).max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_inv_singular_and_nonfinite(dtype):
    """A zero pivot reports the same index on either path (solve with I
    below INV_GETRI_MIN_N, DGETRI above); NaN/Inf input is refused."""
    for n in [INV_GETRI_MIN_N - 1, INV_GETRI_MIN_N, 70]:
        a = np.eye(n, dtype=dtype) * 2
        a[5, 5] = 0  # LU without any interchange: U[5, 5] = 0 exactly
        with pytest.raises(L.LinAlgError, match=r"pivot 6 is exactly zero"):
            L.inv(a)
        a[5, 5] = np.nan
        with pytest.raises(L.LinAlgError, match="NaN or Inf"):
            L.inv(a)
    stack = np.stack([np.eye(70), np.eye(70)]).astype(dtype)
    stack[1, 69, 69] = 0
    with pytest.raises(L.LinAlgError, match=r"pivot 70 is exactly zero.*matrix \(1,\) of"):
        L.inv(stack)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inv(dtype, rng):
    for n in [0, 1, 2, 7, 33, 100]:
        a = make_matrix("random", n, n, dtype, rng)
        ai = L.inv(a)
        assert ai.dtype == dtype and ai.shape == (n, n)
        assert inv_ratio(a, ai, dtype) < THRESHOLD["solve"], f"n={n}"
    stack = rng.standard_normal((3, 50, 4, 4)).astype(dtype)
    np.testing.assert_allclose(L.inv(stack), np.linalg.inv(stack.astype(float)),
                               rtol=2e3 * eps(dtype), atol=2e3 * eps(dtype) * 10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_det_and_slogdet(dtype, rng):
    tol = 100 * eps(dtype)
    for n in [1, 2, 3, 8, 31, 80]:
        a = rng.standard_normal((n, n)).astype(dtype)
        ref_sign, ref_log = np.linalg.slogdet(a.astype(np.float64))
        sign, logabs = L.slogdet(a)
        assert sign == ref_sign and abs(logabs - ref_log) < tol * n
        ref = np.linalg.det(a.astype(float))
        if abs(ref) > np.finfo(dtype).max:  # overflows the dtype, as NumPy's would
            assert L.det(a) == np.copysign(np.inf, ref)
        else:
            np.testing.assert_allclose(L.det(a), ref, rtol=tol * n)
    # stacked, and the seeds' examples: a rotation has det 1, [[1,2],[2,4]] det 0
    th = np.linspace(0, 3, 7)
    rot = np.stack([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]).transpose(2, 0, 1)
    np.testing.assert_allclose(L.det(rot.astype(dtype)), 1, rtol=4 * eps(dtype))
    assert L.det(np.array([[1, 2], [2, 4]], dtype)) == 0
    assert tuple(L.slogdet(np.array([[1, 2], [2, 4]], dtype))) == (0, -np.inf)
    np.testing.assert_allclose(L.det(np.array([[2, 0], [0, 3]], dtype)), 6)   # area scale
    big = rng.standard_normal((5, 7, 9, 9)).astype(dtype)
    np.testing.assert_allclose(L.det(big), np.linalg.det(big.astype(float)), rtol=1e3 * eps(dtype))
    assert L.det(np.zeros((0, 0), dtype)) == 1 and L.det(np.zeros((2, 0, 0), dtype)).shape == (2,)


# ---------------------------------------------------------------- Cholesky

@pytest.mark.parametrize("dtype", DTYPES)
def test_cholesky_backward_error(dtype, rng):
    for n in [0, 1, 2, 5, 31, 32, 33, 64, 100, 257]:
        g = rng.standard_normal((n, n))
        a = (g @ g.T + n * np.eye(n)).astype(dtype)
        a_lower_only = np.tril(a) + np.triu(np.full((n, n), np.nan), 1)  # upper never read
        lo = L.cholesky(a_lower_only.astype(dtype))
        assert lo.dtype == dtype and np.all(np.triu(lo, 1) == 0)
        r = ratio(a.astype(float) - lo.astype(float) @ lo.T.astype(float), n * n1(a), dtype)
        assert r < THRESHOLD["cholesky"], f"n={n}: ratio {r:.1f}"
    np.testing.assert_array_equal(L.cholesky(a, upper=True), L.cholesky(a).T)
    stack = np.stack([np.eye(3) * (i + 1) for i in range(4)]).astype(dtype)
    np.testing.assert_allclose(L.cholesky(stack), np.sqrt(stack), rtol=eps(dtype))


def test_cholesky_large(rng):
    n = 1100
    g = rng.standard_normal((n, n)).astype(np.float32)
    a = g @ g.T / n + np.eye(n, dtype=np.float32)
    lo = L.cholesky(a)
    assert ratio(a.astype(float) - lo.astype(float) @ lo.T.astype(float), n * n1(a),
                 np.float32) < THRESHOLD["cholesky"]


def test_cholesky_not_positive_definite():
    a = np.array([[4.0, 2, 0], [2, 1, 0], [0, 0, 1]])
    with pytest.raises(L.LinAlgError, match="not positive definite.*order 2"):
        L.cholesky(a)
    with pytest.raises(ValueError, match=r"matrix \(1,\) of the stack"):
        L.cholesky(np.stack([np.eye(3), -np.eye(3)]))


# ---------------------------------------------------------------- QR

def check_qr(a, q, r, dtype, label):
    m = a.shape[-2]
    assert q.dtype == dtype and r.dtype == dtype
    assert np.all(np.tril(r, -1) == 0), label
    res = a.astype(float) - q.astype(float) @ r.astype(float)
    rr = ratio(res, max(m, 1) * n1(a), dtype)
    qq = q.astype(float)
    ro = ratio(np.eye(q.shape[-1]) - np.swapaxes(qq, -1, -2) @ qq, max(m, 1), dtype)
    assert rr < THRESHOLD["qr"] and ro < THRESHOLD["qr"], f"{label}: QR ratios {rr:.1f}, {ro:.1f}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MATRIX_TYPES)
def test_qr_backward_error(kind, dtype, rng):
    for a, m, n, k in rect_cases(kind, dtype, rng):
        q, r = L.qr(a)
        assert q.shape == (m, k) and r.shape == (k, n)
        check_qr(a, q, r, dtype, f"{kind} {m}x{n} reduced")
        qc, rc = L.qr(a, mode="complete")
        assert qc.shape == (m, m) and rc.shape == (m, n)
        check_qr(a, qc, rc, dtype, f"{kind} {m}x{n} complete")
        np.testing.assert_array_equal(L.qr(a, mode="r"), r)


@pytest.mark.parametrize("dtype", DTYPES)
def test_qr_stacked_and_large(dtype, rng):
    a = rng.standard_normal((3, 2, 20, 9)).astype(dtype)
    q, r = L.qr(a)
    assert q.shape == (3, 2, 20, 9) and r.shape == (3, 2, 9, 9)
    check_qr(a, q, r, dtype, "stacked")
    big = rng.standard_normal((1030, 300)).astype(dtype)
    q, r = L.qr(big)
    check_qr(big, q, r, dtype, "1030x300")
    with pytest.raises(ValueError, match="mode"):
        L.qr(big, mode="raw")


# ---------------------------------------------------------------- eigh

def check_eigh(a, w, v, dtype, label):
    n = a.shape[-1]
    assert w.dtype == dtype and v.dtype == dtype
    assert np.all(np.diff(w, axis=-1) >= 0), label
    vv = v.astype(float)
    res = a.astype(float) - (vv * w.astype(float)[..., None, :]) @ np.swapaxes(vv, -1, -2)
    r = ratio(res, max(n, 1) * n1(a), dtype)
    ro = ratio(np.eye(n) - np.swapaxes(vv, -1, -2) @ vv, max(n, 1), dtype)
    assert r < THRESHOLD["eigh"] and ro < THRESHOLD["eigh"], f"{label}: eigh ratios {r:.1f} {ro:.1f}"


def symmetric(kind, n, dtype, rng):
    if kind == "ill":  # eigenvalues from 1 down to eps, mixed signs
        lam = np.logspace(0, np.log10(eps(dtype)), n) * rng.choice([-1, 1], n)
        q = _orthogonal(rng, n) if n else np.zeros((0, 0))
        return ((q * lam) @ q.T).astype(dtype)
    if kind == "clustered":  # many equal eigenvalues
        q = _orthogonal(rng, n) if n else np.zeros((0, 0))
        lam = np.where(np.arange(n) % 3 == 0, 1.0, 2.0)
        return ((q * lam) @ q.T).astype(dtype)
    g = make_matrix(kind, n, n, np.float64, rng)
    return (g + g.T).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["random", "ill", "clustered", "rankdef", "diagonal", "graded", "zero"])
def test_eigh_backward_error(kind, dtype, rng):
    for n in SQUARE_SIZES:
        a = symmetric(kind, n, dtype, rng)
        w, v = L.eigh(a)
        check_eigh(a, w, v, dtype, f"{kind} n={n}")
        np.testing.assert_allclose(w, np.linalg.eigvalsh(a.astype(float)),
                                   atol=60 * max(n, 1) * eps(dtype) * max(n1(a), 1e-300))
        np.testing.assert_array_equal(L.eigvalsh(a), w)


@pytest.mark.parametrize("dtype", DTYPES)
def test_eigh_uplo_stacked_large(dtype, rng):
    g = rng.standard_normal((4, 3, 12, 12))
    a = (g + np.swapaxes(g, -1, -2)).astype(dtype)
    w, v = L.eigh(a)
    assert w.shape == (4, 3, 12) and v.shape == a.shape
    check_eigh(a, w, v, dtype, "stacked")
    lower = np.tril(a[0, 0])
    np.testing.assert_allclose(L.eigvalsh(lower), L.eigvalsh(a[0, 0]), rtol=0, atol=0)
    np.testing.assert_allclose(L.eigvalsh(lower.T, UPLO="U"), w[0, 0], rtol=0, atol=0)
    if dtype == np.float64:
        big = symmetric("random", 1000, dtype, rng)
        w, v = L.eigh(big)
        check_eigh(big, w, v, dtype, "n=1000")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nt", [1, 2])
def test_eigh_blocked_sizes_and_threads(dtype, nt, rng, threads):
    """Orders around the small path's end (255; below it 127, 128, 161),
    the general path's blocked tridiagonalisation (panels of 32 while 64
    trailing rows remain) and the spectral solvers' threading threshold
    (256), on 1 and 2 threads: random, clustered and graded spectra."""
    mn.set_num_threads(nt)
    for n in (127, 128, 161, 256, 257):
        for kind in ("random", "clustered", "graded"):
            a = symmetric(kind, n, dtype, rng)
            w, v = L.eigh(a)
            check_eigh(a, w, v, dtype, f"{kind} n={n} threads={nt}")
            np.testing.assert_array_equal(L.eigvalsh(a), w)
    # svd splits its rotation batches over the threads from the same order
    g = make_matrix("random", 260, 256, dtype, rng)
    u, sv, vt = L.svd(g)
    check_svd(g, u, sv, vt, dtype, f"260x256 threads={nt}")


SMALL_EIGH_MAX_N = 255  # thresholds::eigh_small_max_n


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nt", [1, 2])
def test_eigh_small_stacks_interleaved(dtype, nt, rng, threads):
    """Stacks of small matrices stream through eigh_range's slots, four
    matrices' QL sweeps interleaved: orders around the small path's limit,
    stacks mixing spectra that converge in different numbers of sweeps
    (diagonal and zero ones in none), sizes that leave slots empty and
    split into several chunks per thread. Each matrix must get exactly
    what eigh gives it alone (the interleaving shares no state), and the
    LAPACK-style backward error and orthogonality bounds."""
    mn.set_num_threads(nt)
    kinds = ["random", "diagonal", "clustered", "zero", "graded", "ill", "rankdef"]
    for n in (1, 2, 3, 4, 5, 8, 16, 31, 32, 33, 63, 64, 65, 127, SMALL_EIGH_MAX_N,
              SMALL_EIGH_MAX_N + 1):
        for batch in ((2, 5, 13) if n > 8 else (2, 5, 13, 131)):
            a = np.stack([symmetric(kinds[i % len(kinds)], n, dtype, rng) for i in range(batch)])
            w, v = L.eigh(a)
            check_eigh(a, w, v, dtype, f"n={n} batch={batch} threads={nt}")
            np.testing.assert_array_equal(L.eigvalsh(a), w)
            for i in range(batch):
                wi, vi = L.eigh(a[i])
                np.testing.assert_array_equal(w[i], wi, err_msg=f"n={n} matrix {i}")
                np.testing.assert_array_equal(v[i], vi, err_msg=f"n={n} matrix {i}")
    # glued Wilkinson matrices (clusters agreeing to many digits) among random ones
    g = _glued_wilkinson(8, 4, 1e-10).astype(dtype)
    a = np.stack([g if i % 3 == 0 else symmetric("random", 32, dtype, rng) for i in range(10)])
    w, v = L.eigh(a)
    check_eigh(a, w, v, dtype, f"glued stack threads={nt}")
    # a non-finite matrix inside a stack is reported by index
    bad = a.copy()
    bad[5, 3, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or Inf \(matrix \(5,\) of the stack\)"):
        L.eigh(bad)


def _glued_wilkinson(m, copies, glue):
    """copies of Wilkinson's W_m^+ on the diagonal, coupled by glue: clusters
    of eigenvalues agreeing to many digits (a hard case for eigenvectors)."""
    k = np.abs(np.arange(m) - (m - 1) / 2)
    n = m * copies
    a = np.diag(np.tile(k, copies)) + np.diag(np.full(n - 1, 1.0), 1)
    for c in range(1, copies):
        a[c * m - 1, c * m] = glue
    return a + np.triu(a, 1).T


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", ["tiny", "subnormal", "huge"])
def test_eigh_extreme_scales(dtype, scale, rng):
    """Entries near underflow (all subnormal: the convergence test itself
    underflowed before eigh scaled such matrices) and near overflow."""
    fi = np.finfo(dtype)
    factor = {"tiny": float(fi.tiny) * 1e3, "subnormal": float(fi.tiny) * 1e-3,
              "huge": float(fi.max) / 1e3}[scale]
    g = rng.standard_normal((40, 40))
    a = ((g + g.T) / (2 * np.abs(g).max()) * factor).astype(dtype)
    w, v = L.eigh(a)
    assert np.all(np.isfinite(w)) and np.all(np.isfinite(v))
    ro = ratio(np.eye(40) - v.astype(float).T @ v.astype(float), 40, dtype)
    assert ro < THRESHOLD["eigh"], f"{scale}: orthogonality ratio {ro:.1f}"
    if scale != "subnormal":  # subnormal input itself carries only a few digits
        # the backward error relative to ||A||, on the matrix scaled to ~1
        s = 1 / factor
        res = a.astype(float) * s - (v.astype(float) * (w.astype(float) * s)) @ v.astype(float).T
        assert ratio(res, 40 * n1(a.astype(float) * s), dtype) < THRESHOLD["eigh"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_eigh_glued_wilkinson_and_repeated(dtype):
    for a in (_glued_wilkinson(21, 7, 1e-10), _glued_wilkinson(21, 2, 0.0),
              np.kron(np.eye(50), np.ones((3, 3)))):  # eigenvalues 0 and 3, repeated
        a = a.astype(dtype)
        w, v = L.eigh(a)
        check_eigh(a, w, v, dtype, f"n={a.shape[0]}")


def test_eigh_worked_example():
    w, v = L.eigh(np.array([[2.0, 1.0], [1.0, 2.0]]))
    np.testing.assert_allclose(w, [1, 3], rtol=1e-15)
    # eigenvectors proportional to [1, -1] and [1, 1]
    np.testing.assert_allclose(np.abs(v), np.full((2, 2), np.sqrt(0.5)), rtol=1e-15)
    assert v[0, 0] * v[1, 0] < 0 and v[0, 1] * v[1, 1] > 0
    a = np.array([[2.0, 1.0], [1.0, 2.0]])
    np.testing.assert_allclose(a @ v, v * w, atol=1e-15)


# ---------------------------------------------------------------- SVD

def check_svd(a, u, s, vt, dtype, label):
    m, n = a.shape[-2:]
    k = min(m, n)
    assert s.dtype == dtype and np.all(s >= 0) and np.all(np.diff(s, axis=-1) <= 0), label
    uu, vv = u.astype(float)[..., :, :k], vt.astype(float)[..., :k, :]
    res = a.astype(float) - (uu * s.astype(float)[..., None, :]) @ vv
    r = ratio(res, max(m, n, 1) * n1(a), dtype)
    ru = ratio(np.eye(u.shape[-1]) - np.swapaxes(u.astype(float), -1, -2) @ u.astype(float),
               max(m, 1), dtype)
    rv = ratio(np.eye(vt.shape[-2]) - vt.astype(float) @ np.swapaxes(vt.astype(float), -1, -2),
               max(n, 1), dtype)
    assert max(r, ru, rv) < THRESHOLD["svd"], f"{label}: SVD ratios {r:.1f} {ru:.1f} {rv:.1f}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MATRIX_TYPES)
def test_svd_backward_error(kind, dtype, rng):
    for a, m, n, k in rect_cases(kind, dtype, rng):
        u, s, vt = L.svd(a, full_matrices=False)
        assert u.shape == (m, k) and s.shape == (k,) and vt.shape == (k, n)
        check_svd(a, u, s, vt, dtype, f"{kind} {m}x{n} reduced")
        uf, sf, vtf = L.svd(a)
        assert uf.shape == (m, m) and vtf.shape == (n, n)
        check_svd(a, uf, sf, vtf, dtype, f"{kind} {m}x{n} full")
        ref = np.linalg.svd(a.astype(float), compute_uv=False)
        np.testing.assert_allclose(s, ref, rtol=0, atol=50 * max(m, n, 1) * eps(dtype) * max(n1(a), 1e-300))
        np.testing.assert_array_equal(L.svd(a, compute_uv=False), s)


@pytest.mark.parametrize("dtype", DTYPES)
def test_svd_stacked_and_large(dtype, rng):
    a = rng.standard_normal((2, 3, 9, 5)).astype(dtype)
    u, s, vt = L.svd(a, full_matrices=False)
    assert u.shape == (2, 3, 9, 5) and s.shape == (2, 3, 5) and vt.shape == (2, 3, 5, 5)
    check_svd(a, u, s, vt, dtype, "stacked")
    if dtype == np.float32:
        big = rng.standard_normal((1000, 300)).astype(dtype)
        u, s, vt = L.svd(big, full_matrices=False)
        check_svd(big, u, s, vt, dtype, "1000x300")


# ---------------------------------------------------------------- built on the SVD

@pytest.mark.parametrize("dtype", DTYPES)
def test_lstsq_matches_numpy(dtype, rng):
    tol = 1e3 * eps(dtype)
    for m, n, kind in [(50, 8, "random"), (8, 50, "random"), (40, 40, "random"), (60, 10, "rankdef"),
                       (30, 12, "diagonal")]:
        a = make_matrix(kind, m, n, dtype, rng)
        for b in (rng.standard_normal(m).astype(dtype), rng.standard_normal((m, 3)).astype(dtype)):
            x, res, rank, s = L.lstsq(a, b)
            # the reference in float64 with the dtype's rank cut-off
            xr, resr, rankr, sr = np.linalg.lstsq(a.astype(float), b.astype(float),
                                                  rcond=max(m, n) * eps(dtype))
            assert rank == rankr, f"{m}x{n} {kind}"
            assert x.shape == xr.shape and x.dtype == dtype and res.shape == resr.shape
            np.testing.assert_allclose(x, xr, rtol=tol, atol=tol * max(1, np.abs(xr).max()))
            np.testing.assert_allclose(res, resr, rtol=tol * 10, atol=tol)
            np.testing.assert_allclose(s, sr, rtol=tol, atol=tol * sr.max())


def test_lstsq_house_prices(rng):
    """The seeds' least-squares fit: price = 50 * size + 10000 + noise."""
    size = rng.uniform(50, 250, 200)
    price = 50 * size + 10_000 + rng.normal(0, 500, 200)
    a = np.column_stack([size, np.ones_like(size)])
    coef, *_ = L.lstsq(a, price)
    np.testing.assert_allclose(coef, np.linalg.lstsq(a, price)[0], rtol=1e-10)
    assert abs(coef[0] - 50) < 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_pinv_rank_cond(dtype, rng):
    tol = 1e3 * eps(dtype)
    for kind, (m, n) in [("random", (12, 7)), ("rankdef", (10, 10)), ("random", (5, 9))]:
        a = make_matrix(kind, m, n, dtype, rng)
        cut = max(m, n) * eps(dtype)  # the dtype's default cut-off, for the float64 reference
        np.testing.assert_allclose(L.pinv(a), np.linalg.pinv(a.astype(float), rtol=cut),
                                   rtol=tol, atol=tol)
        assert L.matrix_rank(a) == np.linalg.matrix_rank(a.astype(float), rtol=cut)
    stack = rng.standard_normal((3, 6, 6)).astype(dtype)
    np.testing.assert_array_equal(L.matrix_rank(stack), [6, 6, 6])
    for p in [None, 2, -2, 1, -1, np.inf, -np.inf, "fro", "nuc"]:
        np.testing.assert_allclose(L.cond(stack, p), np.linalg.cond(stack.astype(float), p),
                                   rtol=1e2 * tol, err_msg=f"p={p}")
    assert L.cond(np.array([[1, 2], [2, 4]], dtype)) > 1 / eps(dtype)
    assert L.cond(np.array([[1, 2], [2, 4]], dtype), 1) == np.inf


# ---------------------------------------------------------------- norms

def test_norm_worked_examples():
    v = np.array([3.0, 4.0])
    assert L.norm(v, 1) == 7 and L.norm(v) == 5 and L.norm(v, 2) == 5 and L.norm(v, np.inf) == 4
    assert L.norm(v, -np.inf) == 3


@pytest.mark.parametrize("dtype", DTYPES)
def test_norm_matches_numpy(dtype, rng):
    tol = 100 * eps(dtype)
    v = rng.standard_normal(11).astype(dtype)
    for o in [None, 1, 2, np.inf, -np.inf, 0, 3, 0.5, -1]:
        np.testing.assert_allclose(L.norm(v, o), np.linalg.norm(v.astype(float), o), rtol=tol,
                                   err_msg=f"ord={o}")
    a = rng.standard_normal((7, 5)).astype(dtype)
    for o in [None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf]:
        np.testing.assert_allclose(L.norm(a, o), np.linalg.norm(a.astype(float), o), rtol=tol,
                                   err_msg=f"ord={o}")
    x = rng.standard_normal((3, 4, 5)).astype(dtype)
    for o, ax in [(None, 1), (2, -1), (1, 0), ("fro", (1, 2)), (2, (2, 0)), (1, (0, 2)),
                  (np.inf, (2, 1)), ("nuc", (0, 1))]:
        for kd in (False, True):
            got = L.norm(x, o, axis=ax, keepdims=kd)
            ref = np.linalg.norm(x.astype(float), o, axis=ax, keepdims=kd)
            assert np.shape(got) == ref.shape, f"ord={o} axis={ax} keepdims={kd}"
            np.testing.assert_allclose(got, ref, rtol=tol, err_msg=f"ord={o} axis={ax}")
    assert np.shape(L.norm(x, keepdims=True)) == (1, 1, 1)
    with pytest.raises(ValueError):
        L.norm(x, 2)
    with pytest.raises(ValueError):
        L.norm(a, "bogus")


# ---------------------------------------------------------------- errors and edge cases

@pytest.mark.parametrize("fn", ["det", "slogdet", "inv", "cholesky", "qr", "eigh", "eigvalsh",
                                "svd", "pinv", "lu_factor"])
def test_errors(fn):
    f = getattr(L, fn)
    with pytest.raises(TypeError, match="float32 or float64"):
        f(np.eye(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        f(np.ones(3))
    bad = np.eye(3)
    bad[2, 0] = np.nan
    with pytest.raises(L.LinAlgError, match="NaN or Inf"):
        f(bad)
    inf = np.stack([np.eye(3), np.eye(3)])
    inf[1, 1, 0] = np.inf
    with pytest.raises(ValueError, match=r"NaN or Inf \(matrix \(1,\) of the stack\)"):
        f(inf)
    if fn not in ("qr", "svd", "pinv"):
        with pytest.raises(ValueError, match=r"square.*\(3, 4\)"):
            f(np.ones((3, 4)))


def test_solve_errors():
    with pytest.raises(L.LinAlgError, match="singular matrix: pivot 2 is exactly zero"):
        L.solve(np.array([[1.0, 2], [2, 4]]), np.ones(2))
    with pytest.raises(L.LinAlgError, match=r"singular.*\(matrix \(1, 0\) of the stack\)"):
        L.inv(np.stack([np.eye(2)[None], np.zeros((1, 2, 2))]))
    assert issubclass(L.LinAlgError, ValueError) and issubclass(L.LinAlgError, np.linalg.LinAlgError)
    with pytest.raises(TypeError, match="share one dtype"):
        L.solve(np.eye(2), np.ones(2, np.float32))
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(3,\)"):
        L.solve(np.eye(2), np.ones(3))
    with pytest.raises(ValueError, match="broadcast"):
        L.solve(np.ones((2, 3, 3)), np.ones((4, 3, 1)))
    with pytest.raises(L.LinAlgError, match="NaN"):
        L.solve(np.eye(2), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="2-D"):
        L.lstsq(np.ones((2, 2, 2)), np.ones(2))


def test_empty_like_numpy():
    for fn in ["det", "inv", "cholesky", "eigvalsh"]:
        got = getattr(L, fn)(np.zeros((0, 0)))
        ref = getattr(np.linalg, fn)(np.zeros((0, 0)))
        assert np.shape(got) == np.shape(ref), fn
    assert L.solve(np.zeros((0, 0)), np.zeros((0, 2))).shape == (0, 2)
    assert L.inv(np.zeros((5, 0, 0))).shape == (5, 0, 0)
    w, v = L.eigh(np.zeros((3, 0, 0)))
    assert w.shape == (3, 0) and v.shape == (3, 0, 0)
    u, s, vt = L.svd(np.zeros((0, 4)))
    assert u.shape == (0, 0) and s.shape == (0,) and vt.shape == (4, 4)
    np.testing.assert_array_equal(vt, np.eye(4))
    q, r = L.qr(np.zeros((4, 0)), mode="complete")
    np.testing.assert_array_equal(q, np.eye(4))
    assert r.shape == (4, 0)
    x, res, rank, s = L.lstsq(np.zeros((3, 0)), np.ones(3))
    assert x.shape == (0,) and rank == 0


def test_non_contiguous_inputs(rng):
    base = rng.standard_normal((12, 12))
    for a in [base.T, base[::2, ::2], np.asfortranarray(base), base[1:, :-1]]:
        np.testing.assert_allclose(L.det(a), np.linalg.det(a), rtol=1e-10)
        np.testing.assert_allclose(L.inv(a), np.linalg.inv(a), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(L.svd(a, compute_uv=False), np.linalg.svd(a, compute_uv=False),
                                   rtol=1e-10)
    a = base.copy()
    L.inv(a)
    L.eigh(a)
    np.testing.assert_array_equal(a, base)  # inputs are never overwritten


def test_threads_give_same_results(rng, threads):
    a = rng.standard_normal((300, 8, 8))
    b = rng.standard_normal((300, 8, 1))
    out = {}
    for nt in (1, 2):
        mn.set_num_threads(nt)
        out[nt] = (L.solve(a, b), L.det(a), L.eigh(a + np.swapaxes(a, 1, 2))[0])
    for x, y in zip(out[1], out[2]):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spectral_solvers_on_every_isa(isa_path, dtype):
    """eigh and svd use the registry's rotation kernel: check each ISA's."""
    rng = np.random.default_rng(1)
    a = make_matrix("random", 70, 50, dtype, rng)
    u, s, vt = mn.linalg.svd(a)
    check_svd(a, u, s, vt, dtype, isa_path)
    g = a[:50] + a[:50].T
    w, v = mn.linalg.eigh(g)
    check_eigh(g, w, v, dtype, isa_path)
    # rot_batch's column paths: strips of 4 vectors, of 1, then single
    # columns (float32 8 lanes, float64 4); 131 also takes the blocked
    # tridiagonalisation.
    for n in (23, 45, 131):
        g = make_matrix("random", n, n, dtype, rng)
        g = g + g.T
        w, v = mn.linalg.eigh(g)
        check_eigh(g, w, v, dtype, f"{isa_path} n={n}")


# ---------------------------------------------------------------- small stacks
# Stacked solve / inv / det up to thresholds::small_lu_max_n = 16 run the
# lane-interleaved kernels of linalg/small_lu.hpp (one matrix per SIMD lane,
# a different kernel per ISA), larger orders the per-matrix LU: every order
# through 18 crosses the switch, and 37 matrices leave a partial lane group
# on every ISA (2, 4, 8 or 16 lanes).

SMALL_ORDERS = list(range(1, 19))
SMALL_BATCHES = [0, 1, 37]


def small_stack(kind: str, batch: int, n: int, dtype, rng) -> np.ndarray:
    if kind == "tiny_pivot":  # unpivoted elimination would divide by ~eps
        a = rng.standard_normal((batch, n, n))
        a[:, np.arange(n), np.arange(n)] *= eps(dtype)
    elif kind == "zero_diagonal":  # every step must swap rows
        a = rng.standard_normal((batch, n, n))
        a[:, np.arange(n), np.arange(n)] = 0
        if n == 1:
            a += 1
    elif kind == "near_singular":  # kappa = 1e-3 / eps: not singular once rounded to dtype
        s = np.logspace(0, np.log10(1e3 * eps(dtype)), n)
        a = np.stack([_with_singular_values(rng, n, n, s) for _ in range(batch)]) \
            if batch else np.zeros((0, n, n))
    else:
        a = np.stack([make_matrix(kind, n, n, np.float64, rng) for _ in range(batch)]) \
            if batch else np.zeros((0, n, n))
    return a.astype(dtype)


def per_matrix_ratio(residual, scale):
    """max over the stack of ||residual_i||_1 / scale_i (1-norms)."""
    if residual.size == 0:
        return 0.0
    r = np.max(np.sum(np.abs(residual), axis=-2), axis=-1)
    return float(np.max(np.where(r == 0, 0, r / np.maximum(scale, np.finfo(float).tiny))))


def stack_n1(x):
    return np.max(np.sum(np.abs(np.asarray(x, np.float64)), axis=-2), axis=-1)


def check_small_stack(a, dtype, rng, label):
    batch, n = a.shape[0], a.shape[-1]
    a64 = a.astype(np.float64)
    b = rng.standard_normal((batch, n, 3)).astype(dtype)
    x = L.solve(a, b)
    assert x.dtype == dtype and x.shape == b.shape, label
    r = per_matrix_ratio(b.astype(float) - a64 @ x.astype(float),
                         stack_n1(a) * stack_n1(x) * eps(dtype))
    assert r < THRESHOLD["solve"], f"{label}: solve ratio {r:.1f}"
    ai = L.inv(a)
    assert ai.dtype == dtype and ai.shape == a.shape, label
    r = per_matrix_ratio(np.eye(n) - a64 @ ai.astype(float),
                         n * stack_n1(a) * stack_n1(ai) * eps(dtype))
    assert r < THRESHOLD["solve"], f"{label}: inv ratio {r:.1f}"
    return a64


def check_det(a, a64, dtype, label):
    """LU's backward error (~ n eps ||A||) moves log|det| by up to
    ~ n eps kappa(A), plus the rounding of the log itself."""
    ref_sign, ref_log = np.linalg.slogdet(a64)
    sign, logabs = L.slogdet(a)
    assert sign.shape == a.shape[:-2], label
    np.testing.assert_array_equal(sign, ref_sign, err_msg=label)
    if a.size == 0:
        return
    tol = 30 * a.shape[-1] * eps(dtype) * np.linalg.cond(a64, 1)
    err = np.abs(logabs - ref_log) - eps(dtype) * np.abs(ref_log)
    assert np.all(err <= tol), f"{label}: log|det| error {np.max(err / tol):.2f} x tol"
    d, ref = L.det(a).astype(float), np.linalg.det(a64)
    assert np.all(np.abs(d - ref) <= 2 * tol * np.abs(ref)), label


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_stacks_on_every_isa(isa_path, dtype):
    """solve / inv backward errors per matrix, and det against NumPy's, on
    random, near-singular (kappa = 1/eps), graded and pivoting-needed
    stacks of every small order."""
    rng = np.random.default_rng(3)
    for n in SMALL_ORDERS:
        for batch in SMALL_BATCHES:
            for kind in ("random", "near_singular", "graded", "tiny_pivot", "zero_diagonal"):
                label = f"{isa_path} {kind} n={n} batch={batch} {dtype.__name__}"
                a = small_stack(kind, batch, n, dtype, rng)
                a64 = check_small_stack(a, dtype, rng, label)
                if kind == "near_singular":
                    continue  # det's relative error grows with kappa
                check_det(a, a64, dtype, label)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 5, 8, 16, 17])
def test_small_stacks_singular_and_non_finite(dtype, n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal((37, n, n)).astype(dtype)
    b = rng.standard_normal((37, n, 2)).astype(dtype)
    s = a.copy()
    s[20, :, n // 2] = 0    # column n//2 zero: pivot n//2 + 1 is exactly zero
    s[30, :, 0] = 0         # a later singular matrix is not the one named
    for fn in (lambda: L.solve(s, b), lambda: L.inv(s)):
        with pytest.raises(L.LinAlgError, match=rf"singular matrix: pivot {n // 2 + 1} is exactly "
                                                rf"zero.*\(matrix \(20,\) of the stack\)"):
            fn()
    d = L.det(s)
    assert d[20] == 0 and d[30] == 0 and np.all(d[:20] != 0)
    sign, logabs = L.slogdet(s)
    assert sign[20] == 0 and logabs[20] == -np.inf
    regular = np.delete(a, [20, 30], 0)
    check_det(regular, regular.astype(float), dtype, f"n={n}")
    for bad in (np.nan, np.inf, -np.inf):
        x = a.copy()
        x[11, n - 1, 0] = bad
        for fn in (lambda: L.solve(x, b), lambda: L.inv(x), lambda: L.det(x),
                   lambda: L.slogdet(x)):
            with pytest.raises(L.LinAlgError, match=r"NaN or Inf \(matrix \(11,\) of the stack"):
                fn()
        y = b.copy()
        y[36, 0, 1] = bad
        with pytest.raises(L.LinAlgError, match=r"NaN or Inf \(matrix \(36,\) of the stack"):
            L.solve(a, y)
    # a subnormal pivot: 1 / pivot overflows, so its column divides (DGETF2)
    tiny = np.finfo(dtype).smallest_subnormal * 1000
    t = np.eye(n, dtype=dtype)
    t[0, 0] = tiny
    if n > 1:
        t[1, 0] = tiny / 2
    rhs = t.sum(axis=1)
    np.testing.assert_allclose(L.solve(t, rhs), np.ones(n), rtol=4 * eps(dtype))
    assert L.det(t) == tiny
    mixed = a.copy()
    mixed[3] = t  # its lanes divide; its neighbours' results do not change
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(np.delete(L.solve(mixed, b), 3, 0),
                                      np.delete(L.solve(a, b), 3, 0))
    # the worked example of a singular 2 x 2, and one needing a row swap
    assert L.det(np.array([[1, 2], [2, 4]], dtype)) == 0
    np.testing.assert_array_equal(L.solve(np.array([[0, 1], [1, 0]], dtype),
                                          np.array([2, 3], dtype)), [3, 2])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [17, 80])
def test_subnormal_pivot_above_the_small_kernels(dtype, n):
    """Past the small-LU kernels (n > 16) LU and the blocked TRSM divide by a
    subnormal diagonal instead of multiplying by its overflowing reciprocal,
    for one right-hand side and for several."""
    tiny = np.finfo(dtype).smallest_subnormal * 1000
    t = np.eye(n, dtype=dtype)
    t[0, 0] = tiny
    t[1, 0] = tiny / 2
    t[n - 1, n - 1] = tiny
    rhs = t.sum(axis=1)
    for b in (rhs, np.stack([rhs, 2 * rhs, -rhs], axis=1)):
        x = L.solve(t, b)
        want = np.ones(n) if b.ndim == 1 else np.ones(n)[:, None] * [1, 2, -1]
        np.testing.assert_allclose(x, want, rtol=4 * eps(dtype))
    assert L.det(t) == tiny * tiny or L.det(t) == 0  # the product underflows in float32


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_stacks_broadcasting_and_threads(dtype, rng, threads):
    a = rng.standard_normal((5, 1, 8, 8)).astype(dtype)
    cases = [rng.standard_normal((3, 8, 2)),      # batch axes broadcast to (5, 3)
             rng.standard_normal((8,)),           # a vector (NumPy 2: 1-D only)
             rng.standard_normal((5, 3, 8, 1)),
             rng.standard_normal((1, 8, 16)),     # nrhs at the kernels' limit
             rng.standard_normal((8, 17))]        # past it: the per-matrix path
    for b in cases:
        b = b.astype(dtype)
        want = np.linalg.solve(a.astype(float), b.astype(float))
        out = {}
        for nt in (1, 2):
            mn.set_num_threads(nt)
            out[nt] = L.solve(a, b)
            assert out[nt].shape == want.shape and out[nt].dtype == dtype
        np.testing.assert_array_equal(out[1], out[2])  # lanes never mix: same bits
        np.testing.assert_allclose(out[1], want, rtol=0,
                                   atol=1e3 * eps(dtype) * np.abs(want).max())
    big = rng.standard_normal((1001, 8, 8)).astype(dtype)
    res = {}
    for nt in (1, 2):
        mn.set_num_threads(nt)
        res[nt] = (L.inv(big), L.det(big), L.slogdet(big).logabsdet)
    for x, y in zip(res[1], res[2]):
        np.testing.assert_array_equal(x, y)
    # a read-only stack goes to the kernels as it is (they only read it); a
    # strided one through a contiguous copy
    ro = big.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(L.inv(ro), res[1][0])
    np.testing.assert_array_equal(L.det(ro), res[1][1])
    np.testing.assert_array_equal(L.inv(big[::2]), res[1][0][::2])


# ---------------------------------------------------------------- PCA

def test_pca_matches_sklearn(rng):
    sklearn = pytest.importorskip("sklearn.decomposition")
    x = rng.standard_normal((120, 6)) @ rng.standard_normal((6, 6)) + 3
    for nc in [2, 6, 0.9]:
        ours = L.PCA(nc).fit(x)
        ref = sklearn.PCA(nc, svd_solver="full").fit(x)
        assert ours.n_components_ == ref.n_components_
        np.testing.assert_allclose(ours.components_, ref.components_, atol=1e-10)
        np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=1e-10)
        np.testing.assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_,
                                   rtol=1e-10)
        np.testing.assert_allclose(ours.mean_, ref.mean_, rtol=1e-12)
        np.testing.assert_allclose(ours.transform(x), ref.transform(x), atol=1e-9)
        np.testing.assert_allclose(L.PCA(nc).fit_transform(x), ref.transform(x), atol=1e-9)
        z = ours.transform(x)
        np.testing.assert_allclose(ours.inverse_transform(z), ref.inverse_transform(z), atol=1e-9)


def test_pca_sign_convention_and_errors(rng):
    x = rng.standard_normal((50, 4)).astype(np.float32)
    p = L.PCA(3).fit(x)
    assert p.components_.dtype == np.float32
    big = p.components_[np.arange(3), np.argmax(np.abs(p.components_), axis=1)]
    assert np.all(big > 0)
    np.testing.assert_allclose(L.PCA(4).fit(x).inverse_transform(L.PCA(4).fit(x).transform(x)), x,
                               atol=1e-5)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        L.PCA(1.5)
    with pytest.raises(ValueError, match="<="):
        L.PCA(5).fit(x)
    with pytest.raises(RuntimeError, match="fit first"):
        L.PCA(2).transform(x)
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        p.transform(x[:, :3])


# ---------------------------------------------------------------- the tour

def test_linear_algebra_tour_runs(tmp_path):
    """examples/linear_algebra_tour.py end to end (it asserts its own claims)."""
    import os
    import subprocess
    import sys
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    script = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "linear_algebra_tour.py")
    proc = subprocess.run([sys.executable, script, "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tour complete" in proc.stdout
    assert (tmp_path / "digits_pca.png").stat().st_size > 10_000


@pytest.mark.parametrize("shape", [(5, 32, 32), (2, 70, 70), (40, 40)])
def test_eigh_reads_its_input_only(shape, rng):
    """eigh / eigvalsh take a read-only contiguous stack as it is (no copy
    needed, none of it modified), on the interleaved small-stack path and on
    the per-matrix one."""
    a = rng.standard_normal(shape)
    a = a + np.swapaxes(a, -1, -2)
    before = a.copy()
    a.setflags(write=False)
    w, v = L.eigh(a)
    np.testing.assert_array_equal(a, before)
    np.testing.assert_array_equal(L.eigvalsh(a), w)
    np.testing.assert_array_equal(a, before)
    n = shape[-1]
    resid = np.abs(before @ v - v * w[..., None, :]).max()
    assert resid <= 60 * n * np.finfo(np.float64).eps * np.abs(before).max() * n
