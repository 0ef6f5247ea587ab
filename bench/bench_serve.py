"""Serving latency of a saved 784-256-128-10 MLP: C++ vs Python vs NumPy vs PyTorch.

The model (relu, relu, linear; float32) is saved once as model.safetensors.
Four forms answer the same requests, at batch 1 and 16:

* cpp: examples/serve (built here against the installed package with CMake)
  loads the file with ``matnet::load_model`` and calls ``Model::predict`` on
  the same rows over and over; each call is timed with steady_clock and the
  median call is reported;
* python: ``mn.load_model(path).predict(x)``;
* numpy: the same weights in plain NumPy (``np.maximum(x @ W1 + b1, 0)`` ...);
* torch: ``nn.Sequential`` of Linear/ReLU with the same weights, called under
  ``torch.inference_mode()`` (entered in each call, as a server would).

Each form runs in its own process on ``--threads`` threads (OpenBLAS,
libgomp and PyTorch worker pools never meet), one process per (form,
batch, threads) and round, the order of forms rotating between rounds. The
Python forms report the median over repeats of back-to-back loops of calls
(harness.time_median). Reported: the median over rounds of each form's
microseconds per call, and ratios form time / cpp time (> 1: C++ faster).

    python bench/bench_serve.py --quick                       # smoke run
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 bench/bench_serve.py --rounds 5 --json serve.json --plot serve.png
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

harness.clean_openblas_env()  # before NumPy loads OpenBLAS

import numpy as np  # noqa: E402

MLP = (784, 256, 128, 10)
BATCHES = (1, 16)
FORMS = ("cpp", "python", "numpy", "torch")
REPO = Path(__file__).resolve().parents[1]


def make_files(workdir: Path, batches) -> Path:
    """model.safetensors and x<b>.safetensors (b rows) in workdir."""
    import matnet as mn
    from safetensors.numpy import save_file

    acts = ["relu", "relu", None]
    model = mn.Sequential([mn.layers.Dense(fi, fo, activation=a, seed=i)
                           for i, (fi, fo, a) in enumerate(zip(MLP[:-1], MLP[1:], acts))])
    model.save(workdir / "model.safetensors")
    rng = np.random.default_rng(0)
    for b in batches:
        save_file({"x": rng.random((b, MLP[0]), dtype=np.float32), "y": np.zeros(b, np.int64)},
                  str(workdir / f"x{b}.safetensors"))
    return workdir / "model.safetensors"


def build_server(workdir: Path) -> Path:
    import matnet as mn

    build = workdir / "serve-build"
    for cmd in (["cmake", "-S", str(REPO / "examples" / "serve"), "-B", str(build),
                 "-DCMAKE_BUILD_TYPE=Release", f"-Dmatnet_DIR={mn.get_cmake_dir()}"],
                ["cmake", "--build", str(build), "-j", "2"]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"building examples/serve failed:\n{proc.stdout}\n{proc.stderr}")
    return build / "serve"


def child(form: str, workdir: Path, batch: int, threads: int, quick: bool) -> float:
    """Microseconds per call of ``form`` (runs inside its own process)."""
    from safetensors.numpy import load_file

    import matnet as mn

    torch = harness.load_torch() if form == "torch" else None
    x = load_file(str(workdir / f"x{batch}.safetensors"))["x"]
    model = mn.load_model(workdir / "model.safetensors", compile=False)
    params = [(layer.W, layer.b) for layer in model.layers]
    with harness.threads(threads, torch):
        if form == "python":
            fn = lambda: model.predict(x)  # noqa: E731
        elif form == "numpy":
            (w1, b1), (w2, b2), (w3, b3) = params

            def fn():
                h = np.maximum(x @ w1 + b1, 0)
                h = np.maximum(h @ w2 + b2, 0)
                return h @ w3 + b3
        else:
            nn = torch.nn
            net = nn.Sequential(nn.Linear(MLP[0], MLP[1]), nn.ReLU(), nn.Linear(MLP[1], MLP[2]),
                                nn.ReLU(), nn.Linear(MLP[2], MLP[3])).eval()
            with torch.no_grad():
                for lin, (w, b) in zip([net[0], net[2], net[4]], params):
                    lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
                    lin.bias.copy_(torch.from_numpy(b))
            xt = torch.from_numpy(x)

            def fn():
                with torch.inference_mode():
                    return net(xt)
        return 1e6 * harness.time_median(fn, repeat=3 if quick else 7,
                                         min_time=0.01 if quick else 0.05)


def run_form(form, server, workdir, batch, threads, quick) -> float:
    if form == "cpp":
        repeat = 2000 if quick else 20000
        proc = subprocess.run([str(server), str(workdir / "model.safetensors"),
                               str(workdir / f"x{batch}.safetensors"), "--batch", str(batch),
                               "--threads", str(threads), "--repeat", str(repeat)],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"serve failed: {proc.stderr}")
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("latency:"))
        return float(line.split()[1])
    proc = subprocess.run([sys.executable, __file__, "--child", form, "--workdir", str(workdir),
                           "--batch", str(batch), "--threads", str(threads)]
                          + (["--quick"] if quick else []),
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"{form} child failed:\n{proc.stderr}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["us"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_args(parser)
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3, --quick 1)")
    parser.add_argument("--child", choices=FORMS[1:], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        us = child(args.child, Path(args.workdir), args.batch, args.threads[0], args.quick)
        print(json.dumps({"us": us}))
        return 0
    rounds = args.rounds or (1 if args.quick else 3)
    env = harness.sanity_report()
    forms = [f for f in FORMS if f != "torch" or harness.load_torch(args) is not None]
    rows = []
    with tempfile.TemporaryDirectory(prefix="matnet-serve-") as tmp:
        workdir = Path(tmp)
        make_files(workdir, BATCHES)
        server = build_server(workdir)
        for nt in args.threads:
            for batch in BATCHES:
                per = harness.rotating_rounds(
                    forms, rounds,
                    lambda form: run_form(form, server, workdir, batch, nt, args.quick))
                row = {"batch": batch, "threads": nt}
                for form in forms:
                    row[f"{form}_us"] = statistics.median(per[form])
                    row[f"{form}_rounds_us"] = per[form]
                for form in forms[1:]:
                    row[f"x_{form}"] = statistics.median(
                        a / b for a, b in zip(per[form], per["cpp"]))
                rows.append(row)
                print(f"[bench_serve] batch {batch}, {nt} thread(s): " + ", ".join(
                    f"{f} {row[f'{f}_us']:.2f} us" for f in forms), file=sys.stderr, flush=True)
    C = harness.Column
    harness.print_table(
        rows, [C("batch"), C("threads", "thr")] + [C(f"{f}_us", f"{f} us", ".2f") for f in forms]
        + [C(f"x_{f}", f"x {f}", ".2f") for f in forms[1:]],
        title=f"\n== predict latency, MLP {'-'.join(map(str, MLP))} float32 (median of {rounds} "
              "round(s), one process per form; x form = form time / cpp time) ==")
    harness.write_json(args.json, {"benchmark": "serve", "rounds": rounds, "rows": rows}, env=env)
    harness.plot_panels(args.plot, [{
        "title": f"MLP {'-'.join(map(str, MLP))} predict latency, batch {b}", "xlabel": "threads",
        "ylabel": "us per call (lower is better)", "logy": True,
        "series": {f: ([r["threads"] for r in rows if r["batch"] == b],
                       [r[f"{f}_us"] for r in rows if r["batch"] == b]) for f in forms},
    } for b in BATCHES], suptitle="serving a saved model: C++ vs Python vs NumPy vs PyTorch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
