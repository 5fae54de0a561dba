"""Conservative terms L_CQL of eq. 6, with the weight modes of the ablations.

Weight in eq. 6: eta * R_h * L_CQL ("dynamic", the paper), eta * L_CQL ("fixed", the
fixed-CQL ablation and ODIS), or 0 (``NoConservativeLoss``, the no-CQL ablation).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import gin
import torch
from torch import Tensor

from hygen.losses.objectives import masked_mean

WEIGHT_MODES = ("dynamic", "fixed", "zero")


class ConservativeLoss(ABC):
    """Penalty pushing skill values down on skills the data did not choose.

    ``offline_only``: average over the batch's offline episodes only (0 for an all-online
    batch); online samples are the current policy's own skills, and pushing their values up
    makes the greedy policy keep whatever it already does.
    """

    def __init__(self, weight: float = 5.0, mode: str = "dynamic", offline_only: bool = False):
        if mode not in WEIGHT_MODES:
            raise ValueError(f"{type(self).__name__}.mode must be one of {WEIGHT_MODES}, got {mode!r}")
        self.weight, self.mode, self.offline_only = float(weight), mode, bool(offline_only)

    def coefficient(self, ratio: float) -> float:
        """The factor in front of L_CQL in eq. 6, given the hybrid ratio R_h."""
        if self.mode == "dynamic":
            return self.weight * ratio
        return self.weight if self.mode == "fixed" else 0.0

    @abstractmethod
    def __call__(self, agent_qs: Tensor, data_skills: Tensor, mix: Callable[[Tensor], Tensor],
                 mask: Tensor, agent_mask: Tensor) -> Tensor:
        """agent_qs [B, T, n, K]; data_skills [B, T, n] long; mix: [B, T, n] -> Q_tot [B, T, 1];
        mask [B, T, 1]; agent_mask [B, T, n] -> scalar loss."""


@gin.configurable
class CQLLoss(ConservativeLoss):
    """CQL(H) at agent level: logsumexp_z Q_i(tau_i, z) - Q_i(tau_i, z_data), averaged.

    The paper's CQL term. The joint skill space has K^n members, so the logsumexp is
    taken per agent (the mixer is monotonic, so lowering every off-data Q_i lowers the
    off-data Q_tot); ``ODISGapLoss`` is the mixed alternative.
    """

    def __call__(self, agent_qs, data_skills, mix, mask, agent_mask):
        data_q = agent_qs.gather(-1, data_skills.unsqueeze(-1)).squeeze(-1)
        return masked_mean(torch.logsumexp(agent_qs, -1) - data_q, agent_mask)


@gin.configurable
class ODISGapLoss(ConservativeLoss):
    """The public code's term: Mix(Q_i at the greedy skill) - Mix(Q_i at the data skill), masked mean."""

    def __call__(self, agent_qs, data_skills, mix, mask, agent_mask):
        greedy_q = agent_qs.max(-1).values
        data_q = agent_qs.gather(-1, data_skills.unsqueeze(-1)).squeeze(-1)
        return masked_mean(mix(greedy_q) - mix(data_q), mask)


@gin.configurable
class MixedCQLLoss(ConservativeLoss):
    """CQL(H) on the mixed value, over a sample of joint skills:

        logsumexp_{z in S} Q_tot(s, z) - Q_tot(s, z_data),   S = {greedy z} + ``samples`` uniform z,

    masked mean over steps. The joint skill space has K^n members, so the logsumexp is taken
    over the greedy joint skill (each agent's argmax: the largest Q_tot, the mixer being
    monotonic) and ``joint_samples`` joint skills drawn uniformly; the data joint skill is pushed up.
    Unlike ``CQLLoss`` the term acts on Q_tot, so the mixer is trained by it and Q_tot of
    unseen joint skills is bounded; unlike ``ODISGapLoss`` (greedy minus data) it also
    lowers non-greedy joint skills. The draws use torch's global RNG (seeded, checkpointed).
    """

    def __init__(self, weight: float = 5.0, mode: str = "dynamic", offline_only: bool = False,
                 joint_samples: int = 8):
        super().__init__(weight, mode, offline_only)
        if joint_samples < 0:
            raise ValueError(f"MixedCQLLoss.joint_samples must be >= 0, got {joint_samples}")
        self.joint_samples = int(joint_samples)

    def __call__(self, agent_qs, data_skills, mix, mask, agent_mask):
        K = agent_qs.shape[-1]
        drawn = torch.randint(K, (self.joint_samples, *data_skills.shape), device=agent_qs.device)
        joint_qs = [agent_qs.max(-1).values] + [agent_qs.gather(-1, z.unsqueeze(-1)).squeeze(-1) for z in drawn]
        q_tots = torch.cat([mix(q) for q in joint_qs], -1)  # [B, T, 1 + samples]
        data_q = mix(agent_qs.gather(-1, data_skills.unsqueeze(-1)).squeeze(-1))
        return masked_mean(torch.logsumexp(q_tots, -1, keepdim=True) - data_q, mask)


@gin.configurable
class NoConservativeLoss(ConservativeLoss):
    """No conservative term (the no-CQL ablation)."""

    def __init__(self, weight: float = 0.0, mode: str = "zero", offline_only: bool = False):
        super().__init__(weight, mode, offline_only)

    def coefficient(self, ratio: float) -> float:
        return 0.0

    def __call__(self, agent_qs, data_skills, mix, mask, agent_mask):
        return agent_qs.new_zeros(())
