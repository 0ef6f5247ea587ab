"""matnet: neural networks on explicit, fast linear algebra.

The hot paths (a packed, blocked SIMD GEMM; fused dense layers, activations,
losses and optimizer updates) are C++ kernels in ``matnet._core``; this
package is the thin Python layer over them.
"""

from __future__ import annotations

from . import ops
from ._paths import get_cmake_dir, get_include
from ._runtime import cpu_info, get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "cpu_info",
    "get_cmake_dir",
    "get_include",
    "get_num_threads",
    "ops",
    "set_num_threads",
]
