"""Shared benchmark harness for the scripts in bench/.

Every bench script is run as ``python bench/bench_x.py`` (so this module is
importable as ``harness``) and follows the same pattern::

    import harness                     # imports nothing heavy
    harness.clean_openblas_env()       # re-execs without OPENBLAS_* overrides
    import numpy as np                 # only now: OpenBLAS reads its env at load

    parser = argparse.ArgumentParser(description=...)
    harness.add_common_args(parser)    # --json --plot --threads --quick --repeat --no-torch
    args = parser.parse_args()
    env = harness.sanity_report()      # prints BLAS core type, matnet ISA, warnings
    torch = harness.load_torch(args)   # module or None
    for nt in args.threads:
        with harness.threads(nt, torch):   # NumPy's BLAS, matnet and torch all on nt
            t = harness.time_median(lambda: np.dot(a, b), repeat=args.repeat)
    harness.print_table(rows, columns)
    harness.write_json(args.json, {"results": rows}, env=env)
    harness.plot_panels(args.plot, panels)

Timing rule: median of warm repeats, each repeat long enough (``min_time``)
that timer resolution and call overhead do not matter. The machine these run
on is shared and noisy, so scripts compare matnet with NumPy *in the same
process, side by side*, and report ratios; absolute times are not comparable
across runs.

Helpers:
  clean_openblas_env()   re-exec the script without OPENBLAS_CORETYPE /
                         OPENBLAS_L2_SIZE (which would make NumPy's OpenBLAS
                         use a slower kernel); must run before NumPy loads.
  time_median(fn, ...)   median seconds per call of fn().
  gflops(flop, s)        flop / s / 1e9.
  settle(seconds)        sleep so other libraries' spinning worker threads
                         go idle before the next library is timed.
  rotating_rounds(names, rounds, measure)  measure(name) for every name in
                         each round, the order rotating: per-name samples.
  interleaved(fns, ...)  time several libraries in rounds (order rotating,
                         settling between them): median (or best) times and
                         median per-round ratios to a reference library.
  sanity_report()        dict (and stderr lines) describing the environment.
  add_common_args(p)     the common command-line options.
  add_stat_arg(p)        --stat median|min, the statistic kept over rounds.
  load_torch(args)       torch if installed and not --no-torch, else None.
  threads(n, torch)      context manager running everything on n threads.
  print_table(rows, cols) fixed-width table of dict rows.
  write_json(path, ...)  results + environment as JSON (no-op if path is None).
  plot_panels(path, ...) PNG of one or more line-plot panels (matplotlib, Agg).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

__all__ = [
    "OPENBLAS_OVERRIDES",
    "Column",
    "add_common_args",
    "add_stat_arg",
    "parse_sectioned_args",
    "clean_openblas_env",
    "gflops",
    "interleaved",
    "load_torch",
    "plot_panels",
    "print_table",
    "rotating_rounds",
    "sanity_report",
    "settle",
    "threads",
    "time_median",
    "write_json",
]

#: Environment variables that force OpenBLAS onto a kernel or cache size other
#: than the one it would detect; set on some of these machines, they make
#: NumPy look slower than it is. Benchmarks drop them from their own process.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

_REEXEC_MARK = "MATNET_BENCH_REEXEC"


def clean_openblas_env() -> None:
    """Re-execute the running script without the OpenBLAS overrides.

    OpenBLAS reads ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` once, when
    NumPy is first imported, so they cannot be dropped afterwards: call this
    at the top of a bench script, before importing NumPy. The change applies
    to this process only (tests and CI are not affected). Does nothing when
    neither variable is set, or when NumPy is already imported (then
    ``sanity_report`` warns instead).
    """
    present = [v for v in OPENBLAS_OVERRIDES if v in os.environ]
    if not present or "numpy" in sys.modules or os.environ.get(_REEXEC_MARK):
        return
    env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_OVERRIDES}
    env[_REEXEC_MARK] = "1"
    print(f"[harness] re-running without {', '.join(present)} (bench process only)",
          file=sys.stderr, flush=True)
    # orig_argv keeps the interpreter options (-c, -m, -X ...) of this run.
    argv = list(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)


def time_median(
    fn: Callable[[], Any],
    *,
    repeat: int = 7,
    warmup: int = 2,
    min_time: float = 0.02,
) -> float:
    """Median wall-clock seconds of one call of ``fn()``.

    ``warmup`` untimed calls first (page faults, caches, thread start-up);
    then ``repeat`` timed repeats, each running ``fn`` ``loops`` times back to
    back, with ``loops`` chosen once so a repeat lasts at least ``min_time``
    seconds. Returns the median over repeats of (repeat time / loops).
    """
    if repeat < 1:
        raise ValueError(f"time_median: repeat must be >= 1, got {repeat}")
    for _ in range(max(warmup, 0)):
        fn()
    loops = 1
    while True:  # calibrate: double until one repeat is long enough
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time or loops >= 1 << 20:
            break
        loops *= 2 if dt <= 0 else max(2, min(16, int(min_time / dt) + 1))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter() - t0) / loops)
    return statistics.median(samples)


def settle(seconds: float = 0.25) -> None:
    """Sleep briefly before timing a different library with several threads.

    After a parallel call, OpenMP runtimes (matnet's, PyTorch's own copy) and
    OpenBLAS keep their worker threads spinning for a while (OpenBLAS: up to
    ~0.1 s). On a machine with few cores those spinners steal the cores the
    next library's threads need, so timing library B right after library A
    measures A's spinning, not B. A short sleep lets them go to sleep.
    """
    time.sleep(seconds)


def rotating_rounds(
    names: Sequence[str], rounds: int, measure: Callable[[str], float]
) -> dict[str, list[float]]:
    """``measure(name)`` for every name in each of ``rounds`` rounds, the
    order rotating from round to round (no name always first, or always after
    the same one); returns each name's samples in round order."""
    names = list(names)
    per: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names) if names else 0
        for name in names[k:] + names[:k]:
            per[name].append(measure(name))
    return per


def interleaved(
    fns: dict[str, Callable[[], Any]],
    rounds: int,
    *,
    stat: str = "median",
    ref: Optional[str] = None,
    settle_s: float = 0.3,
    **timing: Any,
) -> tuple[dict[str, float], dict[str, float], dict[str, list[float]]]:
    """Time several contenders (label -> fn) in interleaved rounds.

    Each round times every contender once, as one block (``time_median(fn,
    **timing)``: all its repeats back to back), sleeping ``settle_s`` before
    each block so the previous library's spinning worker threads go idle;
    the order rotates from round to round, so no library always runs first
    or always follows the same one. Load on a shared machine drifts within
    seconds; interleaving makes it hit all contenders alike.

    ``stat="median"``: times are the medians over rounds and the ratios the
    medians of the per-round ratios ``time[name] / time[ref]`` (two
    measurements taken back to back, under the same load). ``stat="min"``:
    each contender's best round, and the ratios of the bests. Ratios (> 1:
    ``ref`` faster) are returned for every contender but ``ref``, and only
    when ``ref`` is one of them.

    Returns ``(times, ratios, samples)``: seconds per call, ratios, and the
    per-round seconds of each contender.
    """
    if stat not in ("median", "min"):
        raise ValueError(f"interleaved: stat must be 'median' or 'min', got {stat!r}")
    if rounds < 1:
        raise ValueError(f"interleaved: rounds must be >= 1, got {rounds}")
    names = list(fns)

    def measure(name: str) -> float:
        settle(settle_s)
        return time_median(fns[name], **timing)

    per = rotating_rounds(names, rounds, measure)
    others = [name for name in names if ref in per and name != ref]
    if stat == "min":
        times = {name: min(v) for name, v in per.items()}
        ratios = {name: times[name] / times[ref] for name in others}
    else:
        times = {name: statistics.median(v) for name, v in per.items()}
        ratios = {name: statistics.median(a / b for a, b in zip(per[name], per[ref]))
                  for name in others}
    return times, ratios, per


def gflops(flop: float, seconds: float) -> float:
    """Throughput in GFLOP/s (``nan`` for a zero time)."""
    return flop / seconds / 1e9 if seconds > 0 else float("nan")


def _blas_info() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [
        {k: d.get(k) for k in ("user_api", "internal_api", "prefix", "version",
                               "architecture", "threading_layer", "num_threads", "filepath")}
        for d in threadpool_info()
    ]


def sanity_report(*, file=sys.stderr, quiet: bool = False) -> dict[str, Any]:
    """Describe (and print) what the numbers will be measured on.

    Reports NumPy's BLAS (library, version, the OpenBLAS kernel/core type it
    picked, threading layer) via threadpoolctl, matnet's ISA path and GEMM
    kernels, torch if already imported, and warns when OpenBLAS overrides or
    MATNET_ISA are set, or threadpoolctl is missing. Returns the same as a
    JSON-able dict.
    """
    import numpy as np

    warnings: list[str] = []
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "env": {k: os.environ.get(k) for k in (*OPENBLAS_OVERRIDES, "OMP_NUM_THREADS",
                                                "MATNET_ISA") if k in os.environ},
    }
    blas = _blas_info()
    info["threadpools"] = blas
    if not blas:
        warnings.append("threadpoolctl is not installed: cannot report or limit NumPy's BLAS "
                        "threads (pip install threadpoolctl)")
    for v in OPENBLAS_OVERRIDES:
        if v in os.environ:
            warnings.append(f"{v}={os.environ[v]} is set: NumPy's OpenBLAS may run a slower "
                            "kernel than this CPU allows; unset it for this command")
    if "MATNET_ISA" in os.environ:
        warnings.append(f"MATNET_ISA={os.environ['MATNET_ISA']} forces matnet's kernel path")
    try:
        import matnet as mn

        info["matnet"] = {"version": mn.__version__, **mn.cpu_info()}
    except Exception as exc:  # a bench may run without matnet (e.g. torch-only peers)
        info["matnet"] = None
        warnings.append(f"matnet not importable: {exc}")
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads()}
    info["warnings"] = warnings
    if not quiet:
        print(f"[env] python {info['python']}, numpy {info['numpy']}, {info['cpu_count']} CPUs",
              file=file)
        for d in blas:
            print(f"[env] {d['user_api']}: {d['internal_api']} {d['version']} "
                  f"core={d['architecture']} threading={d['threading_layer']} "
                  f"threads={d['num_threads']}  ({os.path.basename(str(d['filepath']))})",
                  file=file)
        if info["matnet"]:
            m = info["matnet"]
            print(f"[env] matnet {m['version']}: isa={m['isa']} threads={m['threads']} "
                  f"kernels={m.get('gemm_kernel_float32')}, {m.get('gemm_kernel_float64')}",
                  file=file)
        if "torch" in info:
            print(f"[env] torch {info['torch']['version']}", file=file)
        for w in warnings:
            print(f"[env] WARNING: {w}", file=file)
        file.flush()
    return info


def add_common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options every bench script shares; returns the parser."""
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="write results and environment to this JSON file")
    parser.add_argument("--plot", metavar="PATH", default=None,
                        help="write a PNG plot of the results (needs matplotlib)")
    parser.add_argument("--threads", metavar="N", type=int, nargs="+", default=[1, 2],
                        help="thread counts to measure (default: 1 2)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer sizes and repeats: a smoke run in seconds")
    parser.add_argument("--repeat", metavar="R", type=int, default=None,
                        help="timed repeats per measurement (median is reported)")
    parser.add_argument("--no-torch", action="store_true",
                        help="skip PyTorch even when it is installed")
    return parser


def add_stat_arg(parser: argparse.ArgumentParser) -> None:
    """``--stat median|min``: the statistic kept over interleaved rounds."""
    parser.add_argument(
        "--stat", choices=["median", "min"], default="median",
        help="statistic over rounds: median (default; what a user saw on the day) or min "
             "(each library's best round: what the code does when it gets its cores)")


def parse_sectioned_args(parser: argparse.ArgumentParser, sections: Sequence[str],
                         argv: Optional[Sequence[str]], *, repeat: tuple[int, int]
                         ) -> tuple[argparse.Namespace, list[str]]:
    """Common args, ``--only SECTION`` (repeatable), ``--rounds`` (default 3,
    --quick 1) and ``--stat``; parses ``argv``. ``repeat`` = (quick, full)
    default for ``--repeat``. Returns (args, the sections to run, in order)."""
    add_common_args(parser)
    parser.add_argument("--only", action="append", choices=list(sections), default=None,
                        help="run this section only (repeatable; default: all)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved rounds per case (default 3, --quick 1)")
    add_stat_arg(parser)
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = repeat[0] if args.quick else repeat[1]
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    return args, [s for s in sections if args.only is None or s in args.only]


def load_torch(args: Optional[argparse.Namespace] = None):
    """The torch module when installed (and not ``--no-torch``), else None."""
    if args is not None and getattr(args, "no_torch", False):
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


@contextlib.contextmanager
def threads(n: int, torch=None) -> Iterator[None]:
    """Run the body with NumPy's BLAS, matnet and torch all on ``n`` threads.

    Uses threadpoolctl for BLAS/OpenMP pools (when installed),
    ``matnet.set_num_threads`` and ``torch.set_num_threads``; restores all
    of them on exit.
    """
    if n < 1:
        raise ValueError(f"threads: n must be >= 1, got {n}")
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=n))
        except ImportError:
            pass
        try:
            import matnet as mn

            before = mn.get_num_threads()
            mn.set_num_threads(n)
            stack.callback(mn.set_num_threads, before)
        except ImportError:
            pass
        if torch is not None:
            tb = torch.get_num_threads()
            torch.set_num_threads(n)
            stack.callback(torch.set_num_threads, tb)
        yield


class Column:
    """One column of ``print_table``: dict key, header and format spec."""

    def __init__(self, key: str, header: Optional[str] = None, fmt: str = "") -> None:
        self.key = key
        self.header = header if header is not None else key
        self.fmt = fmt

    def render(self, row: dict[str, Any]) -> str:
        v = row.get(self.key)
        if v is None:
            return "-"
        if isinstance(v, float) and v != v:  # NaN
            return "-"
        try:
            return format(v, self.fmt)
        except (TypeError, ValueError):
            return str(v)


def print_table(
    rows: Sequence[dict[str, Any]],
    columns: Iterable[Column | str],
    *,
    title: Optional[str] = None,
    file=sys.stdout,
) -> None:
    """Print dict rows as a fixed-width table (strings left, numbers right)."""
    cols = [c if isinstance(c, Column) else Column(c) for c in columns]
    cells = [[c.render(r) for c in cols] for r in rows]
    widths = [max([len(c.header)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    numeric = [all(isinstance(r.get(c.key), (int, float)) or r.get(c.key) is None for r in rows)
               for c in cols]

    def line(parts: Sequence[str]) -> str:
        return "  ".join(p.rjust(w) if num else p.ljust(w)
                         for p, w, num in zip(parts, widths, numeric)).rstrip()

    if title:
        print(title, file=file)
    print(line([c.header for c in cols]), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for row in cells:
        print(line(row), file=file)
    file.flush()


def write_json(path: Optional[str], payload: dict[str, Any], *,
               env: Optional[dict[str, Any]] = None) -> None:
    """Write ``payload`` plus the command line, UTC time and ``env`` as JSON."""
    if not path:
        return
    doc = {
        "argv": sys.argv,
        "utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "env": env,
        **payload,
    }
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, default=float)
        fh.write("\n")
    print(f"wrote {path}", file=sys.stderr)


def plot_panels(
    path: Optional[str],
    panels: Sequence[dict[str, Any]],
    *,
    suptitle: Optional[str] = None,
    ncols: int = 2,
) -> None:
    """Save a PNG with one line plot per panel (no-op if path is None).

    Each panel is a dict: ``title``, ``xlabel``, ``ylabel``, ``series``
    (mapping label -> (xs, ys); xs may be numbers or category strings),
    optional ``logx`` / ``logy`` (bool) and ``hline`` (y of a reference line).
    matplotlib is imported here, with the Agg backend, so scripts without
    ``--plot`` never need it.
    """
    if not path:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(panels), 1)
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.0 * ncols, 4.0 * nrows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        for label, (xs, ys) in panel["series"].items():
            xs = list(xs)
            categorical = any(isinstance(x, str) for x in xs)
            pos = list(range(len(xs))) if categorical else xs
            ax.plot(pos, list(ys), marker="o", label=label)
            if categorical:
                ax.set_xticks(pos)
                ax.set_xticklabels(xs, rotation=45, ha="right", fontsize=7)
        if panel.get("logx"):
            ax.set_xscale("log", base=2)
        if panel.get("logy"):
            ax.set_yscale("log")
        if panel.get("hline") is not None:
            ax.axhline(panel["hline"], color="grey", linestyle="--", linewidth=1)
        ax.set_title(panel.get("title", ""))
        ax.set_xlabel(panel.get("xlabel", ""))
        ax.set_ylabel(panel.get("ylabel", ""))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}", file=sys.stderr)
