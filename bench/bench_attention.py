"""Attention: matnet's flash-style SDPA vs PyTorch's CPU flash kernel vs NumPy.

Section ``attention`` of bench/bench_conv_attn.py (written here as its own
script; the two are merged later). Shapes (1, 8, L, 64) float32 for
L in {128, 512, 2048, 4096}, forward ("fwd") and forward + backward
("fwd+bwd"), at each ``--threads`` count:

* matnet: ``mn.ops.scaled_dot_product_attention(..., return_lse=True)`` and
  ``mn.ops.scaled_dot_product_attention_backward``;
* torch: ``torch.nn.functional.scaled_dot_product_attention`` under
  ``sdpa_kernel(FLASH_ATTENTION)`` (its CPU flash kernel), ``out.backward(g)``;
* numpy: the explicit version (full L x L scores, stable softmax, textbook
  backward) on NumPy's BLAS.

Each (library, L, mode, threads) is timed in its own process (OpenBLAS,
libgomp and PyTorch worker pools never meet), one process per round, the
order of libraries rotating between rounds; each process reports the median
over repeats (harness.time_median). Reported: the median over rounds, and
ratios library time / matnet time (> 1: matnet faster).

Peak memory: at L = 4096 a fresh process per (library, mode, threads) makes
the inputs, runs the call once and reports its peak RSS (VmHWM) and the
peak above the RSS it had just before the call ("extra": the call's own
working memory; the total includes each library's code, which for PyTorch is
large).

    python bench/bench_attention.py --quick                      # smoke run
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 bench/bench_attention.py --rounds 3 --json attention.json --plot attention.png
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

harness.clean_openblas_env()  # before NumPy loads OpenBLAS

import numpy as np  # noqa: E402

HEADS, D = 8, 64
LENGTHS = (128, 512, 2048, 4096)
QUICK_LENGTHS = (128, 512)
MEMORY_L = 4096
MODES = ("fwd", "fwd+bwd")
LIBS = ("matnet", "torch", "numpy")


def numpy_attention(q, k, v, scale):
    """The explicit forward: (out, P)."""
    s = (q @ np.swapaxes(k, -1, -2)) * scale
    s -= s.max(axis=-1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=-1, keepdims=True)
    return s @ v, s


def numpy_attention_backward(g, q, k, v, p, scale):
    dv = np.swapaxes(p, -1, -2) @ g
    dp = g @ np.swapaxes(v, -1, -2)
    dp -= (dp * p).sum(axis=-1, keepdims=True)
    dp *= p
    dp *= scale
    return dp @ k, np.swapaxes(dp, -1, -2) @ q, dv


def make_call(lib: str, mode: str, length: int):
    """fn() running one call of lib/mode on fresh (1, 8, L, 64) inputs."""
    rng = np.random.default_rng(0)
    q, k, v, g = (rng.standard_normal((1, HEADS, length, D), dtype=np.float32) for _ in range(4))
    scale = 1.0 / np.sqrt(D)
    if lib == "matnet":
        import matnet as mn

        sdpa = mn.ops.scaled_dot_product_attention
        if mode == "fwd":
            return lambda: sdpa(q, k, v)

        def fn():
            out, lse = sdpa(q, k, v, return_lse=True)
            return mn.ops.scaled_dot_product_attention_backward(g, q, k, v, out, lse)
        return fn
    if lib == "numpy":
        if mode == "fwd":
            return lambda: numpy_attention(q, k, v, scale)[0]

        def fn():
            out, p = numpy_attention(q, k, v, scale)
            return numpy_attention_backward(g, q, k, v, p, scale)
        return fn
    torch = harness.load_torch()
    F = torch.nn.functional
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        flash = lambda: sdpa_kernel(SDPBackend.FLASH_ATTENTION)  # noqa: E731
    except ImportError:  # older torch: its default CPU choice is the flash kernel
        import contextlib

        flash = contextlib.nullcontext
    tq, tk, tv, tg = (torch.from_numpy(a) for a in (q, k, v, g))
    if mode == "fwd":
        def fn():
            with torch.no_grad(), flash():
                return F.scaled_dot_product_attention(tq, tk, tv)
        return fn
    tq, tk, tv = (t.clone().requires_grad_() for t in (tq, tk, tv))

    def fn():
        with flash():
            out = F.scaled_dot_product_attention(tq, tk, tv)
        out.backward(tg)
        for t in (tq, tk, tv):
            t.grad = None
    return fn


def memory_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process from /proc/self/status, in
    MiB. Not ru_maxrss: after fork + exec that includes the parent's RSS (a
    parent that imported torch made matnet's child report 218 MiB)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(lib: str, mode: str, length: int, threads: int, memory: bool, quick: bool) -> dict:
    torch = harness.load_torch() if lib == "torch" else None
    with harness.threads(threads, torch):
        fn = make_call(lib, mode, length)
        if memory:
            before = memory_mib("VmRSS")
            fn()
            peak = memory_mib("VmHWM")
            return {"peak_mib": peak, "extra_mib": peak - before}
        slow = lib == "numpy" and length >= 2048
        s = harness.time_median(fn, repeat=3 if quick or slow else 5, warmup=1,
                                min_time=0.02 if quick else 0.1)
        return {"ms": 1e3 * s}


def run_child(lib, mode, length, threads, memory, quick) -> dict:
    cmd = [sys.executable, __file__, "--child", lib, "--mode", mode, "--length", str(length),
           "--threads", str(threads)] + (["--memory"] if memory else []) + (
           ["--quick"] if quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{lib} {mode} L={length} child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_against_numpy(length: int = 128) -> None:
    """matnet's forward and backward vs the NumPy version (float64) before any timing."""
    import matnet as mn

    rng = np.random.default_rng(1)
    q, k, v, g = (rng.standard_normal((1, HEADS, length, D), dtype=np.float32) for _ in range(4))
    scale = 1.0 / np.sqrt(D)
    out, lse = mn.ops.scaled_dot_product_attention(q, k, v, return_lse=True)
    grads = mn.ops.scaled_dot_product_attention_backward(g, q, k, v, out, lse)
    q64, k64, v64, g64 = (a.astype(np.float64) for a in (q, k, v, g))
    want, p = numpy_attention(q64, k64, v64, scale)
    pairs = [("out", out, want)] + list(zip(
        ("dq", "dk", "dv"), grads, numpy_attention_backward(g64, q64, k64, v64, p, scale)))
    for name, got, ref in pairs:
        err = float(np.abs(got - ref).max())
        if not err <= 1e-4:
            raise SystemExit(f"bench_attention: matnet {name} differs from NumPy by {err:.3g}")


