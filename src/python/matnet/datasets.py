"""Datasets: scikit-learn's handwritten digits, and MNIST from IDX files.

Both loaders return ``((x_train, y_train), (x_test, y_test))`` with ``x``
float32 in [0, 1] of shape (n, pixels) and ``y`` int64 class labels.
Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from typing import Dict, Tuple

import numpy as np

__all__ = ["load_digits", "load_mnist", "read_idx", "MNIST_FILES"]

Split = Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]

# IDX type codes (third magic byte) -> big-endian dtypes.
_IDX_DTYPES: Dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MAX_IDX_BYTES = 1 << 34  # 16 GiB: far above MNIST-like data, refuses absurd headers
_CHUNK = 1 << 20  # per read: gzip reads a chunk into a temporary first
# Deflate's largest compression ratio is about 1032:1 (runs of one byte): a
# gzipped IDX file of s bytes cannot hold more than 1032 s bytes of data.
_GZIP_MAX_RATIO = 1032

#: The four standard MNIST files (each may also be present with a ``.gz`` suffix).
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def load_digits(test_size: float = 0.2, seed: int = 0) -> Split:
    """The 1797 8x8 handwritten digits that scikit-learn ships, split for training.

    Args:
        test_size: fraction of samples held out for testing, in (0, 1).
        seed: seed of the stratified shuffle split (each class keeps its share).

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: x float32 (n, 64) in
        [0, 1] (pixel intensity / 16), y int64 in [0, 10).
    """
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)) \
            or not 0.0 < test_size < 1.0:
        raise ValueError(f"load_digits: test_size must be in (0, 1), got {test_size!r}")
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_digits needs scikit-learn (it ships the data): pip install scikit-learn"
        ) from exc
    bunch = _sk_load_digits()
    x = (np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0))
    y = np.asarray(bunch.target, dtype=np.int64)
    train, test = _stratified_split(y, test_size, seed)
    return (x[train], y[train]), (x[test], y[test])


def _stratified_split(y: np.ndarray, test_size: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test): each class contributes round(test_size * count) to test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(y):  # one iteration per class, not per sample
        idx = rng.permutation(np.flatnonzero(y == cls))
        k = int(round(test_size * len(idx)))
        test.append(idx[:k])
        train.append(idx[k:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _read_into(f: io.BufferedIOBase, out: np.ndarray, path: str, what: str) -> None:
    """Fill the uint8 array out from f, chunk by chunk (no intermediate copies)."""
    view = out.data  # a memoryview of the array
    got = 0
    while got < out.size:
        n = f.readinto(view[got:got + _CHUNK])
        if not n:
            raise ValueError(f"read_idx: {path} is truncated: {what} needs {out.size} bytes, "
                             f"found {got}")
        got += n


def _read_exactly(f: io.BufferedIOBase, n: int, path: str, what: str) -> bytes:
    data = np.empty(n, np.uint8)
    _read_into(f, data, path, what)
    return data.tobytes()


def read_idx(path: "os.PathLike[str] | str") -> np.ndarray:
    """Read one IDX file (the MNIST format), gzipped or not.

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B
    int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions,
    then each dimension as a big-endian uint32; the data follow, big-endian,
    row-major, and must fill the file exactly.

    Returns:
        An array of that shape, in native byte order.

    Raises:
        ValueError: bad magic number, unknown type code, truncated data or
            trailing bytes, or a corrupt gzip stream.
    """
    path = os.fspath(path)
    with open(path, "rb") as raw:  # FileNotFoundError passes through as is
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        size = os.fstat(raw.fileno()).st_size
        if gzipped:
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                return _parse_idx(f, path, _GZIP_MAX_RATIO * size)
        return _parse_idx(raw, path, size)


def _parse_idx(f: io.BufferedIOBase, path: str, max_size: int) -> np.ndarray:
    """The array in f; max_size bounds what the file can hold (its size, or for
    gzip deflate's largest ratio times it), checked before allocating."""
    try:
        head = _read_exactly(f, 4, path, "the header")
        if head[0] != 0 or head[1] != 0:
            raise ValueError(f"read_idx: {path} is not an IDX file (magic bytes "
                             f"{head.hex()}; expected 0000TTNN)")
        if head[2] not in _IDX_DTYPES:
            raise ValueError(f"read_idx: {path} has unknown IDX type code 0x{head[2]:02x}")
        dtype = _IDX_DTYPES[head[2]]
        ndim = head[3]
        if ndim == 0:
            raise ValueError(f"read_idx: {path} declares 0 dimensions")
        dims = np.frombuffer(_read_exactly(f, 4 * ndim, path, "the dimensions"), dtype=">u4")
        shape = tuple(int(d) for d in dims)
        nbytes = dtype.itemsize
        for d in shape:  # Python ints: no overflow whatever the header says
            nbytes *= d
        if nbytes > _MAX_IDX_BYTES:
            raise ValueError(f"read_idx: {path} declares shape {shape}, {nbytes} bytes: too large")
        if nbytes + 4 + 4 * ndim > max_size:
            raise ValueError(f"read_idx: {path} is truncated: shape {shape} of {dtype.name} needs "
                             f"{nbytes} bytes, more than the file can hold ({max_size} bytes)")
        # Read straight into the result (peak memory: the data once).
        data = np.empty(nbytes, np.uint8)
        _read_into(f, data, path, f"shape {shape} of {dtype.name}")
        if f.read(1):
            raise ValueError(f"read_idx: {path} has bytes after the data of shape {shape}")
    except (OSError, EOFError, zlib.error) as exc:  # corrupt gzip streams
        raise ValueError(f"read_idx: {path} is corrupt ({type(exc).__name__}: {exc})") from None
    out = data.view(dtype)
    if dtype.itemsize > 1:
        out = out.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return out.reshape(shape)


def _find(directory: str, stem: str) -> str:
    for name in (stem, stem + ".gz"):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    # Some mirrors name the files with a dot before "idx" (t10k-images.idx3-ubyte).
    dotted = stem.replace("-idx", ".idx")
    for name in (dotted, dotted + ".gz"):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        f"load_mnist: {stem}[.gz] not found in {directory}; it needs the four files "
        f"{sorted(MNIST_FILES.values())} (gzipped or not)"
    )


def _images_labels(directory: str, images_stem: str, labels_stem: str) -> Tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = _find(directory, images_stem), _find(directory, labels_stem)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"load_mnist: {images_path} must hold uint8 images (n, rows, cols), "
                         f"got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"load_mnist: {labels_path} must hold uint8 labels (n,), "
                         f"got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"load_mnist: {len(images)} images in {images_path} but "
                         f"{len(labels)} labels in {labels_path}")
    if labels.size and labels.max() > 9:
        raise ValueError(f"load_mnist: {labels_path} has labels above 9 (max {labels.max()})")
    x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)
    return x, labels.astype(np.int64)


def load_mnist(directory: "os.PathLike[str] | str") -> Split:
    """MNIST from the four standard IDX files in ``directory`` (gzipped or not).

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: x float32 (n, 784) in
        [0, 1] (pixel / 255), y int64 in [0, 10).

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a file is not valid IDX, or images and labels disagree.
    """
    directory = os.fspath(directory)
    train = _images_labels(directory, MNIST_FILES["train_images"], MNIST_FILES["train_labels"])
    test = _images_labels(directory, MNIST_FILES["test_images"], MNIST_FILES["test_labels"])
    return train, test
