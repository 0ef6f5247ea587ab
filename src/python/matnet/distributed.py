"""Data-parallel training over MPI (mpi4py): the same script on N processes.

Every rank holds the whole model. Each global batch is split across the
ranks; every rank runs forward and backward on its shard, the gradients are
summed across ranks in one fused flat buffer (Horovod's tensor fusion) and
every rank applies the same optimizer update, so the parameters stay
identical everywhere. matnet builds no transport of its own: the reduction is
one ``MPI_Allreduce``, over shared memory on one host and over the network
between hosts.

    import matnet as mn
    mn.distributed.init()                       # no-op unless started by mpiexec/srun
    model.compile(optimizer=mn.optim.Adam(1e-3), loss="cross_entropy")
    model.fit(x, y, batch_size=64, seed=0)      # 64 rows per rank and step

    mpiexec -n 4 python train.py                # or: python -m matnet train --distributed

Under :func:`init` with more than one rank, ``Sequential.fit`` and
``evaluate`` shard their work, reduce losses and metrics, and only rank 0
prints or writes files. A manual loop wraps its optimizer instead::

    opt = mn.distributed.DistributedOptimizer(mn.optim.SGD(0.1, momentum=0.9))
    model.backward(grad); opt.step(model)       # gradients averaged across ranks first

Importing this module never imports mpi4py; :func:`init` does, and only when
the process was started by an MPI launcher (or mpi4py is already running).
Install MPI with ``pip install "matnet[mpi]"`` (mpi4py and the mpich wheel,
which brings ``mpiexec``).
"""

from __future__ import annotations

import operator
import os
import sys
import traceback
import weakref
from types import TracebackType
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

import numpy as np

from . import optim as _optim

__all__ = [
    "init",
    "is_initialized",
    "rank",
    "size",
    "local_size",
    "is_main",
    "barrier",
    "mpiexec",
    "broadcast_parameters",
    "allreduce_gradients",
    "allreduce_sum",
    "DistributedOptimizer",
]

# Variables a launcher sets in every process it starts: MPICH's Hydra and
# Slurm's PMI-2 (PMI_RANK), PMIx (Open MPI >= 5, srun --mpi=pmix), Open MPI,
# MVAPICH and Intel MPI.
_LAUNCHER_VARS = ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK",
                  "MPI_LOCALRANKID")

_comm: Any = None  # mpi4py.MPI.Comm once init() found MPI; None: one process


def _launched_by_mpi() -> bool:
    if any(var in os.environ for var in _LAUNCHER_VARS):
        return True
    mpi = sys.modules.get("mpi4py.MPI")
    return mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized()


def init() -> int:
    """Join the MPI job this process was started in; returns the number of ranks.

    Not started by an MPI launcher (``mpiexec``, ``srun``): a no-op, one
    process, and mpi4py is not imported. Calling it again does nothing more.
    With more than one rank, an uncaught exception on any rank prints
    ``matnet: rank N: <error>`` to stderr and aborts the whole job
    (``MPI_Abort``), so the other ranks never wait forever in a collective.

    Raises:
        ImportError: launched by MPI but mpi4py is not installed.
    """
    global _comm
    if _comm is not None or not _launched_by_mpi():
        return size()
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            "matnet.distributed.init: this process was started by an MPI launcher but mpi4py "
            'is not installed; pip install "matnet[mpi]" (mpi4py and mpich)') from exc
    _comm = MPI.COMM_WORLD
    if _comm.Get_size() > 1:
        _install_abort_hook()
    return size()


def is_initialized() -> bool:
    """True after :func:`init` found an MPI job (of any size, 1 included)."""
    return _comm is not None


def rank() -> int:
    """This process's rank in ``[0, size())``; 0 without MPI."""
    return 0 if _comm is None else _comm.Get_rank()


def size() -> int:
    """Number of ranks; 1 without MPI."""
    return 1 if _comm is None else _comm.Get_size()


def is_main() -> bool:
    """True on rank 0, the one that prints and writes files."""
    return rank() == 0


def local_size() -> int:
    """Number of ranks on this host (they share its cores); 1 without MPI."""
    if _comm is None:
        return 1
    from mpi4py import MPI

    node = _comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return node.Get_size()
    finally:
        node.Free()


