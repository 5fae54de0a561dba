"""Skill-conditioned action decoder p(a_i | tau_i, z_i) (paper section 4.1)."""

from __future__ import annotations

import gin
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hygen.encoders.attention import EntityGRUTrunk, pack_rows, unpack_rows
from hygen.encoders.base import ActionDecoder
from hygen.entities import N_BASIC_ACTIONS, OBS_TOKEN_DIM, obs_entities
from hygen.envs.maps import get_map


@gin.configurable
class AttentionActionDecoder(ActionDecoder):
    """Local trajectory trunk (entity attention + GRU) + skill embedding -> action logits.

    For each skill z: ctx_z = MLP([h_t, own token's attention output]) + emb(z). Basic
    actions (no-op, stop, 4 moves) come from a linear head on ctx_z; attack-j logits are
    the dot product of ctx_z with a key computed from enemy j's token, so the action space
    grows with the enemy count (UPDeT/ODIS). The key is a small MLP of the enemy's own
    features (not an attention output): the own token already attends to every entity,
    and querying only it keeps the trunk 3-4x cheaper. ``forward`` returns logits for all
    K skills (phase 1 takes the exact expectation over q(z | s, a, i)); ``logits_at`` runs
    the head at one skill per agent (acting, phase-2 refinement).
    Unavailable actions are masked by the caller (``masked_log_softmax``).

    ``return_conditioned=True`` (BC-r, Decision-Transformer-like): the return-to-go R_t
    (``rtg`` [B, T, 1], divided by ``return_scale``) enters the context the way the skill
    does, ctx += W_R R_t / return_scale; acting starts from ``target_return`` and subtracts
    each reward received (HyGenController). Off by default (then no extra parameters).
    """

    def __init__(self, num_skills: int = 4, emb_dim: int = 64, n_heads: int = 4, hidden_dim: int = 64,
                 return_conditioned: bool = False, target_return: float = 20.0, return_scale: float = 20.0):
        super().__init__()
        self.num_skills = num_skills
        self.hidden_dim = hidden_dim
        self.return_conditioned = bool(return_conditioned)
        self.target_return, self.return_scale = float(target_return), float(return_scale)
        self.trunk = EntityGRUTrunk(OBS_TOKEN_DIM, emb_dim, n_heads, hidden_dim)
        self.ctx = nn.Sequential(nn.Linear(hidden_dim + emb_dim, hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, hidden_dim))
        self.skill_emb = nn.Embedding(num_skills, hidden_dim)
        self.basic = nn.Linear(hidden_dim, N_BASIC_ACTIONS)
        self.enemy_key = nn.Sequential(nn.Linear(OBS_TOKEN_DIM, emb_dim // 2), nn.ReLU(),
                                       nn.Linear(emb_dim // 2, hidden_dim))
        if self.return_conditioned:  # made last: the default decoder's parameters and RNG draws are unchanged
            self.rtg_emb = nn.Linear(1, hidden_dim)

    def forward(self, obs: Tensor, last_actions_onehot: Tensor, map_name: str,
                hidden: Tensor | None = None, valid: Tensor | None = None,
                tokens: Tensor | None = None, rtg: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._run(obs, last_actions_onehot, map_name, None, hidden, valid, tokens, rtg)

    def logits_at(self, obs: Tensor, last_actions_onehot: Tensor, map_name: str, skills: Tensor,
                  hidden: Tensor | None = None, valid: Tensor | None = None,
                  tokens: Tensor | None = None, rtg: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Logits at one skill per agent (skills [B, T, n]): the head runs for that skill only."""
        return self._run(obs, last_actions_onehot, map_name, skills, hidden, valid, tokens, rtg)

    def _run(self, obs, last_actions_onehot, map_name, skills, hidden, valid, tokens, rtg=None):
        """Trunk on the valid rows, head on the valid rows, result scattered to [B, T, ...]."""
        B, T = obs.shape[:2]
        m = get_map(map_name).n_enemies
        if tokens is None:  # callers running several networks on one batch pass them once
            tokens = obs_entities(pack_rows(obs, valid), map_name, pack_rows(last_actions_onehot, valid))
        elif tokens.dim() == 5:
            tokens = pack_rows(tokens, valid)
        own, h, h_last = self.trunk(tokens, hidden, valid, shape=(B, T), packed=True)  # [N, n, d], [N, n, H]
        ctx = self.ctx(torch.cat([h, own], -1))  # [N, n, H]
        if self.return_conditioned != (rtg is not None):
            raise ValueError("AttentionActionDecoder: " + (
                "return_conditioned=True needs rtg, the return-to-go [B, T, 1] (BC-r trains phase 1 only, "
                "see configs/methods/bc_r.gin; HyGen's phase-2 refinement does not pass it)" if rtg is None else
                "got rtg, but AttentionActionDecoder.return_conditioned is False"))
        if rtg is not None:  # the team's return-to-go, the same for every agent: [N, 1, H]
            ctx = ctx + self.rtg_emb(pack_rows(rtg, valid) / self.return_scale).unsqueeze(-2)
        if skills is None:
            ctx = ctx.unsqueeze(-2) + self.skill_emb.weight  # [N, n, K, H]
        else:
            ctx = (ctx + self.skill_emb(pack_rows(skills, valid))).unsqueeze(-2)  # [N, n, 1, H]
        logits = self._head(torch.relu(ctx), tokens[..., 1:1 + m, :])
        if skills is not None:
            logits = logits.squeeze(-2)
        return unpack_rows(logits, valid, B, T), h_last

    def _head(self, ctx: Tensor, enemies: Tensor) -> Tensor:
        """ctx [N, n, K, H], enemy tokens [N, n, m, F] -> logits [N, n, K, 6 + m].

        attack_j = ctx . key_j / sqrt(H) with key_j = W2 relu(W1 x_j + b1) + b2 is computed as
        (W2^T ctx) . relu(W1 x_j + b1) + ctx . b2 (exact re-association): the keys [.., m, H]
        are never formed, and W2^T ctx, ctx . b2 and the basic head share one matmul.
        """
        lin1, lin2 = self.enemy_key[0], self.enemy_key[2]
        N, n, K, _ = ctx.shape
        m = enemies.shape[-2]
        r = torch.relu(lin1(enemies)).view(N * n, m, -1)  # [N n, m, H']
        scale = self.hidden_dim ** -0.5
        w = torch.cat([self.basic.weight, lin2.weight.t() * scale, lin2.bias[None] * scale])  # [6 + H' + 1, H]
        b = torch.cat([self.basic.bias, self.basic.bias.new_zeros(lin2.in_features + 1)])
        out = F.linear(ctx, w, b)
        basic, c, c0 = out.split([N_BASIC_ACTIONS, lin2.in_features, 1], -1)
        # r's gradient is the largest tensor of the head: both forms below give it contiguous
        # (relu's backward on a transposed layout was ~2x slower)
        if K == 1:  # one skill: a weighted sum over H' (a batched outer product is slow in the backward)
            attack = (r * c.reshape(N * n, 1, -1)).sum(-1).view(N, n, 1, m)
        else:
            attack = torch.bmm(r, c.reshape(N * n, K, -1).transpose(1, 2)).transpose(1, 2).reshape(N, n, K, m)
        return torch.cat([basic, attack + c0], -1)


def returns_to_go(reward: Tensor, mask: Tensor) -> Tensor:
    """R_t = sum_{t' >= t} r_t' within each episode (Decision Transformer's return-to-go).

    reward, mask [B, T, 1] (transition rows) -> [B, T, 1], 0 on padding rows."""
    r = reward * mask
    return r.flip(1).cumsum(1).flip(1) * mask


def masked_log_softmax(logits: Tensor, avail: Tensor) -> Tensor:
    """log p over available actions; unavailable ones get -inf-like mass. avail broadcasts to logits."""
    return torch.log_softmax(logits.masked_fill(avail == 0, -1e10), dim=-1)
