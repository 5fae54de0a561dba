"""Phase-2 decoder refinement rules (section 4.2 keeps training the decoder; the paper names
no loss): weighted behaviour cloning at the data skill,

    L_ref = weight * sum(w * -log p(a_i | tau_i, z_data)) / #(w > 0),   w = w_ep * alive * [offline],

with the episode weight w_ep given by the rule. ``NoRefinement`` freezes the decoder (the
no-refinement ablation). Bind one as ``HyGenLearner.refinement = @Rule()``.
"""

from __future__ import annotations

import gin
import torch
from torch import Tensor

MAX_RETURN = 20.0  # SMAC scales every map's best return to 20

__all__ = [
    "MAX_RETURN",
    "CloneAllEpisodes",
    "CloneByReturn",
    "CloneWonEpisodes",
    "DecoderRefinement",
    "NoRefinement",
]


class DecoderRefinement:
    """Base of the refinement rules.

    Args:
        weight: factor on L_ref in the phase-2 loss.
        offline_only: clone the batch's offline episodes only (online episodes then train the
            values but not the decoder; docs/results.md: cloning the won online source-map
            episodes fits the decoder to the source maps and costs zero-shot transfer).
    """

    trains_decoder = True

    def __init__(self, weight: float = 1.0, offline_only: bool = False):
        if weight < 0:
            raise ValueError(f"{type(self).__name__}.weight must be >= 0, got {weight}")
        self.weight, self.offline_only = float(weight), bool(offline_only)

    def episode_weights(self, won: Tensor, returns: Tensor) -> Tensor:
        """[B] bool, [B] float -> [B] weight of each episode."""
        raise NotImplementedError

    def sample_weights(self, b, agent_mask: Tensor) -> Tensor:
        """[B, T, n] weight of each agent-step of batch ``b`` (0: not cloned)."""
        w = agent_mask * self.episode_weights(b.battle_won, b.returns).to(agent_mask)[:, None, None]
        if self.offline_only:
            w = w * (torch.arange(len(b), device=w.device) < b.n_offline).to(w)[:, None, None]
        return w

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weight={self.weight}, offline_only={self.offline_only})"


@gin.configurable
class CloneWonEpisodes(DecoderRefinement):
    """w_ep = 1 for won episodes, 0 otherwise."""

    def episode_weights(self, won, returns):
        return won.float()


@gin.configurable
class CloneByReturn(DecoderRefinement):
    """w_ep = clamp(return / 20, 0, 1) (20: SMAC's maximum scaled return)."""

    def episode_weights(self, won, returns):
        return (returns / MAX_RETURN).clamp(0.0, 1.0)


@gin.configurable
class CloneAllEpisodes(DecoderRefinement):
    """w_ep = 1: plain behaviour cloning of every episode."""

    def episode_weights(self, won, returns):
        return torch.ones_like(returns)


@gin.configurable
class NoRefinement(DecoderRefinement):
    """The decoder stays as phase 1 left it (the no-refinement ablation)."""

    trains_decoder = False

    def __init__(self):
        super().__init__(weight=0.0)

    def episode_weights(self, won, returns):
        return torch.zeros_like(returns)
