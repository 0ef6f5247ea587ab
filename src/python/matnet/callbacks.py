"""Callbacks for ``Sequential.fit``: History, EarlyStopping, ModelCheckpoint.

``fit`` calls, in order: ``on_train_begin(model)``, then per epoch
``on_epoch_begin(epoch)`` and ``on_epoch_end(epoch, logs)`` (``logs`` holds the
epoch's ``loss``, metrics and ``val_*`` entries), and ``on_train_end(logs)``.
A callback stops training by setting ``model.stop_training = True``.
"""

from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Optional

import numpy as np

from ._validate import check_count, check_mode, check_number

__all__ = ["Callback", "History", "EarlyStopping", "ModelCheckpoint"]

Logs = Dict[str, float]


class Callback:
    """Base class; every hook is a no-op. ``self.model`` is set by ``fit``."""

    model: Any = None

    def on_train_begin(self, model: Any) -> None:
        self.model = model

    def on_epoch_begin(self, epoch: int) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        pass

    def on_train_end(self, logs: Logs) -> None:
        pass


class History(Callback):
    """What ``fit`` returns: per-epoch lists of every logged value.

    Attributes:
        history: ``{"loss": [...], "accuracy": [...], "val_loss": [...], ...}``,
            one entry per finished epoch.
        epoch: the epoch indices (from 0) that finished.
    """

    def __init__(self) -> None:
        self.history: Dict[str, List[float]] = {}
        self.epoch: List[int] = []

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def plot(self, path: "os.PathLike[str] | str", title: Optional[str] = None) -> str:
        """Write a PNG of the learning curves (loss, and accuracy when logged) to ``path``.

        Needs matplotlib (``pip install matnet[demo]``); it draws off-screen
        (Agg) without touching pyplot's global state. Returns the path written.
        """
        from . import distributed
        from .plotting import plot_history

        if not distributed.is_main():  # under MPI, rank 0 writes
            return os.fspath(path)
        return plot_history(self.history, path, title=title)


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    if math.isnan(value):
        return False
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _monitored(logs: Logs, monitor: str, who: str) -> float:
    if monitor not in logs:
        raise KeyError(
            f"{who}: monitored value {monitor!r} is not in the logs {sorted(logs)}; "
            "pass validation_data to fit for val_* values"
        )
    return float(logs[monitor])


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    Args:
        monitor: a key of the epoch logs, e.g. ``"val_loss"`` or ``"val_accuracy"``.
        patience: stop after this many epochs in a row without improvement.
        min_delta: smallest change that counts as an improvement.
        mode: "min", "max", or "auto" (max for accuracies, else min).
        restore_best: put back the weights of the best epoch when training ends.

    Attributes:
        best: best monitored value seen; ``best_epoch``; ``stopped_epoch``
            (None when training ran to the end).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best: bool = True) -> None:
        self.monitor = monitor
        self.patience = check_count(patience, "patience", "EarlyStopping", minimum=0)
        self.min_delta = check_number(min_delta, "min_delta", "EarlyStopping")
        self.mode = check_mode(monitor, mode)
        self.restore_best = restore_best
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: Optional[int] = None
        self.stopped_epoch: Optional[int] = None
        self._wait = 0
        self._best_weights: Optional[List[np.ndarray]] = None

    def on_train_begin(self, model: Any) -> None:
        super().on_train_begin(model)
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self._wait = value, epoch, 0
            if self.restore_best:
                self._best_weights = [p.copy() for p in self.model.parameters()]
            return
        self._wait += 1
        if self._wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs) -> None:
        if self.restore_best and self._best_weights is not None:
            for p, best in zip(self.model.parameters(), self._best_weights):
                p[...] = best


class ModelCheckpoint(Callback):
    """Save the model after epochs where ``monitor`` improved (or every epoch).

    Args:
        path: file to write (``.npz``); may contain ``{epoch}`` (1-based) and
            any logged key, e.g. ``"ckpt-{epoch:03d}-{val_loss:.3f}.npz"``.
        monitor: key of the epoch logs to watch.
        save_best_only: only write when ``monitor`` improved.
        mode: "min", "max" or "auto".
        include_optimizer: also save the optimizer state.

    Attributes:
        best: best monitored value; ``saved``: paths written, in order.
    """

    def __init__(self, path: "os.PathLike[str] | str", monitor: str = "val_loss",
                 save_best_only: bool = True, mode: str = "auto",
                 include_optimizer: bool = False) -> None:
        self.path = os.fspath(path)
        self.monitor = monitor
        self.save_best_only = save_best_only
        self.mode = check_mode(monitor, mode)
        self.include_optimizer = include_optimizer
        self.best = math.inf if self.mode == "min" else -math.inf
        self.saved: List[str] = []

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if not _improved(value, self.best, self.mode, 0.0):
                return
            self.best = value
        path = self.path.format(epoch=epoch + 1, **logs)
        self.model.save(path, include_optimizer=self.include_optimizer)
        self.saved.append(path)
