"""matnet.linalg vs NumPy's LAPACK (over OpenBLAS), float64, same process.

Cases (issue 10's list), on each thread count of ``--threads``:

* square: solve (n x n with n right-hand sides), det, inv, cholesky, qr
  (reduced, Q and R), lstsq (n right-hand sides) at n = 256, 1024, 2048;
  eigh (values and vectors) and svd (full, U S Vh) at n = 128, 512, 1024.
* stacked: (10000, 8, 8) solve (one right-hand side each, (10000, 8, 1)),
  inv and det; (2000, 32, 32) eigh.

Each case is timed in ``--rounds`` interleaved rounds (``harness.interleaved``:
a 0.3 s pause before each library's block so the other's spinning OpenBLAS
or OpenMP workers go idle, the order rotating between rounds); reported are
the median times and the median per-round ratio ``x numpy`` = matnet time /
NumPy time (< 1: matnet faster). NumPy's threads are set with threadpoolctl,
matnet's with ``set_num_threads``. Before timing, each matnet result is
checked against NumPy's (reconstruction / agreement to a loose tolerance).

    python bench/bench_linalg.py --quick                   # smoke run, seconds
    python bench/bench_linalg.py --threads 1 2 --rounds 3 --json linalg.json --plot linalg.png
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

SQUARE_OPS = ["solve", "det", "inv", "cholesky", "qr", "lstsq"]
SQUARE_N = [256, 1024, 2048]
SPECTRAL_OPS = ["eigh", "svd"]
SPECTRAL_N = [128, 512, 1024]
QUICK_N = [64, 128]


def square_case(op: str, n: int, rng: np.random.Generator):
    """(matnet fn, numpy fn, check(result_mn, result_np))."""
    a = rng.standard_normal((n, n))
    b = rng.standard_normal((n, n))
    spd = a @ a.T + n * np.eye(n)
    L, NL = mn.linalg, np.linalg
    close = lambda x, y: np.allclose(x, y, rtol=1e-6, atol=1e-6 * np.abs(y).max())  # noqa: E731
    if op == "solve":
        return lambda: L.solve(a, b), lambda: NL.solve(a, b), close
    if op == "det":
        return (lambda: L.slogdet(a)), (lambda: NL.slogdet(a)), \
            lambda x, y: x[0] == y[0] and abs(x[1] - y[1]) < 1e-8 * abs(y[1]) + 1e-8
    if op == "inv":
        return lambda: L.inv(a), lambda: NL.inv(a), close
    if op == "cholesky":
        return lambda: L.cholesky(spd), lambda: NL.cholesky(spd), close
    if op == "qr":
        return lambda: L.qr(a), lambda: NL.qr(a), \
            lambda x, y: np.allclose(x[0] @ x[1], a, atol=1e-9 * n)
    if op == "lstsq":
        return lambda: L.lstsq(a, b), lambda: NL.lstsq(a, b), lambda x, y: close(x[0], y[0])
    if op == "eigh":
        s = (a + a.T) / 2
        return lambda: L.eigh(s), lambda: NL.eigh(s), \
            lambda x, y: np.allclose(x[0], y[0], atol=1e-9 * n)
    if op == "svd":
        return lambda: L.svd(a), lambda: NL.svd(a), \
            lambda x, y: np.allclose(x[1], y[1], atol=1e-9 * n)
    raise ValueError(op)


def stacked_cases(rng: np.random.Generator, quick: bool):
    batch8, batch32 = (1000, 200) if quick else (10000, 2000)
    a8 = rng.standard_normal((batch8, 8, 8))
    b8 = rng.standard_normal((batch8, 8, 1))
    g = rng.standard_normal((batch32, 32, 32))
    s32 = g + np.swapaxes(g, 1, 2)
    L, NL = mn.linalg, np.linalg
    close = lambda x, y: np.allclose(x, y, rtol=1e-6, atol=1e-8)  # noqa: E731
    return [
        (f"solve ({batch8},8,8)", lambda: L.solve(a8, b8), lambda: NL.solve(a8, b8), close),
        (f"inv ({batch8},8,8)", lambda: L.inv(a8), lambda: NL.inv(a8), close),
        (f"det ({batch8},8,8)", lambda: L.det(a8), lambda: NL.det(a8), close),
        (f"eigh ({batch32},32,32)", lambda: L.eigh(s32), lambda: NL.eigh(s32),
         lambda x, y: close(x[0], y[0])),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_common_args(parser)
    harness.add_stat_arg(parser)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--only", nargs="+", default=None,
                        help="restrict to these ops (solve det inv cholesky qr lstsq eigh svd stacked)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="orders n of the square and spectral ops (default: each op's list)")
    args = parser.parse_args()
    env = harness.sanity_report()
    rng = np.random.default_rng(0)
    repeat = args.repeat or (2 if args.quick else 3)
    timing = dict(repeat=repeat, warmup=1, min_time=0.0 if args.quick else 0.02)
    rounds = 1 if args.quick else args.rounds

    cases = []
    want = lambda op: args.only is None or op in args.only  # noqa: E731
    for op in SQUARE_OPS + SPECTRAL_OPS:
        if want(op):
            default_n = QUICK_N if args.quick else (SQUARE_N if op in SQUARE_OPS else SPECTRAL_N)
            for n in args.sizes or default_n:
                cases.append((f"{op} n={n}", op, n, *square_case(op, n, rng)))
    if want("stacked"):
        cases += [(label, "stacked", None, f_mn, f_np, check)
                  for label, f_mn, f_np, check in stacked_cases(rng, args.quick)]

    rows = []
    for nt in args.threads:
        with harness.threads(nt):
            for label, op, n, f_mn, f_np, check in cases:
                if not check(f_mn(), f_np()):
                    raise SystemExit(f"{label}: matnet's result disagrees with NumPy's")
                times, ratios, _ = harness.interleaved(
                    {"matnet": f_mn, "numpy": f_np}, rounds, stat=args.stat, ref="numpy",
                    **timing)
                row = {"case": label, "op": op, "n": n, "threads": nt,
                       "matnet_ms": times["matnet"] * 1e3, "numpy_ms": times["numpy"] * 1e3,
                       "x_numpy": ratios["matnet"]}
                rows.append(row)
                print(f"[{nt} thr] {label:24s} matnet {row['matnet_ms']:9.2f} ms  "
                      f"numpy {row['numpy_ms']:9.2f} ms  x numpy {row['x_numpy']:5.2f}",
                      file=sys.stderr, flush=True)

    harness.print_table(rows, [
        harness.Column("case"), harness.Column("threads"),
        harness.Column("matnet_ms", "matnet ms", ".2f"), harness.Column("numpy_ms", "numpy ms", ".2f"),
        harness.Column("x_numpy", "matnet/numpy", ".2f")],
        title="matnet.linalg vs NumPy (float64; matnet/numpy < 1: matnet faster)")
    harness.write_json(args.json, {"results": rows}, env=env)
    panels = []
    for nt in args.threads:
        series = {}
        for op in SQUARE_OPS + SPECTRAL_OPS:
            pts = [(r["n"], r["x_numpy"]) for r in rows if r["op"] == op and r["threads"] == nt]
            if pts:
                series[op] = ([p[0] for p in pts], [p[1] for p in pts])
        stacked = [r for r in rows if r["op"] == "stacked" and r["threads"] == nt]
        panels.append({"title": f"time / NumPy's, {nt} thread(s)", "xlabel": "n",
                       "ylabel": "matnet time / NumPy time", "series": series, "logx": True,
                       "hline": 1.0})
        if stacked:
            panels.append({"title": f"stacked, {nt} thread(s)", "xlabel": "case",
                           "ylabel": "matnet time / NumPy time",
                           "series": {"stacked": ([r["case"] for r in stacked],
                                                  [r["x_numpy"] for r in stacked])},
                           "hline": 1.0})
    harness.plot_panels(args.plot, panels, suptitle="matnet.linalg vs NumPy (LAPACK/OpenBLAS)")


if __name__ == "__main__":
    main()
