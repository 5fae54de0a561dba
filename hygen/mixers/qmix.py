"""QMIX's monotonic mixing network (Rashid et al. 2018), PyMARL's layout."""

from __future__ import annotations

import gin
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hygen.utils import check_sizes


@gin.configurable
class QMixer(nn.Module):
    """Q_tot(s, Q_1..Q_n) with weights produced by hypernetworks conditioned on the state.

    Monotonicity dQ_tot/dQ_i >= 0 (the IGM condition) holds because the hypernetworks'
    weight outputs go through abs(); biases and the state value V(s) are unconstrained.
    """

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int = 32, hypernet_embed: int = 64):
        super().__init__()
        check_sizes("QMixer", embed_dim=embed_dim, hypernet_embed=hypernet_embed)
        self.n_agents, self.embed_dim = n_agents, embed_dim
        self.hyper_w1 = nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(),
                                      nn.Linear(hypernet_embed, embed_dim * n_agents))
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.hyper_w2 = nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(),
                                      nn.Linear(hypernet_embed, embed_dim))
        self.V = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def forward(self, agent_qs: Tensor, states: Tensor) -> Tensor:
        """agent_qs [B, T, n], states [B, T, S] -> Q_tot [B, T, 1]."""
        B, T, n = agent_qs.shape
        s = states.reshape(B * T, -1)
        qs = agent_qs.reshape(B * T, 1, n)
        w1 = self.hyper_w1(s).abs().view(-1, n, self.embed_dim)
        b1 = self.hyper_b1(s).view(-1, 1, self.embed_dim)
        hidden = F.elu(torch.bmm(qs, w1) + b1)  # [BT, 1, embed]
        w2 = self.hyper_w2(s).abs().view(-1, self.embed_dim, 1)
        v = self.V(s).view(-1, 1, 1)
        return (torch.bmm(hidden, w2) + v).view(B, T, 1)