def mpiexec() -> Optional[str]:
    """Path of an ``mpiexec``: the mpich wheel's (in this Python's scripts
    directory, or the user one for ``pip install --user``), else the first
    on PATH; None when there is none."""
    import shutil
    import sysconfig

    dirs = [os.path.dirname(sys.executable), sysconfig.get_path("scripts")]
    try:
        dirs.append(sysconfig.get_path("scripts", f"{os.name}_user"))
    except KeyError:
        pass
    for d in dirs:
        path = os.path.join(d, "mpiexec")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return shutil.which("mpiexec")


def barrier() -> None:
    """Wait until every rank gets here (no-op without MPI)."""
    if _comm is not None:
        _comm.Barrier()


def abort(message: str, code: int = 1) -> None:
    """Print ``matnet: rank N: message`` to stderr and end the whole job."""
    print(f"matnet: rank {rank()}: {message}", file=sys.stderr, flush=True)
    if _comm is not None and size() > 1:
        _comm.Abort(code)
    raise SystemExit(code)


def _install_abort_hook() -> None:
    previous = sys.excepthook

    # an uncaught exception on this rank ends every rank
    def hook(kind: Type[BaseException], value: BaseException,
             tb: Optional[TracebackType]) -> None:
        if issubclass(kind, KeyboardInterrupt):
            return previous(kind, value, tb)
        traceback.print_exception(kind, value, tb)
        abort(f"{kind.__name__}: {value}")

    sys.excepthook = hook


# ---------------------------------------------------------------- collectives


def allreduce_sum(values: Sequence[float]) -> np.ndarray:
    """Element-wise sum over ranks of a few float64 numbers (losses, counts)."""
    buf = np.array(values, dtype=np.float64)
    if _comm is not None and size() > 1:
        from mpi4py import MPI

        _comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    return buf


def _check_root(root: Any) -> int:
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) \
            or not 0 <= root < size():
        raise ValueError(f"root must be a rank in [0, {size()}), got {root!r}")
    return int(root)


def broadcast_parameters(model: Any, root: int = 0) -> None:
    """Copy rank ``root``'s parameters into every rank's model, in place.

    One ``MPI_Bcast`` of all parameters packed into a flat buffer. Call it
    once before training (``fit`` does) so all ranks start identical.
    """
    root = _check_root(root)
    if size() == 1:
        return
    params = model.parameters()
    flat = np.concatenate([p.ravel() for p in params])
    _comm.Bcast(flat, root=root)
    start = 0
    for p in params:
        p[...] = flat[start:start + p.size].reshape(p.shape)
        start += p.size


def allreduce_gradients(model: Any, weight: Optional[float] = None) -> List[np.ndarray]:
    """Average the model's gradients across ranks, in place; returns them.

    All gradients live in (Dense layers write them straight into) or are
    copied into one flat buffer of the model's dtype (float32 or float64),
    reduced by one ``MPI_Allreduce``.
    ``weight`` is this rank's share of the global batch (default
    ``1/size()``: equal shards); the result is ``sum_r weight_r * grad_r``,
    so with ``weight = rows_here / rows_in_global_batch`` it equals the
    gradient one process computes over the whole batch, also for uneven
    shards (a rank with no rows passes 0 and needs no gradients).
    """
    grads = model.gradients()
    reduced = _reduce_into_fused(model, weight)
    for g, r in zip(grads, reduced):
        if g is not None and g is not r:
            np.copyto(g, r)
    return [g if g is not None else r.copy() for g, r in zip(grads, reduced)]


def _reduce_into_fused(model: Any, weight: Optional[float],
                       extras: Sequence[float] = ()) -> List[np.ndarray]:
    """Reduced gradients as views of the model's fused buffer (valid until the
    next reduction). ``extras`` travel in the same message, summed unscaled;
    they come back through ``_fused_for(model).extras``."""
    fused = _fused_for(model)
    w = 1.0 / size() if weight is None else float(weight)
    fused.pack_grads(model.gradients(), w, extras)
    if size() > 1:
        from mpi4py import MPI

        _comm.Allreduce(MPI.IN_PLACE, fused.flat[:fused.n_params + len(extras)], op=MPI.SUM)
    return fused.grads


