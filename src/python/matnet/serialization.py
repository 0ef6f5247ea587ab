"""Saving and loading models: safetensors files (the default) and ``.npz``.

Which format ``save`` writes: ``format="safetensors"`` or ``format="npz"``
when given; otherwise the file name decides: a ``.npz`` suffix writes the
``.npz`` format, anything else (``.safetensors`` above all) writes
safetensors. ``load_model`` recognises either from the file's first bytes,
so every ``.npz`` saved by earlier versions still loads.

Both formats hold the same JSON description of the model::

    {"format": "matnet.Sequential", "format_version": 1, "matnet_version": "0.1.0",
     "layers": [{"type": "Dense", "config": {...}}, ...],
     "training": null | {"loss": ..., "metrics": [...], "label_smoothing": ...,
                         "optimizer": {"type": "Adam", "config": {...}}},
     "optimizer_state": null | {"iterations": 12, "has_slots": true}}

and the same arrays: ``layers.<i>.<name>`` for parameter or buffer ``name``
of layer ``i`` (``layers.0.W``, ``layers.1.running_mean``), all of the
model's dtype, and, when saved with ``include_optimizer=True``,
``optimizer.<j>.<slot>`` for the optimizer state of parameter ``j``.

* **safetensors** (version 1): the arrays are the file's tensors; its
  ``__metadata__`` holds ``"format": "matnet.Sequential"``,
  ``"format_version": "1"`` and ``"matnet_config"``, the JSON above. This is
  the file C++ serves with ``matnet::load_model`` (``<matnet/model.hpp>``),
  and PyTorch's ``safetensors.torch.load_file`` reads it too.
* **npz** (version 1): a zip archive as ``numpy.savez`` writes it, the JSON
  as the uint8 entry ``__matnet__.npy``.

Loading trusts nothing in the file: only regular files are opened; layer and
optimizer types come from whitelists; every array's dtype and shape is
computed from the architecture and compared with what the file declares
*before* any data is read (safetensors itself checks every offset against
the file); object arrays and extra or missing entries are refused; sizes
are capped. A truncated, corrupt or hostile file raises ``ValueError``
rather than unpickling, allocating without bound or crashing.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import stat
import zipfile
from typing import Any, Dict, List, Optional, Tuple, Type

import numpy as np

from . import optim as _optim
from .distributed import unwrap
from .layers import LAYER_TYPES, Layer
from .metrics import LOSSES, METRICS

__all__ = ["save_model", "load_model", "FORMAT", "FORMAT_VERSION", "FORMATS"]

FORMAT = "matnet.Sequential"
FORMAT_VERSION = 1
CONFIG_ENTRY = "__matnet__"
#: The metadata key of a safetensors file that holds the JSON description.
SAFETENSORS_CONFIG_KEY = "matnet_config"
#: What ``save(..., format=...)`` accepts.
FORMATS = ("safetensors", "npz")
_ZIP_MAGIC = b"PK\x03\x04"

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


def _pick_format(path: str, format: Optional[str]) -> str:
    if format is None:
        return "npz" if path.lower().endswith(".npz") else "safetensors"
    if format not in FORMATS:
        raise ValueError(f"save: format must be one of {FORMATS}, got {format!r}")
    return format


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to a fresh name beside ``path`` and rename it over
    ``path``, so a crash never leaves half a file (``open`` honours the
    umask, unlike mkstemp's 0600)."""
    tmp = f"{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_model(model: Any, path: "os.PathLike[str] | str", include_optimizer: bool = False,
               format: Optional[str] = None) -> None:
    """Write ``model`` (a :class:`matnet.Sequential`) to ``path``.

    The file holds the architecture and compile settings as JSON and every
    weight array; with ``include_optimizer=True`` also the optimizer's step
    count and state arrays, so training can resume exactly.

    Args:
        format: ``"safetensors"`` or ``"npz"``; by default ``.npz`` file
            names get npz and every other name safetensors (the format C++
            and PyTorch read).
    """
    path = os.fspath(path)
    fmt = _pick_format(path, format)
    config = _to_json_config(model, include_optimizer)
    text = json.dumps(config, allow_nan=False, sort_keys=True)
    arrays: Dict[str, np.ndarray] = {name: np.ascontiguousarray(p)
                                     for name, p in model.named_parameters()}
    # np.asarray(order="C") keeps 0-d buffers 0-d (ascontiguousarray makes them 1-d).
    arrays.update((name, np.asarray(b, order="C")) for name, b in model.named_buffers())
    if include_optimizer:
        for j, slots in enumerate(model.optimizer.state_arrays()):
            for slot, arr in slots.items():
                arrays[f"optimizer.{j}.{slot}"] = np.ascontiguousarray(arr)
    if fmt == "safetensors":
        from safetensors.numpy import save as _safetensors_bytes

        metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
                    SAFETENSORS_CONFIG_KEY: text}
        atomic_write(path, _safetensors_bytes(arrays, metadata=metadata))
    else:
        buffer = io.BytesIO()
        entries: Dict[str, Any] = {CONFIG_ENTRY: np.frombuffer(text.encode("utf-8"), np.uint8),
                                   **arrays}
        np.savez(buffer, **entries)
        atomic_write(path, buffer.getvalue())


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
    return np.asarray(arr, dtype=dtype, order="C")  # not ascontiguousarray: 0-d stays 0-d


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


