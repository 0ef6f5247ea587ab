"""Saving and loading models as ``.npz`` files that never need unpickling.

File format (version 1): a zip archive as written by ``numpy.savez`` with

* ``__matnet__.npy``: a uint8 array holding UTF-8 JSON::

      {"format": "matnet.Sequential", "format_version": 1, "matnet_version": "0.1.0",
       "layers": [{"type": "Dense", "config": {...}}, ...],
       "training": null | {"loss": ..., "metrics": [...], "label_smoothing": ...,
                           "optimizer": {"type": "Adam", "config": {...}}},
       "optimizer_state": null | {"iterations": 12}}

* ``layers.<i>.<name>.npy``: parameter ``name`` of layer ``i`` (e.g. ``layers.0.W``);
* ``optimizer.<j>.<slot>.npy``: optimizer state for parameter ``j`` (only
  when saved with ``include_optimizer=True``).

Loading trusts nothing in the file: layer and optimizer types come from
whitelists, every array's shape and dtype is computed from the architecture
and compared with its .npy header *before* its data is read, object arrays
and extra or missing entries are refused, and sizes are capped, so a
truncated, corrupt or hostile file raises ``ValueError`` rather than
unpickling, allocating without bound or crashing.
"""

from __future__ import annotations

import json
import os
import secrets
import zipfile
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import optim as _optim
from .distributed import unwrap
from .layers import LAYER_TYPES, Layer
from .metrics import LOSSES, METRICS

__all__ = ["save_model", "load_model", "FORMAT", "FORMAT_VERSION"]

FORMAT = "matnet.Sequential"
FORMAT_VERSION = 1
CONFIG_ENTRY = "__matnet__"

_MAX_CONFIG_BYTES = 1 << 20  # an architecture is a few KiB of JSON
_MAX_ENTRIES = 100_000
_CHUNK = 1 << 24  # read array data in 16 MiB pieces: memory follows the bytes present
_TOP_KEYS = {"format", "format_version", "matnet_version", "layers", "training",
             "optimizer_state"}


class _Corrupt(ValueError):
    """Raised internally; becomes a ValueError naming the file."""


def _to_json_config(model: Any, include_optimizer: bool) -> Dict[str, Any]:
    from . import __version__

    training = None
    if model.loss is not None:
        opt = unwrap(model.optimizer)  # a DistributedOptimizer saves what it wraps
        training = {
            "loss": model.loss,
            "metrics": list(model.metrics),
            "label_smoothing": model.label_smoothing,
            "optimizer": {"type": type(opt).__name__, "config": opt.get_config()},
        }
    state = None
    if include_optimizer:
        if model.optimizer is None:
            raise ValueError("save: include_optimizer=True but the model is not compiled")
        state = {"iterations": model.optimizer.iterations,
                 "has_slots": bool(model.optimizer.state_arrays())}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "matnet_version": __version__,
        "layers": model.get_config()["layers"],
        "training": training,
        "optimizer_state": state,
    }


def save_model(model: Any, path: "os.PathLike[str] | str", include_optimizer: bool = False) -> None:
    """Write ``model`` (a :class:`matnet.Sequential`) to ``path`` as an ``.npz``.

    The file holds the architecture and compile settings as JSON and every
    weight array; with ``include_optimizer=True`` also the optimizer's step
    count and state arrays, so training can resume exactly. The file is
    written to a temporary name and renamed, so a crash never leaves half a file.
    """
    config = _to_json_config(model, include_optimizer)
    text = json.dumps(config, allow_nan=False, sort_keys=True).encode("utf-8")
    arrays: Dict[str, np.ndarray] = {CONFIG_ENTRY: np.frombuffer(text, dtype=np.uint8)}
    for name, p in model.named_parameters():
        arrays[name] = p
    if include_optimizer:
        for j, slots in enumerate(model.optimizer.state_arrays()):
            for slot, arr in slots.items():
                arrays[f"optimizer.{j}.{slot}"] = arr
    path = os.fspath(path)
    # A fresh name beside the target (open() honours the umask, unlike mkstemp's 0600).
    tmp = f"{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with open(tmp, "xb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------- loading


