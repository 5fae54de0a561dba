"""Random but well-formed episodes, for tests and benchmarks (not for learning)."""

from __future__ import annotations

import torch

from hygen.buffers.episode import EpisodeBatch, win_bonus
from hygen.buffers.scheme import STEP_FIELDS
from hygen.envs.maps import get_map

__all__ = ["random_episodes"]


def random_episodes(map_name: str, n: int, lengths: torch.Tensor | list[int] | None = None,
                    win_fraction: float = 0.5, seed: int = 0) -> EpisodeBatch:
    """``n`` episodes of ``map_name`` that pass ``hygen data validate``.

    ``lengths`` gives environment steps per episode (default: uniform in
    [limit/4, limit]). Observations/states are uniform noise in [-1, 1]; each agent has
    a random non-empty set of available actions and picks one of them; rewards are small
    per step, with SMAC's win bonus added on the last step of the won episodes.
    """
    spec = get_map(map_name)
    g = torch.Generator().manual_seed(seed)
    limit = spec.episode_limit
    if lengths is None:
        lengths = torch.randint(max(1, limit // 4), limit + 1, (n,), generator=g)
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    if len(lengths) != n or lengths.min() < 1 or lengths.max() > limit:
        raise ValueError(f"lengths must be {n} values in [1, {limit}] for {map_name}")
    b = EpisodeBatch.zeros(map_name, n, int(lengths.max()) + 1)
    T1 = b.max_seq_length
    t = torch.arange(T1)[None]
    filled = t <= lengths[:, None]  # rows 0..L
    steps = t < lengths[:, None]  # rows 0..L-1
    b.filled = filled[..., None].float()
    b.terminated = (t == (lengths - 1)[:, None])[..., None].float()
    b.obs = (torch.rand(b.obs.shape, generator=g) * 2 - 1) * filled[..., None, None]
    b.state = (torch.rand(b.state.shape, generator=g) * 2 - 1) * filled[..., None]
    avail = torch.rand(b.avail_actions.shape, generator=g) < 0.5
    avail[..., 1] = True  # "stop" is always available to a living unit
    b.avail_actions = avail & filled[..., None, None]
    # pick uniformly among available actions: argmax of noise restricted to them
    noise = torch.rand(avail.shape, generator=g).masked_fill(~avail, -1.0)
    b.actions = (noise.argmax(-1, keepdim=True) * filled[..., None, None]).long()
    reward = torch.rand((n, T1), generator=g) * 0.5 * steps
    won = torch.rand(n, generator=g) < win_fraction
    reward[torch.arange(n), lengths - 1] += won * win_bonus(map_name)
    b.reward = reward[..., None]
    b.won = won
    return EpisodeBatch(**{k: getattr(b, k) for k in STEP_FIELDS}, map_name=map_name, won=won)
