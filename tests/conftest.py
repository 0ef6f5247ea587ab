"""Shared fixtures and helpers for matnet's tests."""

from __future__ import annotations

import numpy as np
import pytest

import matnet as mn


@pytest.fixture
def rng() -> np.random.Generator:
    """A local generator per test (never a global seed)."""
    return np.random.default_rng(12345)


@pytest.fixture
def threads():
    """Restore the thread count after a test changes it."""
    before = mn.get_num_threads()
    yield
    mn.set_num_threads(before)
