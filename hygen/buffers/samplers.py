"""Hybrid batch samplers: how many of a batch's B episodes come from the offline dataset.

A sampler's ``ratio(t)`` is the offline fraction R_h at training step t; ``sample``
draws round(R_h * B) offline episodes then the rest online, in one EpisodeBatch whose
``n_offline`` says where the offline part ends (the learner scales CQL by it).
"""

from __future__ import annotations

import gin
import torch

from hygen.buffers.episode import EpisodeBatch
from hygen.buffers.offline import OfflineDataset
from hygen.buffers.replay import ReplayBuffer

__all__ = ["FixedRatio", "HybridSampler", "LinearDecayRatio", "OfflineOnly", "OnlineOnly",
           "PerformanceRatio", "SamplerError"]


class SamplerError(ValueError):
    """Neither source can supply the batch, or a sampler got a bad setting."""


def _check_unit(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise SamplerError(f"{name} must lie in [0, 1], got {value}")
    return float(value)


class HybridSampler:
    """Base class: subclasses define ``ratio(t, **stats)``; ``sample`` is shared."""

    def __init__(self) -> None:
        self.last_ratio: float = float("nan")  # R_h used for the last batch (for logging)
        self.last_n_offline: int = 0  # offline episodes actually drawn in the last batch

    def ratio(self, t: int, **stats: float) -> float:
        raise NotImplementedError

    def sample(self, offline: OfflineDataset | None, online: ReplayBuffer | None, batch_size: int,
               t: int, generator: torch.Generator | None = None,
               device: str | torch.device | None = None, **stats: float) -> EpisodeBatch:
        """A batch of ``batch_size`` episodes: round(R_h * B) offline first, then online.

        When the online buffer cannot supply its share yet, the whole batch comes from
        offline. The result is on ``device`` (default: the online buffer's device, else
        the dataset's), padded to its longest episode.
        """
        R = self.ratio(t, **stats)
        if offline is None:
            R = 0.0
        elif online is None:
            R = 1.0
        self.last_ratio = R
        n_off = round(R * batch_size)
        n_on = batch_size - n_off
        if n_on > 0 and (online is None or not online.can_sample(n_on)):
            if offline is None:
                have = 0 if online is None else len(online)
                raise SamplerError(f"no offline dataset and the online buffer holds {have} episodes; "
                                   f"cannot sample {batch_size}")
            n_off, n_on = batch_size, 0
        self.last_n_offline = n_off
        parts = []
        if n_off:
            parts.append(offline.sample(n_off, generator))
        if n_on:
            parts.append(online.sample(n_on, generator))
        if device is None:
            device = online.device if online is not None and n_on else parts[0].device
        parts = [p.to(device) for p in parts]
        return parts[0] if len(parts) == 1 else EpisodeBatch.cat(parts)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items() if not k.startswith("last_"))
        return f"{type(self).__name__}({args})"


@gin.configurable
class LinearDecayRatio(HybridSampler):
    """Paper eq. 3: R_h = max(R_end, R_start - (R_start - R_end) * t / N).

    The paper prints max(R_end, (R_start - R_end) * t / N), which grows with t; its text
    (offline data first, then mostly online) describes this decay.
    """

    def __init__(self, start: float = 1.0, end: float = 0.1, decay_steps: int = 5000) -> None:
        super().__init__()
        self.start, self.end = _check_unit("start", start), _check_unit("end", end)
        if decay_steps <= 0:
            raise SamplerError(f"decay_steps must be positive, got {decay_steps}")
        self.decay_steps = decay_steps

    def ratio(self, t: int, **stats: float) -> float:
        if t >= self.decay_steps:
            return self.end
        # linear in t, flat at R_end after N steps (also works for start < end)
        return self.start - (self.start - self.end) * max(t, 0) / self.decay_steps


@gin.configurable
class FixedRatio(HybridSampler):
    """A constant offline fraction (the paper's 20 / 50 / 80 % ablations)."""

    def __init__(self, ratio: float = 0.5) -> None:
        super().__init__()
        self.fixed = _check_unit("ratio", ratio)

    def ratio(self, t: int, **stats: float) -> float:
        return self.fixed


@gin.configurable
class OnlineOnly(HybridSampler):
    """Every episode from the online buffer (R_h = 0)."""

    def ratio(self, t: int, **stats: float) -> float:
        return 0.0


@gin.configurable
class OfflineOnly(HybridSampler):
    """Every episode from the offline dataset (R_h = 1)."""

    def ratio(self, t: int, **stats: float) -> float:
        return 1.0


@gin.configurable
class PerformanceRatio(HybridSampler):
    """Offline share tied to how the policy compares with the data's behaviour policy.

    R_h = clip(1 - win_rate / dataset_win_rate, end, start): while the policy wins less
    than the dataset's episodes, lean on the data; once it matches it, use mostly online
    episodes. ``win_rate`` (the current test win rate) comes as a keyword to
    ``ratio``/``sample``; ``dataset_win_rate`` too, or from ``OfflineDataset.win_rate``
    in ``sample``. Before any win rate is known, R_h = start. (Our definition; the public
    HyGen code's variant could not be looked up.)
    """

    def __init__(self, start: float = 1.0, end: float = 0.1) -> None:
        super().__init__()
        self.start, self.end = _check_unit("start", start), _check_unit("end", end)

    def ratio(self, t: int, win_rate: float | None = None, dataset_win_rate: float | None = None,
              **stats: float) -> float:
        lo, hi = min(self.start, self.end), max(self.start, self.end)
        if win_rate is None or dataset_win_rate is None:
            return self.start
        if dataset_win_rate <= 0:
            return lo  # the data never wins: any policy is at least as good
        return min(max(1.0 - win_rate / dataset_win_rate, lo), hi)

    def sample(self, offline: OfflineDataset | None, online: ReplayBuffer | None, batch_size: int,
               t: int, generator: torch.Generator | None = None,
               device: str | torch.device | None = None, **stats: float) -> EpisodeBatch:
        if offline is not None:
            stats.setdefault("dataset_win_rate", offline.win_rate)
        return super().sample(offline, online, batch_size, t, generator, device, **stats)
