"""Shared fixtures and helpers for matnet's tests."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import matnet as mn

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def rng() -> np.random.Generator:
    """A local generator per test (never a global seed)."""
    return np.random.default_rng(12345)


@pytest.fixture
def threads():
    """Restore the thread count after a test changes it."""
    before = mn.get_num_threads()
    yield
    mn.set_num_threads(before)


@pytest.fixture(scope="module")
def single_thread_blas():
    """NumPy's BLAS on one thread while a module's tests run: after each
    float64 reference product its worker threads spin and compete with
    matnet's OpenMP team for the CPUs (two on CI), which made the product
    sweeps several times slower. The references are small products, so one
    thread costs them little."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an optional speed-up, not a requirement
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def isa_subprocess():
    """run(isa, code, extra_env=None) -> stdout: code run by a fresh
    interpreter with MATNET_ISA=isa (the path is chosen once per process, so
    each ISA needs its own) and extra_env (e.g. OMP_THREAD_LIMIT, also read
    once), after asserting that path is the active one. The tests directory is
    on its path, so code can import the test modules and reuse their sweeps.
    Skips the test when the CPU lacks the ISA; fails with the output when the
    code fails."""

    def run(isa: str, code: str, extra_env: dict | None = None, timeout: float = 300) -> str:
        if not mn.cpu_info()["supported_isas"][isa]:
            pytest.skip(f"this CPU does not support {isa}")
        prelude = ("import matnet as mn\n"
                   f"assert mn.cpu_info()['isa'] == {isa!r}, mn.cpu_info()\n")
        # OPENBLAS_NUM_THREADS: NumPy's references on one thread, as single_thread_blas.
        env = dict(os.environ, MATNET_ISA=isa, OPENBLAS_NUM_THREADS="1", **(extra_env or {}))
        env["PYTHONPATH"] = TESTS_DIR + os.pathsep + env.get("PYTHONPATH", "")
        proc = subprocess.run([sys.executable, "-c", prelude + code], env=env,
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"MATNET_ISA={isa} run failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    return run
