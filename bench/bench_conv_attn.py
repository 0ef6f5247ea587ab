"""Convolution and attention kernels and a CNN epoch: matnet vs PyTorch CPU and NumPy.

Sections (``--only conv|attention|epoch``, repeatable; default all):

* conv: float32 Conv2D, NCHW, at the issue's four shapes
  (64,16,32,32)->32 3x3 pad 1; (32,64,56,56)->64 3x3 pad 1;
  (64,3,32,32)->16 3x3 pad 1; (32,128,28,28)->256 1x1.
  ``fwd``: y = conv2d(x, w) + b. ``fwd+bwd``: that, then dx, dw, db from a
  given dy (matnet: ``conv2d_forward`` + ``conv2d_backward``; torch:
  ``F.conv2d`` with requires_grad + ``backward(dy)``; NumPy: im2col through
  ``sliding_window_view`` copied into a (N*OH*OW, C*KH*KW) matrix, one
  ``matmul``, and for backward ``dcol = dy @ W`` scattered back by col2im,
  ``dW = dy^T @ col``). Before timing, matnet's y, dx, dw, db are checked
  against NumPy's (float64 references).
* attention: (1, 8, L, 64) flash attention, forward and forward+backward,
  L in 128..4096, with peak RSS at L = 4096: run by bench/bench_attention.py
  (each library in its own process, which peak memory needs), called here.
* epoch: one training epoch (batch 32, Adam, cross-entropy) of the CNN of
  ``python -m matnet train --model cnn`` on the scikit-learn digits
  (Reshape, Conv2D(1->32, 3x3, relu), Conv2D(32->64, 3x3, relu),
  MaxPool2D(2), Flatten, Dropout(0.25), Dense(1024->10)) against the same
  network in torch (same initial weights). NumPy has no epoch here.

Each case is timed in ``--rounds`` interleaved rounds (order rotating, 0.3 s
settle before each library's block so the previous library's spinning
OpenMP/OpenBLAS workers go idle) at each ``--threads`` count; reported: the
median time and the median per-round ratio ``x lib`` = lib time / matnet
time (> 1: matnet faster).

    python bench/bench_conv_attn.py --quick                    # smoke run
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 bench/bench_conv_attn.py --threads 1 2 --rounds 5 --json conv.json --plot conv.png
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

harness.clean_openblas_env()  # before NumPy loads OpenBLAS

import numpy as np  # noqa: E402

import matnet as mn  # noqa: E402

SECTIONS = ("conv", "attention", "epoch")
# (N, C, H, W, F, k, pad)
CONV_SHAPES = [
    (64, 16, 32, 32, 32, 3, 1),
    (32, 64, 56, 56, 64, 3, 1),
    (64, 3, 32, 32, 16, 3, 1),
    (32, 128, 28, 28, 256, 1, 0),
]
SETTLE_S = 0.3
DT = np.float32
LIBS = ("matnet", "numpy", "torch")


# ---------------------------------------------------------------- NumPy im2col reference


def np_im2col(x, k, pad):
    """(N*OH*OW, C*k*k) matrix of every k x k window (stride 1), materialised."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
    oh, ow = win.shape[2], win.shape[3]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * k * k), oh, ow


def np_conv_forward(x, w, b, pad):
    n, f, k = x.shape[0], w.shape[0], w.shape[2]
    col, oh, ow = np_im2col(x, k, pad)
    y = col @ w.reshape(f, -1).T + b
    return np.ascontiguousarray(y.reshape(n, oh, ow, f).transpose(0, 3, 1, 2)), col


