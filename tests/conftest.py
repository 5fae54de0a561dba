"""Shared test fixtures: the real SC2 dataset (skipped when absent) and a clean gin state."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HYGEN_NO_PROGRESS", "1")
# Small tensors: one thread is faster than two fighting over a shared CPU, and repeatable.
torch.set_num_threads(1)

# ../shared/data next to the checkout, or HYGEN_SHARED_DATA pointing at a data root.
SHARED_DATA = Path(os.environ.get("HYGEN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
REAL_3M = SHARED_DATA / "smac" / "3m" / "medium" / "part_0.h5"


@pytest.fixture
def real_3m_path() -> Path:
    if not REAL_3M.is_file():
        pytest.skip(f"real StarCraft II dataset not found at {REAL_3M} "
                    "(set HYGEN_SHARED_DATA to the folder holding smac/3m/medium/part_0.h5)")
    return REAL_3M


@pytest.fixture(autouse=True)
def fixed_seed():
    """Each test starts from the same RNG state, whatever ran before it."""
    from hygen.utils import seed_everything

    seed_everything(0)


@pytest.fixture(autouse=True)
def clean_gin():
    from hygen import config

    config.reset()
    yield
    config.reset()
