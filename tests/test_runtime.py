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
