"""GEMM benchmark: matnet vs NumPy (and PyTorch when installed), same process.

Measures C = op(A) @ op(B) for float32 and float64 on
  - square n x n x n, n = 64 ... 2048;
  - the MLP shapes of a 784-256-128-10 network at batch m in {32, 128, 512}:
    forward Z = X W (m x k @ k x n), and the products backprop needs,
    dW = X^T dZ (k x m @ m x n, A transposed) and dX = dZ W^T (m x n @ n x k,
    B transposed),
on 1 and 2 threads (``--threads``). Prints GFLOP/s (2 m n k / time, median of
warm repeats over ``--rounds`` interleaved rounds), the ratio to NumPy (median
of per-round ratios) and, because noise on a shared machine only ever slows a
run down, the ratio of the two best rounds; ``--json`` / ``--plot`` write the
results. Every operand is prepared once; each library writes into
its own preallocated output where it can, so allocation is not timed.

    python bench/bench_gemm.py --quick          # smoke run, seconds
    python bench/bench_gemm.py --json gemm.json --plot gemm.png
"""

from __future__ import annotations

import argparse
import sys

import harness

harness.clean_openblas_env()  # before NumPy loads OpenBLAS

import numpy as np  # noqa: E402

import matnet as mn  # noqa: E402

SQUARE = [64, 128, 256, 384, 512, 768, 1024, 1536, 2048]
SQUARE_QUICK = [64, 256, 1024]
LAYERS = [(784, 256), (256, 128), (128, 10)]  # (in, out) of each dense layer
BATCHES = [32, 128, 512]


def mlp_cases(batches):
    """(label, m, n, k, trans_a, trans_b) for forward and backward products."""
    cases = []
    for bsz in batches:
        for fin, fout in LAYERS:
            cases.append((f"fwd X W b{bsz} {fin}->{fout}", bsz, fout, fin, False, False))
            cases.append((f"dW=XtdZ b{bsz} {fin}->{fout}", fin, fout, bsz, True, False))
            cases.append((f"dX=dZWt b{bsz} {fin}->{fout}", bsz, fin, fout, False, True))
    return cases


def square_cases(sizes):
    return [(f"square {n}", n, n, n, False, False) for n in sizes]


