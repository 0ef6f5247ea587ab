"""Linear algebra on matnet's own kernels, with NumPy-compatible signatures.

The factorisations are C++ (``<matnet/linalg.hpp>``) built on matnet's GEMM:
recursive LU with partial pivoting and recursive Cholesky (their updates
are GEMM calls), blocked Householder QR (compact WY), a symmetric
eigensolver (Householder tridiagonalisation + implicit QL) and an SVD
(Householder bidiagonalisation + implicit-shift QR; ``AᵀA`` is never
formed). Everything else here is built from those and matnet's matmul.

Rules (as :func:`matnet.ops.matmul`): inputs are float32 or float64 arrays
(anything else raises ``TypeError``; operands of one call must share the
dtype) and the computation runs in that dtype. Stacked inputs ``(..., m, n)``
work wherever NumPy accepts them; a stack of small matrices runs one matrix
per thread. Singular, not positive definite or non-finite input raises
:class:`LinAlgError` (a ``ValueError``, and a ``numpy.linalg.LinAlgError``)
whose message names the problem and the matrix of the stack.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional, Sequence, Tuple, Union, cast

import numpy as np

from . import _core
from . import ops as _ops

__all__ = [
    "LinAlgError", "norm", "lu_factor", "det", "slogdet", "solve", "inv", "lstsq", "cholesky", "qr",
    "eigh", "eigvalsh", "svd", "pinv", "matrix_rank", "cond", "PCA",
]


class LinAlgError(np.linalg.LinAlgError):
    """A matrix the operation cannot handle: singular, not positive definite,
    holding NaN/Inf, or an iteration that did not converge. A ``ValueError``
    subclass (through ``numpy.linalg.LinAlgError``), so either may be caught."""


class SlogdetResult(NamedTuple):
    sign: Any
    logabsdet: Any


class QRResult(NamedTuple):
    Q: np.ndarray
    R: np.ndarray


class EighResult(NamedTuple):
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray


class SVDResult(NamedTuple):
    U: np.ndarray
    S: np.ndarray
    Vh: np.ndarray


class LstsqResult(NamedTuple):
    solution: np.ndarray
    residuals: np.ndarray
    rank: int
    singular_values: np.ndarray


# ------------------------------------------------------------------ helpers

def _float_array(x: Any, fn: str, name: str = "a") -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"{fn}: {name} must be float32 or float64 (as matnet.ops.matmul), "
                        f"got {arr.dtype}; convert it with .astype(np.float64) first")
    return arr


def _same_dtype(fn: str, **arrays: np.ndarray) -> None:
    dtypes = {a.dtype for a in arrays.values()}
    if len(dtypes) > 1:
        listed = ", ".join(f"{k} is {v.dtype}" for k, v in arrays.items())
        raise TypeError(f"{fn}: operands must share one dtype, but {listed}")


def _matrices(a: np.ndarray, fn: str, square: bool = True, name: str = "a") -> None:
    if a.ndim < 2:
        raise ValueError(f"{fn}: {name} must have at least 2 dimensions (..., m, n), "
                         f"got shape {a.shape}")
    if square and a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{fn}: {name} must be square in its last two axes, got shape {a.shape}")


def _stack(a: np.ndarray) -> np.ndarray:
    """A fresh C-contiguous (batch, m, n) copy the kernels may overwrite."""
    m, n = a.shape[-2:]
    batch = int(np.prod(a.shape[:-2], dtype=np.int64))
    return np.array(a, dtype=a.dtype, order="C", copy=True).reshape(batch, m, n)


def _stack_view(a: np.ndarray) -> np.ndarray:
    """a as a C-contiguous (batch, m, n) stack for the kernels that only
    read it: a view when a already is contiguous (no copy to pay)."""
    m, n = a.shape[-2:]
    batch = int(np.prod(a.shape[:-2], dtype=np.int64))
    return np.ascontiguousarray(a).reshape(batch, m, n)


def _where(shape: Tuple[int, ...], i: int) -> str:
    if len(shape) == 0:
        return ""
    index = tuple(int(v) for v in np.unravel_index(i, shape))
    return f" (matrix {index} of the stack)"


def _check_info(info: np.ndarray, batch_shape: Tuple[int, ...], fn: str, failure: str) -> None:
    """Raise LinAlgError for the first matrix whose info is not 0.

    failure: message for info = k + 1 > 0, with {k} (0-based step) and
    {k1} (1-based) placeholders."""
    bad = np.flatnonzero(info)
    if bad.size == 0:
        return
    i = int(bad[0])
    code = int(info[i])
    where = _where(batch_shape, i)
    if code < 0:
        raise LinAlgError(f"{fn}: the input contains NaN or Inf{where}")
    raise LinAlgError(f"{fn}: " + failure.format(k=code - 1, k1=code) + where)


_SINGULAR = "singular matrix: pivot {k1} is exactly zero (U[{k}, {k}] = 0 in P A = L U)"


# ------------------------------------------------------------------ norms

def _vector_norm(x: np.ndarray, ord: Any, axis: Any, keepdims: bool) -> np.ndarray:
    ax = np.abs(x)
    if ord is None or ord == 2:
        return np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))
    if ord == np.inf:
        return np.max(ax, axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return np.min(ax, axis=axis, keepdims=keepdims)
    if ord == 0:
        return np.sum(x != 0, axis=axis, keepdims=keepdims).astype(x.dtype)
    if ord == 1:
        return np.sum(ax, axis=axis, keepdims=keepdims)
    if isinstance(ord, str):
        raise ValueError(f"norm: invalid norm order {ord!r} for vectors")
    p = x.dtype.type(ord)
    return np.sum(ax ** p, axis=axis, keepdims=keepdims) ** (1 / p)


def _matrix_norm(x: np.ndarray, ord: Any, axes: Tuple[int, int], keepdims: bool) -> np.ndarray:
    r, c = (a % x.ndim for a in axes)
    if r == c:
        raise ValueError("norm: duplicate axes given")
    if ord is None or ord == "fro" or ord == "f":
        res = np.sqrt(np.sum(x * x, axis=(r, c)))
    elif ord in ("nuc", 2, -2):
        s = svd(np.moveaxis(x, (r, c), (-2, -1)), compute_uv=False)
        res = np.sum(s, axis=-1) if ord == "nuc" else (
            np.max(s, axis=-1) if ord == 2 else np.min(s, axis=-1))
    elif ord in (1, -1):
        sums = np.sum(np.abs(x), axis=r)  # column sums
        res = (np.max if ord == 1 else np.min)(sums, axis=c - 1 if c > r else c)
    elif ord in (np.inf, -np.inf):
        sums = np.sum(np.abs(x), axis=c)  # row sums
        res = (np.max if ord == np.inf else np.min)(sums, axis=r - 1 if r > c else r)
    else:
        raise ValueError(f"norm: invalid norm order {ord!r} for matrices")
    if keepdims:
        res = np.expand_dims(np.asarray(res), axis=tuple(sorted((r, c))))
    return res


def norm(x: Any, ord: Any = None, axis: Union[None, int, Tuple[int, int]] = None,
         keepdims: bool = False) -> Any:
    """Vector or matrix norm, as :func:`numpy.linalg.norm`.

    Vector orders: None/2 (Euclidean), 1, inf, -inf, 0 (count of non-zeros)
    and any other p (``sum(|x|^p)^(1/p)``). Matrix orders: None/'fro',
    'nuc' (sum of singular values), 1 / -1 (max / min column sum of |x|),
    inf / -inf (max / min row sum), 2 / -2 (largest / smallest singular
    value, through :func:`svd`). ``axis`` None: x is a vector (1-D) or a
    matrix (2-D) when ord is given, else the 2-norm of all elements; an int
    selects a vector axis, a pair the matrix axes.

    Examples: ``norm([3., 4.], 1) == 7``, ``norm([3., 4.]) == 5``,
    ``norm([3., 4.], np.inf) == 4``.
    """
    x = _float_array(x, "norm", "x")
    if axis is None:
        if ord is None:
            res = np.sqrt(np.sum(x * x))
            return res.reshape((1,) * x.ndim) if keepdims else res
        if x.ndim == 1:
            return _vector_norm(x, ord, 0, keepdims)
        if x.ndim == 2:
            return _matrix_norm(x, ord, (0, 1), keepdims)
        raise ValueError(f"norm: an order needs a 1-D or 2-D x (or axis), got shape {x.shape}")
    if isinstance(axis, (tuple, list)):
        if len(axis) == 1:
            return _vector_norm(x, ord, tuple(axis), keepdims)
        if len(axis) != 2:
            raise ValueError(f"norm: axis must be an int or a pair, got {axis!r}")
        return _matrix_norm(x, ord, (int(axis[0]), int(axis[1])), keepdims)
    return _vector_norm(x, ord, int(axis), keepdims)


# ------------------------------------------------------------------ LU family

def lu_factor(a: Any) -> Tuple[np.ndarray, np.ndarray]:
    """LU with partial pivoting of (..., n, n), as ``scipy.linalg.lu_factor``:
    returns (lu, piv) with L (unit diagonal, strictly lower) and U packed in
    lu, and piv[i] the row swapped with row i at step i (0-based), so that
    P A = L U. A zero pivot is not an error here (U is then singular)."""
    a = _float_array(a, "lu_factor")
    _matrices(a, "lu_factor")
    a3 = _stack(a)
    piv, info = _core.linalg_lu_factor(a3)
    _check_info(np.minimum(info, 0), a.shape[:-2], "lu_factor", "")
    return a3.reshape(a.shape), piv.reshape(a.shape[:-1])


def slogdet(a: Any) -> SlogdetResult:
    """Sign and natural log of |det(a)| for (..., n, n): a singular matrix
    gives sign 0 and logabsdet -inf."""
    a = _float_array(a, "slogdet")
    _matrices(a, "slogdet")
    batch_shape = a.shape[:-2]
    _, sign, logabs, info = _core.linalg_det(_stack_view(a))
    _check_info(info, batch_shape, "slogdet", "")
    return SlogdetResult(_unstack_scalar(sign, batch_shape), _unstack_scalar(logabs, batch_shape))


def _unstack_scalar(v: np.ndarray, batch_shape: Tuple[int, ...]) -> Any:
    return v.reshape(batch_shape) if batch_shape else v.dtype.type(v[0])


def det(a: Any) -> Any:
    """Determinant of (..., n, n) through LU with partial pivoting; the
    singular [[1, 2], [2, 4]] gives 0 (not an error), a rotation 1."""
    a = _float_array(a, "det")
    _matrices(a, "det")
    batch_shape = a.shape[:-2]
    d, _, _, info = _core.linalg_det(_stack_view(a))
    _check_info(info, batch_shape, "det", "")
    return _unstack_scalar(d, batch_shape)


def solve(a: Any, b: Any) -> np.ndarray:
    """x with a @ x = b, as :func:`numpy.linalg.solve` (NumPy 2 rules: b
    is a vector (n,) only when 1-D, else (..., n, k); batch axes broadcast).
    LU with partial pivoting, then two triangular solves."""
    a = _float_array(a, "solve")
    b = _float_array(b, "solve", "b")
    _same_dtype("solve", a=a, b=b)
    _matrices(a, "solve")
    n = a.shape[-1]
    vector = b.ndim == 1
    bm = b[:, None] if vector else b
    if bm.ndim < 2 or bm.shape[-2] != n:
        raise ValueError(f"solve: a of shape {a.shape} and b of shape {b.shape} do not fit: "
                         f"b needs {n} rows ((n,) or (..., n, k))")
    try:
        batch_shape = np.broadcast_shapes(a.shape[:-2], bm.shape[:-2])
    except ValueError:
        raise ValueError(f"solve: batch shapes of a {a.shape} and b {b.shape} do not broadcast") \
            from None
    k = bm.shape[-1]
    a3 = _stack_view(np.broadcast_to(a, batch_shape + (n, n)))
    b3 = _stack(np.broadcast_to(bm, batch_shape + (n, k)))
    info = _core.linalg_solve(a3, b3)
    _check_info(info, batch_shape, "solve", _SINGULAR)
    x = b3.reshape(batch_shape + (n, k))
    return x[..., 0] if vector else x


def inv(a: Any) -> np.ndarray:
    """Inverse of (..., n, n): LU, then the inverse from the factors
    (LAPACK's DGETRI; orders below 20 solve with the identity)."""
    a = _float_array(a, "inv")
    _matrices(a, "inv")
    out, info = _core.linalg_inv(_stack_view(a))
    _check_info(info, a.shape[:-2], "inv", _SINGULAR)
    return out.reshape(a.shape)


def cholesky(a: Any, /, *, upper: bool = False) -> np.ndarray:
    """Cholesky factor L (a = L Lᵀ) of symmetric positive definite (..., n, n),
    reading only the lower triangle; ``upper=True`` returns Lᵀ."""
    a = _float_array(a, "cholesky")
    _matrices(a, "cholesky")
    a3 = _stack(a)
    info = _core.linalg_cholesky(a3)
    _check_info(info, a.shape[:-2], "cholesky",
                "matrix is not positive definite: the leading minor of order {k1} is not "
                "positive (pivot {k1})")
    out = a3.reshape(a.shape)
    return np.ascontiguousarray(np.swapaxes(out, -1, -2)) if upper else out


def qr(a: Any, mode: str = "reduced") -> Union[QRResult, np.ndarray]:
    """Householder QR of (..., m, n), blocked (compact WY).

    mode 'reduced': Q (..., m, k), R (..., k, n), k = min(m, n);
    'complete': Q (..., m, m), R (..., m, n); 'r': R (..., k, n) only.
    R's diagonal may be negative (as LAPACK's)."""
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"qr: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    a = _float_array(a, "qr")
    _matrices(a, "qr", square=False)
    m, n = a.shape[-2:]
    k = min(m, n)
    a3 = _stack(a)
    q_cols = -1 if mode == "r" else (m if mode == "complete" else k)
    q, info = _core.linalg_qr(a3, q_cols)
    _check_info(info, a.shape[:-2], "qr", "")
    rows = m if mode == "complete" else k
    r = np.ascontiguousarray(a3[:, :rows, :]).reshape(a.shape[:-2] + (rows, n))
    if mode == "r":
        return r
    return QRResult(q.reshape(a.shape[:-2] + (m, q_cols)), r)


# ------------------------------------------------------------------ eigen / SVD

def _symmetric_stack(a: Any, fn: str, UPLO: str) -> Tuple[np.ndarray, np.ndarray]:
    if UPLO not in ("L", "U"):
        raise ValueError(f"{fn}: UPLO must be 'L' or 'U', got {UPLO!r}")
    a = _float_array(a, fn)
    _matrices(a, fn)
    if UPLO == "U":
        a = np.swapaxes(a, -1, -2)
    return a, _stack_view(a)  # the kernels only read it


_NO_CONVERGENCE = "the QR iteration did not converge (value {k1})"


def eigh(a: Any, UPLO: str = "L") -> EighResult:
    """Eigenvalues (ascending) and eigenvectors (columns) of real symmetric
    (..., n, n); only the UPLO triangle is read. a @ v[:, i] = w[i] v[:, i]."""
    a, a3 = _symmetric_stack(a, "eigh", UPLO)
    w, v, info = _core.linalg_eigh(a3, True)
    _check_info(info, a.shape[:-2], "eigh", _NO_CONVERGENCE)
    return EighResult(w.reshape(a.shape[:-1]), v.reshape(a.shape))


def eigvalsh(a: Any, UPLO: str = "L") -> np.ndarray:
    """Eigenvalues (ascending) of real symmetric (..., n, n)."""
    a, a3 = _symmetric_stack(a, "eigvalsh", UPLO)
    w, _, info = _core.linalg_eigh(a3, False)
    _check_info(info, a.shape[:-2], "eigvalsh", _NO_CONVERGENCE)
    return w.reshape(a.shape[:-1])


def svd(a: Any, full_matrices: bool = True, compute_uv: bool = True,
        hermitian: bool = False) -> Union[SVDResult, np.ndarray]:
    """a = U diag(S) Vh for (..., m, n); S descending. Bidiagonalisation
    and implicit-shift QR (AᵀA is never formed). ``hermitian`` is accepted
    for NumPy compatibility and ignored (the general algorithm is used)."""
    a = _float_array(a, "svd")
    _matrices(a, "svd", square=False)
    m, n = a.shape[-2:]
    k = min(m, n)
    s, u, vt, info = _core.linalg_svd(_stack(a), bool(compute_uv), bool(full_matrices))
    _check_info(info, a.shape[:-2], "svd", _NO_CONVERGENCE)
    bs = a.shape[:-2]
    s = s.reshape(bs + (k,))
    if not compute_uv:
        return s
    return SVDResult(u.reshape(bs + u.shape[1:]), s, vt.reshape(bs + vt.shape[1:]))


def _cutoff(s: np.ndarray, m: int, n: int, rtol: Optional[Any]) -> np.ndarray:
    smax = np.max(s, axis=-1, keepdims=True) if s.shape[-1] else np.zeros(s.shape[:-1] + (1,), s.dtype)
    if rtol is None:
        rtol = max(m, n) * np.finfo(s.dtype).eps
    return np.asarray(rtol, dtype=s.dtype)[..., None] * smax


def pinv(a: Any, rcond: Optional[Any] = None, hermitian: bool = False, *,
         rtol: Optional[Any] = None) -> np.ndarray:
    """Moore-Penrose pseudo-inverse of (..., m, n) from the SVD: singular
    values below ``rcond`` (or ``rtol``; default max(m, n) eps) times the
    largest are treated as zero."""
    a = _float_array(a, "pinv")
    _matrices(a, "pinv", square=False)
    m, n = a.shape[-2:]
    u, s, vt = svd(a, full_matrices=False)
    cut = _cutoff(s, m, n, rcond if rcond is not None else rtol)
    with np.errstate(divide="ignore"):
        sinv = np.where(s > cut, 1 / np.where(s > cut, s, 1), 0).astype(a.dtype)
    return _ops.matmul(vt * sinv[..., :, None], u, trans_a=True, trans_b=True)


def matrix_rank(A: Any, tol: Optional[Any] = None, hermitian: bool = False, *,
                rtol: Optional[Any] = None) -> Any:
    """Number of singular values above tol (default S.max() max(m, n) eps)."""
    A = _float_array(A, "matrix_rank", "A")
    if A.ndim < 2:
        return int(not np.all(A == 0))
    m, n = A.shape[-2:]
    s = cast(np.ndarray, svd(A, compute_uv=False))  # compute_uv=False: the values alone
    if tol is None:
        cut = _cutoff(s, m, n, rtol)
    else:
        cut = np.asarray(tol, dtype=s.dtype)[..., None]
    r = np.sum(s > cut, axis=-1)
    return int(r) if r.ndim == 0 else r


def cond(x: Any, p: Any = None) -> Any:
    """Condition number of (..., n, n) (or (..., m, n) for p None/2/-2):
    σmax/σmin for None/2 (σmin/σmax for -2), else norm(x, p) norm(inv(x), p);
    inf for a singular matrix."""
    x = _float_array(x, "cond", "x")
    _matrices(x, "cond", square=p not in (None, 2, -2))
    if p in (None, 2, -2):
        s = cast(np.ndarray, svd(x, compute_uv=False))  # compute_uv=False: the values alone
        with np.errstate(divide="ignore", invalid="ignore"):
            r = s[..., 0] / s[..., -1] if p != -2 else s[..., -1] / s[..., 0]
        r = np.where(np.isnan(r), np.inf, r)
        return r if r.ndim else x.dtype.type(r)
    try:
        xi = inv(x)
    except LinAlgError as e:
        if "NaN" in str(e):
            raise
        return x.dtype.type(np.inf) if x.ndim == 2 else np.full(x.shape[:-2], np.inf, x.dtype)
    return norm(x, p, axis=(-2, -1)) * norm(xi, p, axis=(-2, -1))


def lstsq(a: Any, b: Any, rcond: Optional[float] = None) -> LstsqResult:
    """Least-squares solution of a @ x ≈ b, as :func:`numpy.linalg.lstsq`.

    a (m, n), b (m,) or (m, k). Through the SVD (never AᵀA): x = V Σ⁺ Uᵀ b
    with singular values <= rcond σmax dropped (rcond default max(m, n) eps).
    Returns (x, residuals, rank, s); residuals are the squared 2-norms of
    the columns of b - a x when rank == n < m, else an empty array.
    """
    a = _float_array(a, "lstsq")
    b = _float_array(b, "lstsq", "b")
    _same_dtype("lstsq", a=a, b=b)
    if a.ndim != 2:
        raise ValueError(f"lstsq: a must be 2-D (m, n), got shape {a.shape}")
    if b.ndim not in (1, 2) or b.shape[0] != a.shape[0]:
        raise ValueError(f"lstsq: a of shape {a.shape} and b of shape {b.shape} do not fit: "
                         f"b must be ({a.shape[0]},) or ({a.shape[0]}, k)")
    m, n = a.shape
    vector = b.ndim == 1
    bm = b[:, None] if vector else b
    k = bm.shape[1]
    if rcond is None:
        rcond = max(m, n) * np.finfo(a.dtype).eps
    if m == 0 or n == 0:
        x = np.zeros((n, k), a.dtype)
        s = np.zeros(0, a.dtype)
        rank = 0
    else:
        u, s, vt = svd(a, full_matrices=False)
        cut = rcond * s[0]
        keep = s > cut
        rank = int(np.sum(keep))
        utb = _ops.matmul(u[:, :rank], np.ascontiguousarray(bm), trans_a=True)
        utb /= s[:rank, None]
        x = _ops.matmul(vt[:rank], utb, trans_a=True) if rank else np.zeros((n, k), a.dtype)
    if rank == n and m > n:
        r = bm - _ops.matmul(a, np.ascontiguousarray(x))
        residuals = np.sum(r * r, axis=0).astype(a.dtype)
    else:
        residuals = np.zeros(0, a.dtype)
    return LstsqResult(x[:, 0] if vector else x, residuals, rank, s)


# ------------------------------------------------------------------ PCA

class PCA:
    """Principal component analysis through the SVD of the centred data.

    ``fit(X)`` centres X (n_samples, n_features) and takes its thin SVD
    ``X - mean = U S Vᵀ`` (the covariance matrix is never formed). The
    components are the rows of Vᵀ.

    Args:
        n_components: int (number of components, <= min(n_samples,
            n_features)), a float in (0, 1) (the fewest components whose
            explained variance ratios sum to at least that fraction), or
            None (all min(n_samples, n_features)).

    Attributes (after fit), as scikit-learn's PCA:
        components_ (k, n_features), explained_variance_ (k,) = S² / (n - 1),
        explained_variance_ratio_ (k,), singular_values_ (k,), mean_
        (n_features,), n_components_ (int).

    Sign convention (fixed, documented): each component is flipped so that
    its entry of largest absolute value is positive (scikit-learn >= 1.5's
    ``svd_flip(u_based_decision=False)``), so results are reproducible and
    comparable with scikit-learn's.
    """

    def __init__(self, n_components: Union[int, float, None] = None) -> None:
        if n_components is not None:
            if isinstance(n_components, bool) or not isinstance(n_components, (int, float, np.integer, np.floating)):
                raise TypeError(f"PCA: n_components must be an int, a float in (0, 1) or None, "
                                f"got {n_components!r}")
            if isinstance(n_components, (float, np.floating)) and not float(n_components).is_integer():
                if not 0.0 < n_components < 1.0:
                    raise ValueError(f"PCA: a float n_components must be in (0, 1), got {n_components}")
            elif n_components < 1:
                raise ValueError(f"PCA: n_components must be >= 1, got {n_components}")
        self.n_components = n_components

    def fit(self, X: Any, y: Any = None) -> "PCA":
        """Fit the model to X (n_samples, n_features); returns self."""
        self._fit(X)
        return self

    def _fit(self, X: Any) -> np.ndarray:
        X = _float_array(X, "PCA.fit", "X")
        if X.ndim != 2:
            raise ValueError(f"PCA.fit: X must be 2-D (n_samples, n_features), got shape {X.shape}")
        n_samples, n_features = X.shape
        if n_samples < 2:
            raise ValueError(f"PCA.fit: need at least 2 samples, got {n_samples}")
        kmax = min(n_samples, n_features)
        nc = self.n_components
        self.mean_ = X.mean(axis=0)
        xc = X - self.mean_
        u, s, vt = svd(xc, full_matrices=False)
        # Sign: the largest-|.| entry of each component positive.
        idx = np.argmax(np.abs(vt), axis=1)
        signs = np.sign(vt[np.arange(vt.shape[0]), idx])
        signs[signs == 0] = 1
        vt *= signs[:, None]
        u *= signs[None, :]
        var = (s * s) / (n_samples - 1)
        total = var.sum()
        ratio = var / total if total > 0 else np.zeros_like(var)
        if nc is None:
            k = kmax
        elif isinstance(nc, (float, np.floating)) and not float(nc).is_integer():
            k = int(np.searchsorted(np.cumsum(ratio), nc) + 1)
            k = min(k, kmax)
        else:
            k = int(nc)
            if k > kmax:
                raise ValueError(f"PCA.fit: n_components={k} must be <= min(n_samples, "
                                 f"n_features) = {kmax}")
        self.n_components_ = k
        self.components_ = np.ascontiguousarray(vt[:k])
        self.explained_variance_ = var[:k]
        self.explained_variance_ratio_ = ratio[:k]
        self.singular_values_ = s[:k]
        return u[:, :k] * s[:k]

    def _input(self, X: Any, fn: str, name: str, axis: int) -> np.ndarray:
        """X checked for PCA.fn after fit: float, 2-D, with as many columns
        as components_ has along `axis`."""
        if not hasattr(self, "components_"):
            raise RuntimeError(f"PCA.{fn}: call fit first")
        cols = self.components_.shape[axis]
        X = _float_array(X, f"PCA.{fn}", name)
        if X.ndim != 2 or X.shape[1] != cols:
            raise ValueError(f"PCA.{fn}: {name} must have shape (n, {cols}), got {X.shape}")
        return X

    def transform(self, X: Any) -> np.ndarray:
        """Project X (n, n_features) onto the components: (X - mean_) @ components_ᵀ."""
        X = self._input(X, "transform", "X", 1)
        xc = np.ascontiguousarray(X - self.mean_, dtype=self.components_.dtype)
        return _ops.matmul(xc, self.components_, trans_b=True)

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """fit(X), then the projection of X (U S of the SVD, no second pass)."""
        return self._fit(X)

    def inverse_transform(self, Z: Any) -> np.ndarray:
        """Back to feature space: Z @ components_ + mean_."""
        Z = self._input(Z, "inverse_transform", "Z", 0)
        z = np.ascontiguousarray(Z, dtype=self.components_.dtype)
        return _ops.matmul(z, self.components_) + self.mean_