class _Fused:
    """One flat buffer for all of a model's gradients, plus a few extra
    slots (``extras``: losses and counts that travel in the same message).
    ``grads`` are views of it in the parameters' shapes; each layer's
    ``grad_out`` points at its views, so backward writes there directly."""

    EXTRA_SLOTS = 4

    def __init__(self, model: Any) -> None:
        params = model.parameters()
        if not params:
            raise ValueError("distributed: the model has no parameters to reduce")
        dtypes = {p.dtype for p in params}
        if len(dtypes) != 1:
            raise TypeError(f"distributed: parameters must share one dtype, got {dtypes}")
        self.params = list(params)
        self.offsets = np.cumsum([0] + [p.size for p in params]).tolist()
        self.n_params = self.offsets[-1]
        self.flat = np.zeros(self.n_params + self.EXTRA_SLOTS, dtype=dtypes.pop())
        self.grads = [self.flat[a:b].reshape(p.shape)
                      for a, b, p in zip(self.offsets, self.offsets[1:], params)]
        self.extras = self.flat[self.n_params:]
        j = 0
        for layer in getattr(model, "layers", ()):
            names = list(layer.params())
            if names:
                layer.grad_out = dict(zip(names, self.grads[j:j + len(names)]))
                j += len(names)

    def matches(self, params: Sequence[np.ndarray]) -> bool:
        return len(params) == len(self.params) and all(map(operator.is_, params, self.params))

    def pack_grads(self, grads: Sequence[Optional[np.ndarray]], weight: float,
                   extras: Sequence[float]) -> None:
        if len(extras) > self.EXTRA_SLOTS:
            raise ValueError(f"distributed: at most {self.EXTRA_SLOTS} extras, got {len(extras)}")
        body = self.flat[:self.n_params]
        if weight == 0.0:  # no rows here this step
            body.fill(0)
        elif all(map(operator.is_, grads, self.grads)):  # the layers wrote in place
            if weight != 1.0:
                np.multiply(body, weight, out=body)
        else:
            for i, g in enumerate(grads):
                self.pack_one(i, g, weight)
        self.extras[:len(extras)] = extras

    def pack_one(self, i: int, g: Optional[np.ndarray], weight: float) -> None:
        """Gradient i times weight into its slot (nothing to move when the
        layer wrote it there and weight is 1)."""
        view = self.grads[i]
        if g is None:
            raise RuntimeError(f"distributed: parameter {i} has no gradient; "
                               "call model.backward(grad) before reducing")
        elif weight != 1.0:
            np.multiply(g, weight, out=view, casting="unsafe")
        elif g is not view:
            np.copyto(view, g)


_FUSED: "weakref.WeakKeyDictionary[Any, _Fused]" = weakref.WeakKeyDictionary()


def _fused_for(model: Any) -> _Fused:
    fused = _FUSED.get(model)
    if fused is None or not fused.matches(model.parameters()):
        fused = _FUSED[model] = _Fused(model)
    return fused


# ------------------------------------------------------------------ optimizer


class _Reduced:
    """What an optimizer's step reads (``parameters``, ``gradients``), with
    the reduced gradients in place of the model's own."""

    def __init__(self, params: List[np.ndarray], grads: List[np.ndarray]) -> None:
        self._params, self._grads = params, grads

    def parameters(self) -> List[np.ndarray]:
        return self._params

    def gradients(self) -> List[np.ndarray]:
        return self._grads


