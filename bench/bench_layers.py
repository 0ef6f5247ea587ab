"""Fused NN kernels vs NumPy (and PyTorch CPU when installed), same process.

* Dense layers, forward (``z = x@W + b``, ``y = act(z)``) and backward
  (``dZ = dY*act'(z)``, ``dW = x.T@dZ``, ``db = dZ.sum(0)``, ``dx = dZ@W.T``)
  for 784->256 relu, 256->128 relu, 128->10 none at batch 32, 128, 512.
  NumPy is the obvious expressions; PyTorch is F.linear + activation and the
  autograd backward (torch.autograd.grad on a retained graph: backward only).
* Each activation forward and backward on 1e6 float32 elements (softmax:
  1000 rows of 1000), in GB/s (forward moves 2 arrays, backward 3).

Each case times its contenders round-robin (--rounds, median kept) so that
load on a shared machine hits all of them alike. Prints times and ratios
(>1: matnet faster); --json PATH, --plot PATH.

    python bench/bench_layers.py [--threads 1 2] [--quick] [--json out.json] [--plot out.png]
"""

from __future__ import annotations

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

harness.clean_openblas_env()

import numpy as np  # noqa: E402

import matnet as mn  # noqa: E402

LAYERS = [(784, 256, "relu"), (256, 128, "relu"), (128, 10, None)]
BATCHES = [32, 128, 512]
K0 = math.sqrt(2.0 / math.pi)


def time_interleaved(fns, args):
    """Seconds per call of each fn in ``fns`` (dict label -> fn). The functions
    are timed in turn, ``args.rounds`` times round-robin, and the median (or,
    with ``--stat min``, the best) over rounds is kept: on a shared, noisy
    machine a burst of load then hits every contender alike instead of
    whichever was being timed. With threads on an oversubscribed machine some
    rounds stall for a scheduler time slice; ``min`` shows what the code does
    when it gets its cores, ``median`` what a user saw on the day."""
    samples = {k: [] for k in fns}
    for _ in range(args.rounds):
        for k, fn in fns.items():
            harness.settle()
            samples[k].append(harness.time_median(fn, repeat=args.repeat))
    if args.stat == "min":
        return {k: min(v) for k, v in samples.items()}
    return {k: sorted(v)[len(v) // 2] for k, v in samples.items()}


def np_act(name, z):
    if name is None:
        return z
    if name == "relu":
        return np.maximum(z, 0)
    raise ValueError(name)


def bench_dense(args, torch, nt):
    rows = []
    rng = np.random.default_rng(0)
    layers = LAYERS[:1] if args.quick else LAYERS
    batches = [128] if args.quick else BATCHES
    for k, m, act in layers:
        for n in batches:
            x = rng.standard_normal((n, k), dtype=np.float32)
            w = (rng.standard_normal((k, m), dtype=np.float32) / np.sqrt(k)).astype(np.float32)
            b = rng.standard_normal(m, dtype=np.float32)
            g = rng.standard_normal((n, m), dtype=np.float32)
            y, z = mn.ops.dense_forward(x, w, b, act)
            zn = x @ w + b

            def np_fwd():
                return np_act(act, x @ w + b)

            def np_bwd():
                dz = g * (zn > 0) if act == "relu" else g
                return x.T @ dz, dz.sum(0), dz @ w.T

            t = dict(layer=f"{k}->{m} {act or 'none'}", batch=n, threads=nt)
            fns = {"mn_fwd": lambda: mn.ops.dense_forward(x, w, b, act), "np_fwd": np_fwd,
                   "mn_bwd": lambda: mn.ops.dense_backward(g, x, w, z, act), "np_bwd": np_bwd}
            if torch is not None:
                tx = torch.tensor(x, requires_grad=True)
                tw = torch.tensor(np.ascontiguousarray(w.T), requires_grad=True)  # (out, in)
                tb = torch.tensor(b, requires_grad=True)
                tg = torch.tensor(g)
                F = torch.nn.functional

                def t_fwd(tx=tx, tw=tw, tb=tb):
                    with torch.no_grad():
                        o = F.linear(tx, tw, tb)
                        return F.relu(o) if act == "relu" else o

                o = F.linear(tx, tw, tb)
                o = F.relu(o) if act == "relu" else o
                fns["torch_fwd"] = t_fwd
                fns["torch_bwd"] = (lambda o=o, tx=tx, tw=tw, tb=tb, tg=tg:
                                    torch.autograd.grad(o, (tx, tw, tb), tg, retain_graph=True))
            times = time_interleaved(fns, args)
            for key, sec in times.items():
                t[key + "_us"] = 1e6 * sec
            t["fwd_vs_np"] = t["np_fwd_us"] / t["mn_fwd_us"]
            t["bwd_vs_np"] = t["np_bwd_us"] / t["mn_bwd_us"]
            if torch is not None:
                t["fwd_vs_torch"] = t["torch_fwd_us"] / t["mn_fwd_us"]
                t["bwd_vs_torch"] = t["torch_bwd_us"] / t["mn_bwd_us"]
            rows.append(t)
    return rows


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(K0 * (x + 0.044715 * x**3)))


def np_gelu_tanh_grad(g, x):
    t = np.tanh(K0 * (x + 0.044715 * x**3))
    return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K0 * (1 + 3 * 0.044715 * x * x))


