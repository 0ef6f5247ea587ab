"""Conv2D, pooling and batch norm kernels (mn.ops): forward against NumPy
references (sliding_window_view + einsum, textbook formulas), backward by
central differences in float64 along random directions, PyTorch as an
optional oracle, odd geometries and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import matnet as mn
import numpy_reference as ref

# (id, N, C, H, W, F, kernel, stride, padding, dilation, groups)
# Shapes on the paths that the thresholds pick (core/thresholds.hpp), run on
# every ISA path too (test_conv2d_paths_on_every_isa).
PATH_CASES = [
    # stride 1, width >= conv_dx_flip_min_width and Cg >= conv_dx_flip_min_channels:
    # dX is the flipped convolution. OW = 34: 16-pixel panels cut at row ends
    # (the packing's general copy); OW = 32: every panel inside one output row
    # (its fixed-size copy).
    ("flip-dx-row-cut", 2, 16, 4, 34, 4, 3, 1, 1, 1, 1),
    ("flip-dx-whole-rows", 1, 16, 3, 32, 5, 3, 1, 1, 1, 1),
    ("flip-dx-dilation-groups", 1, 32, 5, 33, 6, 3, 1, 2, 2, 2),
    ("flip-dx-pad>kernel", 1, 16, 4, 32, 3, 2, 1, 3, 1, 1),  # negative padding in the flip
    ("dcol-dx-few-channels", 1, 15, 3, 32, 4, 3, 1, 1, 1, 1),  # one channel short: dcol
    # 3 images (585 columns) per GEMM: dW's 512-column chunks cross images;
    # Kg = 18: a 2-column edge panel of the transposed im2col chunk.
    ("dw-chunks-cross-images", 3, 2, 15, 13, 3, 3, 1, 1, 1, 1),
    ("stride2-wide", 2, 3, 9, 40, 4, 3, 2, 1, 1, 1),  # padded planes read with stride 2
    ("no-pad-images-per-gemm", 6, 3, 10, 10, 4, 3, 1, 0, 1, 1),  # im2col read from x itself
    ("no-pad-wide", 1, 3, 5, 40, 4, (2, 3), 1, 0, 1, 1),
]

# 3x3, stride 1, undilated with >= 16 channels per group in and out,
# outputs >= 6 wide (float32) / 12 (float64) and >= 128 2x2 output tiles in
# all: Winograd F(2x2, 3x3) (core/thresholds.hpp, winograd_*), which also
# computes dX (the flipped convolution: Fg channels in, Cg out, padding
# 2 - p, x's size out). Cases on both sides of each threshold, run on every
# ISA path and thread count (test_conv2d_winograd_on_every_isa).
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MIN_WIDTH = {np.float32: 6, np.float64: 12}
WINOGRAD_MIN_TILES = 128
WINOGRAD_CASES = [
    ("wino-odd-hw", 5, 16, 9, 11, 16, 3, 1, 1, 1, 1),  # OW 11: float32 only
    ("wino-pad0-17-out", 4, 16, 14, 15, 17, 3, 1, 0, 1, 1),  # a 5-row panel of U's rows
    ("wino-pad2", 4, 16, 10, 12, 16, 3, 1, 2, 1, 1),
    ("wino-h3", 10, 16, 3, 14, 16, 3, 1, 1, 1, 1),  # H < 4: one tile row, half used
    ("wino-h2-pad2-128-tiles", 8, 16, 2, 13, 16, 3, 1, 2, 1, 1),  # exactly 128 tiles
    ("wino-127-tiles", 1, 16, 2, 254, 16, 3, 1, 1, 1, 1),  # one short: direct
    ("wino-w3", 11, 16, 12, 3, 16, 3, 1, 2, 1, 1),  # W < 4: OW 5, direct
    ("wino-width-6-5", 11, 16, 7, 6, 16, 3, 1, 0, 1, 1),  # OW 4 direct; dX (OW 6) float32 Winograd
    ("wino-images-cross-blocks", 7, 16, 6, 14, 16, 3, 1, 1, 1, 1),
    ("wino-wide-rows", 1, 16, 3, 262, 16, 3, 1, 1, 1, 1),  # 131 tiles a row: 2 column blocks
    ("wino-deep", 7, 272, 5, 13, 16, 3, 1, 1, 1, 1),  # Cg > kc = 256: products in 2 chunks
    ("wino-groups", 7, 32, 6, 14, 32, 3, 1, 1, 1, 2),
    ("wino-15-in", 7, 15, 6, 14, 16, 3, 1, 1, 1, 1),  # one channel short: direct forward
    ("wino-15-out", 7, 16, 6, 14, 15, 3, 1, 1, 1, 1),  # direct forward, Winograd-free dX
    ("wino-64", 4, 64, 12, 12, 64, 3, 1, 1, 1, 1),
]

CONV_CASES = [
    ("3x3-pad1", 2, 3, 7, 6, 4, 3, 1, 1, 1, 1),
    ("odd-sizes", 3, 5, 9, 11, 7, (3, 2), 1, (2, 0), 1, 1),
    ("stride2", 2, 4, 9, 8, 6, 3, 2, 1, 1, 1),
    ("stride>kernel", 2, 3, 10, 9, 4, 2, 3, 0, 1, 1),
    ("pad>kernel", 2, 3, 5, 4, 4, 2, 1, 3, 1, 1),
    ("pad>kernel-stride2", 1, 2, 5, 6, 3, 2, 2, 3, 1, 1),
    ("dilation2", 2, 3, 9, 9, 4, 3, 1, 2, 2, 1),
    ("groups2", 2, 4, 6, 7, 6, 3, 1, 1, 1, 2),
    ("depthwise", 2, 4, 6, 6, 4, 3, 1, 1, 1, 4),
    ("depthwise-x2", 1, 3, 5, 5, 6, 3, 2, 1, 1, 3),
    ("1x1", 2, 6, 5, 4, 5, 1, 1, 0, 1, 1),
    ("1x1-stride2", 2, 6, 5, 4, 5, 1, 2, 0, 1, 1),
    ("same-even-kernel", 2, 3, 6, 5, 4, 4, 1, "same", 1, 1),
    ("valid", 1, 2, 6, 6, 3, 3, 1, "valid", 1, 1),
    ("batch1-5x5", 1, 2, 8, 8, 3, 5, 1, 2, 1, 1),
    ("wide-k", 2, 20, 6, 6, 33, 3, 1, 1, 1, 1),
    ("ragged-image-blocks", 5, 3, 12, 12, 4, 3, 1, 1, 1, 1),  # 4 + 1 images per GEMM
    ("ragged-blocks-groups-1x1", 9, 4, 8, 8, 6, 1, 1, 0, 1, 2),  # 8 + 1, plain 1x1
    # dcol scratch (Kg x OH*OW, float64) above conv_dcol_max_bytes: dX by the
    # flipped-kernel convolution (negative padding when padding > kernel - 1).
    ("flipped-dx", 1, 64, 61, 61, 2, 3, 1, 1, 1, 1),
    ("flipped-dx-pad>kernel", 1, 128, 61, 61, 2, 2, 1, 3, 1, 1),
    # Winograd in float64 too (OW >= 12) for the finite differences and torch
    ("wino-f64", 5, 16, 7, 13, 16, 3, 1, 1, 1, 1),
    ("wino-f64-groups-pad2", 5, 32, 5, 12, 32, 3, 1, 2, 1, 2),
] + PATH_CASES
CONV_IDS = [c[0] for c in CONV_CASES]


def _case(case, rng, dtype=np.float64):
    _, n, c, h, w, f, k, s, p, d, g = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = (rng.standard_normal((f, c // g, kh, kw)) / np.sqrt(c // g * kh * kw)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    return x, wt, b, dict(stride=s, padding=p, dilation=d, groups=g)


def _ref_conv(x, w, b, geo):
    pads = mn.ops.conv2d_padding(geo["padding"], w.shape[2:], geo["stride"], geo["dilation"])
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    return ref.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                      pair(geo["stride"]), pads, pair(geo["dilation"]), geo["groups"])


def _directional_check(loss, grad, x, rng, what, h=1e-6, dirs=2):
    """<grad, v> against (L(x + h v) - L(x - h v)) / 2h for random v (float64):
    truncation ~h^2 and rounding ~eps |L| / h, so 1e-6 relative is ample."""
    for _ in range(dirs):
        v = rng.standard_normal(x.shape)
        num = (loss(x + h * v) - loss(x - h * v)) / (2 * h)
        ana = float(np.sum(grad * v))
        assert abs(num - ana) <= 1e-6 * (1 + abs(ana)), f"{what}: {ana} vs finite diff {num}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_forward_matches_reference(case, dtype, rng):
    x, w, b, geo = _case(case, rng, dtype)
    y, z = mn.ops.conv2d_forward(x, w, b, activation="relu", **geo)
    want = _ref_conv(x, w, b, geo)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert y.dtype == dtype and y.shape == want.shape, case[0]
    np.testing.assert_allclose(z, want, rtol=tol, atol=tol * np.sqrt(w[0].size), err_msg=case[0])
    np.testing.assert_allclose(y, np.maximum(want, 0), rtol=tol, atol=tol * np.sqrt(w[0].size))
    np.testing.assert_array_equal(mn.ops.conv2d(x, w, b, activation="relu", **geo), y)


@pytest.mark.parametrize("act", [None, "tanh"])
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_backward_finite_differences(case, act, rng):
    x, w, b, geo = _case(case, rng)
    y, z = mn.ops.conv2d_forward(x, w, b, activation=act, **geo)
    g = rng.standard_normal(y.shape)
    dx, dw, db = mn.ops.conv2d_backward(g, x, w, z, activation=act, **geo)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape

    def loss(xx, ww, bb):
        return float(np.sum(g * mn.ops.conv2d(xx, ww, bb, activation=act, **geo)))

    _directional_check(lambda v: loss(v, w, b), dx, x, rng, f"{case[0]} dx")
    _directional_check(lambda v: loss(x, v, b), dw, w, rng, f"{case[0]} dw")
    _directional_check(lambda v: loss(x, w, v), db, b, rng, f"{case[0]} db")
    dx2, dw2, db2 = mn.ops.conv2d_backward(g, x, w, z, activation=act, need_dx=False,
                                           need_db=False, **geo)
    assert dx2 is None and db2 is None
    np.testing.assert_allclose(dw2, dw, rtol=1e-13, atol=1e-13)


@pytest.mark.torch
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_against_torch(case, rng):
    torch = pytest.importorskip("torch")
    x, w, b, geo = _case(case, rng)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    with warnings.catch_warnings():  # torch warns that even-kernel "same" pads a copy
        warnings.simplefilter("ignore", UserWarning)
        yt = torch.nn.functional.conv2d(xt, wt, bt, geo["stride"], geo["padding"],
                                        geo["dilation"], geo["groups"])
    yt = torch.nn.functional.silu(yt)
    g = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(g))
    y, z = mn.ops.conv2d_forward(x, w, b, activation="silu", **geo)
    dx, dw, db = mn.ops.conv2d_backward(g, x, w, z, activation="silu", **geo)
    for mine, theirs in ((y, yt.detach()), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-10, atol=1e-10, err_msg=case[0])


def _abs_conv(x, w, geo):
    """conv2d(|x|, |w|): the scale of every sum a convolution adds up."""
    return _ref_conv(np.abs(x), np.abs(w), np.zeros(w.shape[0]), geo)


@pytest.mark.parametrize("nt", [1, 2])
def test_conv2d_paths_on_every_isa(isa_path, threads, nt, rng):
    """Forward against the float64 reference; dX and dW through their
    adjoint identities <dx, u> = <g, conv(u, w)> and <dw, v> = <g, conv(x, v)>
    for random u, v (exact for linear maps); db against the sums of g. Each
    bound is the worst case of a sum of L terms in the dtype:
    L * eps * (the same sum of absolute values)."""
    mn.set_num_threads(nt)
    for case in PATH_CASES:
        for dtype in (np.float32, np.float64):
            eps = np.finfo(dtype).eps
            x, w, b, geo = _case(case, rng, dtype)
            y, z = mn.ops.conv2d_forward(x, w, b, **geo)
            kg = w[0].size
            want = _ref_conv(x, w, b, geo)
            bound = (kg + 1) * eps * (_abs_conv(x, w, geo) + np.abs(b)[None, :, None, None])
            assert np.all(np.abs(y - want) <= bound), f"{case[0]} {dtype.__name__} y"
            g = rng.standard_normal(y.shape).astype(dtype)
            dx, dw, db = mn.ops.conv2d_backward(g, x, w, z, **geo)
            zero_b = np.zeros(w.shape[0])
            u = rng.standard_normal(x.shape)
            v = rng.standard_normal(w.shape)
            got = float(np.sum(dx.astype(np.float64) * u))
            ref_dx = float(np.sum(g * _ref_conv(u, w, zero_b, geo)))
            tol = w.shape[0] // geo["groups"] * w[0, 0].size * eps * float(
                np.sum(np.abs(g) * _abs_conv(u, w, geo)))
            assert abs(got - ref_dx) <= tol, f"{case[0]} {dtype.__name__} dx"
            got = float(np.sum(dw.astype(np.float64) * v))
            ref_dw = float(np.sum(g * _ref_conv(x, v, zero_b, geo)))
            tol = g[:, 0].size * eps * float(np.sum(np.abs(g) * _abs_conv(x, v, geo)))
            assert abs(got - ref_dw) <= tol, f"{case[0]} {dtype.__name__} dw"
            tol = g[:, 0].size * eps * np.abs(g).sum(axis=(0, 2, 3))
            assert np.all(np.abs(db - g.sum(axis=(0, 2, 3), dtype=np.float64)) <= tol), case[0]


def _winograd_path(x, w, geo, dtype, dx=False):
    """Whether matnet runs this convolution (or, with dx, its flipped dX
    convolution) by Winograd, as conv2d_winograd.cpp's winograd_applies."""
    g, (f, cg, kh, kw) = geo["groups"], w.shape
    p = geo["padding"]
    oh, ow = (x.shape[2], x.shape[3]) if dx else (x.shape[2] + 2 * p - 2, x.shape[3] + 2 * p - 2)
    cin, cout = (f // g, cg) if dx else (cg, f // g)
    tiles = x.shape[0] * ((oh + 1) // 2) * ((ow + 1) // 2)
    return (kh, kw) == (3, 3) and geo["stride"] == 1 and geo["dilation"] == 1 and \
        min(cin, cout) >= WINOGRAD_MIN_CHANNELS and ow >= WINOGRAD_MIN_WIDTH[dtype] and \
        tiles >= WINOGRAD_MIN_TILES


@pytest.mark.parametrize("nt", [1, 2])
def test_conv2d_winograd_on_every_isa(isa_path, threads, nt, rng):
    """Forward (bias and activation fused) against the float64 reference, dX
    through its adjoint identity <dx, u> = <g, conv(u, w)>, on the shapes
    around the Winograd thresholds.

    The bound, derived: in F(2x2, 3x3) each output is A^T M A + b with
    M = sum_c U_c . V_c, U = G g G^T (weights, 2 stages of <= 2 additions,
    the 1/2 exact), V = B^T d B (2 stages of 1 addition), then 2 stages of
    <= 3 additions (the bias in the last). Every rounding of that chain is
    relative to the sum of the absolute values of the terms it adds, so the
    error is at most gamma_L times ref.winograd_abs (those sums carried
    through |A^T|, |G|, |B^T|) plus |b|, with L = Cg + 4 + 2 + 5 = Cg + 11
    roundings in a row (Cg for the products' sums); as in
    test_conv2d_paths_on_every_isa, L * eps stands for gamma_L (a factor 2
    of margin). Against the direct path's (9 Cg + 1) eps * conv(|x|, |w|):
    winograd_abs holds 256 products |g||d| per output where the direct sum
    has 9 - 64 / 9 = 7.1 times its size for inputs of one magnitude (the
    cross terms that cancel in exact arithmetic) - so the factor on the
    bound is 7.1 (Cg + 11) / (9 Cg + 1): 1.2 at Cg = 16, 0.9 at Cg = 64;
    Winograd F(2x2) is about as accurate as the direct sum, and F(4x4)'s
    larger coefficients would not be."""
    mn.set_num_threads(nt)
    for case in WINOGRAD_CASES:
        for dtype in (np.float32, np.float64):
            eps = np.finfo(dtype).eps
            x, w, b, geo = _case(case, rng, dtype)
            p, g = geo["padding"], geo["groups"]
            pads = (p,) * 4
            y, z = mn.ops.conv2d_forward(x, w, b, activation="tanh", **geo)
            want = _ref_conv(x, w, b, geo)
            name = f"{case[0]} {dtype.__name__}"
            if _winograd_path(x, w, geo, dtype):
                bound = (w.shape[1] + 11) * eps * (
                    ref.winograd_abs(x, w, pads, g) + np.abs(b)[None, :, None, None])
            else:
                bound = (w[0].size + 1) * eps * (
                    _abs_conv(x, w, geo) + np.abs(b)[None, :, None, None])
            assert np.all(np.abs(z - want) <= bound), f"{name} z"
            # tanh is 1-Lipschitz; its own error a few eps (mixed bound)
            assert np.all(np.abs(y - np.tanh(want)) <= bound + 4 * eps), f"{name} y"
            gy = rng.standard_normal(y.shape).astype(dtype)
            dx, _, _ = mn.ops.conv2d_backward(gy, x, w, None, need_db=False, **geo)
            u = rng.standard_normal(x.shape)
            got = float(np.sum(dx.astype(np.float64) * u))
            ref_dx = float(np.sum(gy * _ref_conv(u, w, np.zeros(w.shape[0]), geo)))
            fg = w.shape[0] // g
            if _winograd_path(x, w, geo, dtype, dx=True):
                # dx = conv(gy, w') with w' flipped, in/out swapped per group, padding 2 - p
                wt = np.concatenate([w[k * fg:(k + 1) * fg].transpose(1, 0, 2, 3)
                                     for k in range(g)])[:, :, ::-1, ::-1]
                per_dx = (fg + 11) * eps * ref.winograd_abs(gy, wt, (2 - p,) * 4, g)
                tol = float(np.sum(np.abs(u) * per_dx))
            else:  # as test_conv2d_paths_on_every_isa
                tol = fg * w[0, 0].size * eps * float(np.sum(np.abs(gy) * _abs_conv(u, w, geo)))
            assert abs(got - ref_dx) <= tol, f"{name} dx"


def test_conv2d_threads_agree(rng, threads):
    x = rng.standard_normal((5, 6, 12, 11)).astype(np.float32)
    w = rng.standard_normal((8, 6, 3, 3)).astype(np.float32)
    out = {}
    for nt in (1, 2, 3):
        mn.set_num_threads(nt)
        y, z = mn.ops.conv2d_forward(x, w, None, padding=1, activation="relu")
        out[nt] = (y,) + mn.ops.conv2d_backward(y, x, w, z, padding=1, activation="relu")
    for nt in (2, 3):
        for a, b in zip(out[1], out[nt]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_conv2d_non_contiguous_and_empty_batch(rng):
    x = rng.standard_normal((2, 3, 6, 10))[:, :, :, ::2]
    w = rng.standard_normal((4, 3, 3, 3))
    np.testing.assert_allclose(mn.ops.conv2d(x, w, padding=1), ref.conv2d(x, w, pads=(1,) * 4),
                               rtol=1e-12, atol=1e-12)
    y = mn.ops.conv2d(np.zeros((0, 3, 5, 5)), w)
    assert y.shape == (0, 4, 3, 3)
    _, dw, db = mn.ops.conv2d_backward(np.zeros((0, 4, 3, 3)), np.zeros((0, 3, 5, 5)), w, None)
    assert not dw.any() and not db.any()


@pytest.mark.parametrize("bad, exc, match", [
    (dict(x=np.ones((1, 3, 5, 5), np.int64)), TypeError, "float32 or float64"),
    (dict(w=np.ones((4, 3, 3, 3), np.float32)), TypeError, "float"),
    (dict(x=np.ones((1, 2, 5, 5))), ValueError, r"\(1, 2, 5, 5\).*\(4, 3, 3, 3\)"),
    (dict(x=np.ones((3, 5, 5))), ValueError, "x"),
    (dict(x=np.ones((1, 3, 2, 2))), ValueError, "larger than the padded input"),
    (dict(groups=2), ValueError, "groups"),
    (dict(stride=0), ValueError, "stride"),
    (dict(padding=-1), ValueError, "padding"),
    (dict(padding="full"), ValueError, "padding"),
    (dict(padding="same", stride=2), ValueError, "stride 1"),
    (dict(b=np.ones(3)), ValueError, r"b must have shape \(4,\)"),
    (dict(activation="swish"), ValueError, "activation"),
])
def test_conv2d_bad_input(bad, exc, match):
    args = dict(x=np.ones((1, 3, 5, 5)), w=np.ones((4, 3, 3, 3)), b=None)
    args.update(bad)
    with pytest.raises(exc, match=match):
        mn.ops.conv2d(**args)


def test_conv2d_backward_bad_input():
    x, w = np.ones((2, 3, 5, 5)), np.ones((4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"grad_y must have shape \(2, 4, 3, 3\)"):
        mn.ops.conv2d_backward(np.ones((2, 4, 5, 5)), x, w, None)
    with pytest.raises(ValueError, match="z .*required"):
        mn.ops.conv2d_backward(np.ones((2, 4, 3, 3)), x, w, None, activation="relu")


# ---------------------------------------------------------------- pooling

# (id, shape, kernel, stride, padding)
POOL_CASES = [
    ("2x2", (2, 3, 8, 8), 2, None, 0),
    ("odd-3s2p1", (2, 2, 7, 9), 3, 2, 1),
    ("overlap-3s1", (1, 3, 6, 5), 3, 1, 1),
    ("stride>kernel", (2, 2, 9, 10), 2, 3, 1),
    ("rect", (1, 2, 7, 8), (3, 2), (2, 1), (1, 0)),
    ("whole", (2, 3, 4, 5), (4, 5), 1, 0),
]
POOL_IDS = [c[0] for c in POOL_CASES]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_pool_forward_matches_reference(case, dtype, rng):
    _, shape, k, s, p = case
    x = rng.standard_normal(shape).astype(dtype)
    geo = (_pair(k), _pair(k if s is None else s), _pair(p))
    y, arg = mn.ops.max_pool2d_forward(x, k, s, p)
    np.testing.assert_array_equal(y, ref.max_pool2d(x, *geo).astype(dtype))
    assert arg.dtype == np.int64
    flat = x.reshape(shape[0], shape[1], -1)
    np.testing.assert_array_equal(np.take_along_axis(flat, arg.reshape(*arg.shape[:2], -1), 2),
                                  y.reshape(*y.shape[:2], -1))
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(mn.ops.avg_pool2d(x, k, s, p), ref.avg_pool2d(x, *geo),
                               rtol=tol, atol=tol)
    assert mn.ops.pool2d_output_shape(shape[1:], k, s, p) == y.shape[1:]


@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_pool_backward_finite_differences(case, rng):
    _, shape, k, s, p = case
    x = rng.standard_normal(shape)
    y, arg = mn.ops.max_pool2d_forward(x, k, s, p)
    g = rng.standard_normal(y.shape)
    dx = mn.ops.max_pool2d_backward(g, arg, x.shape, k, s, p)
    _directional_check(lambda v: float(np.sum(g * mn.ops.max_pool2d(v, k, s, p))), dx, x, rng,
                       f"{case[0]} max")
    da = mn.ops.avg_pool2d_backward(g, x.shape, k, s, p)
    _directional_check(lambda v: float(np.sum(g * mn.ops.avg_pool2d(v, k, s, p))), da, x, rng,
                       f"{case[0]} avg")


@pytest.mark.torch
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_pool_against_torch(case, rng):
    torch = pytest.importorskip("torch")
    _, shape, k, s, p = case
    x = rng.standard_normal(shape)
    for include_pad in (True, False):
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.nn.functional.avg_pool2d(xt, k, s, p, count_include_pad=include_pad)
        g = rng.standard_normal(tuple(yt.shape))
        yt.backward(torch.tensor(g))
        y = mn.ops.avg_pool2d(x, k, s, p, count_include_pad=include_pad)
        dx = mn.ops.avg_pool2d_backward(g, x.shape, k, s, p, count_include_pad=include_pad)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.max_pool2d(xt, k, s, p)
    g = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(g))
    y, arg = mn.ops.max_pool2d_forward(x, k, s, p)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(mn.ops.max_pool2d_backward(g, arg, x.shape, k, s, p),
                               xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_max_pool_propagates_nan_and_global_avg(rng):
    x = rng.standard_normal((1, 2, 4, 4))
    x[0, 1, 1, 2] = np.nan
    y = mn.ops.max_pool2d(x, 2)
    assert np.isnan(y[0, 1, 0, 1]) and np.isfinite(np.delete(y.ravel(), 5)).all()
    x = rng.standard_normal((3, 4, 5, 6))
    np.testing.assert_allclose(mn.ops.global_avg_pool2d(x), x.mean(axis=(2, 3)), rtol=1e-13)
    g = rng.standard_normal((3, 4))
    np.testing.assert_allclose(mn.ops.global_avg_pool2d_backward(g, x.shape),
                               np.broadcast_to(g[:, :, None, None] / 30, x.shape), rtol=1e-13)


def test_pool_bad_input():
    x = np.ones((1, 2, 6, 6))
    with pytest.raises(TypeError):
        mn.ops.max_pool2d(x.astype(np.int32), 2)
    with pytest.raises(ValueError, match="half the window"):
        mn.ops.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        mn.ops.avg_pool2d(x, 7)
    with pytest.raises(ValueError, match="N, C, H, W"):
        mn.ops.max_pool2d(np.ones((2, 6, 6)), 2)
    y, arg = mn.ops.max_pool2d_forward(x, 2)
    with pytest.raises(TypeError, match="int64"):
        mn.ops.max_pool2d_backward(y, arg.astype(np.int32), x.shape, 2)
    with pytest.raises(ValueError, match="outside"):
        mn.ops.max_pool2d_backward(y, arg + 100, x.shape, 2)


# ---------------------------------------------------------------- batch norm


@pytest.mark.parametrize("shape", [(6, 4), (4, 3, 5, 6), (1, 2, 3, 3)], ids=["features", "2d", "batch1-2d"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_forward_and_running_stats(shape, dtype, rng):
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    c = shape[1]
    gamma, beta = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv = np.zeros(c, dtype), np.ones(c, dtype)
    y, mean, invstd = mn.ops.batch_norm(x, gamma, beta, rm, rv, True, momentum=0.2, eps=1e-3)
    want, m, v = ref.batch_norm_train(x.astype(np.float64), gamma, beta, 1e-3)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)
    count = x.size // c
    np.testing.assert_allclose(rm, 0.2 * m, rtol=tol, atol=tol)
    np.testing.assert_allclose(rv, 0.8 + 0.2 * v * count / (count - 1), rtol=tol, atol=tol)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(v + 1e-3), rtol=tol)
    ye, _, _ = mn.ops.batch_norm(x, gamma, beta, rm, rv, False, eps=1e-3)
    shp = (1, -1) + (1,) * (x.ndim - 2)
    np.testing.assert_allclose(
        ye, (x - rm.reshape(shp)) / np.sqrt(rv.reshape(shp) + 1e-3) * gamma.reshape(shp)
        + beta.reshape(shp), rtol=tol, atol=tol)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 4, 3)], ids=["features", "2d"])
def test_batch_norm_backward_finite_differences(shape, training, rng):
    x = rng.standard_normal(shape)
    c = shape[1]
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2, c)

    def fwd(xx, gg, bb):
        return mn.ops.batch_norm(xx, gg, bb, rm.copy(), rv.copy(), training)

    y, mean, invstd = fwd(x, gamma, beta)
    g = rng.standard_normal(shape)
    dx, dgamma, dbeta = mn.ops.batch_norm_backward(g, x, gamma, mean, invstd, training)
    loss = lambda xx, gg, bb: float(np.sum(g * fwd(xx, gg, bb)[0]))  # noqa: E731
    _directional_check(lambda v: loss(v, gamma, beta), dx, x, rng, "dx")
    _directional_check(lambda v: loss(x, v, beta), dgamma, gamma, rng, "dgamma")
    _directional_check(lambda v: loss(x, gamma, v), dbeta, beta, rng, "dbeta")