class DistributedOptimizer(_optim.Optimizer):
    """Wraps any matnet optimizer: ``step(model)`` first averages the
    gradients across ranks (one fused allreduce), then applies the wrapped
    optimizer's update, identically on every rank.

    Everything else (``lr``, ``iterations``, schedules, state, ``get_config``)
    is the wrapped optimizer's; a saved model records the wrapped type.

    Args:
        optimizer: an instance from :mod:`matnet.optim` or a name ("adam").
    """

    def __init__(self, optimizer: Any) -> None:
        opt = _optim.get(optimizer)
        if isinstance(opt, DistributedOptimizer):
            opt = opt.optimizer
        object.__setattr__(self, "optimizer", opt)

    def __getattr__(self, name: str) -> Any:  # only for names not found on self
        return getattr(self.optimizer, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.optimizer, name, value)

    def step(self, model: Any, weight: Optional[float] = None) -> None:
        """Average gradients across ranks, then update (``weight``: see
        :func:`allreduce_gradients`). The model's own gradient arrays are
        left as this rank computed them."""
        self.optimizer.step(_Reduced(model.parameters(), _reduce_into_fused(model, weight)))

    def set_epoch(self, epoch: int) -> None:
        self.optimizer.set_epoch(epoch)

    def get_config(self) -> Dict[str, Any]:
        return self.optimizer.get_config()

    def state_arrays(self) -> List[Dict[str, np.ndarray]]:
        return self.optimizer.state_arrays()

    def load_state(self, iterations: int, arrays: List[Dict[str, np.ndarray]]) -> None:
        self.optimizer.load_state(iterations, arrays)

    def __repr__(self) -> str:
        return f"DistributedOptimizer({self.optimizer!r})"


def unwrap(optimizer: Any) -> Any:
    """The optimizer a :class:`DistributedOptimizer` wraps (else the argument)."""
    return optimizer.optimizer if isinstance(optimizer, DistributedOptimizer) else optimizer


# ---------------------------------------------------------------- fit support


class FitContext:
    """What ``Sequential.fit``/``evaluate`` need under MPI with > 1 rank:
    which rows are this rank's, and reductions that leave every rank with
    the same numbers (so every rank decides the same)."""

    def __init__(self) -> None:
        self.rank, self.size = rank(), size()

    def shard(self, start: int, stop: int) -> Tuple[int, int]:
        """This rank's rows of ``[start, stop)``: contiguous, sizes differing by at most 1."""
        n = stop - start
        return start + self.rank * n // self.size, start + (self.rank + 1) * n // self.size

    def local_rows(self, order: Optional[np.ndarray], n: int,
                   global_batch: int) -> Tuple[np.ndarray, List[Tuple[int, int]]]:
        """This rank's rows of an epoch over ``n`` rows in steps of
        ``global_batch`` (in ``order`` when shuffled): the row indices, and
        per step the span of them that step uses."""
        order = np.arange(n) if order is None else order
        parts, spans, start = [], [], 0
        for lo in range(0, n, global_batch):
            a, b = self.shard(lo, min(n, lo + global_batch))
            parts.append(order[a:b])
            spans.append((start, start + b - a))
            start += b - a
        return np.concatenate(parts), spans

    def begin(self, model: Any, seed: Optional[int]) -> int:
        """Start of fit: rank 0's parameters everywhere; each rank's own
        dropout stream (from the layer's and the rank, so the ranks' shards
        get different masks); returns the shuffling seed, the same on every
        rank: ``seed``, or when None one drawn on rank 0."""
        broadcast_parameters(model)
        for layer in model.layers:
            rng = getattr(layer, "_rng", None)
            if isinstance(rng, np.random.Generator):
                layer._rng = np.random.default_rng([*rng.integers(2**32, size=2), self.rank])
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0]) if self.rank == 0 else 0
            seed = _comm.bcast(seed, root=0)
        return seed

    def reduce(self, model: Any, rows: int,
               extras: Sequence[float]) -> Tuple[np.ndarray, List[np.ndarray]]:
        """Sum the gradients over the ranks, with ``extras`` (summed too) in
        the same message; a rank with no ``rows`` this step adds zeros. The
        caller scaled its loss gradient by rows / global rows, so the sum is
        the global batch's gradient. Returns the summed extras (float64) and
        the reduced gradients for :meth:`update`."""
        reduced = _reduce_into_fused(model, 1.0 if rows else 0.0, extras)
        return _fused_for(model).extras[:len(extras)].astype(np.float64), reduced

    @staticmethod
    def update(model: Any, reduced: List[np.ndarray]) -> None:
        """The wrapped optimizer's step with the reduced gradients."""
        unwrap(model.optimizer).step(_Reduced(model.parameters(), reduced))

    @staticmethod
    def sum(values: Sequence[float]) -> np.ndarray:
        return allreduce_sum(values)


def fit_context() -> Optional[FitContext]:
    """A :class:`FitContext` when :func:`init` joined a job of more than one rank, else None."""
    return FitContext() if size() > 1 else None
