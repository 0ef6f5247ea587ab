"""Thread control, CPU information and ISA selection (matnet._runtime, runtime.cpp)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import matnet as mn


def run_python(code: str, **env_changes: str | None) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter with the environment changed as given
    (a value of None removes the variable)."""
    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)


def test_set_and_get_num_threads(threads):
    for n in (1, 2, 3, 1):
        mn.set_num_threads(n)
        assert mn.get_num_threads() == n
        assert mn.cpu_info()["threads"] == n


@pytest.mark.parametrize("bad", [0, -1])
def test_set_num_threads_rejects_non_positive(bad, threads):
    with pytest.raises(ValueError, match=str(bad)):
        mn.set_num_threads(bad)


@pytest.mark.parametrize("bad", [1.5, "2", None, True])
def test_set_num_threads_rejects_non_int(bad, threads):
    with pytest.raises(TypeError, match="int"):
        mn.set_num_threads(bad)


def test_set_num_threads_refuses_numpy_int(threads):
    # np.int64 is not an int subclass: it is refused with a TypeError, never misread.
    with pytest.raises(TypeError):
        mn.set_num_threads(np.int64(2))


def test_cpu_info_contents():
    info = mn.cpu_info()
    assert info["isa"] in ("generic", "avx2", "avx512")
    assert info["supported_isas"]["generic"] is True
    assert info["supported_isas"][info["isa"]] is True
    assert isinstance(info["threads"], int) and info["threads"] >= 1
    assert info["max_cpus"] >= 1
    assert info["gemm_kernel_float32"].startswith("sgemm_")
    assert info["gemm_kernel_float64"].startswith("dgemm_")
    # The avx512 table keeps the AVX2 microkernels (AVX-512 adds the sup ones).
    microkernel_isa = {"avx512": "avx2"}.get(info["isa"], info["isa"])
    assert microkernel_isa in info["gemm_kernel_float32"] or info["isa"] == "generic"
    info["threads"] = -5  # a copy: changing it changes nothing
    assert mn.cpu_info()["threads"] >= 1


