"""Entity self-attention (paper eq. 1) and the local entity-attention + GRU trunk."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hygen.encoders.recurrent import gru_step, packed_gru
from hygen.utils import check_sizes


class MultiHeadSelfAttention(nn.Module):
    """Eq. 1: per head h, Attn_h(e) = softmax(Q_h K_h^T / sqrt(d_K)) V_h; heads concatenated.

    ``forward(xq, kv_src)``: queries from xq [N, Eq, d] (the embedded entities whose output
    is needed), keys/values from kv_src [N, E, kv_in] (every entity). Heads share fused
    projections (the same maths as separate MLP_Q^h, MLP_K^h, MLP_V^h).

    With few queries the products are re-associated (exact, same parameters):
        q_h . (W_k,h x_e + b_k,h) = (W_k,h^T q_h) . x_e + const  (the constant cancels in softmax)
        sum_e p_he (W_v,h x_e + b_v,h) = W_v,h (sum_e p_he x_e) + b_v,h   (sum_e p_he = 1)
    so keys and values are never formed: the query is pulled back into token space
    instead. For one query over 19 entities (the local trunks) that is ~9x fewer FLOPs
    and no [N, E, 2d] tensor (the update's largest, and its backward's largest copy).
    """

    def __init__(self, emb_dim: int, n_heads: int, kv_in: int | None = None):
        super().__init__()
        check_sizes("MultiHeadSelfAttention", emb_dim=emb_dim, n_heads=n_heads)
        if emb_dim % n_heads:
            raise ValueError(f"emb_dim {emb_dim} must be divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.q = nn.Linear(emb_dim, emb_dim)
        self.kv = nn.Linear(emb_dim if kv_in is None else kv_in, 2 * emb_dim)
        self.out = nn.Linear(emb_dim, emb_dim)

    def reassociate(self, n_query: int, n_kv: int) -> bool:
        """True when the re-associated form needs fewer multiply-adds per row."""
        d, f, h = self.q.out_features, self.kv.in_features, self.n_heads
        direct = n_kv * f * 2 * d + 2 * n_query * n_kv * d  # K, V projections + scores, weighted sum
        pulled = n_query * (2 * d * f + 2 * h * n_kv * f)  # W_k^T q, W_v xbar + scores, xbar
        return pulled < direct

    def forward(self, xq: Tensor, kv_src: Tensor) -> Tensor:
        N, Eq, d = xq.shape
        E, f = kv_src.shape[1:]
        h, dh = self.n_heads, d // self.n_heads
        q = self.q(xq)
        if self.reassociate(Eq, E):
            w_k, w_v = self.kv.weight.view(2, h, dh, f).unbind(0)
            q_tok = torch.einsum("nqhd,hdf->nqhf", q.view(N, Eq, h, dh), w_k * dh ** -0.5)  # W_k,h^T q_h
            p = torch.bmm(q_tok.reshape(N, Eq * h, f), kv_src.transpose(1, 2)).softmax(-1)  # [N, Eq*h, E]
            x_bar = torch.bmm(p, kv_src).view(N, Eq, h, f)  # attention-weighted tokens per head
            attn = torch.einsum("nqhf,hdf->nqhd", x_bar, w_v).reshape(N, Eq, d) + self.kv.bias[d:]
            return self.out(attn)  # concat heads
        q = q.view(N, Eq, h, dh).transpose(1, 2)
        k, v = self.kv(kv_src).view(N, E, 2, h, dh).permute(2, 0, 3, 1, 4)
        if q.is_cuda:
            attn = F.scaled_dot_product_attention(q, k, v)  # [N, heads, Eq, d/heads]
        else:  # for ~20 entities the plain products beat the CPU flash kernel (~25 % fwd+bwd)
            attn = torch.softmax(q @ k.transpose(-1, -2) * dh ** -0.5, -1) @ v
        return self.out(attn.transpose(1, 2).reshape(N, Eq, d))  # concat heads


class EntityTransformer(nn.Module):
    """Token embedding + one post-LN transformer block (UPDeT style). [N, E, F] -> [N, E_query, d].

    Two exact savings over the textbook block, same function class:
    - only the first ``n_query`` tokens are queried (all when None): a network that reads
      one agent's output needs one query, every entity is still a key/value;
    - K and V are linear in the embedding, which is linear in the token features, so they
      are computed from the features directly (W_k W_e is just another linear map of the
      same rank): F -> 2d instead of F -> d -> 2d, about 3x fewer FLOPs per entity.
    """

    def __init__(self, token_dim: int, emb_dim: int, n_heads: int, ff_mult: int = 2):
        super().__init__()
        check_sizes("EntityTransformer", emb_dim=emb_dim, ff_mult=ff_mult)
        self.embed = nn.Linear(token_dim, emb_dim)
        self.attn = MultiHeadSelfAttention(emb_dim, n_heads, kv_in=token_dim)
        self.ln1 = nn.LayerNorm(emb_dim)
        self.ff = nn.Sequential(nn.Linear(emb_dim, ff_mult * emb_dim), nn.ReLU(),
                                nn.Linear(ff_mult * emb_dim, emb_dim))
        self.ln2 = nn.LayerNorm(emb_dim)

    def forward(self, tokens: Tensor, n_query: int | None = None) -> Tensor:
        xq = self.embed(tokens if n_query is None else tokens[:, :n_query])
        y = self.ln1(xq + self.attn(xq, tokens))
        return self.ln2(y + self.ff(y))


def all_rows(valid: Tensor | None) -> bool:
    return valid is None or bool(valid.all())


def pack_rows(x: Tensor, valid: Tensor | None) -> Tensor:
    """x [B, T, ...] -> the rows with valid[b, t], [N_valid, ...] (all B*T rows, without a copy
    when possible, if valid is None or all True).

    Episodes of one batch differ in length (3m data: mean 26 steps, longest 60), so
    networks run on packed rows and skip the padding; ``unpack_rows`` puts results back.
    """
    if all_rows(valid):
        return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])
    return x[valid]


def unpack_rows(x: Tensor, valid: Tensor | None, batch: int, time: int) -> Tensor:
    """Inverse of ``pack_rows``: [N_valid, ...] -> [B, T, ...], zeros on the rows left out."""
    if all_rows(valid):
        return x.view(batch, time, *x.shape[1:])
    full = x.new_zeros(batch, time, *x.shape[1:])
    full[valid] = x
    return full


def on_valid(fn, x: Tensor, valid: Tensor | None) -> Tensor:
    """Apply ``fn`` to the rows x[b, t] with valid[b, t] only; padded rows of the result are 0.

    x [B, T, ...] -> fn sees [N_valid, ...] (or [B*T, ...] when valid is None)."""
    return unpack_rows(fn(pack_rows(x, valid)), valid, x.shape[0], x.shape[1])


class EntityGRUTrunk(nn.Module):
    """Agent i's local trajectory encoder: entity attention per step, then a GRU over time.

    Attention runs on every valid (batch, time, agent) at once ([N*n, E, F]); only the
    recurrence is sequential, and it runs on each episode's valid steps only
    (``packed_gru``: input projection in one matmul, then a cheap loop over time). UPDeT
    feeds the hidden state back in as a token, which forces a Python loop over time;
    reading the own token's attention output into a GRU keeps the history without it.
    """

    def __init__(self, token_dim: int, emb_dim: int, n_heads: int, hidden_dim: int):
        super().__init__()
        check_sizes("entity-attention GRU trunk", hidden_dim=hidden_dim)
        self.transformer = EntityTransformer(token_dim, emb_dim, n_heads)
        self.gru = nn.GRU(emb_dim, hidden_dim, batch_first=True)
        self.hidden_dim = hidden_dim

    def forward(self, tokens: Tensor, hidden: Tensor | None = None, valid: Tensor | None = None,
                shape: tuple[int, int] | None = None, packed: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """tokens [B, T, n, E, F], or packed [N_valid, n, E, F] (``pack_rows(tokens, valid)``,
        then ``shape=(B, T)`` is needed when valid is None); hidden [B, n, H] or None;
        valid [B, T] bool or None, each episode's valid rows a prefix -> (own-token attention
        output on the valid rows [N_valid, n, d], GRU outputs [B, T, n, H] (0 on padding),
        or on the valid rows [N_valid, n, H] with ``packed=True``, hidden after each
        episode's last valid step [B, n, H]).

        Only the own token (index 0) is queried; rows with valid=False (padding after an
        episode's end) are skipped by the attention and the GRU."""
        if tokens.dim() == 5:
            shape = tokens.shape[:2]
            tokens = pack_rows(tokens, valid)
        elif valid is not None:
            shape = valid.shape
        elif shape is None:
            raise ValueError("EntityGRUTrunk: packed tokens need valid or shape=(B, T)")
        B, T = shape
        N, n, E, Fdim = tokens.shape
        own = self.transformer(tokens.reshape(N * n, E, Fdim), n_query=1).view(N, n, -1)
        if T == 1 and all_rows(valid) and not torch.is_grad_enabled() and own.device.type == "cpu":
            # acting, one step for every sequence: gru_step is ATen's CPU GRU step (bit-identical)
            # without nn.GRU's per-call overhead; on a GPU nn.GRU runs cuDNN's kernel, whose bits differ
            h_new = gru_step(self.gru, own.reshape(B * n, -1),
                             None if hidden is None else hidden.reshape(B * n, self.hidden_dim))
            h, h_last = h_new.view(N, n, self.hidden_dim), h_new.view(B, n, self.hidden_dim)
        elif T == 1 and all_rows(valid):  # one step with autograd (nn.GRU's own backward), or on a GPU
            h0 = None if hidden is None else hidden.reshape(1, B * n, self.hidden_dim).contiguous()
            h_seq, h_last = self.gru(own.reshape(B * n, 1, -1), h0)
            h, h_last = h_seq.view(N, n, self.hidden_dim), h_last.view(B, n, self.hidden_dim)
        else:
            h, h_last = packed_gru(self.gru, own, None if all_rows(valid) else valid, (B, T), hidden)
        return own, (h if packed else unpack_rows(h, valid, B, T)), h_last
