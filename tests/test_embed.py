"""matnet's kernels as a C++ library: the installed headers, libmatnet.so and
the CMake package config, used the way a C++ program uses them.

examples/embed is configured with ``-Dmatnet_DIR=<python -m matnet --cmakedir>``,
built with CMake in a temporary directory, run, and its JSON output checked
against NumPy. Needs cmake and a C++ compiler (present on CI); without them
the build tests are skipped, saying which one is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import matnet as mn
from matnet import _paths

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_DIR = REPO / "examples" / "embed"
PUBLIC_HEADERS = sorted(p.name for p in (REPO / "src/cpp/include/matnet").glob("*.hpp"))


def _cxx_compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


CMAKE = shutil.which("cmake")
CXX = _cxx_compiler()
needs_toolchain = pytest.mark.skipif(
    CMAKE is None or CXX is None,
    reason=f"building C++ against matnet needs cmake and a C++ compiler "
    f"(cmake: {CMAKE or 'not found'}, C++ compiler: {CXX or 'not found'})",
)
binutils = {tool: shutil.which(tool) for tool in ("nm", "readelf")}
needs_binutils = pytest.mark.skipif(
    not all(binutils.values()) or not sys.platform.startswith("linux"),
    reason=f"inspecting libmatnet.so needs Linux and binutils ({binutils})",
)


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command; on failure, fail the test with its full output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        pytest.fail(
            f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def _libmatnet() -> Path:
    libs = sorted(Path(_paths.get_library_dir()).glob("libmatnet.so*"))
    assert libs, f"no libmatnet.so* in {_paths.get_library_dir()}"
    return libs[0].resolve()


# ------------------------------------------------------------ the installed layout


def test_installed_layout() -> None:
    include, cmake_dir = Path(mn.get_include()), Path(mn.get_cmake_dir())
    for header in PUBLIC_HEADERS:
        assert (include / "matnet" / header).is_file(), f"{header} not installed in {include}"
    assert (include / "matnet" / "matnet.hpp").is_file()
    for name in ("matnetConfig.cmake", "matnetConfigVersion.cmake", "matnetTargets.cmake"):
        assert (cmake_dir / name).is_file(), f"{name} not installed in {cmake_dir}"
    assert _libmatnet().is_file()


@needs_toolchain
def test_cmake_config_is_relocatable(tmp_path: Path) -> None:
    # pip builds in one directory and installs in another, and users move
    # prefixes: the config must locate everything relative to itself. Copy
    # the installed C++ side elsewhere and find_package it from there.
    moved = tmp_path / "moved" / "matnet"
    for part in ("include", "lib"):
        shutil.copytree(Path(mn.get_include()).parent / part, moved / part, symlinks=True)
    project = tmp_path / "consumer"
    project.mkdir()
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.18)\n"
        "project(consumer LANGUAGES CXX)\n"
        "find_package(matnet CONFIG REQUIRED)\n"
        "get_target_property(loc matnet::matnet IMPORTED_LOCATION_RELEASE)\n"
        "get_target_property(inc matnet::matnet INTERFACE_INCLUDE_DIRECTORIES)\n"
        'message(STATUS "matnet_location=${loc}")\n'
        'message(STATUS "matnet_include=${inc}")\n'
        'message(STATUS "matnet_version=${matnet_VERSION}")\n'
    )
    out = _run([CMAKE, "-S", str(project), "-B", str(tmp_path / "build"),
                f"-Dmatnet_DIR={moved / 'lib' / 'cmake' / 'matnet'}",
                f"-DCMAKE_CXX_COMPILER={CXX}"]).stdout
    found = dict(line.split("-- ", 1)[1].split("=", 1) for line in out.splitlines()
                 if line.startswith("-- matnet_"))
    assert Path(found["matnet_location"]).resolve().parent == (moved / "lib").resolve(), found
    assert Path(found["matnet_include"]).resolve() == (moved / "include").resolve(), found
    assert found["matnet_version"] == mn.__version__


# ------------------------------------------------------------ libmatnet has no Python in it


@needs_binutils
def test_libmatnet_links_no_python() -> None:
    lib = _libmatnet()
    dynamic = _run([binutils["readelf"], "-d", str(lib)]).stdout
    needed = [line.split("[")[1].rstrip("]") for line in dynamic.splitlines() if "(NEEDED)" in line]
    assert needed, f"readelf found no NEEDED entries in {lib}:\n{dynamic}"
    assert not [n for n in needed if "python" in n.lower()], f"{lib} links Python: {needed}"
    undefined = _run([binutils["nm"], "-D", "--undefined-only", str(lib)]).stdout.split()
    assert not [s for s in undefined if s.startswith(("Py", "_Py"))], "libmatnet uses the C API"


@needs_binutils
def test_libmatnet_exports_only_the_matnet_api() -> None:
    # Visibility is hidden by default: what is exported is the public API
    # (functions in namespace matnet), never pybind11 or other internals.
    lib = _libmatnet()
    rows = _run([binutils["nm"], "-D", "-C", "--defined-only", str(lib)]).stdout.splitlines()
    symbols = [(row.split(" ", 2)[1], row.split(" ", 2)[2]) for row in rows if row.count(" ") >= 2]
    assert symbols, f"nm found no exported symbols in {lib}"
    assert not [s for _, s in symbols if "pybind11" in s or s.startswith(("Py", "_Py"))]
    functions = [s for kind, s in symbols if kind == "T"]
    assert "matnet::active_isa()" in functions
    stray = [s for s in functions if not s.startswith("matnet::")]
    assert not stray, f"libmatnet exports functions outside namespace matnet: {stray}"


# ------------------------------------------------------------ each public header stands alone


@needs_toolchain
@pytest.mark.parametrize("header", PUBLIC_HEADERS)
def test_public_header_compiles_alone(header: str, tmp_path: Path) -> None:
    # A consumer may include any one header first, with strict warnings on.
    source = tmp_path / "use.cpp"
    source.write_text(f"#include <matnet/{header}>\nint main() {{ return 0; }}\n")
    _run([CXX, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
          "-I", mn.get_include(), str(source)])


# ------------------------------------------------------------ examples/embed


@pytest.fixture(scope="module")
def example_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/embed configured against the installed package and built, as
    the README says: -Dmatnet_DIR="$(python -m matnet --cmakedir)"."""
    cmake_dir = _run([sys.executable, "-m", "matnet", "--cmakedir"]).stdout.strip()
    assert Path(cmake_dir) == Path(mn.get_cmake_dir())
    build = tmp_path_factory.mktemp("embed-build")
    _run([CMAKE, "-S", str(EXAMPLE_DIR), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
          f"-Dmatnet_DIR={cmake_dir}", f"-DCMAKE_CXX_COMPILER={CXX}"])
    _run([CMAKE, "--build", str(build), "-j", "2"])
    program = build / "mlp_step"
    assert program.is_file()
    return program


