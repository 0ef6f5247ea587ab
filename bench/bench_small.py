"""Small and skinny float32 products: matnet vs NumPy (and PyTorch CPU when installed), same process.

Where a big GEMM is bound by the microkernel, these shapes are bound by
memory traffic, call overhead and how (or whether) the work is split across
threads. Measured for float32, on each thread count of ``--threads``:

* gemv: y = A @ x and y = A.T @ x for A of 784x256 (one MLP layer, fits in
  L2/L3) and 4096x4096 (64 MiB, streamed from memory): ``mn.ops.matvec(a, x,
  trans=False|True)``, NumPy ``a @ x`` / ``a.T @ x``, ``torch.mv``. GB/s
  counts the matrix and both vectors once (4 (m n + m + n) bytes), GFLOP/s
  2 m n.
* skinny: C = A @ B, A of m x k, m in {1, 2, 4, 8, 16, 32, 64}, B of
  4096x4096 and 784x256 (k x n, row-major): ``mn.ops.matmul(a, b)``,
  ``a @ b``, ``torch.matmul``. GFLOP/s (2 m n k) and GB/s (B + A + C once).
* batched: (64,128,64) @ (64,64,128) and (512,8,8) @ (512,8,8):
  ``mn.ops.matmul`` on 3-D arrays (np.matmul semantics), ``np.matmul``,
  ``torch.bmm``. GFLOP/s.
* predict: a 784-256-128-10 MLP (relu, relu, linear) at batch 1 and 8:
  matnet ``Sequential.predict``, the same weights in plain NumPy
  (``np.maximum(x @ W1 + b1, 0)`` ...), and a torch ``nn.Sequential`` called
  under ``torch.inference_mode()`` (entered in each call, as a caller would).
  Microseconds per call.

Every call allocates its result, as user code does. Before timing, matnet's
result is checked against NumPy's (torch's too for predict). Each case is
timed in ``--rounds`` rounds; in a round each library is timed as one block
(``--repeat`` repeats, each long enough, >= 20 ms, that a few-microsecond
call is looped thousands of times), with a 0.3 s pause before each block so
the previous library's spinning OpenBLAS / OpenMP workers go idle; the order
rotates between rounds. Reported: the median time over rounds and the median
of the per-round ratios ``x numpy`` = NumPy time / matnet time and
``x torch`` = torch time / matnet time (> 1: matnet faster). ``--stat min``
keeps each library's best round instead, and the ratio of the bests.
matnet API that this build lacks (``mn.ops.matvec``, 3-D ``mn.ops.matmul``)
is reported and its column left empty; NumPy and torch are still measured.

    python bench/bench_small.py --quick                     # smoke run, seconds
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 bench/bench_small.py --threads 1 2 --rounds 5 --json small.json --plot small.png
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

SECTIONS = ("gemv", "skinny", "batched", "predict")
GEMV_SHAPES = [(784, 256), (4096, 4096)]
GEMV_SHAPES_QUICK = [(784, 256)]
SKINNY_B = [(4096, 4096), (784, 256)]  # (k, n) of B
SKINNY_B_QUICK = [(784, 256)]
SKINNY_M = [1, 2, 4, 8, 16, 32, 64]
SKINNY_M_QUICK = [1, 8, 64]
BATCHED = [(64, 128, 64, 128), (512, 8, 8, 8)]  # (batch, m, k, n)
MLP = (784, 256, 128, 10)
PREDICT_BATCHES = [1, 8]
SETTLE_S = 0.3  # OpenBLAS spins ~0.1 s after a call, libgomp/PyTorch workers too
DT = np.float32
LIBS = ("matnet", "numpy", "torch")


def gemm_tol(a, b, k):
    """Bound on the float32 rounding error of a @ b, any batch dims (as bench_gemm.py)."""
    return 2 * (k + 3) * np.finfo(DT).eps * float(np.matmul(np.abs(a), np.abs(b)).max())


def check(label, got, want, tol):
    """A fast wrong answer is worth nothing: stop before timing it."""
    if got.shape != want.shape:
        raise SystemExit(f"{label}: matnet returned shape {got.shape}, NumPy {want.shape}")
    err = float(np.abs(got.astype(np.float64) - want).max()) if want.size else 0.0
    if not err <= tol:
        raise SystemExit(f"{label}: matnet and NumPy differ by {err:g} (> {tol:g})")


def probe(fn):
    """Call a matnet function that this build may not have yet.

    Returns (result, None), or (None, reason) when the call fails."""
    try:
        return fn(), None
    except Exception as exc:  # API in progress: report it, never time it
        return None, f"{type(exc).__name__}: {exc}"


class Runner:
    """Times one case's contenders and turns the times into a result row."""

    def __init__(self, args, torch):
        self.args = args
        self.torch = torch
        self.missing = {}  # section -> [why matnet was not timed], each reason once

    def skip(self, section, reason):
        reasons = self.missing.setdefault(section, [])
        if reason not in reasons:
            reasons.append(reason)
            print(f"[bench_small] {section}: matnet not timed: {reason}", file=sys.stderr,
                  flush=True)

    def run(self, row, fns, *, flop=None, nbytes=None):
        args = self.args
        times, ratios, per = harness.interleaved(
            fns, args.rounds, stat=args.stat, ref="matnet", settle_s=SETTLE_S,
            repeat=args.repeat, warmup=2, min_time=args.min_time)
        libs = [lib for lib in LIBS if lib != "torch" or self.torch is not None]
        for lib in libs:
            t = times.get(lib)
            row[f"{lib}_us"] = None if t is None else 1e6 * t
            if flop is not None:
                row[f"{lib}_gflops"] = None if t is None else harness.gflops(flop, t)
            if nbytes is not None:
                row[f"{lib}_gbs"] = None if t is None else nbytes / t / 1e9
            row[f"{lib}_rounds_us"] = [1e6 * s for s in per[lib]] if lib in per else None
        row["ratio_np"] = ratios.get("numpy")
        if self.torch is not None:
            row["ratio_torch"] = ratios.get("torch")
        row["rounds"] = args.rounds
        msg = (f"  t={row['threads']} {row['section']:<8} {row['case']:<24} "
               + (f"matnet {row['matnet_us']:9.2f} us" if row["matnet_us"] is not None
                  else "matnet       -    ")
               + f"  numpy {row['numpy_us']:9.2f} us")
        if row["ratio_np"] is not None:
            msg += f"  x{row['ratio_np']:.2f} numpy"
        if row.get("ratio_torch") is not None:
            msg += f"  x{row['ratio_torch']:.2f} torch"
        print(msg, file=sys.stderr, flush=True)
        return row


