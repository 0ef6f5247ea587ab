"""Datasets: digits split, and the IDX reader / MNIST loader on small generated files."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

import matnet as mn
from matnet.datasets import MNIST_FILES, read_idx

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
             np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(arr: np.ndarray, code: int | None = None) -> bytes:
    """IDX encoding written out by hand (independent of the reader)."""
    code = IDX_CODES[arr.dtype.type] if code is None else code
    head = struct.pack(">BBBB", 0, 0, code, arr.ndim)
    head += b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


# ------------------------------------------------------------------ digits


def test_load_digits_shapes_dtypes_and_ranges():
    pytest.importorskip("sklearn")
    (xt, yt), (xs, ys) = mn.datasets.load_digits()
    assert xt.shape[1] == 64 and xs.shape[1] == 64 and len(xt) + len(xs) == 1797
    assert xt.dtype == np.float32 and yt.dtype == np.int64
    assert xt.min() == 0.0 and xt.max() == 1.0
    assert abs(len(xs) / 1797 - 0.2) < 0.01
    # Stratified: every class keeps its share of the test set (within rounding).
    all_y = np.concatenate([yt, ys])
    for c in range(10):
        assert abs((ys == c).sum() - 0.2 * (all_y == c).sum()) <= 0.5 + 1e-9


def test_load_digits_split_is_seeded_and_disjoint():
    pytest.importorskip("sklearn")
    (a, _), (b, _) = mn.datasets.load_digits(seed=1)
    (c, _), _ = mn.datasets.load_digits(seed=1)
    (d, _), _ = mn.datasets.load_digits(seed=2)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, d)
    rows = {r.tobytes() for r in a}
    # sklearn's digits contain a few duplicate images; the split itself is disjoint by index,
    # so only those duplicates may appear on both sides.
    assert sum(r.tobytes() in rows for r in b) < 10
    with pytest.raises(ValueError):
        mn.datasets.load_digits(test_size=1.5)


# ------------------------------------------------------------------ IDX


@pytest.mark.parametrize("dtype", list(IDX_CODES))
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_read_idx_every_type(dtype, gz, rng, tmp_path):
    arr = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    data = idx_bytes(arr)
    path = tmp_path / ("a.idx" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    got = read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, arr)


@pytest.mark.parametrize("shape", [(0,), (7,), (2, 0, 3), (1, 1, 1, 1)])
def test_read_idx_shapes(shape, tmp_path):
    arr = np.arange(int(np.prod(shape)), dtype=np.uint8).reshape(shape)
    (tmp_path / "s").write_bytes(idx_bytes(arr))
    np.testing.assert_array_equal(read_idx(tmp_path / "s"), arr)


GOOD = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize("data, match", [
    (b"", "truncated"),
    (b"\x00\x00", "truncated"),
    (b"\x01\x00\x08\x01" + b"\0" * 8, "not an IDX file"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "type code"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated"),
    (GOOD[:-1], "truncated"),
    (GOOD + b"\x00", "after the data"),
    (b"\x00\x00\x0e\x03" + b"\xff\xff\xff\xff" * 3 + b"\0" * 64, "too large"),
    (b"\x00\x00\x08\x01\x00\x10\x00\x00" + b"\0" * 10, "truncated"),
    (gzip.compress(GOOD)[:-10], "corrupt|truncated"),
    (gzip.compress(GOOD)[:12] + b"\x00" * 20, "corrupt|truncated"),
    (b"\x1f\x8b" + b"\x00" * 30, "corrupt"),
], ids=["empty", "short-header", "magic", "type", "ndim0", "dims-cut", "data-cut", "trailing",
        "huge", "declared-more", "gz-cut", "gz-garbage", "gz-header"])
def test_read_idx_rejects_corrupt_files(data, match, tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=match):
        read_idx(path)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_read_idx_peak_memory_is_near_the_data_size(dtype, gz, tmp_path):
    """Read straight into the result: peak (traced) allocation ~1x the data
    (was 2.1x: a bytes copy, then a byte-swapped copy)."""
    import tracemalloc
    arr = np.arange((8 << 20) // np.dtype(dtype).itemsize, dtype=dtype).reshape(1024, -1)  # 8 MiB
    data = idx_bytes(arr)
    path = tmp_path / "big"
    path.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
    del data
    tracemalloc.start()
    try:
        got = read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(got, arr)
    assert peak < arr.nbytes + (4 << 20), (peak, arr.nbytes)  # the data + read buffers


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_read_idx_refuses_sizes_the_file_cannot_hold_before_allocating(gz, tmp_path):
    """A header declaring 4 GiB in a file of a few bytes is refused before the
    4 GiB are allocated (gzip: deflate packs at most ~1032:1)."""
    import tracemalloc
    header = b"\x00\x00\x08\x02" + (65536).to_bytes(4, "big") * 2 + b"\0" * 4096
    path = tmp_path / "liar"
    path.write_bytes(gzip.compress(header) if gz else header)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="more than the file can hold"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "none")


# ------------------------------------------------------------------ MNIST


def write_mnist(directory, rng, n_train=12, n_test=5, gz=False, rows=28, labels_max=9):
    """Four small MNIST-format files; returns the arrays written."""
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, rows, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, labels_max + 1, n_train).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, rows, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, labels_max + 1, n_test).astype(np.uint8),
    }
    for key, arr in arrays.items():
        data = idx_bytes(arr)
        name = MNIST_FILES[key] + (".gz" if gz else "")
        (directory / name).write_bytes(gzip.compress(data) if gz else data)
    return arrays


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_load_mnist(gz, rng, tmp_path):
    arrays = write_mnist(tmp_path, rng, gz=gz)
    (xt, yt), (xs, ys) = mn.datasets.load_mnist(tmp_path)
    assert xt.shape == (12, 784) and xs.shape == (5, 784)
    assert xt.dtype == np.float32 and yt.dtype == np.int64
    np.testing.assert_allclose(xt, arrays["train_images"].reshape(12, -1) / np.float32(255))
    np.testing.assert_array_equal(ys, arrays["test_labels"])


def test_load_mnist_errors(rng, tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k|train"):
        mn.datasets.load_mnist(tmp_path)
    arrays = write_mnist(tmp_path, rng)
    # labels that do not match the images in count
    (tmp_path / MNIST_FILES["test_labels"]).write_bytes(idx_bytes(arrays["test_labels"][:3]))
    with pytest.raises(ValueError, match="5 images"):
        mn.datasets.load_mnist(tmp_path)
    # labels out of range
    (tmp_path / MNIST_FILES["test_labels"]).write_bytes(
        idx_bytes(np.full(5, 12, dtype=np.uint8)))
    with pytest.raises(ValueError, match="above 9"):
        mn.datasets.load_mnist(tmp_path)
    # images stored as the wrong type
    (tmp_path / MNIST_FILES["test_labels"]).write_bytes(idx_bytes(arrays["test_labels"]))
    (tmp_path / MNIST_FILES["test_images"]).write_bytes(
        idx_bytes(arrays["test_images"].astype(np.float32)))
    with pytest.raises(ValueError, match="uint8 images"):
        mn.datasets.load_mnist(tmp_path)