def _supported_isas() -> list[str]:
    return [isa for isa, ok in mn.cpu_info()["supported_isas"].items() if ok]


@pytest.fixture(params=["generic", "avx2", "avx512"])
def example_output(request: pytest.FixtureRequest, example_program: Path) -> dict:
    """The program's JSON, run on each kernel path (MATNET_ISA) the CPU has."""
    if request.param not in _supported_isas():
        pytest.skip(f"this CPU lacks {request.param}")
    # The program finds libmatnet.so through its RPATH, not the environment.
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env["MATNET_ISA"] = request.param
    out = json.loads(_run([str(example_program)], env=env).stdout)
    assert out["isa"] == request.param
    return out


@needs_toolchain
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_example_gemm(example_output: dict, dtype: str) -> None:
    # Same formulas as gemm_demo() in main.cpp: C = 0.5 A^T B^T - C0.
    m, n, k = 7, 9, 5
    i, j, p = np.arange(m), np.arange(n), np.arange(k)
    a = ((i[None, :] + 2 * p[:, None]) % 7 - 3) / 4  # (k, m)
    b = ((3 * j[:, None] + p[None, :]) % 5 - 2) / 2  # (n, k)
    c0 = ((i[:, None] + 2 * j[None, :]) % 5 - 2) / 2  # (m, n)
    expected = 0.5 * a.T @ b.T - c0
    got = example_output[dtype]["gemm"]
    assert (got["m"], got["n"], got["k"]) == (m, n, k)
    # Exact: every input is a multiple of 1/4 below 1 in magnitude, so each
    # product is a multiple of 1/8, every partial sum a multiple of 1/8 below
    # 4, and the result a multiple of 1/16 below 8 - all need < 8 significant
    # bits, so no rounding happens in float32 either, in any summation order.
    # A NaN would mean the padding beyond a leading dimension was read.
    np.testing.assert_array_equal(np.array(got["c"]), expected, err_msg=f"{dtype} gemm")