def bench_gemv(r, nt, rng):
    torch = r.torch
    matvec = getattr(mn.ops, "matvec", None)
    if matvec is None:
        r.skip("gemv", f"mn.ops.matvec is not in this build of matnet {mn.__version__} "
                       f"({os.path.dirname(mn.__file__)})")
    rows = []
    for m, n in (GEMV_SHAPES_QUICK if r.args.quick else GEMV_SHAPES):
        a = rng.standard_normal((m, n), dtype=DT)
        for trans in (False, True):
            x = rng.standard_normal(m if trans else n, dtype=DT)
            a_op = a.T if trans else a
            label = f"{m}x{n} {'a.T@x' if trans else 'a@x'}"
            fns = {}
            if matvec is not None:
                y, why = probe(lambda: matvec(a, x, trans=trans))
                if why is not None:
                    r.skip("gemv", f"mn.ops.matvec(a, x, trans={trans}) failed: {why}")
                else:
                    want = a_op.astype(np.float64) @ x
                    check(label, np.asarray(y), want, gemm_tol(a_op, x, a_op.shape[1]))
                    fns["matnet"] = lambda a=a, x=x, trans=trans: matvec(a, x, trans=trans)
            fns["numpy"] = (lambda a=a, x=x: a.T @ x) if trans else (lambda a=a, x=x: a @ x)
            if torch is not None:
                at, xt = torch.from_numpy(a), torch.from_numpy(x)
                fns["torch"] = ((lambda at=at, xt=xt: torch.mv(at.t(), xt)) if trans
                                else (lambda at=at, xt=xt: torch.mv(at, xt)))
            row = dict(section="gemv", case=label, m=m, n=n, trans=trans, threads=nt)
            rows.append(r.run(row, fns, flop=2.0 * m * n, nbytes=4.0 * (m * n + m + n)))
    return rows