def _read_header(f: Any) -> Tuple[Tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        reader = np.lib.format.read_array_header_1_0
    elif version == (2, 0):
        reader = np.lib.format.read_array_header_2_0
    else:
        raise _Corrupt(f"unsupported .npy version {version}")
    try:
        return reader(f, max_header_size=10000)
    except TypeError:  # NumPy < 1.24 has no max_header_size (its headers are bounded anyway)
        return reader(f)


def _read_entry(zf: zipfile.ZipFile, name: str, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Read ``name + '.npy'`` after checking its header says exactly (shape, dtype)."""
    info = zf.getinfo(name + ".npy")
    with zf.open(info) as f:
        got_shape, fortran, got_dtype = _read_header(f)
        if got_dtype.hasobject or got_dtype.fields is not None:
            raise _Corrupt(f"entry {name!r} holds {got_dtype} data (only plain numbers are allowed)")
        if got_dtype.kind != dtype.kind or got_dtype.itemsize != dtype.itemsize:
            raise _Corrupt(f"entry {name!r} has dtype {got_dtype}, expected {dtype}")
        if tuple(got_shape) != tuple(shape):
            raise _Corrupt(f"entry {name!r} has shape {tuple(got_shape)}, expected {tuple(shape)}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes > info.file_size:
            raise _Corrupt(f"entry {name!r} is truncated: needs {nbytes} bytes of data, "
                           f"the archive holds {info.file_size} in all")
        data = bytearray()
        while len(data) < nbytes:
            piece = f.read(min(_CHUNK, nbytes - len(data)))
            if not piece:
                raise _Corrupt(f"entry {name!r} is truncated")
            data += piece
        if f.read(1):
            raise _Corrupt(f"entry {name!r} has data past its declared shape {tuple(shape)}")
    arr = np.frombuffer(data, dtype=got_dtype)  # a bytearray: the array is writeable
    arr = arr.reshape(shape, order="F" if fortran else "C")
    return np.ascontiguousarray(arr, dtype=dtype)


def _check_json(text: bytes) -> Dict[str, Any]:
    def no_constants(name: str) -> Any:
        raise _Corrupt(f"the configuration contains {name}")

    try:
        config = json.loads(text.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _Corrupt(f"the configuration is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(config, dict):
        raise _Corrupt(f"the configuration must be a JSON object, got {type(config).__name__}")
    if config.get("format") != FORMAT:
        raise _Corrupt(f"not a matnet model (format {config.get('format')!r})")
    version = config.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise _Corrupt(
            f"format version {version!r} is not supported (this matnet reads version "
            f"{FORMAT_VERSION}); save the model again with a matching matnet"
        )
    if set(config) != _TOP_KEYS:
        raise _Corrupt(f"the configuration has keys {sorted(config)}, expected {sorted(_TOP_KEYS)}")
    if not isinstance(config["layers"], list) or not config["layers"]:
        raise _Corrupt("the configuration's 'layers' must be a non-empty list")
    return config


def _build_layer(i: int, spec: Any) -> Tuple[type, Dict[str, Any], Dict[str, Tuple[int, ...]]]:
    """Layer class, config and parameter shapes, checked without allocating weights."""
    if not isinstance(spec, dict) or set(spec) != {"type", "config"}:
        raise _Corrupt(f"layer {i}: expected {{'type': ..., 'config': {{...}}}}, got {spec!r:.200}")
    cls = LAYER_TYPES.get(spec["type"]) if isinstance(spec["type"], str) else None
    if cls is None:
        raise _Corrupt(f"layer {i}: type {spec['type']!r:.100} is not one of {sorted(LAYER_TYPES)}")
    if not isinstance(spec["config"], dict):
        raise _Corrupt(f"layer {i}: config must be an object")
    try:
        shapes = cls.config_param_shapes(spec["config"])
    except (TypeError, ValueError) as exc:
        raise _Corrupt(f"layer {i} ({spec['type']}): {exc}") from None
    return cls, spec["config"], shapes


def _check_training(training: Any) -> Optional[Dict[str, Any]]:
    if training is None:
        return None
    keys = {"loss", "metrics", "label_smoothing", "optimizer"}
    if not isinstance(training, dict) or set(training) != keys:
        raise _Corrupt(f"'training' must be null or an object with keys {sorted(keys)}")
    if training["loss"] not in LOSSES:
        raise _Corrupt(f"unknown loss {training['loss']!r:.100}")
    metrics = training["metrics"]
    if not isinstance(metrics, list) or not all(isinstance(m, str) and m in METRICS for m in metrics):
        raise _Corrupt(f"unknown metrics {metrics!r:.100}")
    opt = training["optimizer"]
    if not isinstance(opt, dict) or set(opt) != {"type", "config"} or \
            not isinstance(opt["config"], dict):
        raise _Corrupt("'training.optimizer' must be an object {'type': ..., 'config': {...}}")
    if not isinstance(opt["type"], str) or opt["type"] not in _optim.OPTIMIZER_TYPES:
        raise _Corrupt(f"optimizer type {opt['type']!r:.100} is not one of "
                       f"{sorted(_optim.OPTIMIZER_TYPES)}")
    return training


def _load(zf: zipfile.ZipFile, compile: bool, max_bytes: int) -> Any:
    from .model import Sequential

    infos = zf.infolist()
    if len(infos) > _MAX_ENTRIES:
        raise _Corrupt(f"the archive has {len(infos)} entries")
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise _Corrupt("the archive has duplicate entries")
    if CONFIG_ENTRY + ".npy" not in names:
        raise _Corrupt(f"no {CONFIG_ENTRY!r} entry: not a matnet model file")
    if zf.getinfo(CONFIG_ENTRY + ".npy").file_size > _MAX_CONFIG_BYTES:
        raise _Corrupt("the configuration entry is implausibly large")
    with zf.open(CONFIG_ENTRY + ".npy") as f:
        shape, _, dtype = _read_header(f)
    if dtype != np.uint8 or len(shape) != 1:
        raise _Corrupt(f"the configuration entry must be 1-D uint8, got {dtype} {shape}")
    config = _check_json(_read_entry(zf, CONFIG_ENTRY, shape, np.dtype(np.uint8)).tobytes())
    training = _check_training(config["training"])

    specs = [_build_layer(i, spec) for i, spec in enumerate(config["layers"])]
    dtypes = {spec[1].get("dtype", "float32") for spec in specs if spec[2]}
    if len(dtypes) > 1 or not dtypes <= {"float32", "float64"}:
        raise _Corrupt(f"layer dtypes {sorted(map(str, dtypes))} are not one of float32/float64")
    dtype = np.dtype(dtypes.pop() if dtypes else "float32")

    # Every array the architecture implies, in parameters() order.
    expected: List[Tuple[str, Tuple[int, ...]]] = [
        (f"layers.{i}.{name}", shape)
        for i, (_, _, shapes) in enumerate(specs) for name, shape in shapes.items()
    ]
    optimizer = None
    state = config["optimizer_state"]
    if (training is not None and compile) or state is not None:
        if training is None:
            raise _Corrupt("'optimizer_state' without 'training'")
        try:
            optimizer = _optim.OPTIMIZER_TYPES[training["optimizer"]["type"]].from_config(
                training["optimizer"]["config"])
        except (TypeError, ValueError, KeyError) as exc:
            raise _Corrupt(f"optimizer: {exc}") from None
    slot_entries: List[Tuple[int, str, Tuple[int, ...]]] = []
    if state is not None:
        if not isinstance(state, dict) or set(state) != {"iterations", "has_slots"}:
            raise _Corrupt("'optimizer_state' must be {'iterations': int, 'has_slots': bool}")
        it, has = state["iterations"], state["has_slots"]
        if isinstance(it, bool) or not isinstance(it, int) or not 0 <= it < 2**62 or \
                not isinstance(has, bool):
            raise _Corrupt(f"bad optimizer_state {state!r:.200}")
        if has:
            slot_entries = [(j, slot, shape) for j, (_, shape) in enumerate(expected)
                            for slot in optimizer._active_slots()]

    all_entries = [name for name, _ in expected] + [f"optimizer.{j}.{s}" for j, s, _ in slot_entries]
    wanted = {name + ".npy" for name in all_entries} | {CONFIG_ENTRY + ".npy"}
    missing = sorted(wanted - set(names))
    if missing:
        raise _Corrupt(f"missing entries {[m[:-4] for m in missing][:10]}")
    extra = sorted(set(names) - wanted)
    if extra:
        raise _Corrupt(f"unexpected entries {extra[:10]!r:.300}")
    total = sum(int(np.prod(shape, dtype=np.int64)) for _, shape in expected) * dtype.itemsize
    total += sum(int(np.prod(shape, dtype=np.int64)) for *_, shape in slot_entries) * dtype.itemsize
    if total > max_bytes:
        raise _Corrupt(f"the architecture declares {total} bytes of arrays, more than "
                       f"max_bytes={max_bytes}")

    values = {name: _read_entry(zf, name, shape, dtype) for name, shape in expected}
    layers: List[Layer] = []
    for i, (cls, layer_config, shapes) in enumerate(specs):
        try:
            layer = cls.from_config(layer_config, weights={
                name: values[f"layers.{i}.{name}"] for name in shapes})
        except (TypeError, ValueError) as exc:
            raise _Corrupt(f"layer {i}: {exc}") from None
        layers.append(layer)
    model = Sequential(layers)
    if training is not None and compile:
        model.compile(optimizer=optimizer, loss=training["loss"], metrics=training["metrics"],
                      label_smoothing=training["label_smoothing"])
    if state is not None and slot_entries:
        arrays: List[Dict[str, np.ndarray]] = [{} for _ in expected]
        for j, slot, shape in slot_entries:
            arrays[j][slot] = _read_entry(zf, f"optimizer.{j}.{slot}", shape, dtype)
        optimizer.load_state(state["iterations"], arrays)
    elif state is not None:
        optimizer.load_state(state["iterations"], [])
    return model


def load_model(path: "os.PathLike[str] | str", compile: bool = True,
               max_bytes: int = 1 << 33) -> Any:
    """Rebuild a model written by ``model.save(path)``.

    Args:
        path: the ``.npz`` file.
        compile: restore the loss, metrics and optimizer (with its state when
            the file has it) so ``fit`` can continue; False gives an
            uncompiled model for inference.
        max_bytes: refuse files whose arrays would take more memory than this.

    Returns:
        A :class:`matnet.Sequential` with the saved weights.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a matnet model, is truncated or corrupt,
            has another format version, or declares anything unexpected.
    """
    path = os.fspath(path)
    try:
        with zipfile.ZipFile(path) as zf:
            return _load(zf, compile, max_bytes)
    except _Corrupt as exc:
        raise ValueError(f"load_model: {path}: {exc}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError,
            RuntimeError, OverflowError, MemoryError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"load_model: {path} is not a readable matnet model file "
            f"({type(exc).__name__}: {exc})") from None
    except ValueError as exc:  # from NumPy's header parser, among others
        raise ValueError(f"load_model: {path} is corrupt ({exc})") from None
