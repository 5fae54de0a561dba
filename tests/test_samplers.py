"""Hybrid samplers: the ratio schedules (paper eq. 3) and how batches are assembled."""

from __future__ import annotations

import gin
import pytest
import torch

from hygen.buffers import (
    FixedRatio,
    LinearDecayRatio,
    OfflineDataset,
    OfflineOnly,
    OnlineOnly,
    PerformanceRatio,
    ReplayBuffer,
    SamplerError,
)
from hygen.buffers.synthetic import random_episodes


@pytest.fixture
def sources():
    """Offline episodes all 20 steps long, online ones all 5 steps: the length tells the source."""
    offline = OfflineDataset.from_batch(random_episodes("3m", 40, lengths=[20] * 40, seed=1))
    online = ReplayBuffer("3m", capacity=50)
    online.insert(random_episodes("3m", 30, lengths=[5] * 30, seed=2))
    return offline, online


def test_linear_decay_eq3():
    s = LinearDecayRatio()  # paper: 1.0 -> 0.1 over 5000 steps
    assert [s.ratio(t) for t in (0, 2500, 5000, 20000)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    assert s.ratio(1000) == pytest.approx(max(0.1, 1.0 - 0.9 * 1000 / 5000))
    assert LinearDecayRatio(0.2, 0.8, 100).ratio(50) == pytest.approx(0.5)


def test_other_ratios():
    assert FixedRatio(0.2).ratio(123) == 0.2
    assert OnlineOnly().ratio(0) == 0.0 and OfflineOnly().ratio(10**6) == 1.0
    p = PerformanceRatio(start=1.0, end=0.1)
    assert p.ratio(0) == 1.0  # nothing known yet
    assert p.ratio(0, win_rate=0.27, dataset_win_rate=0.54) == pytest.approx(0.5)
    assert p.ratio(0, win_rate=0.9, dataset_win_rate=0.54) == pytest.approx(0.1)  # clipped at end
    assert p.ratio(0, win_rate=0.0, dataset_win_rate=0.54) == pytest.approx(1.0)
    with pytest.raises(SamplerError, match="ratio must lie in"):
        FixedRatio(1.5)


@pytest.mark.parametrize("t, expected_offline", [(0, 32), (2500, 18), (5000, 3)])
def test_batch_composition_follows_ratio(sources, t, expected_offline):
    offline, online = sources
    s = LinearDecayRatio()
    b = s.sample(offline, online, 32, t, generator=torch.Generator().manual_seed(0))
    assert len(b) == 32 and b.n_offline == expected_offline == round(s.ratio(t) * 32)
    lengths = b.episode_lengths
    assert (lengths[: b.n_offline] == 20).all() and (lengths[b.n_offline:] == 5).all()  # offline first
    assert b.max_seq_length == 21  # padded to the longest (offline) episode
    assert s.last_ratio == pytest.approx(s.ratio(t)) and s.last_n_offline == expected_offline


def test_online_short_falls_back_to_offline(sources):
    offline, _ = sources
    small = ReplayBuffer("3m", capacity=50)
    small.insert(random_episodes("3m", 3, lengths=[5] * 3))
    s = FixedRatio(0.5)
    b = s.sample(offline, small, 32, t=0)
    assert b.n_offline == 32 and s.last_n_offline == 32 and s.last_ratio == 0.5


def test_missing_sources(sources):
    offline, online = sources
    assert OnlineOnly().sample(None, online, 8, 0).n_offline == 0
    assert FixedRatio(0.2).sample(offline, None, 8, 0).n_offline == 8  # no online buffer: all offline
    assert FixedRatio(0.8).sample(None, online, 8, 0).n_offline == 0
    with pytest.raises(SamplerError, match="online buffer holds 30 episodes"):
        OnlineOnly().sample(None, online, 31, 0)


def test_performance_ratio_reads_dataset_win_rate(sources):
    offline, online = sources
    p = PerformanceRatio()
    b = p.sample(offline, online, 10, 0, win_rate=offline.win_rate / 2)
    assert p.last_ratio == pytest.approx(0.5) and b.n_offline == 5


def test_gin_bindings():
    gin.parse_config("LinearDecayRatio.decay_steps = 100\nLinearDecayRatio.end = 0.2\nFixedRatio.ratio = 0.8")
    assert LinearDecayRatio().ratio(100) == pytest.approx(0.2)
    assert FixedRatio().ratio(0) == 0.8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_storage_with_cpu_generator():
    offline = OfflineDataset.from_batch(random_episodes("3m", 20, seed=1), device="cuda")
    online = ReplayBuffer("3m", capacity=20, device="cuda")
    online.insert(random_episodes("3m", 20, seed=2))
    b = FixedRatio(0.5).sample(offline, online, 16, 0, generator=torch.Generator().manual_seed(0))
    assert b.device.type == "cuda" and b.n_offline == 8 and b.mask.device.type == "cuda"
    sd = online.state_dict()
    assert sd["data"]["obs"].device.type == "cpu"
