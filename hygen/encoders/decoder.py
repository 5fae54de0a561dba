"""Skill-conditioned action decoder p(a_i | tau_i, z_i) (paper section 4.1)."""

from __future__ import annotations

import gin
import torch
from torch import Tensor, nn

from hygen.encoders.attention import EntityGRUTrunk
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
    and querying only it keeps the trunk 3-4x cheaper. Logits for all K skills are returned at once: phase 1 takes
    the exact expectation over q(z | s, a, i) and acting gathers the chosen skill.
    Unavailable actions are masked by the caller (``masked_log_softmax``).
    """

    def __init__(self, num_skills: int = 4, emb_dim: int = 64, n_heads: int = 4, hidden_dim: int = 64):
        super().__init__()
        self.num_skills = num_skills
        self.hidden_dim = hidden_dim
        self.trunk = EntityGRUTrunk(OBS_TOKEN_DIM, emb_dim, n_heads, hidden_dim)
        self.ctx = nn.Sequential(nn.Linear(hidden_dim + emb_dim, hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, hidden_dim))
        self.skill_emb = nn.Embedding(num_skills, hidden_dim)
        self.basic = nn.Linear(hidden_dim, N_BASIC_ACTIONS)
        self.enemy_key = nn.Sequential(nn.Linear(OBS_TOKEN_DIM, emb_dim // 2), nn.ReLU(),
                                       nn.Linear(emb_dim // 2, hidden_dim))

    def forward(self, obs: Tensor, last_actions_onehot: Tensor, map_name: str,
                hidden: Tensor | None = None, valid: Tensor | None = None, tokens: Tensor | None = None) -> tuple[Tensor, Tensor]:
        m = get_map(map_name).n_enemies
        if tokens is None:  # callers running several networks on one batch pass them once
            tokens = obs_entities(obs, map_name, last_actions_onehot)
        own, h_seq, h_last = self.trunk(tokens, hidden, valid)
        ctx = self.ctx(torch.cat([h_seq, own], -1))  # [B, T, n, H]
        ctx = torch.relu(ctx.unsqueeze(-2) + self.skill_emb.weight)  # [B, T, n, K, H]
        keys = self.enemy_key(tokens[..., 1:1 + m, :])  # [B, T, n, m, H]
        attack = ctx @ keys.transpose(-1, -2) / self.hidden_dim ** 0.5  # [B, T, n, K, m]
        return torch.cat([self.basic(ctx), attack], -1), h_last  # [B, T, n, K, 6 + m]


def masked_log_softmax(logits: Tensor, avail: Tensor) -> Tensor:
    """log p over available actions; unavailable ones get -inf-like mass. avail broadcasts to logits."""
    return torch.log_softmax(logits.masked_fill(avail == 0, -1e10), dim=-1)