# name -> (matnet fwd, matnet bwd, numpy fwd, numpy bwd); bwd take (g, x, y)
ACTIVATIONS = {
    "relu": (mn.ops.relu, lambda g, x, y: mn.ops.relu_backward(g, x),
             lambda x: np.maximum(x, 0), lambda g, x, y: g * (x > 0)),
    "leaky_relu": (mn.ops.leaky_relu, lambda g, x, y: mn.ops.leaky_relu_backward(g, x),
                   lambda x: np.where(x > 0, x, np.float32(0.01) * x),
                   lambda g, x, y: g * np.where(x > 0, np.float32(1), np.float32(0.01))),
    "sigmoid": (mn.ops.sigmoid, lambda g, x, y: mn.ops.sigmoid_backward(g, x), np_sigmoid,
                lambda g, x, y: g * y * (1 - y)),
    "tanh": (mn.ops.tanh, lambda g, x, y: mn.ops.tanh_backward(g, x), np.tanh,
             lambda g, x, y: g * (1 - y * y)),
    # NumPy has no erf: its row uses the tanh form for both GELUs.
    "gelu": (mn.ops.gelu, lambda g, x, y: mn.ops.gelu_backward(g, x), np_gelu_tanh,
             lambda g, x, y: np_gelu_tanh_grad(g, x)),
    "gelu_tanh": (lambda x: mn.ops.gelu(x, approximate="tanh"),
                  lambda g, x, y: mn.ops.gelu_backward(g, x, approximate="tanh"), np_gelu_tanh,
                  lambda g, x, y: np_gelu_tanh_grad(g, x)),
    "silu": (mn.ops.silu, lambda g, x, y: mn.ops.silu_backward(g, x), lambda x: x * np_sigmoid(x),
             lambda g, x, y: (lambda s: g * s * (1 + x * (1 - s)))(np_sigmoid(x))),
    "softmax": (mn.ops.softmax, lambda g, x, y: mn.ops.softmax_backward(g, y),
                lambda x: (lambda e: e / e.sum(-1, keepdims=True))(
                    np.exp(x - x.max(-1, keepdims=True))),
                lambda g, x, y: y * (g - (g * y).sum(-1, keepdims=True))),
}


