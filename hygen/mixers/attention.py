"""Attention mixer over state entities (ODIS / UPDeT-m style), monotonic in the agent values."""

from __future__ import annotations

import gin
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hygen.encoders.attention import EntityTransformer, pack_rows, unpack_rows
from hygen.entities import STATE_TOKEN_DIM, state_entities
from hygen.envs.maps import get_map
from hygen.mixers.base import ValueMixer
from hygen.utils import check_sizes


@gin.configurable
class AttentionMixer(ValueMixer):
    """QMIX's two-layer monotonic mixing with weights read from attended state entities.

    State tokens (allies with their last action, enemies; ``hygen.entities``) go through
    one self-attention block. Agent i's first-layer weights come from its own ally token,
    so the mixer handles any number of agents; biases and the second layer come from the
    mean-pooled tokens:

        hidden = elu(sum_i Q_i |W1(h_i)| + b1(h_bar));  Q_tot = hidden . |w2(h_bar)| + V(h_bar)

    abs() on every weight that multiplies a Q keeps dQ_tot/dQ_i >= 0.
    """

    def __init__(self, emb_dim: int = 64, n_heads: int = 4, mixing_dim: int = 32):
        super().__init__()
        check_sizes("AttentionMixer", mixing_dim=mixing_dim)
        self.transformer = EntityTransformer(STATE_TOKEN_DIM, emb_dim, n_heads)
        self.w1 = nn.Linear(emb_dim, mixing_dim)
        self.b1 = nn.Linear(emb_dim, mixing_dim)
        self.w2 = nn.Linear(emb_dim, mixing_dim)
        self.v = nn.Sequential(nn.Linear(emb_dim, mixing_dim), nn.ReLU(), nn.Linear(mixing_dim, 1))

    def condition(self, state: Tensor, map_name: str, valid: Tensor | None = None) -> tuple[Tensor, ...]:
        n = get_map(map_name).n_agents
        B, T = state.shape[:2]
        # padding rows skip attention (tokens of the valid rows only); their (unused) weights are 0
        h = self.transformer(state_entities(pack_rows(state, valid), map_name))  # [N, n+m, d]
        pooled = h.mean(1)  # [N, d]
        w1 = self.w1(h[:, :n]).abs()  # [N, n, mix], agent i's weights from its own token
        cond = (w1, self.b1(pooled), self.w2(pooled).abs(), self.v(pooled))
        return tuple(unpack_rows(c, valid, B, T).flatten(0, 1) for c in cond)  # [B*T, ...]

    def mix(self, agent_qs: Tensor, cond: tuple[Tensor, ...]) -> Tensor:
        w1, b1, w2, v = cond
        B, T, n = agent_qs.shape
        if n != w1.shape[1]:
            raise ValueError(f"AttentionMixer: got {n} agent values for a state with {w1.shape[1]} agents")
        hidden = F.elu(torch.bmm(agent_qs.reshape(B * T, 1, n), w1).squeeze(1) + b1)
        return ((hidden * w2).sum(-1, keepdim=True) + v).view(B, T, 1)