def np_conv_forward_backward(x, w, b, pad, dy):
    n, c, h, wd = x.shape
    f, k = w.shape[0], w.shape[2]
    y, col = np_conv_forward(x, w, b, pad)
    oh, ow = y.shape[2], y.shape[3]
    g = dy.transpose(0, 2, 3, 1).reshape(-1, f)
    dw = (g.T @ col).reshape(w.shape)
    db = g.sum(axis=0)
    dcol = (g @ w.reshape(f, -1)).reshape(n, oh, ow, c, k, k)
    dxp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad), x.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, :, i:i + oh, j:j + ow] += dcol[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return y, dxp[:, :, pad:pad + h, pad:pad + wd], dw, db


def check(label, got, want, scale):
    if got.shape != want.shape:
        raise SystemExit(f"{label}: matnet returned shape {got.shape}, NumPy {want.shape}")
    err = float(np.abs(got.astype(np.float64) - want).max())
    if not err <= 1e-4 * scale:
        raise SystemExit(f"{label}: matnet and NumPy differ by {err:g} (> {1e-4 * scale:g})")


# ---------------------------------------------------------------- sections


def run_case(args, row, fns, flop=None):
    times, ratios, per = harness.interleaved(
        fns, args.rounds, stat=args.stat, ref="matnet", settle_s=SETTLE_S,
        repeat=args.repeat, warmup=1, min_time=args.min_time)
    for lib in LIBS:
        t = times.get(lib)
        row[f"{lib}_ms"] = None if t is None else 1e3 * t
        if flop is not None:
            row[f"{lib}_gflops"] = None if t is None else harness.gflops(flop, t)
        row[f"{lib}_rounds_ms"] = [1e3 * s for s in per[lib]] if lib in per else None
    row["ratio_np"] = ratios.get("numpy")
    row["ratio_torch"] = ratios.get("torch")
    msg = f"  t={row['threads']} {row['section']:<6} {row['case']:<34} matnet {row['matnet_ms']:8.2f} ms"
    for lib, key in (("numpy", "ratio_np"), ("torch", "ratio_torch")):
        if row[key] is not None:
            msg += f"  {lib} {row[f'{lib}_ms']:8.2f} ms x{row[key]:.2f}"
    print(msg, file=sys.stderr, flush=True)
    return row


def bench_conv(args, torch, nt, rng):
    rows = []
    shapes = CONV_SHAPES[:1] + CONV_SHAPES[2:3] if args.quick else CONV_SHAPES
    for n, c, h, w, f, k, pad in shapes:
        x = rng.standard_normal((n, c, h, w), dtype=DT)
        wt = (rng.standard_normal((f, c, k, k), dtype=DT) / np.sqrt(c * k * k)).astype(DT)
        b = rng.standard_normal(f, dtype=DT)
        dy = rng.standard_normal((n, f, h + 2 * pad - k + 1, w + 2 * pad - k + 1), dtype=DT)
        label = f"({n},{c},{h},{w})->{f} {k}x{k} p{pad}"
        # correctness first, against float64 NumPy
        y64, dx64, dw64, db64 = np_conv_forward_backward(
            x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64), pad,
            dy.astype(np.float64))
        y, z = mn.ops.conv2d_forward(x, wt, b, padding=pad)
        dx, dw, db = mn.ops.conv2d_backward(dy, x, wt, z, padding=pad)
        for name, got, want in (("y", y, y64), ("dx", dx, dx64), ("dw", dw, dw64),
                                ("db", db, db64)):
            check(f"{label} {name}", got, want, float(np.abs(want).max()) + 1)
        flop = 2.0 * n * f * y.shape[2] * y.shape[3] * c * k * k

        def mn_fwd(x=x, wt=wt, b=b, pad=pad):
            return mn.ops.conv2d(x, wt, b, padding=pad)

        def mn_fwd_bwd(x=x, wt=wt, b=b, pad=pad, dy=dy):
            y, z = mn.ops.conv2d_forward(x, wt, b, padding=pad)
            return mn.ops.conv2d_backward(dy, x, wt, z, padding=pad)

        fwd = {"matnet": mn_fwd, "numpy": lambda x=x, wt=wt, b=b, pad=pad:
               np_conv_forward(x, wt, b, pad)[0]}
        both = {"matnet": mn_fwd_bwd, "numpy": lambda x=x, wt=wt, b=b, pad=pad, dy=dy:
                np_conv_forward_backward(x, wt, b, pad, dy)}
        if torch is not None:
            F = torch.nn.functional
            xt = torch.from_numpy(x).requires_grad_(True)
            wtt = torch.from_numpy(wt).requires_grad_(True)
            bt = torch.from_numpy(b).requires_grad_(True)
            dyt = torch.from_numpy(dy)

            def t_fwd(xt=xt, wtt=wtt, bt=bt, pad=pad):
                with torch.no_grad():
                    return F.conv2d(xt, wtt, bt, padding=pad)

            def t_fwd_bwd(xt=xt, wtt=wtt, bt=bt, pad=pad, dyt=dyt):
                xt.grad = wtt.grad = bt.grad = None
                F.conv2d(xt, wtt, bt, padding=pad).backward(dyt)

            fwd["torch"], both["torch"] = t_fwd, t_fwd_bwd
        for mode, fns, fl in (("fwd", fwd, flop), ("fwd+bwd", both, 3 * flop)):
            row = dict(section="conv", case=f"{label} {mode}", mode=mode, shape=label,
                       threads=nt)
            rows.append(run_case(args, row, fns, flop=fl))
    return rows