def bench_activations(args, nt):
    rows = []
    rng = np.random.default_rng(1)
    n = 10**6
    x1 = rng.standard_normal(n, dtype=np.float32) * 3
    g1 = rng.standard_normal(n, dtype=np.float32)
    names = ["relu", "sigmoid", "tanh", "gelu"] if args.quick else list(ACTIVATIONS)
    for name in names:
        mf, mb, nf, nb = ACTIVATIONS[name]
        x = x1.reshape(1000, 1000) if name == "softmax" else x1
        g = g1.reshape(x.shape)
        y = mf(x)
        r = dict(activation=name, threads=nt)
        times = time_interleaved({"mn_fwd": lambda: mf(x), "np_fwd": lambda: nf(x),
                                  "mn_bwd": lambda: mb(g, x, y), "np_bwd": lambda: nb(g, x, y)},
                                 args)
        for key, sec in times.items():
            r[key + "_us"] = 1e6 * sec
        r["mn_fwd_GBs"] = 2 * 4 * n / r["mn_fwd_us"] / 1e3
        r["np_fwd_GBs"] = 2 * 4 * n / r["np_fwd_us"] / 1e3
        r["mn_bwd_GBs"] = 3 * 4 * n / r["mn_bwd_us"] / 1e3
        r["np_bwd_GBs"] = 3 * 4 * n / r["np_bwd_us"] / 1e3
        r["fwd_vs_np"] = r["np_fwd_us"] / r["mn_fwd_us"]
        r["bwd_vs_np"] = r["np_bwd_us"] / r["mn_bwd_us"]
        rows.append(r)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_args(parser)
    parser.add_argument("--only", choices=["dense", "activations"], default=None,
                        help="run one part only")
    parser.add_argument("--rounds", type=int, default=None,
                        help="round-robin rounds per case; the median is reported (default 3, quick 1)")
    harness.add_stat_arg(parser)
    args = parser.parse_args()
    if args.repeat is None:
        args.repeat = 5 if args.quick else 7
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    env = harness.sanity_report()
    torch = harness.load_torch(args)
    dense_rows, act_rows = [], []
    for nt in args.threads:
        with harness.threads(nt, torch):
            if args.only != "activations":
                dense_rows += bench_dense(args, torch, nt)
            if args.only != "dense":
                act_rows += bench_activations(args, nt)
    C = harness.Column
    if dense_rows:
        cols = [C("layer"), C("batch"), C("threads"), C("mn_fwd_us", "mn fwd us", ".0f"),
                C("np_fwd_us", "np fwd us", ".0f"), C("fwd_vs_np", "fwd x np", ".2f"),
                C("mn_bwd_us", "mn bwd us", ".0f"), C("np_bwd_us", "np bwd us", ".0f"),
                C("bwd_vs_np", "bwd x np", ".2f")]
        if torch is not None:
            cols += [C("fwd_vs_torch", "fwd x torch", ".2f"), C("bwd_vs_torch", "bwd x torch", ".2f")]
        harness.print_table(dense_rows, cols, title=f"\nDense layers, float32 ({args.stat} of "
                            f"{args.rounds} rounds; ratio > 1: matnet faster)")
    if act_rows:
        harness.print_table(act_rows, [
            C("activation"), C("threads"), C("mn_fwd_GBs", "mn fwd GB/s", ".1f"),
            C("np_fwd_GBs", "np fwd GB/s", ".1f"), C("fwd_vs_np", "fwd x np", ".2f"),
            C("mn_bwd_GBs", "mn bwd GB/s", ".1f"), C("np_bwd_GBs", "np bwd GB/s", ".1f"),
            C("bwd_vs_np", "bwd x np", ".2f")],
            title=f"\nActivations on 1e6 float32 (softmax: 1000 x 1000; {args.stat} of "
                  f"{args.rounds} rounds; ratio > 1: matnet faster)")
    harness.write_json(args.json, {"stat": args.stat, "rounds": args.rounds, "dense": dense_rows,
                                   "activations": act_rows}, env=env)
    panels = []
    for nt in args.threads:
        d = [r for r in dense_rows if r["threads"] == nt]
        if d:
            labels = [f"{r['layer']} b{r['batch']}" for r in d]
            series = {"forward": (labels, [r["fwd_vs_np"] for r in d]),
                      "backward": (labels, [r["bwd_vs_np"] for r in d])}
            panels.append(dict(title=f"dense vs NumPy, {nt} thread(s)", xlabel="layer, batch",
                               ylabel="speed-up over NumPy", series=series, hline=1.0))
        a = [r for r in act_rows if r["threads"] == nt]
        if a:
            labels = [r["activation"] for r in a]
            series = {"matnet fwd": (labels, [r["mn_fwd_GBs"] for r in a]),
                      "numpy fwd": (labels, [r["np_fwd_GBs"] for r in a]),
                      "matnet bwd": (labels, [r["mn_bwd_GBs"] for r in a]),
                      "numpy bwd": (labels, [r["np_bwd_GBs"] for r in a])}
            panels.append(dict(title=f"activations, 1e6 float32, {nt} thread(s)",
                               xlabel="activation", ylabel="GB/s", series=series))
    harness.plot_panels(args.plot, panels, suptitle="matnet NN kernels vs NumPy")


if __name__ == "__main__":
    main()
