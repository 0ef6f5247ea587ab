"""Where the installed package keeps its C++ side: headers, library, CMake config.

``pip install .`` puts, inside the installed ``matnet`` package::

    matnet/include/matnet/*.hpp          public C++ headers (<matnet/matnet.hpp>)
    matnet/lib/libmatnet.so*             the kernels as a shared library (no Python)
    matnet/lib/cmake/matnet/             matnetConfig.cmake -> target matnet::matnet

so that C++ code can use the kernels without Python::

    cmake -Dmatnet_DIR="$(python -m matnet --cmakedir)" ...
    find_package(matnet CONFIG REQUIRED)
    target_link_libraries(app PRIVATE matnet::matnet)
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["get_cmake_dir", "get_include", "get_library_dir"]

_PACKAGE_DIR = Path(__file__).resolve().parent


def _existing_dir(path: Path, what: str) -> str:
    # A source checkout or an install without the C++ parts (e.g. a broken
    # wheel) has no such directory: say so instead of handing out a bad path.
    if not path.is_dir():
        raise FileNotFoundError(
            f"matnet's {what} directory {path} does not exist; "
            "install the package with `pip install .` to get the C++ headers, "
            "library and CMake config"
        )
    return str(path)


def get_include() -> str:
    """Directory to put on the C++ include path for ``#include <matnet/matnet.hpp>``.

    Returns:
        Absolute path of ``matnet/include`` inside the installed package.

    Raises:
        FileNotFoundError: the installed package has no C++ headers.
    """
    return _existing_dir(_PACKAGE_DIR / "include", "include")


def get_library_dir() -> str:
    """Directory holding the shared library ``libmatnet.so``.

    Returns:
        Absolute path of ``matnet/lib`` inside the installed package.

    Raises:
        FileNotFoundError: the installed package has no C++ library.
    """
    return _existing_dir(_PACKAGE_DIR / "lib", "library")


def get_cmake_dir() -> str:
    """Directory holding ``matnetConfig.cmake``: pass it to CMake as ``matnet_DIR``.

    With it, ``find_package(matnet CONFIG REQUIRED)`` defines the imported
    target ``matnet::matnet`` (headers, library and its OpenMP dependency).

    Returns:
        Absolute path of ``matnet/lib/cmake/matnet`` inside the installed package.

    Raises:
        FileNotFoundError: the installed package has no CMake config.
    """
    return _existing_dir(_PACKAGE_DIR / "lib" / "cmake" / "matnet", "CMake config")
