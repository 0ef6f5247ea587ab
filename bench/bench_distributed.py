"""Data-parallel training over MPI: does a second rank pay, and what does the reduction cost?

On synthetic MNIST-shaped data (60000 x 784 float32, 10 classes), a
784-256-128-10 ReLU MLP, Adam, global batch 512:

  * epoch: one ``fit`` epoch as 1 rank x 2 threads, 2 ranks x 1 thread
    (``mpiexec -n 2``, batch 256 per rank) and 1 rank x 1 thread, each
    configuration in its own processes, in rotating rounds; the median over
    rounds of each worker's median epoch (the slowest rank's time);
  * allreduce: fit's reduction (Dense's backward wrote the gradients into
    the fused buffer; one MPI_Allreduce of it, with the loss and counts in
    3 extra slots), ``matnet.distributed.allreduce_gradients`` (the same,
    plus one pass scaling by 1/ranks) and a raw ``MPI.Allreduce`` of the
    same bytes, interleaved in rounds on 2 ranks;
  * split: where a 2-rank step's time goes: compute (forward, loss,
    backward), wait (a barrier: the other rank still computing),
    communication (the fused allreduce) and the optimizer update;
  * overlap: the step with one fused allreduce after backward against
    PyTorch-DDP-style overlap, a non-blocking MPI_Iallreduce of each layer's
    gradients started as soon as that layer's backward is done.

    python bench/bench_distributed.py                      # everything, ~1-2 min
    python bench/bench_distributed.py --rounds 5 --json dist.json
    python bench/bench_distributed.py --quick              # 1 round, 2 epochs per worker

The workers are this script with ``--worker epoch|comm``; mpiexec is
``matnet.distributed.mpiexec()``: the mpich wheel's, else the one on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import harness

harness.clean_openblas_env()  # before NumPy loads OpenBLAS

import numpy as np  # noqa: E402

import matnet as mn  # noqa: E402

SIZES = (784, 256, 128, 10)
ROWS, GLOBAL_BATCH = 60000, 512
CONFIGS = [  # (label, ranks, threads per rank)
    ("1 rank x 2 threads", 1, 2),
    ("2 ranks x 1 thread", 2, 1),
    ("1 rank x 1 thread", 1, 1),
]


def build_model() -> mn.Sequential:
    layers = [mn.layers.Dense(a, b, activation="relu", seed=i)
              for i, (a, b) in enumerate(zip(SIZES[:-2], SIZES[1:-1]))]
    layers.append(mn.layers.Dense(SIZES[-2], SIZES[-1], init="glorot", seed=len(SIZES)))
    model = mn.Sequential(layers)
    model.compile(optimizer=mn.optim.Adam(1e-3), loss="cross_entropy", metrics=["accuracy"])
    return model


def synthetic(rows: int):
    rng = np.random.default_rng(0)
    return rng.random((rows, SIZES[0]), dtype=np.float32), rng.integers(0, SIZES[-1], rows)


def _max_over_ranks(value: float) -> float:
    """The largest ``value`` over the ranks (the value itself on one process)."""
    if mn.distributed.size() == 1:
        return value
    from mpi4py import MPI

    return mn.distributed._comm.allreduce(value, op=MPI.MAX)


# ------------------------------------------------------------------- workers


def worker_epoch(args) -> dict:
    """Median seconds of one fit epoch (the slowest rank's) over args.epochs."""
    mn.distributed.init()
    size = mn.distributed.size()
    x, y = synthetic(ROWS)
    model = build_model()
    per_rank = GLOBAL_BATCH // size
    model.fit(x[:GLOBAL_BATCH * 8], y[:GLOBAL_BATCH * 8], epochs=1, batch_size=per_rank,
              verbose=0, seed=0)  # warm up: page faults, thread start-up
    times = []
    for e in range(args.epochs):
        mn.distributed.barrier()
        t0 = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=per_rank, verbose=0, seed=e)
        times.append(_max_over_ranks(time.perf_counter() - t0))
    return {"ranks": size, "threads": mn.get_num_threads(), "epoch_s": statistics.median(times),
            "epochs_s": times}


