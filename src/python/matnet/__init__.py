"""matnet: neural networks on explicit, fast linear algebra.

The hot paths (a packed, blocked SIMD GEMM; fused dense layers, activations,
losses and optimizer updates) are C++ kernels in ``matnet._core``; this
package is the thin Python layer over them.
"""

from __future__ import annotations

from . import ops
from . import linalg
from . import callbacks, datasets, distributed, layers, losses, metrics, optim, schedules, weights
from .model import Sequential
from .serialization import load_model
from . import analysis
from ._paths import get_cmake_dir, get_include
from ._runtime import cpu_info, get_num_threads, max_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Sequential",
    "analysis",
    "callbacks",
    "cpu_info",
    "datasets",
    "distributed",
    "get_cmake_dir",
    "get_include",
    "get_num_threads",
    "layers",
    "linalg",
    "load_model",
    "losses",
    "max_num_threads",
    "metrics",
    "ops",
    "optim",
    "schedules",
    "set_num_threads",
    "weights",
]
