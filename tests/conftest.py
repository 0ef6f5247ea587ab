"""Shared fixtures and helpers for matnet's tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

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
def python_subprocess():
    """run(code, extra_env=None) -> stdout: code run by a fresh interpreter
    with extra_env (e.g. OMP_THREAD_LIMIT, read once per process) and the tests
    directory on its path; fails the test with the output when the code fails.
    (For "the same test on every ISA path" use the isa_path fixture below.)"""

    def run(code: str, extra_env: dict | None = None, timeout: float = 300) -> str:
        # OPENBLAS_NUM_THREADS: NumPy's references on one thread, as single_thread_blas.
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", **(extra_env or {}))
        env["PYTHONPATH"] = TESTS_DIR + os.pathsep + env.get("PYTHONPATH", "")
        proc = subprocess.run([sys.executable, "-c", code], env=env,
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"run failed ({extra_env}):\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    return run


# ------------------------------------------------------------ every ISA path
# A test that takes the ``isa_path`` fixture runs once per kernel path the CPU
# has: in this process for the active path, and for the others in a child
# pytest run with MATNET_ISA set (the path is chosen once per process). The
# children run a whole module's isa_path tests per path at once, and each test
# reports its child's outcome (pass, fail with the child's report, or skip).

ISAS = ("avx512", "avx2", "generic")
_CHILD_ENV = "MATNET_TEST_ISA_CHILD"  # set in the children: the path they run, and a results file


@pytest.fixture(params=ISAS)
def isa_path(request) -> str:
    """The kernel path this run of the test is for (see the comment above)."""
    isa = request.param
    if not mn.cpu_info()["supported_isas"][isa]:
        pytest.skip(f"this CPU does not support {isa}")
    only = os.environ.get("MATNET_TEST_ISAS")  # e.g. the sanitizer job: "active"
    if only is not None and isa not in only.replace("active", mn.cpu_info()["isa"]).split(","):
        pytest.skip(f"MATNET_TEST_ISAS={only} leaves out {isa}")
    return isa


def _isa_of(item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("isa_path") if callspec is not None else None


def pytest_collection_modifyitems(config, items):
    child = os.environ.get(_CHILD_ENV)
    if child is not None:  # a child runs only its path's isa_path tests
        isa = child.split(os.pathsep)[0]
        items[:] = [item for item in items if _isa_of(item) == isa]


def pytest_runtest_logreport(report):
    child = os.environ.get(_CHILD_ENV)
    if child is None or (report.when != "call" and not (report.failed or report.skipped)):
        return
    path = child.split(os.pathsep)[1]
    with open(path, "a") as f:
        f.write(json.dumps({"nodeid": report.nodeid, "outcome": report.outcome,
                            "text": report.longreprtext}) + "\n")


_child_results: dict = {}


def _child_outcomes(item, isa: str) -> dict:
    key = (str(item.path), isa)
    if key not in _child_results:
        fd, results = tempfile.mkstemp(suffix=".jsonl")
        os.close(fd)
        env = dict(os.environ, MATNET_ISA=isa, OPENBLAS_NUM_THREADS="1")
        env[_CHILD_ENV] = isa + os.pathsep + results
        env["PYTHONPATH"] = TESTS_DIR + os.pathsep + env.get("PYTHONPATH", "")
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               str(item.path)], env=env, cwd=str(item.config.rootpath),
                              capture_output=True, text=True, timeout=900)
        outcomes: dict = {}
        with open(results) as f:
            for line in f:
                r = json.loads(line)
                if r["nodeid"] not in outcomes or r["outcome"] != "passed":
                    outcomes[r["nodeid"]] = r
        os.unlink(results)
        outcomes["<output>"] = proc.stdout[-4000:] + proc.stderr[-4000:]
        _child_results[key] = outcomes
    return _child_results[key]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    isa = _isa_of(pyfuncitem)
    if isa is None or isa == mn.cpu_info()["isa"]:
        return None  # run here
    outcomes = _child_outcomes(pyfuncitem, isa)
    r = outcomes.get(pyfuncitem.nodeid)
    if r is None:
        pytest.fail(f"MATNET_ISA={isa}: the child run did not report {pyfuncitem.nodeid}:\n"
                    + outcomes["<output>"])
    if r["outcome"] == "failed":
        pytest.fail(f"MATNET_ISA={isa}:\n{r['text']}", pytrace=False)
    if r["outcome"] == "skipped":
        pytest.skip(f"MATNET_ISA={isa}: {r['text']}")
    return True