def _lockstep(fns: dict, rounds: int, loops: int) -> dict:
    """Per-call seconds of each fn, timed in rounds on every rank in
    lockstep (same loop counts everywhere, a barrier before each block;
    the slowest rank's time). Returns name -> per-round list."""
    comm = mn.distributed._comm
    per = {name: [] for name in fns}
    names = list(fns)
    for name in names:  # warm up
        for _ in range(3):
            fns[name]()
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            comm.Barrier()
            t0 = time.perf_counter()
            for _ in range(loops):
                fns[name]()
            per[name].append(_max_over_ranks((time.perf_counter() - t0) / loops))
    return per


def _overlapped_step(model, x, y, comm, fused, layer_slices):
    """One step with per-layer non-blocking allreduces started during backward
    (the DDP design), then the update from the reduced buffer."""
    from mpi4py import MPI

    from matnet.distributed import _Reduced, unwrap

    out = model.forward(x, training=True)
    _, grad = mn.losses.cross_entropy(out, y)
    requests = []
    weight = 1.0 / comm.Get_size()
    for i in range(len(model.layers) - 1, -1, -1):
        layer = model.layers[i]
        grad = layer.backward(grad, need_input_grad=i > 0)
        first, last = layer_slices[i]
        for j, g in zip(range(first, last), layer.grads().values()):
            fused.pack_one(j, g, weight)
        if last > first:
            a, b = fused.offsets[first], fused.offsets[last]
            requests.append(comm.Iallreduce(MPI.IN_PLACE, fused.flat[a:b], op=MPI.SUM))
    MPI.Request.Waitall(requests)
    unwrap(model.optimizer).step(_Reduced(model.parameters(), fused.grads))


def worker_comm(args) -> dict:
    from mpi4py import MPI

    from matnet import distributed as dist

    dist.init()
    comm = dist._comm
    size, per_rank = dist.size(), GLOBAL_BATCH // dist.size()
    x, y = synthetic(GLOBAL_BATCH * 4)
    model = build_model()
    lo = dist.rank() * per_rank
    xb, yb = x[lo:lo + per_rank], y[lo:lo + per_rank]
    fused = dist._fused_for(model)  # from now on backward writes into it
    out = model.forward(xb, training=True)
    model.backward(mn.losses.cross_entropy(out, yb)[1], need_input_grad=False)
    raw = np.zeros_like(fused.flat)
    ctx = dist.FitContext()

    # 1. the reduction against raw MPI of the same bytes
    per = _lockstep({
        "raw MPI.Allreduce": lambda: comm.Allreduce(MPI.IN_PLACE, raw, op=MPI.SUM),
        "allreduce_gradients": lambda: dist.allreduce_gradients(model),
        "fit's reduce": lambda: ctx.reduce(model, per_rank, ()),
    }, args.rounds * 3, loops=200)
    ref = per["raw MPI.Allreduce"]
    comm_rows = [{"what": name, "us": statistics.median(v) * 1e6,
                  "ratio": statistics.median(a / b for a, b in zip(v, ref))}
                 for name, v in per.items()]

    # 2. where a step's time goes
    phases = {"compute": [], "wait": [], "allreduce": [], "update": []}
    steps = 20 if args.quick else 60
    for s in range(steps + 3):
        t0 = time.perf_counter()
        out = model.forward(xb, training=True)
        _, grad = mn.losses.cross_entropy(out, yb)
        model.backward(grad, need_input_grad=False)
        t1 = time.perf_counter()
        comm.Barrier()
        t2 = time.perf_counter()
        _, reduced = ctx.reduce(model, per_rank, (0.0, 0, 0))
        t3 = time.perf_counter()
        ctx.update(model, reduced)
        t4 = time.perf_counter()
        if s >= 3:
            for key, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                phases[key].append(dt)
    split = {k: statistics.median(v) * 1e3 for k, v in phases.items()}

    # 3. overlap: fused allreduce after backward vs a per-layer Iallreduce during it
    layer_slices, j = [], 0
    for layer in model.layers:
        n = len(layer.params())
        layer_slices.append((j, j + n))
        j += n

    def fused_step():
        out = model.forward(xb, training=True)
        _, grad = mn.losses.cross_entropy(out, yb)
        model.backward(grad, need_input_grad=False)
        ctx.update(model, ctx.reduce(model, per_rank, ())[1])

    per = _lockstep({"fused allreduce after backward": fused_step,
                     "per-layer Iallreduce (overlap)":
                         lambda: _overlapped_step(model, xb, yb, comm, fused, layer_slices)},
                    args.rounds * 3, loops=10 if args.quick else 30)
    ref = per["fused allreduce after backward"]
    overlap_rows = [{"what": name, "ms": statistics.median(v) * 1e3,
                     "ratio": statistics.median(a / b for a, b in zip(v, ref))}
                    for name, v in per.items()]
    return {"bytes": int(fused.flat.nbytes), "allreduce": comm_rows, "split_ms": split,
            "overlap": overlap_rows, "ranks": size}


