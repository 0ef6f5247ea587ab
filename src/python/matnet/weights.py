"""Weights-only files in two layouts: matnet's own and PyTorch's.

``model.save_weights(path, layout=...)`` writes only the parameters, as a
safetensors file; ``model.load_weights(path, layout=...)`` reads them back
into a model of the same architecture.

* ``layout="matnet"``: tensors ``layers.<i>.<name>`` exactly as
  :meth:`Sequential.named_parameters` and ``named_buffers`` name them (Dense
  ``W`` is (in, out); BatchNorm's running statistics are buffers).
* ``layout="torch"``: the state dict of the equivalent ``torch.nn.Sequential``,
  as ``safetensors.torch.save_file`` writes it. Modules are numbered the way
  ``torch.nn.Sequential`` numbers them: every matnet layer is one module,
  except that a Dense with a fused activation is two (``Linear`` then the
  activation), so ``[Dense(relu), Dense]`` maps to ``0.weight, 0.bias,
  2.weight, 2.bias``. A Linear ``weight`` is (out, in), the transpose of
  matnet's ``W``. Conv2D ``weight`` (out, in/groups, kh, kw) is matnet's ``W``
  as it is. BatchNorm maps to ``weight``/``bias`` (gamma/beta) and the
  buffers ``running_mean``, ``running_var`` and ``num_batches_tracked``
  (int64). The file then loads with
  ``torch_model.load_state_dict(safetensors.torch.load_file(path), strict=True)``.

Loading checks every key, dtype and shape before it changes anything: a
failed load leaves the model as it was. float16/float32/float64 tensors are
converted to the model's dtype.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Tuple

import numpy as np

from .layers import BatchNorm, Conv2D, Dense

__all__ = ["LAYOUTS", "save_weights", "load_weights", "torch_state_keys"]

#: What ``layout=`` accepts.
LAYOUTS = ("matnet", "torch")
_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64}
#: Buffers torch stores as integers.
_INT_BUFFERS = {"num_batches_tracked"}


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def _torch_mapping(model: Any) -> List[Tuple[str, int, str, bool]]:
    """(torch key, layer index, matnet parameter or buffer name, transpose) for
    every parameter and buffer."""
    out: List[Tuple[str, int, str, bool]] = []
    module = 0
    for i, layer in enumerate(model.layers):
        params = layer.params()
        if isinstance(layer, (Dense, Conv2D)):
            out.append((f"{module}.weight", i, "W", isinstance(layer, Dense)))
            if "b" in params:
                out.append((f"{module}.bias", i, "b", False))
            module += 2 if layer.activation is not None else 1
        elif isinstance(layer, BatchNorm):
            names = (("weight", "gamma"), ("bias", "beta")) if layer.affine else ()
            out += [(f"{module}.{key}", i, name, False) for key, name in names]
            out += [(f"{module}.{name}", i, name, False) for name in layer.buffers()]
            module += 1
        elif params:
            raise ValueError(f"layout='torch': no PyTorch mapping for {type(layer).__name__} "
                             f"(layer {i})")
        else:
            module += 1
    return out


def _matnet_mapping(model: Any) -> List[Tuple[str, int, str, bool]]:
    return [(f"layers.{i}.{name}", i, name, False) for i, layer in enumerate(model.layers)
            for name in (*layer.params(), *layer.buffers())]


def _array(layer: Any, name: str) -> np.ndarray:
    """A layer's parameter or buffer by name."""
    params = layer.params()
    return params[name] if name in params else layer.buffers()[name]


def torch_state_keys(model: Any) -> List[str]:
    """The ``state_dict`` keys of the ``torch.nn.Sequential`` equivalent to ``model``."""
    return [key for key, *_ in _torch_mapping(model)]


def _tensors(model: Any, layout: str) -> Dict[str, np.ndarray]:
    plan = _matnet_mapping(model) if layout == "matnet" else _torch_mapping(model)
    out = {}
    for key, i, name, t in plan:
        arr = _array(model.layers[i], name)
        if layout == "torch" and name in _INT_BUFFERS:
            arr = arr.astype(np.int64)
        out[key] = np.asarray(arr.T if t else arr, order="C")  # 0-d stays 0-d
    return out


def save_weights(model: Any, path: "os.PathLike[str] | str", layout: str = "matnet") -> None:
    """Write ``model``'s parameters to a safetensors file in ``layout``."""
    _check_layout(layout)
    from safetensors.numpy import save as _safetensors_bytes

    from .serialization import atomic_write

    data = _safetensors_bytes(_tensors(model, layout),
                              metadata={"format": "matnet.weights", "layout": layout})
    atomic_write(os.fspath(path), data)


def load_weights(model: Any, path: "os.PathLike[str] | str", layout: str = "matnet") -> None:
    """Replace ``model``'s parameters with those in a safetensors file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a safetensors file, a missing or extra key, or a
            tensor whose shape or dtype does not fit; the model is unchanged.
    """
    _check_layout(layout)
    from safetensors import SafetensorError, safe_open

    from .serialization import _Corrupt, _open_regular

    path = os.fspath(path)
    plan = _matnet_mapping(model) if layout == "matnet" else _torch_mapping(model)
    new: Dict[int, Dict[str, np.ndarray]] = {}
    try:
        _open_regular(path)
        with safe_open(path, framework="numpy") as handle:
            keys = set(handle.keys())
            wanted = {key for key, *_ in plan}
            if keys != wanted:
                raise _Corrupt(f"keys do not match the model: missing {sorted(wanted - keys)[:10]}, "
                               f"unexpected {sorted(keys - wanted)[:10]!r:.300}")
            for key, i, name, transpose in plan:  # every declaration first
                shape = _array(model.layers[i], name).shape
                piece = handle.get_slice(key)
                got = tuple(piece.get_shape())
                if (got[::-1] if transpose else got) != shape:
                    raise _Corrupt(f"{key!r} has shape {got}, the model needs "
                                   f"{shape[::-1] if transpose else shape}")
                if piece.get_dtype() not in _DTYPES and not (
                        name in _INT_BUFFERS and piece.get_dtype() == "I64"):
                    raise _Corrupt(f"{key!r} has dtype {piece.get_dtype()}, not a float type")
            for key, i, name, transpose in plan:
                arr = handle.get_tensor(key)
                value = np.array(arr.T if transpose else arr, dtype=model.layers[i].dtype,
                                 order="C", copy=True)
                if not np.all(np.isfinite(value)):
                    raise _Corrupt(f"{key!r} holds NaN or Inf")
                new.setdefault(i, {})[name] = value
    except _Corrupt as exc:
        raise ValueError(f"load_weights: {path}: {exc}") from None
    except SafetensorError as exc:
        raise ValueError(f"load_weights: {path} is not a valid safetensors file ({exc})") from None
    for i, values in new.items():  # nothing can fail from here on
        layer = model.layers[i]
        layer.set_params({k: v for k, v in values.items() if k in layer.params()})
        if layer.has_buffers:
            layer.set_buffers({k: v for k, v in values.items() if k not in layer.params()})
