"""Sequential: a stack of layers with compile / fit / evaluate / predict.

The training step is four calls into the kernels — ``forward`` (one fused
dense kernel per layer), the fused loss, ``backward`` (one fused kernel per
layer) and one optimizer update per parameter array. Python only slices
batches and keeps the books.
"""

from __future__ import annotations

import math
import operator
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union, cast

import numpy as np

from . import distributed as _dist
from . import optim as _optim
from .callbacks import Callback, History
from . import _core
from ._validate import check_count
from .layers import LAYER_TYPES, Dense, Dropout, Layer
from .layers.containers import build_layer, spec_param_shapes, spec_shapes
from .metrics import LOSSES, METRICS, check_targets, correct_count

__all__ = ["Sequential"]

Shape = Tuple[int, ...]


class Sequential(Layer):
    """Layers applied one after another: ``y = layer_n(... layer_1(x))``.

    A Sequential is itself a :class:`~matnet.layers.Layer`, so stacks nest
    (``Residual(Sequential([LayerNorm(64), MultiHeadAttention(64, 4)]))``);
    as a layer its parameters are named ``layers.<i>.<name>``.

    Args:
        layers: the :class:`matnet.layers.Layer` objects, input side first. All
            layers with parameters must share one dtype (float32 or float64).

    Example::

        model = mn.Sequential([mn.layers.Dense(64, 128, activation="relu"),
                               mn.layers.Dense(128, 10)])
        model.compile(optimizer=mn.optim.Adam(1e-3), loss="cross_entropy")
        history = model.fit(x, y, epochs=10, batch_size=64, validation_data=(xv, yv))
    """

    def __init__(self, layers: Sequence[Layer]) -> None:
        layers = list(layers)
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"Sequential: layers[{i}] must be a matnet.layers.Layer, "
                    f"got {type(layer).__name__}"
                )
        dtypes = {layer.dtype for layer in layers if layer.dtype is not None}
        if len(dtypes) > 1:
            raise TypeError(
                f"Sequential: all layers must share one dtype, got {sorted(d.name for d in dtypes)}"
            )
        self.layers: List[Layer] = layers
        self._dtype: np.dtype = dtypes.pop() if dtypes else np.dtype(np.float32)
        self.optimizer: Optional[_optim.Optimizer] = None
        self.loss: Optional[str] = None
        self.label_smoothing = 0.0
        self.metrics: List[str] = []
        #: Set to True (by a callback) to end ``fit`` after the current epoch.
        self.stop_training = False

    # ------------------------------------------------------------ structure

    @property
    def dtype(self) -> np.dtype:
        """dtype of the parameters (float32 when there are none)."""
        return self._dtype

    @property
    def has_training_mode(self) -> bool:  # type: ignore[override]
        return any(getattr(layer, "has_training_mode", False) for layer in self.layers)

    # As a Layer: parameters named as named_parameters() names them.
    def params(self) -> Dict[str, np.ndarray]:
        return dict(self.named_parameters())

    def grads(self) -> Dict[str, Optional[np.ndarray]]:
        return {f"layers.{i}.{name}": g for i, layer in enumerate(self.layers)
                for name, g in layer.grads().items()}

    def param_shapes(self) -> Dict[str, Shape]:
        return {f"layers.{i}.{name}": shape for i, layer in enumerate(self.layers)
                for name, shape in layer.param_shapes().items()}

    def set_params(self, values: Dict[str, np.ndarray]) -> None:
        expected = self.param_shapes()
        if set(values) != set(expected):
            raise ValueError(f"Sequential.set_params: expected arrays {sorted(expected)}, "
                             f"got {sorted(values)}")
        for i, layer in enumerate(self.layers):
            prefix = f"layers.{i}."
            mine = {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}
            if mine:
                layer.set_params(mine)

    @property
    def has_buffers(self) -> bool:  # type: ignore[override]
        return bool(self.named_buffers())

    def buffers(self) -> Dict[str, np.ndarray]:
        return dict(self.named_buffers())

    def set_buffers(self, values: Dict[str, np.ndarray]) -> None:
        for i, layer in enumerate(self.layers):
            prefix = f"layers.{i}."
            mine = {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}
            if mine or layer.buffers():
                layer.set_buffers(mine)

    @classmethod
    def config_buffer_shapes(cls, config: Dict[str, Any]) -> Dict[str, Shape]:
        cls.config_param_shapes(config)  # the structure, checked
        return {f"layers.{i}.{name}": shape for i, spec in enumerate(config["layers"])
                for name, shape in spec_shapes(spec, f"layer {i}", buffers=True).items()}

    @classmethod
    def config_param_shapes(cls, config: Dict[str, Any]) -> Dict[str, Shape]:
        specs = config.get("layers") if isinstance(config, dict) else None
        if set(config) != {"layers"} or not isinstance(specs, list) or not specs:
            raise ValueError("Sequential: config must be {'layers': [non-empty list]}")
        return {f"layers.{i}.{name}": shape for i, spec in enumerate(specs)
                for name, shape in spec_param_shapes(spec, f"layer {i}").items()}

    @property
    def input_shape(self) -> Optional[Shape]:
        """Per-sample input shape when the first layer fixes it (a Dense), else None."""
        first = self.layers[0]
        return (first.in_features,) if isinstance(first, Dense) else None

    def output_shape(self, input_shape: Shape) -> Shape:
        """Per-sample output shape for per-sample inputs of ``input_shape``."""
        shape = tuple(input_shape)
        for i, layer in enumerate(self.layers):
            try:
                shape = layer.output_shape(shape)
            except ValueError as exc:
                raise ValueError(f"layer {i} ({type(layer).__name__}): {exc}") from None
        return shape

    def parameters(self) -> List[np.ndarray]:
        """Every trainable array, layer by layer (``W`` then ``b`` for Dense)."""
        return [p for layer in self.layers for p in layer.params().values()]

    def named_parameters(self) -> List[Tuple[str, np.ndarray]]:
        """``("layers.<i>.<name>", array)`` pairs, in ``parameters()`` order."""
        return [(f"layers.{i}.{name}", p) for i, layer in enumerate(self.layers)
                for name, p in layer.params().items()]

    def named_buffers(self) -> List[Tuple[str, np.ndarray]]:
        """``("layers.<i>.<name>", array)`` for every buffer (BatchNorm's running
        statistics): saved and loaded with the parameters, never trained."""
        return [(f"layers.{i}.{name}", b) for i, layer in enumerate(self.layers)
                for name, b in layer.buffers().items()]

    def gradients(self) -> List[Optional[np.ndarray]]:
        """Gradients from the last ``backward``, in ``parameters()`` order."""
        return [g for layer in self.layers for g in layer.grads().values()]

    def zero_grad(self) -> None:
        """Forget all stored gradients."""
        for layer in self.layers:
            layer.zero_grad()

    def count_params(self) -> int:
        """Number of trainable scalars."""
        return int(sum(p.size for p in self.parameters()))

    def summary(self, input_shape: Optional[Shape] = None) -> str:
        """A table of layers, output shapes and parameter counts (returned, not printed).

        Output shapes need the per-sample input shape: ``input_shape``, or
        the one a first Dense layer fixes; "?" otherwise.
        """
        rows = [("#", "layer", "output shape", "params")]
        shape: Optional[Shape] = tuple(input_shape) if input_shape is not None \
            else self.input_shape
        for i, layer in enumerate(self.layers):
            if shape is not None:
                try:
                    shape = layer.output_shape(shape)
                except ValueError:  # the guess from a first Dense does not fit (sequences)
                    shape = None
            n = sum(p.size for p in layer.params().values())
            out = "(None, " + ", ".join(map(str, shape)) + ")" if shape is not None else "?"
            rows.append((str(i), layer.describe(), out, f"{n:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = "  ".join("-" * w for w in widths)
        text = [line]
        for j, r in enumerate(rows):
            text.append("  ".join(
                cell.rjust(w) if c in (0, 3) else cell.ljust(w)
                for c, (cell, w) in enumerate(zip(r, widths))).rstrip())
            if j == 0:
                text.append(line)
        text += [line, f"Total params: {self.count_params():,} ({self.dtype.name})"]
        return "\n".join(text)

    # -------------------------------------------------------- forward/back

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Raw outputs for the batch ``x`` (logits for classification).

        ``training=True`` turns Dropout on. Every layer keeps what its
        backward needs, so ``backward`` may follow any forward.
        """
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> Optional[np.ndarray]:
        """Backpropagate d loss / d output; fills every layer's gradients.

        Returns d loss / d input (None when ``need_input_grad`` is False,
        which saves the first layer's input-gradient GEMM).
        """
        g: Optional[np.ndarray] = grad
        for i in range(len(self.layers) - 1, -1, -1):
            assert g is not None  # only the first layer may skip its input gradient
            g = self.layers[i].backward(g, need_input_grad=need_input_grad or i > 0)
        return g

    # ------------------------------------------------------------ training

    def compile(self, optimizer: Union[str, _optim.Optimizer] = "adam",
                loss: str = "cross_entropy", metrics: Sequence[str] = ("accuracy",),
                label_smoothing: float = 0.0) -> None:
        """Choose the optimizer, the loss and the metrics for ``fit``/``evaluate``.

        Args:
            optimizer: an instance from :mod:`matnet.optim` or a name
                ("sgd", "adam", "adamw", "rmsprop") for its defaults.
            loss: "cross_entropy" (integer labels, logits out), "mse" or
                "binary_cross_entropy" (logits out, targets in [0, 1]).
            metrics: names from :data:`matnet.metrics.METRICS` ("accuracy").
            label_smoothing: for cross_entropy, as torch.nn.CrossEntropyLoss.
        """
        if loss not in LOSSES:
            raise ValueError(f"compile: loss must be one of {sorted(LOSSES)}, got {loss!r}")
        if isinstance(metrics, str):
            metrics = [metrics]
        for m in metrics:
            if m not in METRICS:
                raise ValueError(f"compile: unknown metric {m!r}; known: {sorted(METRICS)}")
            if loss not in METRICS[m]:
                raise ValueError(f"compile: metric {m!r} does not apply to loss {loss!r}")
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
                or not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"compile: label_smoothing must be in [0, 1], got {label_smoothing!r}")
        if label_smoothing and loss != "cross_entropy":
            raise ValueError("compile: label_smoothing applies to cross_entropy only")
        self.optimizer = _optim.get(optimizer)
        self.loss = loss
        self.label_smoothing = float(label_smoothing)
        self.metrics = list(metrics)

    def _loss_fn(self) -> Callable[[np.ndarray, np.ndarray], Tuple[float, np.ndarray]]:
        fn: Callable[..., Tuple[float, np.ndarray]] = LOSSES[self._loss_name()]
        if self.label_smoothing:
            s = self.label_smoothing
            return lambda out, y: fn(out, y, label_smoothing=s)
        return fn

    def _require_compiled(self, what: str) -> None:
        if self.loss is None or self.optimizer is None:
            raise RuntimeError(f"{what}: call model.compile(optimizer=..., loss=...) first")

    def _loss_name(self) -> str:
        self._require_compiled("Sequential")
        assert self.loss is not None
        return self.loss

    def _compiled_optimizer(self) -> _optim.Optimizer:
        self._require_compiled("Sequential")
        assert self.optimizer is not None
        return self.optimizer

    def _check_inputs(self, x: Any, name: str = "x") -> Tuple[np.ndarray, Shape]:
        """x as a C-contiguous array of the model dtype, and the per-sample output shape."""
        arr = np.asarray(x)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
        if arr.ndim < 2:
            raise ValueError(f"{name} must be a batch of shape (n, features...), got {arr.shape}")
        try:
            out_shape = self.output_shape(arr.shape[1:])
        except ValueError as exc:
            raise ValueError(f"{name} of shape {arr.shape} does not fit the model: {exc}") from None
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        if not np.isfinite(arr).all():
            bad = int(np.argmin(np.isfinite(arr).reshape(len(arr), -1).all(axis=1)))
            raise ValueError(f"{name} contains NaN or Inf (first in row {bad})")
        return arr, out_shape

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: Optional[Tuple[np.ndarray, np.ndarray]] = None,
        shuffle: bool = True,
        seed: Optional[int] = None,
        callbacks: Optional[Sequence[Callback]] = None,
        verbose: int = 1,
        check_finite: bool = True,
    ) -> History:
        """Train for ``epochs`` passes over ``(x, y)`` in mini-batches.

        Args:
            x: inputs (n, features...); converted once to the model's dtype.
                NaN or Inf in x raises ValueError.
            y: targets (see :func:`matnet.metrics.check_targets`): int labels
                for cross_entropy, else arrays of the output shape.
            epochs: number of passes.
            batch_size: rows per step; the last batch of an epoch holds the remainder.
            validation_data: optional ``(x_val, y_val)`` evaluated after each epoch.
            shuffle: reshuffle the rows every epoch (generator seeded by ``seed``).
            seed: seed of the shuffling generator (None: fresh entropy).
            callbacks: extra :class:`matnet.callbacks.Callback` objects.
            verbose: 0 silent; 1 a tqdm progress bar per epoch plus one line of
                metrics per epoch; 2 only the lines. Without tqdm installed,
                1 behaves as 2.
            check_finite: raise FloatingPointError (naming epoch and batch) as
                soon as the loss is NaN or Inf; False trains on regardless.

        Under :func:`matnet.distributed.init` with N > 1 ranks, ``batch_size``
        is per rank: each step takes N·batch_size rows of the (identically
        shuffled) data and splits them across the ranks, so the updates equal
        one process's with batch N·batch_size; the last, smaller batch is
        split as evenly as possible and weighted by rows. Parameters start
        from rank 0's, losses, metrics and validation are reduced over all
        ranks (callbacks see the same logs everywhere), and only rank 0
        prints and saves.

        Returns:
            A :class:`matnet.callbacks.History`; ``history.history`` maps
            "loss", the metrics and their "val_" versions to per-epoch lists.
        """
        self._require_compiled("fit")
        epochs = check_count(epochs, "epochs", "fit", minimum=0)
        batch_size = check_count(batch_size, "batch_size", "fit")
        if verbose not in (0, 1, 2):
            raise ValueError(f"fit: verbose must be 0, 1 or 2, got {verbose!r}")
        x, out_shape = self._check_inputs(x, "x")
        if len(x) == 0:
            raise ValueError("fit: x has no rows")
        y = check_targets(y, self._loss_name(), len(x), out_shape, self.dtype, "y")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("fit: validation_data must be a pair (x_val, y_val)")
            xv, out_v = self._check_inputs(validation_data[0], "validation x")
            yv = check_targets(validation_data[1], self._loss_name(), len(xv), out_v, self.dtype,
                               "validation y")
            val = (xv, yv)

        history = History()
        all_callbacks: List[Callback] = [history, *(callbacks or [])]
        for cb in all_callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"fit: callbacks must be matnet Callback objects, got {cb!r}")
        dist = _dist.fit_context()
        if dist is not None:
            seed = dist.begin(self, seed)
            verbose = verbose if _dist.is_main() else 0
        rng = np.random.default_rng(seed)
        bar_factory = _progress_bar_factory() if verbose == 1 else None
        self.stop_training = False
        for cb in all_callbacks:
            cb.model = self  # also for subclasses whose on_train_begin skips super()
            cb.on_train_begin(self)
        logs: Dict[str, float] = {}
        for epoch in range(int(epochs)):
            for cb in all_callbacks:
                cb.on_epoch_begin(epoch)
            self._compiled_optimizer().set_epoch(epoch)
            start = time.perf_counter()
            steps = math.ceil(len(x) / (batch_size * (dist.size if dist else 1)))
            bar = bar_factory(epoch, epochs, steps) if bar_factory else None
            try:
                logs = self._train_epoch(x, y, batch_size, shuffle, rng, epoch, check_finite, bar,
                                         dist)
            finally:
                if bar is not None:
                    bar.close()
            if val is not None:
                scores = self._evaluate_arrays(val[0], val[1], max(batch_size, 256))
                logs.update({"val_" + k: v for k, v in scores.items()})
            for cb in all_callbacks:
                cb.on_epoch_end(epoch, logs)
            if verbose:
                seconds = time.perf_counter() - start
                parts = [f"{k}: {v:.4f}" for k, v in logs.items()]
                print(f"epoch {epoch + 1}/{epochs} - {seconds:.2f}s - " + " - ".join(parts),
                      flush=True)
            if self.stop_training:
                break
        for cb in all_callbacks:
            cb.on_train_end(logs)
        return history

    def _train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool,
                     rng: np.random.Generator, epoch: int, check_finite: bool,
                     bar: Any, dist: Optional[_dist.FitContext] = None) -> Dict[str, float]:
        n = len(x)
        order = rng.permutation(n) if shuffle else None
        spans = None
        if dist is not None:  # a step takes batch_size rows on every rank
            batch_size *= dist.size
            # Only this rank's rows, gathered once: its share of every step.
            take, spans = dist.local_rows(order, n, batch_size)
            x, y = x[take], y[take]
        elif shuffle:
            # One gather per epoch; the batches are then contiguous row slices.
            x, y = x[order], y[order]
        loss_fn = self._loss_fn()
        track_accuracy = "accuracy" in self.metrics
        n_batches = math.ceil(n / batch_size)
        loss_sum, right, total = 0.0, 0, 0

        def check(loss: float, b: int) -> None:
            if check_finite and not math.isfinite(loss):
                raise FloatingPointError(
                    f"fit: the loss became {loss} at epoch {epoch + 1}, batch {b + 1} of "
                    f"{n_batches}; training stopped. Lower the learning rate or check the "
                    "data (pass check_finite=False to train on regardless)"
                )

        for b in range(n_batches):
            rows = min(n, (b + 1) * batch_size) - b * batch_size
            start, stop = spans[b] if spans else (b * batch_size, b * batch_size + rows)
            xb, yb = x[start:stop], y[start:stop]
            loss, r, t = 0.0, 0, 0
            if len(xb):  # a rank's share of a short last batch may be empty
                out = self.forward(xb, training=True)
                loss, grad = loss_fn(out, yb)
                if dist is None:
                    check(loss, b)
                else:  # the ranks' gradients then sum to the global batch's mean
                    grad *= len(xb) / rows
                self.backward(grad, need_input_grad=False)
                if track_accuracy:
                    r, t = correct_count(out, yb, self._loss_name())
            if dist is None:
                self._compiled_optimizer().step(self)
                loss_sum += loss * len(xb)
            else:  # the loss and counts travel with the gradients
                sums, reduced = dist.reduce(self, len(xb), (loss * len(xb), r, t))
                check(sums[0] / rows, b)
                dist.update(self, reduced)
                loss_sum, r, t = loss_sum + sums[0], int(sums[1]), int(sums[2])
            right, total = right + r, total + t
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / min(n, (b + 1) * batch_size):.4f}",
                                refresh=False)
        logs = {"loss": loss_sum / n}
        if track_accuracy:
            logs["accuracy"] = right / total
        return logs

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> Dict[str, float]:
        """Loss and metrics over ``(x, y)`` in evaluation mode (no dropout).

        Returns:
            ``{"loss": ..., "accuracy": ...}`` (the compiled metrics).
        """
        self._require_compiled("evaluate")
        batch_size = check_count(batch_size, "batch_size", "evaluate")
        x, out_shape = self._check_inputs(x, "x")
        if len(x) == 0:
            raise ValueError("evaluate: x has no rows")
        y = check_targets(y, self._loss_name(), len(x), out_shape, self.dtype, "y")
        return self._evaluate_arrays(x, y, batch_size)

    def _evaluate_arrays(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> Dict[str, float]:
        loss_fn = self._loss_fn()
        loss_sum, right, total = 0.0, 0, 0
        dist = _dist.fit_context()  # under MPI each rank evaluates a slice
        first, last = dist.shard(0, len(x)) if dist is not None else (0, len(x))
        for start in range(first, last, batch_size):
            xb, yb = x[start:min(last, start + batch_size)], y[start:min(last, start + batch_size)]
            out = self.forward(xb, training=False)
            loss, _ = loss_fn(out, yb)
            loss_sum += loss * len(xb)
            r, t = correct_count(out, yb, self._loss_name()) if "accuracy" in self.metrics else (0, 0)
            right, total = right + r, total + t
        if dist is not None:
            loss_sum, right, total = dist.sum((loss_sum, right, total))
        scores = {"loss": loss_sum / len(x)}
        if "accuracy" in self.metrics:
            scores["accuracy"] = right / total
        return scores

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Raw outputs (logits for classification) for ``x``, in evaluation mode.

        Returns:
            An array (n, outputs...) of the model dtype; n may be 0.
        """
        if type(batch_size) is not int or batch_size < 1:
            batch_size = check_count(batch_size, "batch_size", "predict")
        if type(x) is np.ndarray and x.ndim == 2 and 0 < x.shape[0] <= batch_size:
            plan = self._dense_plan()
            if plan is not None:
                # The serving case: one C++ call checks x (dtype, features,
                # NaN/Inf) and runs every layer, with nothing allocated but
                # the result. On any complaint the checks below run and
                # raise (or convert x) as for any other input.
                try:
                    return plan(x, True)
                except (TypeError, ValueError):
                    pass
        x, out_shape = self._check_inputs(x, "x")
        if len(x) <= batch_size and len(x) > 0:
            # One batch (the serving case): no output copy, and every layer
            # but the last writes into a buffer it reuses across calls.
            return self._infer(x)
        out = np.empty((len(x),) + out_shape, dtype=self.dtype)
        for start in range(0, len(x), batch_size):
            out[start:start + batch_size] = self._infer(x[start:start + batch_size])
        return out

    def _dense_plan(self) -> Optional["_core.DenseChain"]:
        """The model as one C++ inference call (``_core.DenseChain``) when it
        is Dense layers only (Dropout is the identity in inference), else
        None. Rebuilt when the layer list, a layer's arrays or its activation
        changed (one identity check per layer on the serving path)."""
        cached = self.__dict__.get("_plan_cache")
        if cached is not None:
            chain, specs, layers = cached
            current = self.layers
            if len(layers) == len(current) and all(map(operator.is_, layers, current)):
                for layer, w, b, activation, slope in specs:
                    if (layer.W is not w or layer.b is not b or layer.activation != activation
                            or layer.negative_slope != slope):
                        break
                else:
                    return chain
        dense = [layer for layer in self.layers if not isinstance(layer, Dropout)]
        if not dense or not all(type(layer) is Dense for layer in dense):
            self._plan_cache = None
            return None
        specs = tuple((layer, layer.W, layer.b, layer.activation, layer.negative_slope)
                      for layer in cast(List[Dense], dense))
        chain = _core.DenseChain([spec[1:] for spec in specs])
        self._plan_cache = (chain, specs, tuple(self.layers))
        return chain

    def _infer(self, x: np.ndarray) -> np.ndarray:
        plan = self._dense_plan()
        if plan is not None:  # one C++ call for the whole network
            return plan(x)
        # A layer may write into a reused buffer when a later layer is sure
        # to copy its result into a new array (not Dropout/Flatten, which
        # pass their input through).
        last_new = max((i for i, layer in enumerate(self.layers) if layer.returns_new_array),
                       default=-1)
        for i, layer in enumerate(self.layers):
            infer = getattr(layer, "infer", None)
            x = infer(x, i < last_new) if infer is not None else layer.forward(x, False)
        return x

    # -------------------------------------------------------- persistence

    def get_config(self) -> Dict[str, Any]:
        """The architecture: ``{"layers": [{"type": name, "config": {...}}, ...]}``."""
        return {"layers": [{"type": type(layer).__name__, "config": layer.get_config()}
                           for layer in self.layers]}

    @classmethod
    def from_config(cls, config: Dict[str, Any],
                    weights: Optional[Dict[str, np.ndarray]] = None) -> "Sequential":
        """Rebuild the architecture from ``get_config()`` output: fresh weights,
        or ``weights`` named as :meth:`params` names them."""
        cls.config_param_shapes(config)  # the structure, checked
        layers = []
        for i, spec in enumerate(config["layers"]):
            prefix = f"layers.{i}."
            mine = None if weights is None else {
                k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
            layers.append(build_layer(spec, mine, f"layer {i}"))
        return cls(layers)

    def save(self, path: "os.PathLike[str] | str", include_optimizer: bool = False,
             format: Optional[str] = None) -> None:
        """Write architecture, weights (and optionally optimizer state) to ``path``.

        ``format`` is ``"safetensors"`` or ``"npz"``; by default a ``.npz``
        name gets npz and any other name safetensors, the file C++ serves
        (``matnet::load_model``). See :mod:`matnet.serialization`.
        Under :mod:`matnet.distributed` only rank 0 writes (the ranks hold the same model).
        """
        if not _dist.is_main():
            return
        from .serialization import save_model

        save_model(self, path, include_optimizer=include_optimizer, format=format)

    def save_weights(self, path: "os.PathLike[str] | str", layout: str = "matnet") -> None:
        """Write only the parameters, as safetensors; ``layout="torch"`` writes
        the state dict of the equivalent ``torch.nn.Sequential``. See
        :mod:`matnet.weights`."""
        from .weights import save_weights

        save_weights(self, path, layout=layout)

    def load_weights(self, path: "os.PathLike[str] | str", layout: str = "matnet") -> None:
        """Replace the parameters from a safetensors file written by
        ``save_weights`` (or, with ``layout="torch"``, by
        ``safetensors.torch.save_file(torch_model.state_dict(), path)``).
        All or nothing: on ValueError the model is unchanged."""
        from .weights import load_weights

        load_weights(self, path, layout=layout)

    def __repr__(self) -> str:
        return "Sequential([" + ", ".join(repr(layer) for layer in self.layers) + "])"


LAYER_TYPES["Sequential"] = Sequential  # nests; registered here, where it is defined


def _progress_bar_factory() -> Optional[Callable[[int, int, int], Any]]:
    """A tqdm bar per epoch, or None when tqdm is not installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None

    def make(epoch: int, epochs: int, batches: int) -> Any:
        return tqdm(total=batches, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                    leave=False, file=sys.stderr, dynamic_ncols=True)

    return make
