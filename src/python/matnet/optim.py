"""Optimizers: SGD, Adam, AdamW and RMSprop over matnet's in-place update kernels.

The formulas are torch.optim's (see ``matnet/optim.hpp``): each ``step``
updates every parameter of the model in place with one kernel call per
parameter array, using the gradients the last ``model.backward`` stored.
State (momentum buffers, moment estimates) is created on the first step,
one set of arrays per parameter, in ``model.parameters()`` order.
"""

from __future__ import annotations

import operator
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import ops
from ._validate import check_number
from .schedules import SCHEDULE_TYPES, Schedule

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "OPTIMIZER_TYPES", "get"]

LearningRate = Union[float, Schedule]


class Optimizer:
    """Base class. ``step(model)`` applies one update; ``zero_grad(model)`` clears gradients.

    Args:
        lr: learning rate, a float or a :class:`matnet.schedules.Schedule`
            (then ``set_epoch`` — called by ``fit`` — picks the epoch's rate).
    """

    #: Names of the per-parameter state arrays this optimizer keeps.
    slots: Tuple[str, ...] = ()

    def __init__(self, lr: LearningRate) -> None:
        name = type(self).__name__
        if isinstance(lr, Schedule):
            self.schedule: Optional[Schedule] = lr
            self.lr = lr(0)
        else:
            self.schedule = None
            self.lr = check_number(lr, "lr", name)
        #: Number of steps taken so far.
        self.iterations = 0
        self._state: Optional[List[Dict[str, np.ndarray]]] = None
        # The parameter arrays the state was last checked against (see _state_for).
        self._checked: Optional[List[np.ndarray]] = None

    # ------------------------------------------------------------------ public

    def set_epoch(self, epoch: int) -> None:
        """Set ``lr`` from the schedule for ``epoch`` (no-op for a constant rate)."""
        if self.schedule is not None:
            self.lr = float(self.schedule(epoch))

    def step(self, model: Any) -> None:
        """Update ``model.parameters()`` in place from ``model.gradients()``."""
        params = model.parameters()
        grads = model.gradients()
        for i, g in enumerate(grads):
            if g is None:
                raise RuntimeError(
                    f"{type(self).__name__}.step: parameter {i} has no gradient; "
                    "call model.backward(grad) before step"
                )
        state = self._state_for(params)
        # All or nothing: every parameter is checked (read-only, layout, dtype,
        # hyper-parameters) before any is updated or iterations advances.
        self.iterations += 1
        try:
            for p, g, s in zip(params, grads, state):
                self._update(p, g, s, check_only=True)
        except BaseException:
            self.iterations -= 1
            raise
        for p, g, s in zip(params, grads, state):
            self._update(p, g, s)

    def zero_grad(self, model: Any) -> None:
        """Clear the model's stored gradients (backward overwrites them anyway)."""
        model.zero_grad()

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments, JSON-serialisable (a schedule as {type, config})."""
        lr: Any = self.lr
        if self.schedule is not None:
            lr = {"type": type(self.schedule).__name__, "config": self.schedule.get_config()}
        return {"lr": lr, **self._hyper_config()}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Optimizer":
        """Inverse of ``get_config``."""
        config = dict(config)
        lr = config.get("lr")
        if isinstance(lr, dict):
            if set(lr) != {"type", "config"} or lr["type"] not in SCHEDULE_TYPES or not isinstance(
                    lr["config"], dict):
                raise ValueError(f"{cls.__name__}: unknown learning-rate schedule {lr!r}")
            config["lr"] = SCHEDULE_TYPES[lr["type"]](**lr["config"])
        if "betas" in config and isinstance(config["betas"], list):
            config["betas"] = tuple(config["betas"])
        return cls(**config)

    def state_arrays(self) -> List[Dict[str, np.ndarray]]:
        """The per-parameter state arrays (empty before the first step)."""
        return [] if self._state is None else self._state

    def load_state(self, iterations: int, arrays: List[Dict[str, np.ndarray]]) -> None:
        """Restore ``iterations`` and the state arrays (as ``state_arrays`` returns)."""
        self.iterations = int(iterations)
        self._state = [dict(s) for s in arrays] if arrays else None
        self._checked = None

    # -------------------------------------------------------------- internals

    def _active_slots(self) -> Tuple[str, ...]:
        return self.slots

    def _state_for(self, params: Sequence[np.ndarray]) -> List[Dict[str, np.ndarray]]:
        # The same arrays as last step (the usual case): already checked. The
        # full check costs ~8 us a step for a 3-layer MLP; this one ~0.3 us.
        checked = self._checked
        if (checked is not None and self._state is not None and len(checked) == len(params)
                and all(map(operator.is_, checked, params))):
            return self._state
        if self._state is None:
            self._state = [
                {name: np.zeros_like(p) for name in self._active_slots()} for p in params
            ]
        if len(self._state) != len(params) or any(
            s[name].shape != p.shape or s[name].dtype != p.dtype
            for s, p in zip(self._state, params)
            for name in s
        ):
            raise ValueError(
                f"{type(self).__name__}.step: the model's parameters do not match this "
                "optimizer's state (one optimizer per model)"
            )
        self._checked = list(params)
        return self._state

    def _update(self, param: np.ndarray, grad: np.ndarray, state: Dict[str, np.ndarray],
                check_only: bool = False) -> None:
        raise NotImplementedError

    def _hyper_config(self) -> Dict[str, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as torch.optim.SGD.

    ``g = grad + weight_decay·p``; with momentum ``buf = momentum·buf + (1-dampening)·g``
    (``buf = g`` on the first step) and ``g = buf`` (or ``g + momentum·buf`` for
    Nesterov); then ``p -= lr·g``.
    """

    def __init__(self, lr: LearningRate = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self.momentum = check_number(momentum, "momentum", "SGD")
        self.dampening = check_number(dampening, "dampening", "SGD", 0.0, 1.0)
        if not isinstance(nesterov, bool):
            raise TypeError(f"SGD: nesterov must be a bool, got {nesterov!r}")
        if nesterov and (self.momentum == 0.0 or self.dampening != 0.0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening == 0")
        self.nesterov = nesterov
        self.weight_decay = check_number(weight_decay, "weight_decay", "SGD")

    def _active_slots(self) -> Tuple[str, ...]:
        return ("velocity",) if self.momentum else ()

    def _update(self, param: np.ndarray, grad: np.ndarray, state: Dict[str, np.ndarray],
                check_only: bool = False) -> None:
        ops.sgd_update(
            param, grad, state.get("velocity"), lr=self.lr, momentum=self.momentum,
            dampening=self.dampening, nesterov=self.nesterov, weight_decay=self.weight_decay,
            first_step=self.iterations == 1, check_only=check_only,
        )

    def _hyper_config(self) -> Dict[str, Any]:
        return {"momentum": self.momentum, "dampening": self.dampening,
                "nesterov": self.nesterov, "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam (Kingma & Ba), as torch.optim.Adam: L2 weight decay added to the gradient."""

    slots = ("m", "v")
    _decoupled = False

    def __init__(self, lr: LearningRate = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        name = type(self).__name__
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{name}: betas must be a pair of floats, got {betas!r}")
        self.betas = (check_number(betas[0], "betas[0]", name, 0.0, 1.0, hi_open=True),
                      check_number(betas[1], "betas[1]", name, 0.0, 1.0, hi_open=True))
        self.eps = check_number(eps, "eps", name)
        self.weight_decay = check_number(weight_decay, "weight_decay", name)

    def _update(self, param: np.ndarray, grad: np.ndarray, state: Dict[str, np.ndarray],
                check_only: bool = False) -> None:
        ops.adam_update(
            param, grad, state["m"], state["v"], step=self.iterations, lr=self.lr,
            beta1=self.betas[0], beta2=self.betas[1], eps=self.eps,
            weight_decay=self.weight_decay, decoupled=self._decoupled, check_only=check_only,
        )

    def _hyper_config(self) -> Dict[str, Any]:
        return {"betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW:
    ``p *= 1 - lr·weight_decay`` before the Adam step."""

    _decoupled = True

    def __init__(self, lr: LearningRate = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(lr, betas, eps, weight_decay)


class RMSprop(Optimizer):
    """RMSprop, as torch.optim.RMSprop (optionally centered, with momentum)."""

    def __init__(self, lr: LearningRate = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False) -> None:
        super().__init__(lr)
        self.alpha = check_number(alpha, "alpha", "RMSprop", 0.0, 1.0)
        self.eps = check_number(eps, "eps", "RMSprop")
        self.weight_decay = check_number(weight_decay, "weight_decay", "RMSprop")
        self.momentum = check_number(momentum, "momentum", "RMSprop")
        if not isinstance(centered, bool):
            raise TypeError(f"RMSprop: centered must be a bool, got {centered!r}")
        self.centered = centered

    def _active_slots(self) -> Tuple[str, ...]:
        return (("square_avg",) + (("momentum_buffer",) if self.momentum else ())
                + (("grad_avg",) if self.centered else ()))

    def _update(self, param: np.ndarray, grad: np.ndarray, state: Dict[str, np.ndarray],
                check_only: bool = False) -> None:
        ops.rmsprop_update(
            param, grad, state["square_avg"], lr=self.lr, alpha=self.alpha, eps=self.eps,
            weight_decay=self.weight_decay, momentum=self.momentum,
            momentum_buffer=state.get("momentum_buffer"), centered=self.centered,
            grad_avg=state.get("grad_avg"), check_only=check_only,
        )

    def _hyper_config(self) -> Dict[str, Any]:
        return {"alpha": self.alpha, "eps": self.eps, "weight_decay": self.weight_decay,
                "momentum": self.momentum, "centered": self.centered}


#: Optimizer types by name (``compile(optimizer="adam")`` and saved files).
OPTIMIZER_TYPES: Dict[str, type] = {cls.__name__: cls for cls in (SGD, Adam, AdamW, RMSprop)}


def get(optimizer: Union[str, Optimizer]) -> Optimizer:
    """An optimizer from an instance or a name ("sgd", "adam", "adamw", "rmsprop")."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        by_lower = {name.lower(): cls for name, cls in OPTIMIZER_TYPES.items()}
        if optimizer.lower() in by_lower:
            return by_lower[optimizer.lower()]()
    raise ValueError(
        f"unknown optimizer {optimizer!r}; use one of {sorted(n.lower() for n in OPTIMIZER_TYPES)} "
        "or an instance from matnet.optim"
    )
