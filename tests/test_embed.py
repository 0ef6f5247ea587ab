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


def test_cmake_config_is_relocatable() -> None:
    # pip builds in one directory and installs in another: the exported
    # targets must locate everything relative to the config file itself.
    text = "".join(p.read_text() for p in Path(mn.get_cmake_dir()).glob("*.cmake"))
    assert "_IMPORT_PREFIX" in text
    for absolute in {str(REPO), str(Path(mn.get_include()).parents[1]), "/tmp/"}:
        assert absolute not in text, f"absolute path {absolute} in the installed CMake config"


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
    """examples/embed configured against the installed package and built."""
    build = tmp_path_factory.mktemp("embed-build")
    _run([CMAKE, "-S", str(EXAMPLE_DIR), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
          f"-Dmatnet_DIR={mn.get_cmake_dir()}", f"-DCMAKE_CXX_COMPILER={CXX}"])
    _run([CMAKE, "--build", str(build), "-j", "2"])
    program = build / "mlp_step"
    assert program.is_file()
    return program


def _supported_isas() -> list[str]:
    return [isa for isa, ok in mn.cpu_info()["supported_isas"].items() if ok]


@pytest.fixture(params=["generic", "avx2"])
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


@needs_toolchain
def test_example_reports_bad_arguments(example_output: dict) -> None:
    # gemm with lda < k threw an exception derived from std::invalid_argument,
    # caught as such across the shared-library boundary, with a message.
    message = example_output["bad_argument"]
    assert message and "lda" in message, message
