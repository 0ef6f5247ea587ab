"""Argument errors users can cause: out-of-range Python ints and floats, and
misaligned arrays (np.frombuffer at an odd offset), at every public entry
point that takes them."""

from __future__ import annotations

import numpy as np
import pytest

import matnet as mn
import numpy_reference as ref


def _ones(shape=(3, 4), dtype=np.float32):
    return np.ones(shape, dtype)


# Each case: the call, the error type, the argument name the message must carry.
OUT_OF_RANGE = {
    "softmax axis": (lambda: mn.ops.softmax(_ones(), axis=2**40), OverflowError, "axis"),
    "log_softmax axis": (lambda: mn.ops.log_softmax(_ones(), axis=-2**40), OverflowError, "axis"),
    "softmax_backward axis": (lambda: mn.ops.softmax_backward(_ones(), _ones(), axis=2**63),
                              OverflowError, "axis"),
    "set_num_threads": (lambda: mn.set_num_threads(2**31), ValueError, "n must be"),
    "gemm alpha": (lambda: mn.ops.gemm(_ones(), _ones((4, 2)), alpha=10**400), OverflowError,
                   "alpha"),
    "gemm beta": (lambda: mn.ops.gemm(_ones(), _ones((4, 2)), _ones((3, 2)), beta=-10**400),
                  OverflowError, "beta"),
    "leaky_relu slope": (lambda: mn.ops.leaky_relu(_ones(), 10**400), OverflowError,
                         "negative_slope"),
    "adam step": (lambda: mn.ops.adam_update(_ones(), _ones(), np.zeros((3, 4), np.float32),
                                             np.zeros((3, 4), np.float32), step=2**70, lr=0.1),
                  OverflowError, "step"),
    "sgd lr": (lambda: mn.ops.sgd_update(_ones(), _ones(), None, lr=10**400), OverflowError, "lr"),
}


@pytest.mark.parametrize("case", list(OUT_OF_RANGE), ids=list(OUT_OF_RANGE))
def test_out_of_range_ints_name_the_argument(case):
    """Not pybind11's "incompatible function arguments" TypeError."""
    call, error, name = OUT_OF_RANGE[case]
    with pytest.raises(error, match=name) as info:
        call()
    assert "incompatible function arguments" not in str(info.value)


def test_adam_step_accepts_numpy_ints_and_refuses_bools():
    p = _ones()
    mn.ops.adam_update(p, _ones(), np.zeros_like(p), np.zeros_like(p), step=np.int64(3), lr=0.1)
    with pytest.raises(TypeError, match="step"):
        mn.ops.adam_update(p, _ones(), np.zeros_like(p), np.zeros_like(p), step=True, lr=0.1)
    with pytest.raises(TypeError, match="alpha"):
        mn.ops.gemm(_ones(), _ones((4, 2)), alpha="2")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_misaligned_arrays_are_copied_not_misread(dtype, rng):
    """Kernels never see a misaligned pointer (UBSan in the sanitizer job checks
    the "never"; here, that results are right)."""
    x = rng.standard_normal((37, 19)).astype(dtype)
    w = rng.standard_normal((19, 23)).astype(dtype)
    mx, mw = ref.unaligned(x), ref.unaligned(w)
    np.testing.assert_array_equal(mn.ops.softmax(mx), mn.ops.softmax(x))
    np.testing.assert_array_equal(mn.ops.log_softmax(mx, axis=0), mn.ops.log_softmax(x, axis=0))
    np.testing.assert_array_equal(mn.ops.tanh(mx), mn.ops.tanh(x))
    np.testing.assert_array_equal(mn.ops.gelu_backward(mx, mx), mn.ops.gelu_backward(x, x))
    np.testing.assert_array_equal(mn.ops.matmul(mx, mw), mn.ops.matmul(x, w))
    np.testing.assert_array_equal(mn.ops.matvec(mx, ref.unaligned(w[:, 0])),
                                  mn.ops.matvec(x, w[:, 0]))
    y, z = mn.ops.dense_forward(mx, mw, ref.unaligned(w[0]), "relu")
    np.testing.assert_array_equal(y, mn.ops.dense_forward(x, w, w[0], "relu")[0])
    labels = rng.integers(0, 19, 37)
    for fn, args in ((mn.losses.cross_entropy, (x, labels)), (mn.losses.mse, (x, x[::-1]))):
        want = fn(*args)
        got = fn(*[ref.unaligned(a) for a in args])
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    p, g = x.copy(), ref.unaligned(x * 0.5)
    mn.ops.sgd_update(p, g, None, lr=0.1)
    np.testing.assert_allclose(p, x - dtype(0.1) * (x * dtype(0.5)), rtol=1e-6)
    with pytest.raises(ValueError, match="aligned"):  # updated in place: cannot be copied
        mn.ops.sgd_update(ref.unaligned(x), x, None, lr=0.1)