# The MLP of mlp_demo() in main.cpp, in NumPy float64, with a first-order
# worst-case bound on the rounding error of a run in a dtype of unit roundoff u.
#
# Derivation. The inputs and initial parameters are short binary fractions,
# exact in float32, so all error comes from rounding inside the computation.
# Standard results (Higham, Accuracy and Stability of Numerical Algorithms,
# ch. 3): a dot product of length n plus one more addend, in any order, with or
# without FMA, is off by at most gamma(n + 1) * sum |terms|, where gamma(n) =
# n u / (1 - n u); a single operation by u * |result|. Errors already in the
# operands propagate linearly (first order): through X.W as |X| @ e_W + e_X @ |W|,
# through tanh by |tanh'| <= 1, through softmax by p_c (e_c + sum_j p_j e_j).
# tanh and exp are allowed FN_ULPS units of u (the float32 AVX2 versions are
# documented within 4 ulp of 2^-24 = u in activations.hpp; libm's float64 ones
# within 2 ulp of 2^-52 = 4u). Second-order terms (u^2) are negligible at
# these sizes. The observed errors are typically 10-100x below the bound.
FN_ULPS = 4
N, K, H, C = 6, 4, 8, 3
LR, WEIGHT_DECAY = 0.25, 1.0 / 128


def _gamma(n: int, u: float) -> float:
    return n * u / (1 - n * u)


def _dense(x, ex, w, ew, b, eb, u):
    """z = x @ w + b and its error bound, given the operands' bounds."""
    z = x @ w + b
    ez = _gamma(x.shape[1] + 1, u) * (abs(x) @ abs(w) + abs(b)) + ex @ abs(w) + abs(x) @ ew + eb
    return z, ez


def _tanh(z, ez, u):
    a = np.tanh(z)
    return a, (1 - a * a) * ez + FN_ULPS * u * abs(a)


def _cross_entropy(logits, e_logits, labels, u):
    """Mean softmax cross-entropy, its gradient, and bounds on both."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    p = np.exp(shifted - lse)
    q = np.eye(C)[labels]
    loss_rows = lse[:, 0] + logits.max(axis=1) - logits[np.arange(N), labels]
    spread = -shifted.min(axis=1)  # exp(x - max) loses |x - max| * u relatively
    e_max = e_logits.max(axis=1, keepdims=True)
    # loss_r: propagated sum_c |p - q| e_c; rounding: exp, a sum of C, log,
    # the shift and the final subtractions, each relative to the row's scale.
    scale = 1 + abs(loss_rows) + abs(logits).max(axis=1) + spread
    e_loss_rows = (abs(p - q) * e_logits).sum(axis=1) + (FN_ULPS + C + 4) * u * scale
    grad = (p - q) / N
    e_p = 2 * p * e_max + (2 * FN_ULPS + C + 2 + spread[:, None]) * u * p
    e_grad = (e_p + 2 * u * abs(p - q)) / N
    return loss_rows.mean(), e_loss_rows.mean() + _gamma(N, u) * abs(loss_rows).mean(), grad, e_grad


def _sgd_first_step(param, e_param, grad, e_grad, u):
    """torch.optim.SGD's first step (momentum buffer = gradient) and its bound."""
    g = grad + WEIGHT_DECAY * param  # WEIGHT_DECAY and LR are powers of 2: exact
    new = param - LR * g
    return new, LR * (e_grad + WEIGHT_DECAY * e_param + u * abs(g)) + e_param + u * abs(new)


