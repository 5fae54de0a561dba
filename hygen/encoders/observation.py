"""Local observation encoder: skill values Q_i(tau_i, z) and q_hat(z | tau_i) (paper section 4.2)."""

from __future__ import annotations

import gin
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hygen.encoders.attention import EntityGRUTrunk, pack_rows, unpack_rows
from hygen.encoders.base import ObservationEncoder
from hygen.entities import OBS_TOKEN_DIM, obs_entities


@gin.configurable
class AttentionObservationEncoder(ObservationEncoder):
    """Entity tokens of (o_t, a_{t-1}) -> attention -> GRU (hidden 64) -> two heads.

    The Q head gives Q_i(tau_i, z) for every skill z (the individual value network of
    eq. 4); the skill head gives q_hat(z | tau_i), pulled toward the global encoder by
    the consistency loss (eq. 5). Both heads share the trunk, so L_c also shapes the
    value network's representation (phi_o is part of the individual value network).
    """

    def __init__(self, num_skills: int = 4, emb_dim: int = 64, n_heads: int = 4, hidden_dim: int = 64):
        super().__init__()
        self.num_skills = num_skills
        self.hidden_dim = hidden_dim
        self.trunk = EntityGRUTrunk(OBS_TOKEN_DIM, emb_dim, n_heads, hidden_dim)
        self.q_head = nn.Linear(hidden_dim, num_skills)
        self.skill_head = nn.Linear(hidden_dim, num_skills)

    def forward(self, obs: Tensor, last_actions_onehot: Tensor, map_name: str,
                hidden: Tensor | None = None, valid: Tensor | None = None, tokens: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        if tokens is None:  # callers running several networks on one batch pass them once
            tokens = obs_entities(pack_rows(obs, valid), map_name, pack_rows(last_actions_onehot, valid))
        B, T = obs.shape[:2]
        _, h, h_last = self.trunk(tokens, hidden, valid, shape=(B, T), packed=True)  # h on the valid rows
        # both heads in one matmul, on the valid rows only
        w = torch.cat([self.q_head.weight, self.skill_head.weight])
        b = torch.cat([self.q_head.bias, self.skill_head.bias])
        q, skill_logits = unpack_rows(F.linear(h, w, b), valid, B, T).chunk(2, -1)
        return q, skill_logits, h_last
