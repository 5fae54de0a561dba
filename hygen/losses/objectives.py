"""HyGen's loss terms (paper eqs. 2, 4, 5), as pure functions on tensors.

Reductions: every per-agent term is averaged over (time, alive agent) entries. The paper
writes sums over agents i = 1..n; averaging instead keeps a 3-agent and a 13-agent map on
the same scale when one optimizer step sums the losses of all maps (the public code
averages too). Dead agents (only no-op available) are left out: their action is forced.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from hygen.encoders.decoder import masked_log_softmax


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of x over entries where mask is 1 (mask broadcasts to x); 0 if none."""
    mask = mask.expand_as(x).to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def alive_agents(avail_actions: Tensor, mask: Tensor) -> Tensor:
    """[B, T, n] float: valid step and the agent has a choice (dead agents only have no-op)."""
    return avail_actions[..., 1:].any(-1).to(mask.dtype) * mask


def kl_to_uniform(logits: Tensor) -> Tensor:
    """KL(q || U) = sum_z q log q + log K, per row of [..., K] logits."""
    logq = F.log_softmax(logits, -1)
    return (logq.exp() * logq).sum(-1) + math.log(logits.shape[-1])


def vae_loss(decoder_logits: Tensor, skill_logits: Tensor, actions: Tensor, avail_actions: Tensor,
             agent_mask: Tensor, beta: float = 1e-3) -> tuple[Tensor, dict[str, Tensor]]:
    """Eq. 2: -E_q(z|s,a,i)[log p(a_i | tau_i, z)] + beta * KL(q(.|s,a,i) || uniform).

    The expectation over the K skills is exact (K is small): -sum_z q(z) log p(a | tau, z),
    differentiable in both the encoder and the decoder, no sampling variance.

    Args:
        decoder_logits: [B, T, n, K, A]; skill_logits: [B, T, n, K];
        actions: [B, T, n] long; avail_actions: [B, T, n, A]; agent_mask: [B, T, n].
    """
    logp = masked_log_softmax(decoder_logits, avail_actions.unsqueeze(-2))  # [B, T, n, K, A]
    idx = actions[..., None, None].expand(*actions.shape, logp.shape[-2], 1)
    logp_a = logp.gather(-1, idx).squeeze(-1)  # [B, T, n, K]
    q = F.softmax(skill_logits, -1)
    nll = -(q * logp_a).sum(-1)
    kl = kl_to_uniform(skill_logits)
    loss = masked_mean(nll, agent_mask) + beta * masked_mean(kl, agent_mask)
    return loss, {"nll": masked_mean(nll, agent_mask).detach(), "kl_uniform": masked_mean(kl, agent_mask).detach()}


def lambda_returns(reward: Tensor, terminated: Tensor, mask: Tensor, next_v: Tensor, gamma: float,
                   td_lambda: float) -> Tensor:
    """TD(lambda) targets, all [B, T, 1] (next_v[:, t] values the row after step t):

        G_t = r_t + gamma * (1 - d_t) * ((1 - lambda) * V_{t+1} + lambda * G_{t+1}),

    where G_{t+1} is replaced by V_{t+1} when step t+1 is not a real transition (end of data).
    lambda = 0 is the one-step target r_t + gamma * (1 - d_t) * V_{t+1}.
    """
    one_step = reward + gamma * (1.0 - terminated) * next_v
    if td_lambda == 0.0:
        return one_step
    out = torch.empty_like(one_step)
    g_next = next_v[:, -1]
    for t in range(reward.shape[1] - 1, -1, -1):  # backwards over time, batched over episodes
        out[:, t] = reward[:, t] + gamma * (1.0 - terminated[:, t]) * (
            (1.0 - td_lambda) * next_v[:, t] + td_lambda * g_next)
        if t > 0:  # the return from row t, or V_t where step t holds no data
            g_next = mask[:, t] * out[:, t] + (1.0 - mask[:, t]) * next_v[:, t - 1]
    return out


def td_loss(q_tot: Tensor, target_next_q_tot: Tensor, reward: Tensor, terminated: Tensor, mask: Tensor,
            gamma: float = 0.99, td_lambda: float = 0.0) -> tuple[Tensor, Tensor]:
    """Eq. 4: E[(r + gamma * max_z' Q_tot(tau', z'; theta^-) - Q_tot(tau, z; theta))^2].

    All [B, T, 1]; ``target_next_q_tot`` already holds the max over next skills
    (per-agent argmax, monotonic mixer). ``td_lambda > 0`` replaces the one-step target by
    the TD(lambda) return (``lambda_returns``; not in the paper). Returns (loss, td error).
    """
    y = lambda_returns(reward, terminated, mask, target_next_q_tot.detach(), gamma, td_lambda)
    td = (q_tot - y) * mask
    return (td ** 2).sum() / mask.sum().clamp_min(1.0), td.detach()


def consistency_loss(local_logits: Tensor, global_logits: Tensor, agent_mask: Tensor) -> Tensor:
    """Eq. 5: KL(q_hat(. | tau_i) || q(z_i | s, a, i)), the global encoder frozen (no gradient)."""
    log_local = F.log_softmax(local_logits, -1)
    log_global = F.log_softmax(global_logits.detach(), -1)
    kl = (log_local.exp() * (log_local - log_global)).sum(-1)
    return masked_mean(kl, agent_mask)


def weighted_nll(decoder_logits: Tensor, skills: Tensor, actions: Tensor, avail_actions: Tensor,
                 weights: Tensor) -> Tensor:
    """Weighted -log p(a_i | tau_i, z_i) at the given skills. decoder_logits [B, T, n, K, A],
    weights [B, T, n] (0 = ignore)."""
    logits = decoder_logits.gather(-2, skills[..., None, None].expand(*skills.shape, 1,
                                                                     decoder_logits.shape[-1])).squeeze(-2)
    return weighted_nll_at(logits, actions, avail_actions, weights)


def weighted_nll_at(logits: Tensor, actions: Tensor, avail_actions: Tensor, weights: Tensor) -> Tensor:
    """``weighted_nll`` with the logits already at the skills: logits [B, T, n, A]."""
    logp = masked_log_softmax(logits, avail_actions).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return -(logp * weights).sum() / (weights > 0).to(weights.dtype).sum().clamp_min(1.0)


__all__ = ["alive_agents", "consistency_loss", "kl_to_uniform", "lambda_returns", "masked_mean", "td_loss", "vae_loss",
           "weighted_nll", "weighted_nll_at"]
