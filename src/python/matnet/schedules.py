"""Learning-rate schedules: small objects mapping an epoch index to a rate.

Pass one as an optimizer's ``lr``; ``Sequential.fit`` sets the optimizer's
rate from it at the start of every epoch (epochs count from 0)::

    opt = mn.optim.SGD(lr=mn.schedules.CosineLR(0.1, epochs=20), momentum=0.9)
"""

from __future__ import annotations

import math
from typing import Any, Dict

from ._validate import check_int, check_number

__all__ = ["Schedule", "ConstantLR", "StepLR", "ExponentialLR", "CosineLR", "SCHEDULE_TYPES"]


class Schedule:
    """Base class: ``schedule(epoch) -> learning rate`` for epoch >= 0."""

    def __call__(self, epoch: int) -> float:
        raise NotImplementedError

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments (JSON-serialisable); ``cls(**config)`` rebuilds it."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class ConstantLR(Schedule):
    """The same rate every epoch."""

    def __init__(self, lr: float) -> None:
        self.lr = check_number(lr, "lr", "ConstantLR")

    def __call__(self, epoch: int) -> float:
        return self.lr

    def get_config(self) -> Dict[str, Any]:
        return {"lr": self.lr}


class StepLR(Schedule):
    """``lr * gamma ** (epoch // step_size)``: drop by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        self.lr = check_number(lr, "lr", "StepLR")
        self.step_size = check_int(step_size, "step_size", "StepLR", 1, None)
        self.gamma = check_number(gamma, "gamma", "StepLR", 0.0, 1.0)

    def __call__(self, epoch: int) -> float:
        return self.lr * self.gamma ** (epoch // self.step_size)

    def get_config(self) -> Dict[str, Any]:
        return {"lr": self.lr, "step_size": self.step_size, "gamma": self.gamma}


class ExponentialLR(Schedule):
    """``lr * gamma ** epoch``."""

    def __init__(self, lr: float, gamma: float) -> None:
        self.lr = check_number(lr, "lr", "ExponentialLR")
        self.gamma = check_number(gamma, "gamma", "ExponentialLR", 0.0, 1.0)

    def __call__(self, epoch: int) -> float:
        return self.lr * self.gamma**epoch

    def get_config(self) -> Dict[str, Any]:
        return {"lr": self.lr, "gamma": self.gamma}


class CosineLR(Schedule):
    """Linear warm-up, then cosine decay from ``lr`` to ``min_lr`` at epoch ``epochs``.

    During the first ``warmup_epochs`` epochs the rate grows linearly
    ``lr * (epoch + 1) / warmup_epochs``; after that it follows half a cosine
    (as torch's CosineAnnealingLR), and stays at ``min_lr`` past ``epochs``.
    """

    def __init__(self, lr: float, epochs: int, min_lr: float = 0.0, warmup_epochs: int = 0) -> None:
        self.lr = check_number(lr, "lr", "CosineLR")
        self.epochs = check_int(epochs, "epochs", "CosineLR", 1, None)
        self.min_lr = check_number(min_lr, "min_lr", "CosineLR", 0.0, self.lr)
        self.warmup_epochs = check_int(warmup_epochs, "warmup_epochs", "CosineLR", 0, None)
        if self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"CosineLR: warmup_epochs ({warmup_epochs}) must be < epochs ({epochs})"
            )

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return self.lr * (epoch + 1) / self.warmup_epochs
        span = self.epochs - self.warmup_epochs
        t = min(epoch - self.warmup_epochs, span) / span
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * t))

    def get_config(self) -> Dict[str, Any]:
        return {"lr": self.lr, "epochs": self.epochs, "min_lr": self.min_lr,
                "warmup_epochs": self.warmup_epochs}


#: Schedule types by name (the whitelist for saved optimizer configs).
SCHEDULE_TYPES: Dict[str, type] = {
    cls.__name__: cls for cls in (ConstantLR, StepLR, ExponentialLR, CosineLR)
}
