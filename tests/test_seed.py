"""Seeding: the same seed gives the same numbers."""

import random

import numpy as np
import pytest
import torch

from hygen.utils import resolve_device, rng_state, seed_everything, set_rng_state


def draw(g):
    return (random.random(), float(np.random.rand()), torch.rand(3).tolist(), torch.rand(2, generator=g).tolist())


def test_same_seed_same_numbers():
    a = draw(seed_everything(3))
    b = draw(seed_everything(3))
    c = draw(seed_everything(4))
    assert a == b and a != c


def test_rng_state_roundtrip():
    seed_everything(0)
    state = rng_state()
    x = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == x


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")
