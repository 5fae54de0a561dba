"""Consistency terms L_c of eq. 5: the local skill predictor q_hat(z | tau_i) is trained
toward the frozen global encoder's q(z | s, a, i). Bind one as ``HyGenLearner.consistency``."""

from __future__ import annotations

import gin
import torch.nn.functional as F
from torch import Tensor

from hygen.losses.objectives import consistency_loss, masked_mean

__all__ = ["ArgmaxConsistency", "ConsistencyLoss", "KLConsistency"]


class ConsistencyLoss:
    """local_logits, global_logits [B, T, n, K], agent_mask [B, T, n] -> scalar (no gradient
    reaches the global encoder)."""

    def __call__(self, local_logits: Tensor, global_logits: Tensor, agent_mask: Tensor) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@gin.configurable
class KLConsistency(ConsistencyLoss):
    """The paper's eq. 5: KL(q_hat(. | tau_i) || q(. | s, a, i))."""

    def __call__(self, local_logits, global_logits, agent_mask):
        return consistency_loss(local_logits, global_logits, agent_mask)


@gin.configurable
class ArgmaxConsistency(ConsistencyLoss):
    """The public code's (ODIS's) form: cross-entropy of q_hat against the global encoder's
    argmax skill, -log q_hat(argmax_z q(z | s, a, i) | tau_i)."""

    def __call__(self, local_logits, global_logits, agent_mask):
        target = global_logits.detach().argmax(-1, keepdim=True)
        nll = -F.log_softmax(local_logits, -1).gather(-1, target).squeeze(-1)
        return masked_mean(nll, agent_mask)
