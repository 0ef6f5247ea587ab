"""Thread control and CPU information."""

from __future__ import annotations

from typing import Any

from . import _core

__all__ = ["cpu_info", "get_num_threads", "set_num_threads"]


def get_num_threads() -> int:
    """Number of OpenMP threads matnet's kernels use.

    Honours ``OMP_NUM_THREADS`` and limits set through threadpoolctl.
    """
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of OpenMP threads matnet's kernels use (``n >= 1``)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    _core.set_num_threads(n)


def cpu_info() -> dict[str, Any]:
    """Which kernel path runs.

    Returns a dict with ``isa`` (``"avx512"``, ``"avx2"`` or ``"generic"``;
    ``MATNET_ISA`` forces one), ``threads``, ``max_cpus``, ``supported_isas`` and the names
    of the GEMM microkernels in use for float32 and float64.
    """
    return dict(_core.cpu_info())
