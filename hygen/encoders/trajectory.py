"""Global skill encoder q(z_i | s, a, i) (paper section 4.1, eq. 1)."""

from __future__ import annotations

import gin
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hygen.encoders.attention import EntityTransformer, on_valid, pack_rows, unpack_rows
from hygen.encoders.base import TrajectoryEncoder
from hygen.entities import STATE_TOKEN_DIM, state_entities
from hygen.envs.maps import get_map


@gin.configurable
class AttentionTrajectoryEncoder(TrajectoryEncoder):
    """Entity tokens of (state, joint action) -> N-head self-attention -> agent i's output -> MLP_e -> K logits.

    Ally token i carries agent i's action a_t; the skill of agent i is read from its own
    token after attention, so one network serves every map (section 4.1).

    What it sees: ``window`` consecutive steps (s, a)_{t-window+1..t}, tokens of all of
    them attended jointly (a lag one-hot tells them apart). Default ``window=1``: one
    step, as the public code does. The skill at t is the label the high-level policy is
    trained on at t (eq. 5 and the data skill of eq. 4 / CQL), so a per-step encoder
    keeps labels aligned with decisions; "trajectory" in the paper is offered as
    ``window > 1`` (causal, so labels never depend on the future).

    Args:
        n_heads: N attention heads (paper: 4).
        num_skills: |Z|; ``None`` means equal to ``n_heads`` (paper). Public code: 5 skills, 8 heads.
        emb_dim: attention embedding length (paper Table 6: 128).
        window: number of steps seen (>= 1).
    """

    def __init__(self, n_heads: int = 4, num_skills: int | None = None, emb_dim: int = 128, window: int = 1):
        super().__init__()
        if window < 1:
            raise ValueError(f"AttentionTrajectoryEncoder.window must be >= 1, got {window}")
        self.num_skills = n_heads if num_skills is None else num_skills
        self.window = window
        lag_dim = window if window > 1 else 0
        self.transformer = EntityTransformer(STATE_TOKEN_DIM + lag_dim, emb_dim, n_heads)
        self.head = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.ReLU(), nn.Linear(emb_dim, self.num_skills))

    def forward(self, state: Tensor, actions_onehot: Tensor, map_name: str, valid: Tensor | None = None) -> Tensor:
        n = get_map(map_name).n_agents

        def encode(x: Tensor) -> Tensor:  # [N, E', F] -> [N, n, K]
            agents = self.transformer(x, n_query=n)  # Attn_agent_i (allies are the first n tokens)
            return self.head(agents)

        B, T = state.shape[:2]
        if self.window == 1:  # tokens of the valid rows only
            tokens = state_entities(pack_rows(state, valid), map_name, pack_rows(actions_onehot, valid))
            return unpack_rows(encode(tokens), valid, B, T)  # z_i = MLP_e(Attn_agent_i): logits [B, T, n, K]

        tokens = state_entities(state, map_name, actions_onehot)  # [B, T, n+m, F]
        E, Fdim = tokens.shape[2:]
        W = self.window
        padded = F.pad(tokens, (0, 0, 0, 0, W - 1, 0))  # zero tokens before t=0
        win = padded.unfold(1, W, 1).permute(0, 1, 4, 2, 3)  # [B, T, W, E, F], lag W-1 = current step
        lag = torch.eye(W, device=tokens.device).flip(0)[None, None, :, None].expand(B, T, W, E, W)
        tokens = torch.cat([win, lag], -1).reshape(B, T, W * E, Fdim + W)
        cur = (W - 1) * E  # current step's ally tokens start here; put them first so only they are queried
        tokens = torch.cat([tokens[:, :, cur:], tokens[:, :, :cur]], 2)
        return on_valid(encode, tokens, valid)  # z_i = MLP_e(Attn_agent_i): logits [B, T, n, K]