def test_threadpoolctl_sees_and_limits_matnet(threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    mn.set_num_threads(2)
    apis = {d["user_api"] for d in threadpoolctl.threadpool_info()}
    assert "openmp" in apis, f"matnet's OpenMP runtime not visible to threadpoolctl: {apis}"
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert mn.get_num_threads() == 1
        a = np.ones((200, 200), np.float32)
        np.testing.assert_allclose(mn.ops.matmul(a, a), 200.0)
    assert mn.get_num_threads() == 2


@pytest.mark.parametrize("n", ["1", "2", "3"])
def test_omp_num_threads_is_honoured(n):
    proc = run_python("import matnet as mn; print(mn.get_num_threads(), mn.cpu_info()['threads'])",
                      OMP_NUM_THREADS=n)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [n, n]


def test_matnet_isa_forces_generic():
    proc = run_python("import matnet as mn; i = mn.cpu_info(); "
                      "print(i['isa'], i['gemm_kernel_float32'])", MATNET_ISA="generic")
    assert proc.returncode == 0, proc.stderr
    isa, kernel = proc.stdout.split()
    assert isa == "generic" and "ref" in kernel


def test_default_isa_is_best_supported():
    proc = run_python("import matnet as mn; print(mn.cpu_info()['isa'])", MATNET_ISA=None)
    assert proc.returncode == 0, proc.stderr
    supported = mn.cpu_info()["supported_isas"]
    best = "avx512" if supported["avx512"] else "avx2" if supported["avx2"] else "generic"
    assert proc.stdout.strip() == best
    # avx512 builds on avx2: a CPU with the one has the other.
    assert supported["avx2"] or not supported["avx512"]


@pytest.mark.parametrize("value", ["avx512-typo", "AVX2 ", "sse"])
def test_bad_matnet_isa_fails_at_import_with_clear_error(value):
    proc = run_python("import matnet", MATNET_ISA=value)
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr
    assert f"MATNET_ISA='{value}'" in proc.stderr
    for name in ("generic", "avx2", "avx512"):  # says what to use instead
        assert name in proc.stderr


def test_unsupported_matnet_isa_fails_clearly():
    supported = mn.cpu_info()["supported_isas"]
    missing = [isa for isa in ("avx2", "avx512") if not supported[isa]]
    if not missing:
        pytest.skip("this CPU supports every ISA matnet has")
    proc = run_python("import matnet", MATNET_ISA=missing[0])
    assert proc.returncode != 0 and "does not support" in proc.stderr


# ------------------------------------------------------------ fork, thread cap, process-wide count

FORK_CODE = r"""
import os, signal, sys, multiprocessing as mp
import numpy as np, matnet as mn

def work(_=None):
    a = np.ones((300, 300), np.float32)
    ok = bool(np.allclose(mn.ops.matmul(a, a), 300.0))
    ok &= bool(np.allclose(mn.ops.sigmoid(np.zeros(1 << 18, np.float32)), 0.5))
    return ok, mn.get_num_threads()

mn.set_num_threads(2)
assert work()[0]                     # the parent has a 2-thread OpenMP team now
pid = os.fork()
if pid == 0:
    signal.alarm(60)                 # a hang fails the test instead of blocking it
    ok, n = work()
    mn.set_num_threads(2)            # asking again in the child must not hang either
    ok2, n2 = work()
    import threading                 # a thread the child starts may use the budget
    res = []
    t = threading.Thread(target=lambda: res.append(work())); t.start(); t.join()
    os._exit(0 if ok and ok2 and n == 1 and n2 == 1 and res == [(True, 2)] else 3)
_, status = os.waitpid(pid, 0)
print("fork", os.waitstatus_to_exitcode(status))
with mp.get_context("fork").Pool(2) as pool:
    print("pool", [r for r in pool.map(work, range(4), chunksize=1)])
print("parent", work())
"""


def test_child_of_fork_uses_matnet_at_once():
    """The child of os.fork() or of a 'fork' multiprocessing pool, after the
    parent ran a 2-thread product, runs matnet (on one thread from the thread
    that forked) instead of waiting forever in libgomp's barrier."""
    proc = run_python(FORK_CODE)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "fork 0", proc.stdout
    assert lines[1] == "pool " + str([(True, 1)] * 4), proc.stdout
    assert lines[2] == "parent (True, 2)", proc.stdout


@pytest.mark.parametrize("bad", [100000, 50000, 2**31, 2**70])
def test_set_num_threads_is_capped(bad, threads):
    cap = mn.max_num_threads()
    assert cap == min(4 * os.cpu_count(), cap) and cap >= 1
    with pytest.raises(ValueError, match=rf"\[1, {cap}\].*{bad}"):
        mn.set_num_threads(bad)
    mn.set_num_threads(cap)  # the cap itself is accepted
    assert mn.get_num_threads() == cap
    with pytest.raises(ValueError):
        mn.set_num_threads(cap + 1)


def test_huge_omp_num_threads_is_capped():
    proc = run_python("import numpy as np, matnet as mn; "
                      "mn.ops.sigmoid(np.zeros(1 << 20, np.float32)); "
                      "print(mn.get_num_threads(), mn.max_num_threads())", OMP_NUM_THREADS="100000")
    assert proc.returncode == 0, proc.stderr
    n, cap = map(int, proc.stdout.split())
    assert n == cap


def test_set_num_threads_applies_to_every_thread(threads):
    """One process-wide count (as torch.set_num_threads), not OpenMP's per-thread ICV."""
    import threading
    seen = []

    def other():
        seen.append(mn.get_num_threads())

    for n in (1, 2, 1):
        mn.set_num_threads(n)
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert seen[-1] == n
    # ... and set from another thread, it applies here.
    t = threading.Thread(target=mn.set_num_threads, args=(2,))
    t.start()
    t.join()
    assert mn.get_num_threads() == 2