def _build_layer(i: int, spec: Any) -> Tuple[Type[Layer], Dict[str, Any], Dict[str, Tuple[int, ...]],
                                             Dict[str, Tuple[int, ...]]]:
    """Layer class, config, parameter and buffer shapes, checked without allocating weights."""
    if not isinstance(spec, dict) or set(spec) != {"type", "config"}:
        raise _Corrupt(f"layer {i}: expected {{'type': ..., 'config': {{...}}}}, got {spec!r:.200}")
    cls = LAYER_TYPES.get(spec["type"]) if isinstance(spec["type"], str) else None
    if cls is None:
        raise _Corrupt(f"layer {i}: type {spec['type']!r:.100} is not one of {sorted(LAYER_TYPES)}")
    if not isinstance(spec["config"], dict):
        raise _Corrupt(f"layer {i}: config must be an object")
    try:
        shapes = cls.config_param_shapes(spec["config"])
        buffers = cls.config_buffer_shapes(spec["config"])
    except (TypeError, ValueError) as exc:
        raise _Corrupt(f"layer {i} ({spec['type']}): {exc}") from None
    return cls, spec["config"], shapes, buffers


def _config_dtypes(config: Any) -> set:
    """The "dtype" settings in a layer config, including those of the layers a
    container (Residual's "layer", Sequential's "layers") holds."""
    if not isinstance(config, dict):
        return set()
    found = {config["dtype"]} if isinstance(config.get("dtype"), str) else set()
    inner = [config.get("layer")] + list(config.get("layers") or [])
    for spec in inner:
        if isinstance(spec, dict):
            found |= _config_dtypes(spec.get("config"))
    return found


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


