"""What tests/test_distributed.py runs under ``mpiexec -n 2`` (and, for the
single-process references, imports): small training runs whose parameters
after every step are written to ``OUT/rank<r>.npz``.

    mpiexec -n 2 python tests/distributed_job.py OUT          # the equality runs
    mpiexec -n 2 python tests/distributed_job.py OUT --fail   # rank 1 raises mid-epoch
"""

from __future__ import annotations

import os
import sys
from typing import Dict, List, Tuple

import numpy as np

import matnet as mn

FEATURES, HIDDEN, CLASSES = 12, 16, 4
STEPS, PER_RANK_BATCH = 6, 5          # k >= 5 steps of b rows per rank
EPOCHS = 3
UNEVEN_ROWS, UNEVEN_VAL = 103, 37     # no multiple of the batch or of 2 ranks
ARCHS = ("dense", "conv")
OPTIMIZERS = {
    "sgd_momentum": lambda: mn.optim.SGD(0.05, momentum=0.9),
    "adam": lambda: mn.optim.Adam(1e-2),
}


def make_model(dtype, seed: int = 0, arch: str = "dense") -> mn.Sequential:
    if arch == "conv":
        # The 12 features as a 2-channel 2x3 image: a padded 3x3 convolution
        # (its dW is a per-image GEMM sum, copied into the fused buffer), a
        # 2x2 average pool over a grouped convolution, then the classifier.
        return mn.Sequential([
            mn.layers.Reshape((2, 2, 3)),
            mn.layers.Conv2D(2, 6, 3, padding=1, activation="relu", seed=seed, dtype=dtype),
            mn.layers.Conv2D(6, 6, (1, 2), groups=3, activation="tanh", seed=seed + 1,
                             dtype=dtype),
            mn.layers.AvgPool2D((2, 1)),
            mn.layers.Flatten(),
            mn.layers.Dense(12, CLASSES, seed=seed + 2, dtype=dtype),
        ])
    return mn.Sequential([
        mn.layers.Dense(FEATURES, HIDDEN, activation="relu", seed=seed, dtype=dtype),
        mn.layers.Dense(HIDDEN, HIDDEN, activation="tanh", seed=seed + 1, dtype=dtype),
        mn.layers.Dense(HIDDEN, CLASSES, seed=seed + 2, dtype=dtype),
    ])


def make_data(rows: int, seed: int = 7) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, FEATURES)), rng.integers(0, CLASSES, rows)


def manual_steps(opt_name: str, dtype, rank: int, size: int, batch: int,
                 arch: str = "dense") -> List[np.ndarray]:
    """STEPS steps of a hand-written loop with a DistributedOptimizer; each
    global batch of size*batch rows is split into equal rank shards. Returns
    all parameters, flattened, after every step."""
    model = make_model(dtype, arch=arch)
    opt = mn.distributed.DistributedOptimizer(OPTIMIZERS[opt_name]())
    x, y = make_data(STEPS * size * batch)
    x = x.astype(dtype)
    trail = []
    for s in range(STEPS):
        lo = (s * size + rank) * batch
        out = model.forward(x[lo:lo + batch], training=True)
        _, grad = mn.losses.cross_entropy(out, y[lo:lo + batch])
        model.backward(grad, need_input_grad=False)
        opt.step(model)
        trail.append(np.concatenate([p.ravel() for p in model.parameters()]))
    return trail


def uneven_fit(dtype, out_dir: str, batch: int) -> Dict[str, np.ndarray]:
    """EPOCHS of fit on 103 rows, ``batch`` rows per rank (10 a step: the last holds 3), Adam,
    validation on 37 rows, EarlyStopping and a per-rank checkpoint path."""
    model = make_model(dtype)
    model.compile(optimizer=mn.optim.Adam(1e-2), loss="cross_entropy", metrics=["accuracy"])
    x, y = make_data(UNEVEN_ROWS)
    xv, yv = make_data(UNEVEN_VAL, seed=8)
    ckpt = os.path.join(out_dir, f"ckpt-rank{mn.distributed.rank()}-{{epoch}}.npz")
    callbacks = [mn.callbacks.EarlyStopping("val_loss", patience=1, restore_best=False),
                 mn.callbacks.ModelCheckpoint(ckpt, save_best_only=False)]
    history = model.fit(x, y, epochs=EPOCHS, batch_size=batch,
                        validation_data=(xv, yv), seed=3, callbacks=callbacks, verbose=2)
    scores = model.evaluate(xv, yv, batch_size=8)
    result = {f"history_{k}": np.array(v) for k, v in history.history.items()}
    result["params"] = np.concatenate([p.ravel() for p in model.parameters()])
    result["evaluate"] = np.array([scores["loss"], scores["accuracy"]])
    return result


def main(out_dir: str, fail: bool) -> None:
    mn.distributed.init()
    rank, size = mn.distributed.rank(), mn.distributed.size()
    if fail:
        model = make_model(np.float32)
        model.compile(optimizer="sgd", loss="cross_entropy")
        x, y = make_data(4000)

        backward, calls = model.backward, []

        def failing_backward(grad, need_input_grad=True):
            calls.append(1)
            if rank == 1 and len(calls) == 700:  # in the second epoch
                raise RuntimeError("boom on purpose")
            return backward(grad, need_input_grad)

        model.backward = failing_backward
        model.fit(x, y, epochs=1000, batch_size=4, verbose=0)
        return
    result: Dict[str, np.ndarray] = {}
    for arch in ARCHS:
        for dtype in (np.float32, np.float64):
            for name in OPTIMIZERS:
                trail = manual_steps(name, dtype, rank, size, PER_RANK_BATCH, arch)
                result[f"steps_{arch}_{name}_{np.dtype(dtype).name}"] = np.stack(trail)
    # Different seeds per rank, then rank 0's parameters everywhere.
    model = make_model(np.float64, seed=100 + rank)
    result["before_broadcast"] = np.concatenate([p.ravel() for p in model.parameters()])
    mn.distributed.broadcast_parameters(model)
    result["after_broadcast"] = np.concatenate([p.ravel() for p in model.parameters()])
    for dtype in (np.float32, np.float64):
        for key, value in uneven_fit(dtype, out_dir, PER_RANK_BATCH).items():
            result[f"fit_{np.dtype(dtype).name}_{key}"] = value
    # seed=None and Dropout: the shuffling seed comes from rank 0, the
    # dropout masks differ per rank, the parameters stay the same everywhere.
    model = mn.Sequential([mn.layers.Dense(FEATURES, HIDDEN, activation="relu", seed=0),
                           mn.layers.Dropout(0.3, seed=1), mn.layers.Dense(HIDDEN, CLASSES)])
    model.compile(optimizer="adam", loss="cross_entropy")
    model.fit(*make_data(UNEVEN_ROWS), epochs=2, batch_size=PER_RANK_BATCH, verbose=0)
    result["dropout_no_seed_params"] = np.concatenate([p.ravel() for p in model.parameters()])
    result["dropout_mask"] = model.layers[1].forward(np.ones((8, HIDDEN), np.float32), True)
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **result)


if __name__ == "__main__":
    main(sys.argv[1], "--fail" in sys.argv[2:])
