"""Data-parallel training over MPI (matnet.distributed).

The MPI runs are real jobs: ``mpiexec -n 2`` (the mpich wheel's, from the
test extra) started in a subprocess with a timeout, one OpenMP thread per
rank. Their results are compared with the same code run here as one process
(tests/distributed_job.py holds both). Skipped only when mpi4py or mpiexec is
missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import matnet as mn
import distributed_job as job

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

U32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff, 2**-24
RANKS = 2


def _mpiexec() -> str:
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install '.[mpi]')")
    found = mn.distributed.mpiexec()
    if not found:
        pytest.skip("no mpiexec (pip install mpich, or an MPI of the system)")
    return found


def run_mpi(args, cwd, timeout=120, ranks=RANKS):
    """``mpiexec -n ranks python args...`` with this matnet on the path and
    one kernel thread per rank (two ranks share CI's two cores)."""
    import matnet

    package_root = os.path.dirname(os.path.dirname(os.path.abspath(matnet.__file__)))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([package_root, TESTS_DIR, env.get("PYTHONPATH", "")])
    return subprocess.run([_mpiexec(), "-n", str(ranks), sys.executable, *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def mpi_results(tmp_path_factory):
    """The equality runs of distributed_job.py on two ranks, once per module."""
    out = tmp_path_factory.mktemp("mpi")
    proc = run_mpi([os.path.join(TESTS_DIR, "distributed_job.py"), str(out)], cwd=out)
    assert proc.returncode == 0, f"mpiexec failed:\n{proc.stdout}\n{proc.stderr}"
    ranks = [dict(np.load(out / f"rank{r}.npz")) for r in range(RANKS)]
    return {"ranks": ranks, "dir": out, "stdout": proc.stdout}


def _float32_bound(one32: np.ndarray, one64: np.ndarray) -> np.ndarray:
    """Allowed |two ranks - one process| per step, both in float32.

    The two runs compute the same exact numbers; they differ only in the
    order of the float32 sums (each rank sums its b rows of every gradient,
    then MPI adds the two partial sums, where one process sums 2b rows in
    its own blocking). Any order's rounding error is bounded by the same
    a-priori bound (gamma_n * sum |terms| per sum, then carried through the
    steps); the error of the one-process float32 run against float64,
    ``E_k``, is a sample of it. By the triangle inequality the two float32
    runs then differ by at most about 2 E_k; we allow 4 E_k, plus two
    roundings of the largest parameter (the last update's own rounding)."""
    err = np.abs(one32.astype(np.float64) - one64).max(axis=1)
    return 4 * err + 2 * U32 * np.abs(one64).max(axis=1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt_name", sorted(job.OPTIMIZERS))
@pytest.mark.parametrize("arch", job.ARCHS)
def test_two_ranks_batch_b_equal_one_process_batch_2b(mpi_results, arch, opt_name, dtype):
    # Dense layers, and Conv2D + pooling; after each of k = 6 steps.
    two = mpi_results["ranks"][0][f"steps_{arch}_{opt_name}_{dtype}"]
    one = np.stack(job.manual_steps(opt_name, np.dtype(dtype), 0, 1,
                                    RANKS * job.PER_RANK_BATCH, arch))
    assert two.shape == one.shape == (job.STEPS, one.shape[1])
    diff = np.abs(two.astype(np.float64) - one).max(axis=1)
    if dtype == "float64":
        rel = diff / np.abs(one).max(axis=1)
        assert (rel <= 1e-12).all(), f"{opt_name}: relative difference per step {rel}"
    else:
        one64 = np.stack(job.manual_steps(opt_name, np.float64, 0, 1,
                                          RANKS * job.PER_RANK_BATCH, arch))
        bound = _float32_bound(one, one64)
        assert (diff <= bound).all(), f"{opt_name}: per step {diff} > bound {bound}"


def test_every_rank_holds_the_same_parameters(mpi_results):
    r0, r1 = mpi_results["ranks"]
    for key in r0:
        if key not in ("before_broadcast", "dropout_mask"):
            np.testing.assert_array_equal(r0[key], r1[key], err_msg=key)
    # ...while each rank drew its own dropout masks (for its own rows)
    assert r0["dropout_mask"].shape == r1["dropout_mask"].shape
    assert not np.array_equal(r0["dropout_mask"], r1["dropout_mask"])


def test_broadcast_makes_ranks_started_from_different_seeds_identical(mpi_results):
    r0, r1 = mpi_results["ranks"]
    assert np.abs(r0["before_broadcast"] - r1["before_broadcast"]).max() > 0.1
    np.testing.assert_array_equal(r1["after_broadcast"], r0["before_broadcast"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_on_uneven_data_equals_one_process(mpi_results, dtype, tmp_path):
    # 103 rows, 5 per rank and step (10 a step, the last one 3: 1 + 2 rows),
    # 37 validation rows, shuffled by seed, job.EPOCHS epochs of Adam; the logged loss,
    # accuracy, validation and evaluate() are reduced over both ranks.
    one = job.uneven_fit(np.dtype(dtype), str(tmp_path), RANKS * job.PER_RANK_BATCH)
    two = mpi_results["ranks"][0]
    rtol = 1e-12 if dtype == "float64" else 1e-6
    for key, value in one.items():
        np.testing.assert_allclose(two[f"fit_{dtype}_{key}"], value, rtol=rtol, atol=rtol,
                                   err_msg=key)


def test_only_rank_0_prints_and_saves(mpi_results):
    epochs = job.EPOCHS
    lines = [ln for ln in mpi_results["stdout"].splitlines() if ln.startswith("epoch ")]
    assert len(lines) == 2 * epochs  # one fit per dtype, each printed once
    names = sorted(p.name for p in mpi_results["dir"].glob("ckpt-*"))
    assert names == [f"ckpt-rank0-{e}.npz" for e in range(1, epochs + 1)]


def test_a_failing_rank_ends_the_job_quickly(tmp_path):
    start = time.monotonic()
    proc = run_mpi([os.path.join(TESTS_DIR, "distributed_job.py"), str(tmp_path), "--fail"],
                   cwd=tmp_path, timeout=60)
    seconds = time.monotonic() - start
    assert proc.returncode != 0
    assert "rank 1: RuntimeError: boom on purpose" in proc.stderr, proc.stderr
    assert seconds < 30, f"the job took {seconds:.1f} s to end"


def test_cli_train_distributed(tmp_path):
    pytest.importorskip("sklearn")
    proc = run_mpi(["-m", "matnet", "train", "--distributed", "--epochs", "2",
                    "--out", str(tmp_path / "run"), "--no-progress"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("test accuracy: "), lines[-1]
    assert sum(line.startswith("epoch ") for line in lines) == 2  # rank 0 only
    assert "2 ranks" in proc.stdout
    model = mn.load_model(tmp_path / "run" / "model.safetensors")
    (_, _), (x_test, y_test) = mn.datasets.load_digits()
    assert lines[-1] == f"test accuracy: {model.evaluate(x_test, y_test)['accuracy']:.4f}"


def test_cli_train_distributed_on_mnist_files(tmp_path, rng):
    from test_datasets import write_mnist

    write_mnist(tmp_path, rng, n_train=50, n_test=21, gz=True)
    proc = run_mpi(["-m", "matnet", "train", "--distributed", "--data", "mnist", "--data-dir",
                    str(tmp_path), "--epochs", "1", "--hidden", "16", "--out",
                    str(tmp_path / "out"), "--no-progress"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("test accuracy: ")


# ------------------------------------------------------- one process, no mpiexec


def test_single_process_is_size_1():
    assert mn.distributed.init() == 1
    assert (mn.distributed.rank(), mn.distributed.size(), mn.distributed.is_main()) == (0, 1, True)
    assert mn.distributed.local_size() == 1
    mn.distributed.barrier()


def test_importing_matnet_does_not_import_mpi4py():
    code = "import matnet, sys; matnet.distributed.init(); print('mpi4py' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k not in job_launcher_vars()}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def job_launcher_vars():
    from matnet.distributed import _LAUNCHER_VARS

    return _LAUNCHER_VARS


def test_single_process_optimizer_and_collectives_are_identities(rng):
    model = job.make_model(np.float64)
    plain = job.make_model(np.float64)
    x, y = job.make_data(16)
    opt = mn.distributed.DistributedOptimizer(mn.optim.Adam(1e-2))
    ref = mn.optim.Adam(1e-2)
    for m, o in ((model, opt), (plain, ref)):
        _, grad = mn.losses.cross_entropy(m.forward(x, training=True), y)
        m.backward(grad)
        o.step(m)
    for p, q in zip(model.parameters(), plain.parameters()):
        np.testing.assert_array_equal(p, q)
    grads = [g.copy() for g in model.gradients()]
    for g, r in zip(grads, mn.distributed.allreduce_gradients(model)):
        np.testing.assert_array_equal(g, r)
    before = [p.copy() for p in model.parameters()]
    mn.distributed.broadcast_parameters(model)
    for p, q in zip(before, model.parameters()):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(mn.distributed.allreduce_sum([1.5, 2]), [1.5, 2])
    assert opt.iterations == 1 and opt.lr == 1e-2
    opt.lr = 5e-3
    assert opt.optimizer.lr == 5e-3
    assert repr(opt).startswith("DistributedOptimizer(Adam(")


def test_distributed_optimizer_saves_as_what_it_wraps(tmp_path):
    model = job.make_model(np.float32)
    model.compile(optimizer=mn.distributed.DistributedOptimizer("sgd"), loss="cross_entropy")
    x, y = job.make_data(20)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    model.save(tmp_path / "m.npz", include_optimizer=True)
    loaded = mn.load_model(tmp_path / "m.npz")
    assert type(loaded.optimizer) is mn.optim.SGD and loaded.optimizer.iterations == 3


@pytest.mark.parametrize("root", [1, -1, True, 0.5])
def test_broadcast_root_must_be_a_rank(root):
    with pytest.raises(ValueError, match="root must be a rank"):
        mn.distributed.broadcast_parameters(job.make_model(np.float32), root=root)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_backward_writes_into_given_gradient_arrays(rng, dtype):
    # What the fused buffer relies on: dw_out/db_out receive exactly the
    # gradients that fresh arrays would hold.
    x = rng.standard_normal((7, 5)).astype(dtype)
    w = rng.standard_normal((5, 3)).astype(dtype)
    y, z = mn.ops.dense_forward(x, w, np.zeros(3, dtype), "relu")
    gy = rng.standard_normal(y.shape).astype(dtype)
    dx, dw, db = mn.ops.dense_backward(gy, x, w, z, "relu")
    flat = np.full(5 * 3 + 3, np.nan, dtype)
    dx2, dw2, db2 = mn.ops.dense_backward(gy, x, w, z, "relu", dw_out=flat[:15].reshape(5, 3),
                                          db_out=flat[15:])
    assert np.shares_memory(dw2, flat) and np.shares_memory(db2, flat)
    np.testing.assert_array_equal(flat, np.concatenate([dw.ravel(), db]))
    np.testing.assert_array_equal(dx2, dx)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"dw_out": np.zeros((5, 4), np.float32)}, ValueError, "shape"),
    ({"db_out": np.zeros(3, np.float64)}, TypeError, "dtype"),
    ({"dw_out": [[0.0] * 3] * 5}, TypeError, "dw_out must be a NumPy array"),
    ({"dw_out": "part of x"}, ValueError, "overlaps an input"),
])
def test_dense_backward_refuses_bad_gradient_arrays(rng, kwargs, error, match):
    x = rng.standard_normal((7, 5)).astype(np.float32)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    gy = np.ones((7, 3), np.float32)
    if isinstance(kwargs.get("dw_out"), str):
        kwargs = {"dw_out": x.reshape(-1)[:15].reshape(5, 3)}
    with pytest.raises(error, match=match):
        mn.ops.dense_backward(gy, x, w, None, None, **kwargs)


def test_fused_buffer_holds_the_layers_gradients():
    from matnet.distributed import _fused_for

    model = job.make_model(np.float32)
    fused = _fused_for(model)
    x, y = job.make_data(9)
    _, grad = mn.losses.cross_entropy(model.forward(x.astype(np.float32), training=True), y)
    model.backward(grad)
    for g, view in zip(model.gradients(), fused.grads):
        assert g is view


def test_mpiexec_is_found_or_none():
    path = mn.distributed.mpiexec()
    assert path is None or os.access(path, os.X_OK)


def test_cli_distributed_flag_without_mpiexec_is_one_process(tmp_path, capsys, threads):
    pytest.importorskip("sklearn")
    from matnet import cli

    assert cli.main(["train", "--distributed", "--epochs", "1", "--out", str(tmp_path),
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "ranks" not in out and out.strip().splitlines()[-1].startswith("test accuracy: ")