def mlp_reference(u: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (float64 value, error bound at unit roundoff u) for main.cpp's outputs."""
    i, k, h, c = np.arange(N), np.arange(K), np.arange(H), np.arange(C)
    x = ((3 * i[:, None] + 7 * k[None, :]) % 13 - 6) / 4
    labels = (2 * i + 1) % C
    w1 = ((5 * k[:, None] + 3 * h[None, :]) % 9 - 4) / 8
    b1 = (h % 3 - 1) / 16
    w2 = ((2 * h[:, None] + 5 * c[None, :]) % 7 - 3) / 8
    b2 = (c - 1) / 32
    exact = np.zeros_like

    def forward(w1, ew1, b1, eb1, w2, ew2, b2, eb2):
        z1, ez1 = _dense(x, exact(x), w1, ew1, b1, eb1, u)
        a1, ea1 = _tanh(z1, ez1, u)
        logits, elogits = _dense(a1, ea1, w2, ew2, b2, eb2, u)
        return a1, ea1, logits, elogits

    a1, ea1, logits, elogits = forward(w1, exact(w1), b1, exact(b1), w2, exact(w2), b2, exact(b2))
    loss, eloss, g, eg = _cross_entropy(logits, elogits, labels, u)
    # Layer 2 (identity): dW2 = a1^T g, db2 = sum g, da1 = g W2^T.
    dw2 = a1.T @ g
    edw2 = _gamma(N, u) * (abs(a1).T @ abs(g)) + abs(a1).T @ eg + ea1.T @ abs(g)
    db2, edb2 = g.sum(axis=0), _gamma(N, u) * abs(g).sum(axis=0) + eg.sum(axis=0)
    da1 = g @ w2.T
    eda1 = _gamma(C, u) * (abs(g) @ abs(w2).T) + eg @ abs(w2).T
    # Layer 1 (tanh): dz1 = da1 * (1 - a1^2); the derivative itself is off by
    # 2 |a1| e_a1 from a1's error plus a few roundings.
    deriv = 1 - a1 * a1
    e_deriv = 2 * abs(a1) * ea1 + (FN_ULPS + 3) * u
    dz1 = da1 * deriv
    edz1 = eda1 * deriv + abs(da1) * e_deriv + u * abs(dz1)
    dw1 = x.T @ dz1
    edw1 = _gamma(N, u) * (abs(x).T @ abs(dz1)) + abs(x).T @ edz1
    db1, edb1 = dz1.sum(axis=0), _gamma(N, u) * abs(dz1).sum(axis=0) + edz1.sum(axis=0)

    new = {}
    for name, param, grad, egrad in (("w1", w1, dw1, edw1), ("b1", b1, db1, edb1),
                                     ("w2", w2, dw2, edw2), ("b2", b2, db2, edb2)):
        new[name] = _sgd_first_step(param, exact(param), grad, egrad, u)
    *_, logits_after, elogits_after = forward(*new["w1"], *new["b1"], *new["w2"], *new["b2"])
    loss_after, eloss_after, _, _ = _cross_entropy(logits_after, elogits_after, labels, u)

    return {
        "logits": (logits, elogits), "loss": (loss, eloss), "grad_logits": (g, eg),
        "grad_w1": (dw1, edw1), "grad_b1": (db1[None, :], edb1[None, :]),
        "grad_w2": (dw2, edw2), "grad_b2": (db2[None, :], edb2[None, :]),
        "w1": new["w1"], "b1": tuple(v[None, :] for v in new["b1"]),
        "w2": new["w2"], "b2": tuple(v[None, :] for v in new["b2"]),
        "loss_after_step": (loss_after, eloss_after),
    }


UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53}