# -------------------------------------------------------------------- driver


def _mpiexec() -> str:
    found = mn.distributed.mpiexec()
    if not found:
        sys.exit("bench_distributed: no mpiexec; pip install 'matnet[mpi]'")
    return found


def launch(worker: str, ranks: int, threads: int, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", worker,
           "--epochs", str(args.epochs), "--rounds", str(args.rounds)]
    if args.quick:
        cmd.append("--quick")
    if ranks > 1:
        cmd = [_mpiexec(), "-n", str(ranks), *cmd]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        sys.exit(f"worker failed: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=("epoch", "comm"), help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds over the configurations (epoch); x3 for the comm timings")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per worker")
    parser.add_argument("--quick", action="store_true", help="1 round, 2 epochs")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.epochs = 1, 2
    if args.worker:
        result = worker_epoch(args) if args.worker == "epoch" else worker_comm(args)
        if mn.distributed.is_main():
            print(json.dumps(result))
        return

    env = harness.sanity_report()
    epoch = {label: [] for label, _, _ in CONFIGS}
    for r in range(args.rounds):
        k = r % len(CONFIGS)
        for label, ranks, threads in CONFIGS[k:] + CONFIGS[:k]:
            harness.settle(0.5)
            epoch[label].append(launch("epoch", ranks, threads, args)["epoch_s"])
    med = {label: statistics.median(v) for label, v in epoch.items()}
    best = {label: min(v) for label, v in epoch.items()}
    ref = med["1 rank x 2 threads"]
    print(f"\nMNIST-size epoch ({ROWS} x {SIZES[0]}, {'-'.join(map(str, SIZES))}, "
          f"global batch {GLOBAL_BATCH}, Adam); median over {args.rounds} round(s)")
    rows = [{"config": label, "s": med[label], "vs": med[label] / ref, "best": best[label],
             "best_vs": best[label] / best["1 rank x 2 threads"],
             "rounds": " ".join(f"{t:.2f}" for t in epoch[label])} for label, _, _ in CONFIGS]
    harness.print_table(rows, [harness.Column("config", "configuration"),
                               harness.Column("s", "median s", ".3f"),
                               harness.Column("vs", "/ 1x2", ".3f"),
                               harness.Column("best", "best s", ".3f"),
                               harness.Column("best_vs", "/ 1x2", ".3f"),
                               harness.Column("rounds", "per round s")])
    ratio = med["2 ranks x 1 thread"] / ref
    print(f"2 ranks x 1 thread / 1 rank x 2 threads = {ratio:.3f} median, "
          f"{best['2 ranks x 1 thread'] / best['1 rank x 2 threads']:.3f} best rounds "
          "(target <= 1.15)")

    comm = launch("comm", 2, 1, args)
    print(f"\nallreduce of the gradients ({comm['bytes'] / 1e6:.2f} MB float32) on 2 ranks")
    harness.print_table(comm["allreduce"], [harness.Column("what"),
                                            harness.Column("us", "us per call", ".1f"),
                                            harness.Column("ratio", "/ raw MPI", ".3f")])
    print("\nstep time split (2 ranks x 1 thread, batch 256 per rank), median ms:")
    print("  " + "  ".join(f"{k} {v:.3f}" for k, v in comm["split_ms"].items()))
    print("\noverlap experiment (ms per step):")
    harness.print_table(comm["overlap"], [harness.Column("what"),
                                          harness.Column("ms", "ms per step", ".3f"),
                                          harness.Column("ratio", "/ fused", ".3f")])
    harness.write_json(args.json, {"epoch": rows, "epoch_ratio_2x1_vs_1x2": ratio, **comm},
                       env=env)


if __name__ == "__main__":
    main()