def bench_attention(args, torch, nt, rng):
    """bench/bench_attention.py for this thread count (its own table, JSON and plot)."""
    import subprocess

    cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        "bench_attention.py"), "--threads", str(nt)]
    cmd += ["--quick"] if args.quick else ["--rounds", str(args.rounds)]
    if args.no_torch:
        cmd.append("--no-torch")
    subprocess.run(cmd, check=True)
    return []


def _digits():
    (x, y), _ = mn.datasets.load_digits(seed=0)
    return x.astype(DT), y


def bench_epoch(args, torch, nt, rng):
    from matnet.cli import _build_cnn

    x, y = _digits()
    batch = 32
    model = _build_cnn(x.shape[1], 10, seed=0)
    model.compile(optimizer=mn.optim.Adam(1e-3), loss="cross_entropy")
    fns = {"matnet": lambda: model.fit(x, y, epochs=1, batch_size=batch, verbose=0, seed=0)}
    if torch is not None:
        nn = torch.nn
        net = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
                            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Dropout(0.25), nn.Linear(1024, 10))
        with torch.no_grad():  # the same initial weights
            convs = [m for m in model.layers if isinstance(m, mn.layers.Conv2D)]
            for mod, layer in zip((net[1], net[3]), convs):
                mod.weight.copy_(torch.from_numpy(layer.W))
                mod.bias.copy_(torch.from_numpy(layer.b))
            net[8].weight.copy_(torch.from_numpy(np.ascontiguousarray(model.layers[-1].W.T)))
            net[8].bias.copy_(torch.from_numpy(model.layers[-1].b))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        gen = torch.Generator().manual_seed(0)

        def t_epoch():
            net.train()
            order = torch.randperm(len(xt), generator=gen)
            for i in range(0, len(xt), batch):
                idx = order[i:i + batch]
                opt.zero_grad()
                loss_fn(net(xt[idx]), yt[idx]).backward()
                opt.step()

        fns["torch"] = t_epoch
    row = dict(section="epoch", case=f"CNN digits epoch ({len(x)} samples, batch {batch})",
               threads=nt)
    return [run_case(args, row, fns)]


BENCHES = {"conv": bench_conv, "attention": bench_attention, "epoch": bench_epoch}


def print_tables(results, torch, args):
    C = harness.Column
    how = f"{args.stat} of {args.rounds} round(s); x lib = lib time / matnet time, > 1: matnet faster"
    for section in SECTIONS:
        rows = results.get(section)
        if not rows:
            continue
        cols = [C("case"), C("threads", "thr"), C("matnet_ms", "mn ms", ".2f")]
        if section == "conv":
            cols += [C("numpy_ms", "np ms", ".2f"), C("ratio_np", "x numpy", ".2f"),
                     C("matnet_gflops", "mn GF/s", ".1f")]
        if torch is not None:
            cols += [C("torch_ms", "torch ms", ".2f"), C("ratio_torch", "x torch", ".2f")]
        harness.print_table(rows, cols, title=f"\n== {section}, float32 ({how}) ==")


def plot(args, results, torch):
    conv = results.get("conv", [])
    if not conv:
        return
    panels = []
    for mode in ("fwd", "fwd+bwd"):
        rows = [r for r in conv if r["mode"] == mode]
        series = {}
        for nt in args.threads:
            rs = [r for r in rows if r["threads"] == nt]
            for lib in LIBS:
                ys = [r.get(f"{lib}_gflops") for r in rs]
                if rs and all(v is not None for v in ys):
                    series[f"{lib} {nt}t"] = ([r["shape"] for r in rs], ys)
        panels.append({"title": f"Conv2D {mode}, float32", "xlabel": "", "ylabel": "GFLOP/s",
                       "series": series})
    harness.plot_panels(args.plot, panels, suptitle="Conv2D: matnet vs NumPy"
                        + (" vs PyTorch" if torch is not None else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args, sections = harness.parse_sectioned_args(parser, SECTIONS, argv, repeat=(2, 3))
    args.min_time = 0.05
    env = harness.sanity_report()
    torch = harness.load_torch(args)
    results = {s: [] for s in sections}
    for nt in args.threads:
        with harness.threads(nt, torch):
            for section in sections:
                results[section] += BENCHES[section](args, torch, nt, np.random.default_rng(0))
    print_tables(results, torch, args)
    harness.write_json(args.json, {"benchmark": "conv_attn", "dtype": "float32",
                                   "stat": args.stat, "rounds": args.rounds,
                                   "repeat": args.repeat, "settle_s": SETTLE_S, **results},
                       env=env)
    plot(args, results, torch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