@needs_toolchain
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_example_mlp_step(example_output: dict, dtype: str) -> None:
    got = example_output[dtype]["mlp"]
    run = mlp_reference(UNIT_ROUNDOFF[dtype])
    ref = mlp_reference(UNIT_ROUNDOFF["float64"])  # NumPy's own rounding
    assert set(got) == set(run), f"outputs differ: {sorted(got)} vs {sorted(run)}"
    for name, (expected, bound) in run.items():
        value = np.asarray(got[name], dtype=np.float64)
        assert value.shape == np.shape(expected), f"{dtype} {name}: shape {value.shape}"
        error = np.abs(value - expected)
        tol = bound + ref[name][1]
        assert np.all(error <= tol), (
            f"{dtype} {name}: max error {np.max(error):.3g} exceeds the derived bound "
            f"(at {np.unravel_index(np.argmax(error - tol), np.shape(error))})\n"
            f"got {value}\nexpected {expected}"
        )
    # One SGD step on this batch lowers its loss.
    assert got["loss_after_step"] < got["loss"]

@needs_toolchain
def test_example_reports_bad_arguments(example_output: dict) -> None:
    # gemm with lda < k threw an exception derived from std::invalid_argument,
    # caught as such across the shared-library boundary, with a message.
    message = example_output["bad_argument"]
    assert message and "lda" in message, message


# ------------------------------------------------------------ tests/cpp through ctest


@needs_toolchain
def test_cpp_api_unit_tests(tmp_path: Path) -> None:
    # The C++ contract (exceptions across the library boundary, nothing
    # written on error, concurrent calls from std::threads, exact results on
    # each kernel path) from tests/cpp, built against the installed package.
    build = tmp_path / "cpp-tests"
    _run([CMAKE, "-S", str(REPO / "tests" / "cpp"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
          f"-Dmatnet_DIR={mn.get_cmake_dir()}", f"-DCMAKE_CXX_COMPILER={CXX}"])
    _run([CMAKE, "--build", str(build), "-j", "2"])
    ctest = Path(CMAKE).with_name("ctest")
    result = _run([str(ctest) if ctest.exists() else "ctest", "--output-on-failure"], cwd=build)
    assert "100% tests passed" in result.stdout, result.stdout


# ------------------------------------------------------------ kernel internals


@pytest.fixture(scope="module")
def internal_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/cpp/internal, built from the kernel sources by the repository's own
    CMake build (-DMATNET_BUILD_EXAMPLES=ON): the driver's operand callbacks,
    strided operands, thread budget and workspace are not exported by
    libmatnet, so no installed-package build can reach them."""
    build = tmp_path_factory.mktemp("internal-build")
    _run([CMAKE, "-S", str(REPO), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
          "-DMATNET_BUILD_EXAMPLES=ON", "-DMATNET_BUILD_PYTHON=OFF",
          f"-DCMAKE_CXX_COMPILER={CXX}"])
    _run([CMAKE, "--build", str(build), "--target", "matnet_internal_tests", "-j", "2"])
    program = build / "matnet_internal_tests"
    assert program.is_file()
    return program


@needs_toolchain
@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
def test_kernel_internals(internal_program: Path, isa: str) -> None:
    if isa not in _supported_isas():
        pytest.skip(f"this CPU lacks {isa}")
    out = _run([str(internal_program)], env=dict(os.environ, MATNET_ISA=isa)).stdout
    assert f"isa: {isa}" in out and "all internal checks passed" in out
