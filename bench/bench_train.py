"""Training benchmark: a 784-256-128-10 ReLU MLP, softmax cross-entropy, SGD and Adam.

matnet (``Sequential`` + its fused kernels) vs the same network written in
plain NumPy (matmul, maximum, exp: the usual from-scratch style) vs PyTorch
CPU when installed, in one process, on synthetic MNIST-shaped data
(float32 inputs in [0, 1), 10 classes).

Measured, for batch 32, 128 and 512 and each thread count:
  * one training step (forward, loss, backward, optimizer update) on a
    fixed batch: libraries timed in alternating rounds (``--repeat`` rounds,
    default 7), median time and median of the per-round ratios (``--stat min``:
    each library's best round and the ratio of the bests); effective
    GFLOP/s counts the GEMM work only (forward 3 products, backward 3 weight
    gradients + 2 input gradients; the first layer's input gradient is not
    needed);
  * one epoch over ``--samples`` rows (shuffled, last batch partial), as
    ``fit`` runs it (matnet) and as the equivalent loop (NumPy, PyTorch).
Before timing, one step from identical weights is checked to agree across
the libraries. ``--profile`` adds matnet's per-phase breakdown at batch 128
(forward / loss / backward / optimizer, and the Python overhead around them).

    python bench/bench_train.py --quick
    python bench/bench_train.py --threads 2 --json train.json --plot train.png --profile
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

import harness

harness.clean_openblas_env()  # before NumPy loads OpenBLAS

import numpy as np  # noqa: E402

import matnet as mn  # noqa: E402

SIZES = (784, 256, 128, 10)
BATCHES = (32, 128, 512)
OPTIMIZERS = {
    # name: (matnet factory, hyper-parameters for the NumPy and torch versions)
    "sgd": dict(lr=0.01, momentum=0.9),
    "adam": dict(lr=1e-3),
}


def step_flop(batch: int) -> float:
    """GEMM flops of one training step (2 m n k per product)."""
    pairs = list(zip(SIZES[:-1], SIZES[1:]))
    fwd = sum(2.0 * batch * k * m for k, m in pairs)
    dw = fwd
    dx = sum(2.0 * batch * k * m for k, m in pairs[1:])
    return fwd + dw + dx


def initial_weights(seed: int = 0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, math.sqrt(2 / k), (k, m)).astype(np.float32), np.zeros(m, np.float32))
            for k, m in zip(SIZES[:-1], SIZES[1:])]


# ------------------------------------------------------------------ matnet


class MatnetNet:
    def __init__(self, weights, opt: str):
        self.model = mn.Sequential([mn.layers.Dense(k, m, activation="relu" if i < 2 else None)
                                    for i, (k, m) in enumerate(zip(SIZES[:-1], SIZES[1:]))])
        for layer, (w, b) in zip(self.model.layers, weights):
            layer.set_params({"W": w, "b": b})
        hp = OPTIMIZERS[opt]
        optimizer = mn.optim.SGD(hp["lr"], momentum=hp["momentum"]) if opt == "sgd" \
            else mn.optim.Adam(hp["lr"])
        self.model.compile(optimizer=optimizer, loss="cross_entropy", metrics=["accuracy"])

    def step(self, x, y):
        model = self.model
        out = model.forward(x, training=True)
        loss, grad = mn.losses.cross_entropy(out, y)
        model.backward(grad, need_input_grad=False)
        model.optimizer.step(model)
        return loss

    def epoch(self, x, y, batch, seed):
        self.model.fit(x, y, epochs=1, batch_size=batch, seed=seed, verbose=0)

    def weights(self):
        return [p.copy() for p in self.model.parameters()]


# ------------------------------------------------------------------- NumPy


class NumpyNet:
    """The network as one writes it from scratch in NumPy (float32 throughout)."""

    def __init__(self, weights, opt: str):
        self.params = [a.copy() for w, b in weights for a in (w, b)]
        self.opt = opt
        self.hp = OPTIMIZERS[opt]
        self.state = [[np.zeros_like(p), np.zeros_like(p)] for p in self.params]
        self.t = 0

    def step(self, x, y):
        w1, b1, w2, b2, w3, b3 = self.params
        n = len(x)
        z1 = x @ w1 + b1
        a1 = np.maximum(z1, 0)
        z2 = a1 @ w2 + b2
        a2 = np.maximum(z2, 0)
        logits = a2 @ w3 + b3
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(s[:, 0]) - shifted[np.arange(n), y]))
        dz3 = e / s
        dz3[np.arange(n), y] -= 1
        dz3 /= n
        grads = [None] * 6
        grads[4], grads[5] = a2.T @ dz3, dz3.sum(axis=0)
        dz2 = (dz3 @ w3.T) * (z2 > 0)
        grads[2], grads[3] = a1.T @ dz2, dz2.sum(axis=0)
        dz1 = (dz2 @ w2.T) * (z1 > 0)
        grads[0], grads[1] = x.T @ dz1, dz1.sum(axis=0)
        self.t += 1
        self._update(grads)
        return loss

    def _update(self, grads):
        hp = self.hp
        if self.opt == "sgd":
            for p, g, (v, _) in zip(self.params, grads, self.state):
                if self.t == 1:
                    v[...] = g
                else:
                    v *= hp["momentum"]
                    v += g
                p -= hp["lr"] * v
            return
        b1, b2, eps = 0.9, 0.999, 1e-8
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for p, g, (m, v) in zip(self.params, grads, self.state):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= (hp["lr"] / c1) * m / (np.sqrt(v) / math.sqrt(c2) + eps)

    def epoch(self, x, y, batch, seed):
        order = np.random.default_rng(seed).permutation(len(x))
        xs, ys = x[order], y[order]
        for i in range(0, len(x), batch):
            self.step(xs[i:i + batch], ys[i:i + batch])

    def weights(self):
        return [p.copy() for p in self.params]


# ------------------------------------------------------------------- torch


class TorchNet:
    def __init__(self, torch, weights, opt: str):
        self.torch = torch
        layers = []
        for i, (w, b) in enumerate(weights):
            lin = torch.nn.Linear(*w.shape)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w.T.copy()))
                lin.bias.copy_(torch.from_numpy(b))
            layers += [lin, torch.nn.ReLU()] if i < 2 else [lin]
        self.net = torch.nn.Sequential(*layers)
        hp = OPTIMIZERS[opt]
        self.opt = torch.optim.SGD(self.net.parameters(), lr=hp["lr"], momentum=hp["momentum"]) \
            if opt == "sgd" else torch.optim.Adam(self.net.parameters(), lr=hp["lr"])

    def step_tensors(self, xt, yt):
        self.opt.zero_grad(set_to_none=True)
        loss = self.torch.nn.functional.cross_entropy(self.net(xt), yt)
        loss.backward()
        self.opt.step()
        return loss

    def step(self, x, y):
        return self.step_tensors(self.torch.from_numpy(x), self.torch.from_numpy(y)).item()

    def epoch(self, x, y, batch, seed):
        order = np.random.default_rng(seed).permutation(len(x))
        xt, yt = self.torch.from_numpy(x[order]), self.torch.from_numpy(y[order])
        for i in range(0, len(x), batch):
            self.step_tensors(xt[i:i + batch], yt[i:i + batch])

    def weights(self):
        out = []
        for lin in self.net:
            if isinstance(lin, self.torch.nn.Linear):
                out += [lin.weight.detach().numpy().T.copy(), lin.bias.detach().numpy().copy()]
        return out


# ----------------------------------------------------------------- driver


def make_nets(torch, opt):
    w = initial_weights()
    nets = {"matnet": MatnetNet(w, opt), "numpy": NumpyNet(w, opt)}
    if torch is not None:
        nets["torch"] = TorchNet(torch, w, opt)
    return nets


def check_agreement(torch, opt, x, y):
    """One step from the same weights: losses and updated weights agree (float32)."""
    nets = make_nets(torch, opt)
    losses = {name: net.step(x, y) for name, net in nets.items()}
    ref = nets["numpy"].weights()
    for name, net in nets.items():
        if abs(losses[name] - losses["numpy"]) > 1e-4 * abs(losses["numpy"]):
            raise SystemExit(f"{opt}: {name} loss {losses[name]} != numpy {losses['numpy']}")
        for i, (a, b) in enumerate(zip(net.weights(), ref)):
            # float32 GEMMs over K <= 784 terms: gradients differ by ~K eps |x||w|, and
            # SGD moves the weights by lr * gradient: 1e-4 of the largest weight is far
            # above that. Adam's first step is lr * g / (|g| + eps): for gradients near
            # eps that ratio is ill-conditioned, so there every step is within lr and
            # all but a few elements must agree.
            close = np.isclose(a, b, rtol=1e-3, atol=1e-4 * np.abs(b).max())
            lr = OPTIMIZERS[opt]["lr"]
            ok = close.all() if opt == "sgd" else (
                close.mean() > 0.99 and np.abs(a - b).max() <= 2 * lr)
            if not ok:
                raise SystemExit(f"{opt}: {name} parameter {i} differs from numpy after one step")


def interleaved(fns, rounds, stat="median", **timing):
    """Time per library, and ratios to matnet, with libraries alternating.

    The machine is shared and its load drifts within seconds, so each round
    times every library once (rotating which goes first). With ``stat``
    "median" the ratios are taken within a round, where all saw the same
    load, and the medians over rounds are reported; with "min" each
    library's best round is kept and the ratios are those of the bests.
    """
    names = list(fns)
    per = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            harness.settle()
            per[name].append(harness.time_median(fns[name], **timing))
    if stat == "min":
        times = {name: min(v) for name, v in per.items()}
        return times, {name: times[name] / times["matnet"] for name in names}
    times = {name: statistics.median(v) for name, v in per.items()}
    ratios = {name: statistics.median(a / m for a, m in zip(per[name], per["matnet"]))
              for name in names}
    return times, ratios


def time_steps(nets, x, y, rounds, stat):
    fns = {name: (lambda net=net: net.step(x, y)) for name, net in nets.items()}
    return interleaved(fns, rounds, stat, repeat=3, warmup=1, min_time=0.02)


def time_epochs(nets, x, y, batch, rounds, stat):
    fns = {name: (lambda net=net: net.epoch(x, y, batch, seed=1)) for name, net in nets.items()}
    return interleaved(fns, rounds, stat, repeat=1, warmup=0, min_time=0.0)


def profile_matnet(x, y, repeat):
    """Per-phase medians of matnet's step, and the same step as bare kernel calls."""
    net = MatnetNet(initial_weights(), "adam")
    model = net.model
    out = model.forward(x, training=True)
    _, grad = mn.losses.cross_entropy(out, y)
    model.backward(grad, need_input_grad=False)
    model.optimizer.step(model)
    (w1, b1), (w2, b2), (w3, b3) = [(layer.W, layer.b) for layer in model.layers]
    params = model.parameters()
    state = model.optimizer.state_arrays()
    ops = mn.ops

    def bare_step():
        # The step with no Layer/Sequential/Optimizer objects: kernel calls only.
        a1, z1 = ops.dense_forward(x, w1, b1, "relu")
        a2, z2 = ops.dense_forward(a1, w2, b2, "relu")
        logits, _ = ops.dense_forward(a2, w3, b3)
        _, g = mn.losses.cross_entropy(logits, y)
        g, dw3, db3 = ops.dense_backward(g, a2, w3, None)
        g, dw2, db2 = ops.dense_backward(g, a1, w2, z2, "relu")
        _, dw1, db1 = ops.dense_backward(g, x, w1, z1, "relu", need_dx=False)
        for p, gr, st in zip(params, (dw1, db1, dw2, db2, dw3, db3), state):
            ops.adam_update(p, gr, st["m"], st["v"], step=10, lr=1e-3)

    parts = {
        "forward (3 fused dense)": lambda: model.forward(x, training=True),
        "loss (fused softmax-CE)": lambda: mn.losses.cross_entropy(out, y),
        "backward (3 fused dense)": lambda: model.backward(grad, need_input_grad=False),
        "optimizer (6 adam updates)": lambda: model.optimizer.step(model),
        "full step (Sequential)": lambda: net.step(x, y),
        "same step, bare kernel calls": bare_step,
    }
    return {name: harness.time_median(fn, repeat=repeat, min_time=0.05) for name, fn in parts.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_args(parser)
    parser.add_argument("--batches", type=int, nargs="+", default=None,
                        help=f"batch sizes (default {' '.join(map(str, BATCHES))})")
    parser.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS), choices=list(OPTIMIZERS))
    parser.add_argument("--samples", type=int, default=None,
                        help="rows in the epoch measurement (default 10000; --quick 2048)")
    parser.add_argument("--no-epoch", action="store_true", help="time single steps only")
    harness.add_stat_arg(parser)
    parser.add_argument("--profile", action="store_true",
                        help="add matnet's per-phase breakdown at batch 128")
    args = parser.parse_args(argv)
    env = harness.sanity_report()
    torch = harness.load_torch(args)
    repeat = args.repeat or (3 if args.quick else 7)
    batches = args.batches or ([128] if args.quick else list(BATCHES))
    samples = args.samples or (2048 if args.quick else 10000)
    rng = np.random.default_rng(0)
    x_all = rng.random((samples, SIZES[0]), dtype=np.float32)
    y_all = rng.integers(0, SIZES[-1], samples).astype(np.int64)

    libs = ["matnet", "numpy"] + (["torch"] if torch is not None else [])
    rows = []
    for nt in args.threads:
        with harness.threads(nt, torch):
            for opt in args.optimizers:
                check_agreement(torch, opt, x_all[:128], y_all[:128])
                for batch in batches:
                    xb, yb = x_all[:batch].copy(), y_all[:batch].copy()
                    nets = make_nets(torch, opt)
                    step, ratio = time_steps(nets, xb, yb, repeat, args.stat)
                    row = {"optimizer": opt, "batch": batch, "threads": nt}
                    for lib in libs:
                        row[f"{lib}_step_ms"] = step[lib] * 1e3
                        row[f"{lib}_gflops"] = harness.gflops(step_flop(batch), step[lib])
                    row["step_x_numpy"] = ratio["numpy"]
                    if torch is not None:
                        row["step_x_torch"] = ratio["torch"]
                    if not args.no_epoch:
                        ep, ratio = time_epochs(make_nets(torch, opt), x_all, y_all, batch,
                                                max(3, repeat // 2), args.stat)
                        for lib in libs:
                            row[f"{lib}_epoch_s"] = ep[lib]
                        row["epoch_x_numpy"] = ratio["numpy"]
                        if torch is not None:
                            row["epoch_x_torch"] = ratio["torch"]
                    rows.append(row)
                    print(f"  t={nt} {opt} b={batch}: matnet {row['matnet_step_ms']:.3f} ms/step, "
                          f"x{row['step_x_numpy']:.2f} numpy"
                          + (f", x{row['step_x_torch']:.2f} torch" if torch is not None else ""),
                          file=sys.stderr, flush=True)

    C = harness.Column
    cols = [C("optimizer", "opt"), C("batch"), C("threads", "thr"),
            C("matnet_step_ms", "matnet ms", ".3f"), C("numpy_step_ms", "numpy ms", ".3f")]
    if torch is not None:
        cols.append(C("torch_step_ms", "torch ms", ".3f"))
    cols += [C("matnet_gflops", "matnet GF/s", ".1f"), C("step_x_numpy", "x numpy", ".2f")]
    if torch is not None:
        cols.append(C("step_x_torch", "x torch", ".2f"))
    harness.print_table(rows, cols, title=f"\n== one training step ({SIZES}, float32, {args.stat} of "
                                             f"{repeat} rounds) ==")
    if not args.no_epoch:
        cols = [C("optimizer", "opt"), C("batch"), C("threads", "thr"),
                C("matnet_epoch_s", "matnet s", ".3f"), C("numpy_epoch_s", "numpy s", ".3f")]
        if torch is not None:
            cols.append(C("torch_epoch_s", "torch s", ".3f"))
        cols.append(C("epoch_x_numpy", "x numpy", ".2f"))
        if torch is not None:
            cols.append(C("epoch_x_torch", "x torch", ".2f"))
        harness.print_table(rows, cols, title=f"\n== one epoch of {samples} samples ==")

    profile = {}
    if args.profile:
        for nt in args.threads:
            with harness.threads(nt, torch):
                xb, yb = x_all[:128].copy(), y_all[:128].copy()
                parts = profile_matnet(xb, yb, repeat)
            profile[nt] = parts
            prow = [{"phase": k, "us": v * 1e6} for k, v in parts.items()]
            prow.append({"phase": "Python layer overhead (full - bare)",
                         "us": (parts["full step (Sequential)"]
                                - parts["same step, bare kernel calls"]) * 1e6})
            harness.print_table(prow, [C("phase"), C("us", "us", ".1f")],
                                title=f"\n== matnet step breakdown, batch 128, Adam, {nt} thread(s) ==")

    harness.write_json(args.json, {"benchmark": "train", "stat": args.stat, "sizes": SIZES,
                                   "samples": samples,
                                   "results": rows, "profile": profile}, env=env)
    if args.plot:
        panels = []
        for nt in args.threads:
            for opt in args.optimizers:
                rs = [r for r in rows if r["threads"] == nt and r["optimizer"] == opt]
                series = {lib: ([r["batch"] for r in rs], [r[f"{lib}_gflops"] for r in rs])
                          for lib in libs}
                panels.append({"title": f"train step, {opt}, {nt} thread(s)", "xlabel": "batch",
                               "ylabel": "effective GFLOP/s", "series": series, "logx": True})
        harness.plot_panels(args.plot, panels, suptitle="784-256-128-10 MLP training step: "
                            "matnet vs NumPy" + (" vs PyTorch" if torch is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
