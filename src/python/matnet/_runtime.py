"""Thread control and CPU information."""

from __future__ import annotations

from typing import Any

from . import _core

__all__ = ["cpu_info", "get_num_threads", "max_num_threads", "set_num_threads"]


def get_num_threads() -> int:
    """Number of threads matnet's kernels use, for calls from any thread.

    Honours ``OMP_NUM_THREADS`` and, on the thread where they are set, limits
    set through threadpoolctl. In the child of ``os.fork()`` (or of a
    multiprocessing pool with the 'fork' start method) calls from the thread
    that forked run on one thread: libgomp's thread pool does not survive fork.
    """
    return _core.get_num_threads()


def max_num_threads() -> int:
    """The largest count :func:`set_num_threads` accepts: 4 x the CPUs
    available to the process (``OMP_THREAD_LIMIT`` may still make teams smaller)."""
    return _core.max_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads matnet's kernels use, process-wide.

    Applies to calls from every Python thread (as ``torch.set_num_threads``).
    ``n`` must be in ``[1, max_num_threads()]``, else ``ValueError``. In a
    forked child, the setting applies to threads the child starts; calls from
    the thread that forked stay on one thread.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    cap = _core.max_num_threads()
    if not 1 <= n <= cap:
        raise ValueError(f"set_num_threads: n must be in [1, {cap}] (4 x the CPUs available), "
                         f"got {n}")
    _core.set_num_threads(n)


def cpu_info() -> dict[str, Any]:
    """Which kernel path runs.

    Returns a dict with ``isa`` (``"avx512"``, ``"avx2"`` or ``"generic"``;
    ``MATNET_ISA`` forces one), ``threads``, ``max_cpus``, ``supported_isas`` and the names
    of the GEMM microkernels in use for float32 and float64.
    """
    return dict(_core.cpu_info())