@pytest.mark.torch
@pytest.mark.parametrize("shape", [(6, 4), (4, 3, 5, 6)], ids=["1d", "2d"])
def test_batch_norm_against_torch(shape, rng):
    torch = pytest.importorskip("torch")
    c = shape[1]
    bn = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(c, momentum=0.3)
    bn = bn.double()
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor(beta))
    rm, rv = np.zeros(c), np.ones(c)
    for step in range(3):
        x = rng.standard_normal(shape) * (step + 1)
        xt = torch.tensor(x, requires_grad=True)
        yt = bn(xt)
        g = rng.standard_normal(shape)
        yt.backward(torch.tensor(g))
        y, mean, invstd = mn.ops.batch_norm(x, gamma, beta, rm, rv, True, momentum=0.3)
        dx, dgamma, dbeta = mn.ops.batch_norm_backward(g, x, gamma, mean, invstd)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(dgamma, bn.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dbeta, bn.bias.grad.numpy(), rtol=1e-10, atol=1e-12)
        bn.weight.grad = bn.bias.grad = None
    np.testing.assert_allclose(rm, bn.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv, bn.running_var.numpy(), rtol=1e-12)
    bn.eval()
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(mn.ops.batch_norm(x, gamma, beta, rm, rv, False)[0],
                               bn(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_batch_norm_bad_input():
    x = np.ones((1, 3))
    rm, rv = np.zeros(3), np.ones(3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        mn.ops.batch_norm(x, None, None, rm, rv, True)
    y, _, _ = mn.ops.batch_norm(x, None, None, rm, rv, False)  # evaluation: fine
    np.testing.assert_allclose(y, 1 / np.sqrt(1 + 1e-5))
    with pytest.raises(TypeError):
        mn.ops.batch_norm(np.ones((4, 3), np.float32), None, None, rm, rv, True)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        mn.ops.batch_norm(np.ones((4, 3)), np.ones(4), None, rm, rv, True)
    with pytest.raises(ValueError, match="running_var"):
        mn.ops.batch_norm(np.ones((4, 3)), None, None, rm, None, True)
    with pytest.raises(ValueError, match="momentum"):
        mn.ops.batch_norm(np.ones((4, 3)), None, None, rm, rv, True, momentum=2.0)