def measure(case, dtype, torch, repeat, rng, nthreads, rounds):
    label, m, n, k, ta, tb = case
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    out_mn = np.empty((m, n), dtype)
    out_np = np.empty((m, n), dtype)
    a_op = a.T if ta else a
    b_op = b.T if tb else b
    fns = {
        "matnet": lambda: mn.ops.matmul(a, b, trans_a=ta, trans_b=tb, out=out_mn),
        "numpy": lambda: np.matmul(a_op, b_op, out=out_np),
    }
    if torch is not None:
        ta_t = torch.from_numpy(a)
        tb_t = torch.from_numpy(b)
        at = ta_t.t() if ta else ta_t
        bt = tb_t.t() if tb else tb_t
        out_t = torch.empty((m, n), dtype=at.dtype)
        fns["torch"] = lambda: torch.matmul(at, bt, out=out_t)
    # Check before timing: a fast wrong answer is worth nothing.
    fns["matnet"]()
    fns["numpy"]()
    tol = (k + 3) * np.finfo(dtype).eps * (np.abs(a_op) @ np.abs(b_op)).max()
    err = np.abs(out_mn.astype(np.float64) - out_np).max() if out_mn.size else 0.0
    if not err <= 2 * tol:
        raise SystemExit(f"{label}: matnet and NumPy differ by {err:g} (> {2 * tol:g})")
    flop = 2.0 * m * n * k
    # Interleave libraries over rounds (alternating the order) so that slow
    # drifts in machine load hit all alike; the ratio is the median of the
    # per-round ratios, each from two measurements taken back to back.
    min_time = 0.01 if repeat <= 3 else 0.03
    times = {name: [] for name in fns}
    names = list(fns)
    for rnd in range(rounds):
        for name in (names if rnd % 2 == 0 else names[::-1]):
            if nthreads > 1:
                harness.settle()
            times[name].append(harness.time_median(fns[name], repeat=repeat, warmup=2,
                                                   min_time=min_time))
    row = {"case": label, "dtype": np.dtype(dtype).name, "m": m, "n": n, "k": k,
           "trans": ("T" if ta else "N") + ("T" if tb else "N"), "rounds": rounds}
    for name, ts in times.items():
        t = float(np.median(ts))
        row[f"{name}_s"] = t
        row[f"{name}_gflops"] = harness.gflops(flop, t)
        row[f"{name}_best_gflops"] = harness.gflops(flop, min(ts))
    row["ratio_np"] = float(np.median([tn / tm for tn, tm in zip(times["numpy"], times["matnet"])]))
    # Best against best: on a shared machine noise only ever slows a run down,
    # so this is the ratio of what each library can do when left alone.
    row["ratio_np_best"] = row["matnet_best_gflops"] / row["numpy_best_gflops"]
    if "torch_s" in row:
        row["ratio_torch"] = float(np.median([tt / tm for tt, tm in
                                              zip(times["torch"], times["matnet"])]))
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_args(parser)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"],
                        choices=["float32", "float64"])
    parser.add_argument("--only", choices=["square", "mlp"], default=None,
                        help="run only one group of shapes")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds per case (median of per-round ratios)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="square sizes (default 64..2048; --quick: 64 256 1024)")
    args = parser.parse_args(argv)
    env = harness.sanity_report()
    torch = harness.load_torch(args)
    repeat = args.repeat or (3 if args.quick else 5)
    cases = []
    if args.only in (None, "square"):
        cases += square_cases(args.sizes or (SQUARE_QUICK if args.quick else SQUARE))
    if args.only in (None, "mlp"):
        cases += mlp_cases([128] if args.quick else BATCHES)
    rng = np.random.default_rng(0)
    rows = []
    cols = [harness.Column("case"), harness.Column("trans"), harness.Column("matnet_gflops", "matnet GF/s", ".1f"),
            harness.Column("numpy_gflops", "numpy GF/s", ".1f"),
            harness.Column("ratio_np", "x numpy", ".3f"),
            harness.Column("ratio_np_best", "x numpy (best)", ".3f")]
    if torch is not None:
        cols += [harness.Column("torch_gflops", "torch GF/s", ".1f"),
                 harness.Column("ratio_torch", "x torch", ".3f")]
    for dtype_name in args.dtypes:
        dtype = np.dtype(dtype_name).type
        for nt in args.threads:
            block = []
            with harness.threads(nt, torch):
                for case in cases:
                    row = measure(case, dtype, torch, repeat, rng, nt, args.rounds)
                    row["threads"] = nt
                    block.append(row)
                    print(f"  {dtype_name} t={nt} {row['case']:<26} {row['matnet_gflops']:7.1f} GF/s "
                          f"x{row['ratio_np']:.3f} numpy", file=sys.stderr, flush=True)
            harness.print_table(block, cols, title=f"\n== {dtype_name}, {nt} thread(s) ==")
            rows += block
    harness.write_json(args.json, {"benchmark": "gemm", "results": rows}, env=env)
    if args.plot:
        panels = []
        for dtype_name in args.dtypes:
            for group in ("square", "mlp"):
                sel = [r for r in rows if r["dtype"] == dtype_name and r["case"].startswith("square") == (group == "square")]
                if not sel:
                    continue
                series = {}
                for nt in args.threads:
                    rs = [r for r in sel if r["threads"] == nt]
                    xs = [r["n"] if group == "square" else r["case"] for r in rs]
                    for lib in ("matnet", "numpy", "torch"):
                        if rs and f"{lib}_gflops" in rs[0]:
                            series[f"{lib} {nt}t"] = (xs, [r[f"{lib}_gflops"] for r in rs])
                panels.append({"title": f"{dtype_name} {group}", "xlabel": "n" if group == "square" else "",
                               "ylabel": "GFLOP/s", "series": series, "logx": group == "square"})
        harness.plot_panels(args.plot, panels, suptitle="GEMM: matnet vs NumPy" +
                            (" vs PyTorch" if torch is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