def positive_int(text: str) -> int:
    """An argument that must be an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_shape(text: str) -> tuple[int, int]:
    """'784x256' -> (784, 256)."""
    try:
        k, n = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected KxN (e.g. 784x256), got {text!r}") from None
    if k < 1 or n < 1:
        raise argparse.ArgumentTypeError(f"sizes must be >= 1, got {text!r}")
    return k, n


def bench_skinny(r, nt, rng):
    torch = r.torch
    quick = r.args.quick
    rows = []
    shapes = r.args.skinny_b or (SKINNY_B_QUICK if quick else SKINNY_B)
    ms = r.args.skinny_m or (SKINNY_M_QUICK if quick else SKINNY_M)
    for k, n in shapes:
        b = rng.standard_normal((k, n), dtype=DT)
        for m in ms:
            a = rng.standard_normal((m, k), dtype=DT)
            label = f"{m}x{k} @ {k}x{n}"
            check(label, mn.ops.matmul(a, b), a.astype(np.float64) @ b, gemm_tol(a, b, k))
            fns = {"matnet": lambda a=a, b=b: mn.ops.matmul(a, b),
                   "numpy": lambda a=a, b=b: a @ b}
            if torch is not None:
                at, bt = torch.from_numpy(a), torch.from_numpy(b)
                fns["torch"] = lambda at=at, bt=bt: torch.matmul(at, bt)
            row = dict(section="skinny", case=label, m=m, k=k, n=n, threads=nt)
            rows.append(r.run(row, fns, flop=2.0 * m * n * k,
                              nbytes=4.0 * (k * n + m * k + m * n)))
    return rows


def bench_batched(r, nt, rng):
    torch = r.torch
    rows = []
    for bs, m, k, n in BATCHED:
        a = rng.standard_normal((bs, m, k), dtype=DT)
        b = rng.standard_normal((bs, k, n), dtype=DT)
        label = f"({bs},{m},{k})@({bs},{k},{n})"
        fns = {}
        c, why = probe(lambda: mn.ops.matmul(a, b))
        if why is not None:
            r.skip("batched", f"mn.ops.matmul on 3-D arrays failed in this build "
                              f"(matnet {mn.__version__}): {why}")
        else:
            check(label, np.asarray(c), np.matmul(a.astype(np.float64), b),
                  gemm_tol(a, b, k))
            fns["matnet"] = lambda a=a, b=b: mn.ops.matmul(a, b)
        fns["numpy"] = lambda a=a, b=b: np.matmul(a, b)
        if torch is not None:
            at, bt = torch.from_numpy(a), torch.from_numpy(b)
            fns["torch"] = lambda at=at, bt=bt: torch.bmm(at, bt)
        row = dict(section="batched", case=label, batch=bs, m=m, k=k, n=n, threads=nt)
        rows.append(r.run(row, fns, flop=2.0 * bs * m * n * k))
    return rows


def make_mlp():
    """The matnet model and its (W, b) pairs (W: in x out)."""
    acts = ["relu", "relu", None]
    layers = [mn.layers.Dense(fi, fo, activation=act, seed=i)
              for i, (fi, fo, act) in enumerate(zip(MLP[:-1], MLP[1:], acts))]
    model = mn.Sequential(layers)
    return model, [(layer.W, layer.b) for layer in layers]


def bench_predict(r, nt, rng):
    torch = r.torch
    model, params = make_mlp()
    (w1, b1), (w2, b2), (w3, b3) = params

    def np_predict(x):
        h = np.maximum(x @ w1 + b1, 0)
        h = np.maximum(h @ w2 + b2, 0)
        return h @ w3 + b3

    tnet = None
    if torch is not None:
        nn = torch.nn
        tnet = nn.Sequential(nn.Linear(MLP[0], MLP[1]), nn.ReLU(), nn.Linear(MLP[1], MLP[2]),
                             nn.ReLU(), nn.Linear(MLP[2], MLP[3]))
        with torch.no_grad():
            for lin, (w, b) in zip([tnet[0], tnet[2], tnet[4]], params):
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))  # (out, in)
                lin.bias.copy_(torch.from_numpy(b))
        tnet.eval()

    def t_predict(xt):
        with torch.inference_mode():
            return tnet(xt)

    rows = []
    for batch in PREDICT_BATCHES:
        x = rng.random((batch, MLP[0]), dtype=DT)
        label = f"MLP {'-'.join(map(str, MLP))} b{batch}"
        want = np_predict(x.astype(np.float64))
        tol = 1e-4 * max(1.0, float(np.abs(want).max()))
        check(label, model.predict(x), want, tol)
        fns = {"matnet": lambda x=x: model.predict(x), "numpy": lambda x=x: np_predict(x)}
        if torch is not None:
            xt = torch.from_numpy(x)
            got = t_predict(xt).numpy()
            err = float(np.abs(got - want).max())
            if not err <= tol:
                raise SystemExit(f"{label}: torch and NumPy differ by {err:g} (> {tol:g})")
            fns["torch"] = lambda xt=xt: t_predict(xt)
        row = dict(section="predict", case=label, batch=batch, threads=nt)
        rows.append(r.run(row, fns))
    return rows


BENCHES = {"gemv": bench_gemv, "skinny": bench_skinny, "batched": bench_batched,
           "predict": bench_predict}


def print_tables(results, torch, args, missing):
    C = harness.Column
    how = f"{args.stat} of {args.rounds} round(s); x lib = lib time / matnet time, > 1: matnet faster"
    tcols = [C("ratio_np", "x numpy", ".2f")]
    if torch is not None:
        tcols.append(C("ratio_torch", "x torch", ".2f"))

    def per_lib(key, header, fmt):
        cols = [C(f"matnet_{key}", f"mn {header}", fmt), C(f"numpy_{key}", f"np {header}", fmt)]
        if torch is not None:
            cols.append(C(f"torch_{key}", f"torch {header}", fmt))
        return cols

    specs = {
        "gemv": ("GEMV y = A @ x / A.T @ x, float32",
                 [C("matnet_us", "mn us", ".2f")] + per_lib("gbs", "GB/s", ".1f")
                 + per_lib("gflops", "GF/s", ".1f")),
        "skinny": ("skinny GEMM (m x k) @ (k x n), float32",
                   [C("matnet_us", "mn us", ".2f")] + per_lib("gflops", "GF/s", ".1f")
                   + per_lib("gbs", "GB/s", ".1f")),
        "batched": ("batched matmul, float32", per_lib("us", "us", ".2f")
                    + per_lib("gflops", "GF/s", ".1f")),
        "predict": (f"predict, MLP {'-'.join(map(str, MLP))} relu relu linear, float32",
                    per_lib("us", "us", ".2f")),
    }
    for section in SECTIONS:
        rows = results.get(section)
        if not rows:
            continue
        title, cols = specs[section]
        harness.print_table(rows, [C("case"), C("threads", "thr")] + cols + tcols,
                            title=f"\n== {title} ({how}) ==")
        for reason in missing.get(section, []):
            print(f"   matnet not timed ('-'): {reason}")


def plot(args, results, torch):
    libs = [lib for lib in LIBS if lib != "torch" or torch is not None]

    def series(rows, xkey, ykey):
        out = {}
        for nt in args.threads:
            rs = [r for r in rows if r["threads"] == nt]
            for lib in libs:
                ys = [r.get(f"{lib}_{ykey}") for r in rs]
                if rs and all(y is not None for y in ys):  # a skipped library draws nothing
                    out[f"{lib} {nt}t"] = ([r[xkey] for r in rs], ys)
        return out

    panels = []
    gemv = results.get("gemv", [])
    if gemv:
        panels.append({"title": "GEMV, float32", "xlabel": "", "ylabel": "GB/s",
                       "series": series(gemv, "case", "gbs")})
    skinny = results.get("skinny", [])
    for k, n in dict.fromkeys((r["k"], r["n"]) for r in skinny):
        rows = [r for r in skinny if (r["k"], r["n"]) == (k, n)]
        panels.append({"title": f"skinny GEMM, (m x {k}) @ ({k} x {n}), float32", "xlabel": "m",
                       "ylabel": "GFLOP/s", "series": series(rows, "m", "gflops"), "logx": True})
    batched = results.get("batched", [])
    if batched:
        panels.append({"title": "batched matmul, float32", "xlabel": "", "ylabel": "GFLOP/s",
                       "series": series(batched, "case", "gflops")})
    pred = results.get("predict", [])
    if pred:
        panels.append({"title": f"MLP {'-'.join(map(str, MLP))} predict, float32",
                       "xlabel": "", "ylabel": "us per call (lower is better)",
                       "series": series(pred, "case", "us"), "logy": True})
    harness.plot_panels(args.plot, panels, suptitle="small and skinny products: matnet vs NumPy"
                        + (" vs PyTorch" if torch is not None else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--m", type=positive_int, nargs="+", metavar="M", dest="skinny_m",
                        help=f"skinny section: rows of A (default: {SKINNY_M})")
    parser.add_argument("--b", type=parse_shape, nargs="+", metavar="KxN", dest="skinny_b",
                        help="skinny section: shapes of B (default: "
                             + " ".join(f"{k}x{n}" for k, n in SKINNY_B) + ")")
    args, sections = harness.parse_sectioned_args(parser, SECTIONS, argv, repeat=(3, 7))
    # Seconds per timed repeat: thousands of back-to-back calls of a
    # microsecond op, so timer resolution and clock noise do not count.
    args.min_time = 0.01 if args.quick else 0.02
    env = harness.sanity_report()
    torch = harness.load_torch(args)
    r = Runner(args, torch)
    results = {s: [] for s in sections}
    for nt in args.threads:
        with harness.threads(nt, torch):
            for section in sections:
                results[section] += BENCHES[section](r, nt, np.random.default_rng(0))
    print_tables(results, torch, args, r.missing)
    harness.write_json(args.json, {"benchmark": "small", "dtype": "float32", "stat": args.stat,
                                   "rounds": args.rounds, "repeat": args.repeat,
                                   "min_time_s": args.min_time, "settle_s": SETTLE_S,
                                   "matnet_missing": r.missing, **results}, env=env)
    plot(args, results, torch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