def attention_section(args, libs) -> tuple[list, list]:
    """(timing rows, memory rows) of the attention section."""
    check_against_numpy()
    lengths = QUICK_LENGTHS if args.quick else tuple(args.lengths)
    rounds = args.rounds or (1 if args.quick else 3)
    rows, mem_rows = [], []
    for nt in args.threads:
        for length in lengths:
            for mode in MODES:
                run_libs = [lib for lib in libs
                            if lib != "numpy" or length <= args.numpy_max_length]
                per = harness.rotating_rounds(
                    run_libs, rounds,
                    lambda lib: run_child(lib, mode, length, nt, False, args.quick)["ms"])
                row = {"threads": nt, "L": length, "mode": mode}
                for lib in run_libs:
                    row[f"{lib}_ms"] = statistics.median(per[lib])
                    row[f"{lib}_rounds_ms"] = per[lib]
                for lib in run_libs[1:]:
                    row[f"x_{lib}"] = statistics.median(
                        a / b for a, b in zip(per[lib], per["matnet"]))
                rows.append(row)
                print(f"[bench_attention] {nt} thread(s), L={length}, {mode}: " + ", ".join(
                    f"{lib} {row[f'{lib}_ms']:.2f} ms" for lib in run_libs),
                    file=sys.stderr, flush=True)
        if args.quick:
            continue
        for mode in MODES:
            row = {"threads": nt, "L": MEMORY_L, "mode": mode}
            for lib in libs:
                m = run_child(lib, mode, MEMORY_L, nt, True, False)
                row[f"{lib}_peak_mib"] = m["peak_mib"]
                row[f"{lib}_extra_mib"] = m["extra_mib"]
            mem_rows.append(row)
    return rows, mem_rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_args(parser)
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3, --quick 1)")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS),
                        help="sequence lengths L (default: 128 512 2048 4096)")
    parser.add_argument("--numpy-max-length", type=int, default=4096,
                        help="time NumPy only up to this L (its L x L scores get slow)")
    parser.add_argument("--child", choices=LIBS, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.mode, args.length, args.threads[0], args.memory,
                               args.quick)))
        return 0
    env = harness.sanity_report()
    libs = [lib for lib in LIBS if lib != "torch" or harness.load_torch(args) is not None]
    rows, mem_rows = attention_section(args, libs)
    C = harness.Column
    harness.print_table(
        rows, [C("threads", "thr"), C("L"), C("mode")]
        + [C(f"{lib}_ms", f"{lib} ms", ".2f") for lib in libs]
        + [C(f"x_{lib}", f"x {lib}", ".2f") for lib in libs[1:]],
        title=f"\n== attention (1, {HEADS}, L, {D}) float32 (median of rounds, one process "
              "per library; x lib = lib time / matnet time) ==")
    if mem_rows:
        harness.print_table(
            mem_rows, [C("threads", "thr"), C("L"), C("mode")]
            + [C(f"{lib}_peak_mib", f"{lib} peak MiB", ".0f") for lib in libs]
            + [C(f"{lib}_extra_mib", f"{lib} extra MiB", ".0f") for lib in libs],
            title=f"\n== attention peak RSS at L = {MEMORY_L} (extra: above the RSS "
                  "just before the call) ==")
    harness.write_json(args.json, {"benchmark": "attention", "rows": rows,
                                   "memory": mem_rows}, env=env)
    harness.plot_panels(args.plot, [{
        "title": f"attention {mode}, {nt} thread(s)", "xlabel": "L", "logx": True,
        "ylabel": "ms per call (lower is better)", "logy": True,
        "series": {lib: ([r["L"] for r in rows if r["threads"] == nt and r["mode"] == mode
                          and f"{lib}_ms" in r],
                         [r[f"{lib}_ms"] for r in rows if r["threads"] == nt and r["mode"] == mode
                          and f"{lib}_ms" in r]) for lib in libs},
    } for nt in args.threads for mode in MODES],
        suptitle=f"scaled dot-product attention (1, {HEADS}, L, {D}) float32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