class _NpzSource:
    """The arrays and JSON of an ``.npz`` model file."""

    def __init__(self, zf: zipfile.ZipFile) -> None:
        self.zf = zf
        infos = zf.infolist()
        if len(infos) > _MAX_ENTRIES:
            raise _Corrupt(f"the archive has {len(infos)} entries")
        names = [info.filename for info in infos]
        if len(set(names)) != len(names):
            raise _Corrupt("the archive has duplicate entries")
        if CONFIG_ENTRY + ".npy" not in names:
            raise _Corrupt(f"no {CONFIG_ENTRY!r} entry: not a matnet model file")
        bad = [n for n in names if not n.endswith(".npy")]
        if bad:
            raise _Corrupt(f"unexpected entries {bad[:10]!r:.300}")
        self.names = {n[:-4] for n in names} - {CONFIG_ENTRY}

    def config_text(self) -> bytes:
        if self.zf.getinfo(CONFIG_ENTRY + ".npy").file_size > _MAX_CONFIG_BYTES:
            raise _Corrupt("the configuration entry is implausibly large")
        with self.zf.open(CONFIG_ENTRY + ".npy") as f:
            shape, _, dtype = _read_header(f)
        if dtype != np.uint8 or len(shape) != 1:
            raise _Corrupt(f"the configuration entry must be 1-D uint8, got {dtype} {shape}")
        return _read_entry(self.zf, CONFIG_ENTRY, shape, np.dtype(np.uint8)).tobytes()

    def check(self, name: str, shape: Tuple[int, ...], dtype: np.dtype) -> None:
        """The npy header is checked when the entry is read (before its data)."""

    def read(self, name: str, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return _read_entry(self.zf, name, shape, dtype)


_SAFETENSORS_DTYPES = {"F32": np.dtype(np.float32), "F64": np.dtype(np.float64)}


class _SafetensorsSource:
    """The tensors and metadata of a safetensors model file; the safetensors
    library has already checked every offset against the file's length."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.names = set(handle.keys())
        if len(self.names) > _MAX_ENTRIES:
            raise _Corrupt(f"the file has {len(self.names)} tensors")
        self.metadata = handle.metadata() or {}

    def config_text(self) -> bytes:
        if self.metadata.get("format") != FORMAT:
            raise _Corrupt(f"not a matnet model (safetensors metadata format "
                           f"{self.metadata.get('format')!r:.100})")
        text = self.metadata.get(SAFETENSORS_CONFIG_KEY)
        if text is None:
            raise _Corrupt(f"no {SAFETENSORS_CONFIG_KEY!r} in the safetensors metadata")
        if len(text) > _MAX_CONFIG_BYTES:
            raise _Corrupt("the configuration is implausibly large")
        if self.metadata.get("format_version") != str(FORMAT_VERSION):
            raise _Corrupt(
                f"format version {self.metadata.get('format_version')!r:.50} is not supported "
                f"(this matnet reads version {FORMAT_VERSION}); save the model again with a "
                "matching matnet")
        return text.encode("utf-8")

    def check(self, name: str, shape: Tuple[int, ...], dtype: np.dtype) -> None:
        piece = self.handle.get_slice(name)
        got_dtype, got_shape = piece.get_dtype(), tuple(piece.get_shape())
        if _SAFETENSORS_DTYPES.get(got_dtype) != dtype:
            raise _Corrupt(f"tensor {name!r} has dtype {got_dtype}, expected {dtype}")
        if got_shape != tuple(shape):
            raise _Corrupt(f"tensor {name!r} has shape {got_shape}, expected {tuple(shape)}")

    def read(self, name: str, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        self.check(name, shape, dtype)
        arr = np.array(self.handle.get_tensor(name), dtype=dtype, order="C", copy=True)
        return arr.reshape(shape)


def _load(source: Any, compile: bool, max_bytes: int) -> Any:
    from .model import Sequential

    config = _check_json(source.config_text())
    training = _check_training(config["training"])

    specs = [_build_layer(i, spec) for i, spec in enumerate(config["layers"])]
    dtypes = set().union(*(_config_dtypes(spec[1]) for spec in specs if spec[2] or spec[3]))
    if len(dtypes) > 1 or not dtypes <= {"float32", "float64"}:
        raise _Corrupt(f"layer dtypes {sorted(map(str, dtypes))} are not one of float32/float64")
    dtype = np.dtype(dtypes.pop() if dtypes else "float32")

    # Every array the architecture implies, in parameters() order.
    expected: List[Tuple[str, Tuple[int, ...]]] = [
        (f"layers.{i}.{name}", shape)
        for i, (_, _, shapes, _) in enumerate(specs) for name, shape in shapes.items()
    ]
    buffer_entries = [(f"layers.{i}.{name}", shape)
                      for i, (*_, buffers) in enumerate(specs) for name, shape in buffers.items()]
    optimizer: Optional[_optim.Optimizer] = None
    state = config["optimizer_state"]
    if (training is not None and compile) or state is not None:
        if training is None:
            raise _Corrupt("'optimizer_state' without 'training'")
        try:
            opt_cls: Any = _optim.OPTIMIZER_TYPES[training["optimizer"]["type"]]
            optimizer = opt_cls.from_config(training["optimizer"]["config"])
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
        assert optimizer is not None  # built above whenever there is a state
        if has:
            slot_entries = [(j, slot, shape) for j, (_, shape) in enumerate(expected)
                            for slot in optimizer._active_slots()]

    wanted = {name for name, _ in expected + buffer_entries} | \
        {f"optimizer.{j}.{s}" for j, s, _ in slot_entries}
    missing = sorted(wanted - source.names)
    if missing:
        raise _Corrupt(f"missing entries {missing[:10]}")
    extra = sorted(source.names - wanted)
    if extra:
        raise _Corrupt(f"unexpected entries {extra[:10]!r:.300}")
    total = sum(int(np.prod(shape, dtype=np.int64))
                for _, shape in expected + buffer_entries) * dtype.itemsize
    total += sum(int(np.prod(shape, dtype=np.int64)) for *_, shape in slot_entries) * dtype.itemsize
    if total > max_bytes:
        raise _Corrupt(f"the architecture declares {total} bytes of arrays, more than "
                       f"max_bytes={max_bytes}")

    for name, shape in expected + buffer_entries:  # every declaration, before any data
        source.check(name, shape, dtype)
    for j, slot, shape in slot_entries:
        source.check(f"optimizer.{j}.{slot}", shape, dtype)
    values = {name: source.read(name, shape, dtype) for name, shape in expected + buffer_entries}
    layers: List[Layer] = []
    for i, (cls, layer_config, shapes, buffers) in enumerate(specs):
        try:
            layer = cls.from_config(layer_config, weights={
                name: values[f"layers.{i}.{name}"] for name in shapes})
            if buffers:
                layer.set_buffers({name: values[f"layers.{i}.{name}"] for name in buffers})
        except (TypeError, ValueError) as exc:
            raise _Corrupt(f"layer {i}: {exc}") from None
        layers.append(layer)
    model = Sequential(layers)
    if training is not None and compile:
        assert optimizer is not None  # built above for a compiled load
        model.compile(optimizer=optimizer, loss=training["loss"], metrics=training["metrics"],
                      label_smoothing=training["label_smoothing"])
    if state is not None:
        assert optimizer is not None  # built above whenever there is a state
        arrays: List[Dict[str, np.ndarray]] = [{} for _ in expected] if slot_entries else []
        for j, slot, shape in slot_entries:
            arrays[j][slot] = source.read(f"optimizer.{j}.{slot}", shape, dtype)
        optimizer.load_state(state["iterations"], arrays)
    return model


def _open_regular(path: str) -> bytes:
    """The first bytes of ``path``, after checking it is a regular file (a
    device such as /dev/zero or a FIFO has no size to check against and
    would be read without end)."""
    info = os.stat(path)  # FileNotFoundError for a missing file, as open() gives
    if not stat.S_ISREG(info.st_mode):
        raise _Corrupt("not a regular file")
    with open(path, "rb") as f:
        return f.read(len(_ZIP_MAGIC))


def load_model(path: "os.PathLike[str] | str", compile: bool = True,
               max_bytes: int = 1 << 33) -> Any:
    """Rebuild a model written by ``model.save(path)`` (safetensors or ``.npz``).

    Args:
        path: the file; its format is recognised from its first bytes.
        compile: restore the loss, metrics and optimizer (with its state when
            the file has it) so ``fit`` can continue; False gives an
            uncompiled model for inference.
        max_bytes: refuse files whose arrays would take more memory than this.

    Returns:
        A :class:`matnet.Sequential` with the saved weights.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a regular file or not a matnet model, is
            truncated or corrupt, has another format version, or declares
            anything unexpected.
    """
    path = os.fspath(path)
    try:
        magic = _open_regular(path)
        if magic == _ZIP_MAGIC:
            with zipfile.ZipFile(path) as zf:
                return _load(_NpzSource(zf), compile, max_bytes)
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(path, framework="numpy") as handle:
                return _load(_SafetensorsSource(handle), compile, max_bytes)
        except SafetensorError as exc:
            raise _Corrupt(f"not a valid safetensors or .npz file ({exc})") from None
    except _Corrupt as exc:
        raise ValueError(f"load_model: {path}: {exc}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError,
            RuntimeError, OverflowError, MemoryError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"load_model: {path} is not a readable matnet model file "
            f"({type(exc).__name__}: {exc})") from None
    except ValueError as exc:  # from NumPy's header parser, among others
        raise ValueError(f"load_model: {path} is corrupt ({exc})") from None
