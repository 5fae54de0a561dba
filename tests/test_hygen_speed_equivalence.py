"""The fast paths compute the same function as the textbook ones (up to float rounding).

- attention with few queries is re-associated ((W_k^T q) . x, W_v (sum p x));
- networks run on packed valid rows (padding skipped) and scatter back;
- the decoder's attack keys are re-associated and ``logits_at`` runs the head at one skill;
- the phase-2 update shares packed tokens and runs the decoder on T+1 rows.

Each test compares against a straightforward reference written here (explicit keys and
values, full padded tensors, all skills then gather), values and parameter gradients.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hygen.buffers.synthetic import random_episodes
from hygen.encoders import AttentionActionDecoder
from hygen.encoders.attention import MultiHeadSelfAttention, pack_rows
from hygen.entities import obs_entities
from hygen.learners.hygen import HyGenLearner
from hygen.losses import (
    CloneByReturn,
    CQLLoss,
    alive_agents,
    consistency_loss,
    td_loss,
    vae_loss,
    weighted_nll,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def textbook_attention(att: MultiHeadSelfAttention, xq, kv_src):
    """softmax(Q K^T / sqrt(d_h)) V per head with K, V formed explicitly, heads concatenated."""
    N, Eq, d = xq.shape
    h, dh = att.n_heads, d // att.n_heads
    q = att.q(xq).view(N, Eq, h, dh).transpose(1, 2)
    k, v = att.kv(kv_src).view(N, -1, 2, h, dh).permute(2, 0, 3, 1, 4)
    p = torch.softmax(q @ k.transpose(-1, -2) / dh ** 0.5, -1)
    return att.out((p @ v).transpose(1, 2).reshape(N, Eq, d))


def _grads(module) -> dict[str, torch.Tensor]:
    out = {k: p.grad.clone() for k, p in module.named_parameters() if p.grad is not None}
    module.zero_grad(set_to_none=True)
    return out


def _assert_grads_close(a: dict, b: dict, rtol: float = 1e-4):
    assert a.keys() == b.keys()
    for k, ga in a.items():
        scale = max(ga.abs().max().item(), b[k].abs().max().item(), 1e-6)
        assert (ga - b[k]).abs().max().item() <= rtol * scale + 1e-7, k


# (local trunk: 1 query of 19 entities; a small map; the global encoder: 9 allies of 19 entities)
@pytest.mark.parametrize("n_query,n_kv,kv_in,d", [(1, 19, 24, 64), (1, 4, 24, 64), (9, 19, 20, 128)])
def test_reassociated_attention_equals_textbook(n_query, n_kv, kv_in, d):
    att = MultiHeadSelfAttention(d, 4, kv_in=kv_in)
    assert att.reassociate(n_query, n_kv)  # the fast path is the one under test
    xq = torch.randn(7, n_query, d, requires_grad=True)
    kv = torch.randn(7, n_kv, kv_in, requires_grad=True)
    fast = att(xq, kv)
    w = torch.randn_like(fast)
    (fast * w).sum().backward(inputs=[xq, kv, *att.parameters()])
    g_fast, gx_fast, gkv_fast = _grads(att), xq.grad.clone(), kv.grad.clone()
    xq.grad = kv.grad = None
    ref = textbook_attention(att, xq, kv)
    (ref * w).sum().backward(inputs=[xq, kv, *att.parameters()])
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx_fast, xq.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gkv_fast, kv.grad, rtol=1e-4, atol=1e-5)
    _assert_grads_close(g_fast, _grads(att))


def test_full_query_attention_keeps_the_direct_path():
    att = MultiHeadSelfAttention(64, 4, kv_in=20)
    assert not att.reassociate(19, 19)  # the mixer's self-attention: explicit K, V are cheaper
    x, kv = torch.randn(5, 19, 64), torch.randn(5, 19, 20)
    torch.testing.assert_close(att(x, kv), textbook_attention(att, x, kv), rtol=1e-5, atol=1e-5)


def test_decoder_logits_at_equals_forward_then_gather_with_padding():
    dec = AttentionActionDecoder(num_skills=4, emb_dim=32, hidden_dim=16)
    b = random_episodes("5m_vs_6m", 4, lengths=[3, 9, 5, 1], seed=2)
    obs, last = b.obs[:, :-1], b.last_actions_onehot[:, :-1]
    valid = b.mask[..., 0] > 0
    skills = torch.randint(0, 4, valid.shape + (5,))
    idx = skills[..., None, None].expand(*skills.shape, 1, 12)

    full, _ = dec(obs, last, "5m_vs_6m")  # no padding skipped: every row computed
    ref = full.gather(-2, idx).squeeze(-2)
    w = torch.randn_like(ref) * valid[..., None, None]
    (ref * w).sum().backward()
    g_ref = _grads(dec)

    tokens = obs_entities(pack_rows(obs, valid), "5m_vs_6m", pack_rows(last, valid))
    at, _ = dec.logits_at(obs, last, "5m_vs_6m", skills, valid=valid, tokens=tokens)
    assert at.shape == (4, 9, 5, 12)
    torch.testing.assert_close(at[valid], ref[valid], rtol=1e-5, atol=1e-5)
    assert at[~valid].abs().sum() == 0  # padding is not computed
    (at * w).sum().backward()
    _assert_grads_close(_grads(dec), g_ref)


def _reference_policy_loss(lr: HyGenLearner, b, ratio: float) -> torch.Tensor:
    """Eq. 6 + refinement as written before the fast paths: padded tensors, every network on
    every row, the decoder's logits for all skills on the T transition rows."""
    m, mask, onehot = b.map_name, b.mask, b.actions_onehot
    last = b.last_actions_onehot
    actions, avail = b.actions[:, :-1, :, 0], b.avail_actions[:, :-1]
    agent_mask = alive_agents(avail, mask)
    with torch.no_grad():
        global_logits = lr.global_encoder(b.state[:, :-1], onehot[:, :-1], m)
        data_skills = global_logits.argmax(-1)
    qs, local_logits, _ = lr.q_network(b.obs, last, m)
    with torch.no_grad():
        next_q = lr.target_q_network(b.obs, last, m)[0][:, 1:]
        next_max = next_q.max(-1).values
        target_next = lr.target_mixer(next_max, b.state[:, 1:], m)
    cond = lr.mixer.condition(b.state[:, :-1], m)
    chosen = qs[:, :-1].gather(-1, data_skills.unsqueeze(-1)).squeeze(-1)
    l_td, _ = td_loss(lr.mixer.mix(chosen, cond), target_next, b.reward[:, :-1], b.terminated[:, :-1], mask,
                      lr.gamma)
    l_c = consistency_loss(local_logits[:, :-1], global_logits, agent_mask)
    logsumexp = torch.logsumexp(qs[:, :-1], -1)
    l_cql = ((logsumexp - chosen) * agent_mask).sum() / agent_mask.sum()
    dec_logits, _ = lr.action_decoder(b.obs[:, :-1], last[:, :-1], m)
    w = agent_mask * (b.returns / 20.0).clamp(0, 1)[:, None, None]
    l_ref = weighted_nll(dec_logits, data_skills, actions, avail, w)
    return l_td + lr.alpha * l_c + lr.conservative.coefficient(ratio) * l_cql + l_ref


def _reference_skill_loss(lr: HyGenLearner, b) -> torch.Tensor:
    onehot = b.actions_onehot
    avail = b.avail_actions[:, :-1]
    skill_logits = lr.global_encoder(b.state[:, :-1], onehot[:, :-1], b.map_name)
    dec_logits, _ = lr.action_decoder(b.obs[:, :-1], b.last_actions_onehot[:, :-1], b.map_name)
    return vae_loss(dec_logits, skill_logits, b.actions[:, :-1, :, 0], avail, alive_agents(avail, b.mask),
                    lr.beta)[0]


@pytest.mark.parametrize("phase", ["skill_discovery", "policy"])
def test_update_losses_and_gradients_equal_the_textbook_computation(phase, monkeypatch):
    lr = HyGenLearner(maps=["5m_vs_6m"], refinement=CloneByReturn(),  # every random episode weighs in
                      conservative=CQLLoss())  # the per-agent term the reference writes out
    with torch.no_grad():  # a target network that differs from the online one
        for p in lr.target_q_network.parameters():
            p.add_(0.1 * torch.randn_like(p))
    b = random_episodes("5m_vs_6m", 5, lengths=[4, 17, 9, 2, 12], seed=3)
    b.n_offline = 3
    modules = {"global_encoder": lr.global_encoder, "q_network": lr.q_network, "action_decoder": lr.action_decoder, "mixer": lr.mixer}

    fast = lr._skill_discovery_loss(b)[0] if phase == "skill_discovery" else lr._policy_loss(b, 0.6)[0]
    fast.backward()
    g_fast = {k: _grads(mod) for k, mod in modules.items()}

    monkeypatch.setattr(MultiHeadSelfAttention, "reassociate", lambda self, nq, nkv: False)  # explicit K, V
    ref = _reference_skill_loss(lr, b) if phase == "skill_discovery" else _reference_policy_loss(lr, b, 0.6)
    ref.backward()
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-6)
    for k, mod in modules.items():
        _assert_grads_close(g_fast[k], _grads(mod))
    assert g_fast["action_decoder"] and g_fast["q_network" if phase == "policy" else "global_encoder"]  # something was trained


def test_acting_is_unchanged_by_the_fast_head():
    lr = HyGenLearner(maps=["3m"])
    ctl = lr.controller()
    b = random_episodes("3m", 3, lengths=[6, 6, 6], seed=4)
    st = ctl.initial_state("3m", 3)
    last = torch.zeros(3, 3, 9)
    dec_h = None
    for t in range(5):
        actions, st_new = ctl.act("3m", b.obs[:, t], b.avail_actions[:, t], st, 0.0)
        logits, dec_h = lr.action_decoder(b.obs[:, t:t + 1], last[:, None], "3m", dec_h)
        ref = logits[:, 0].gather(-2, st_new["skill"][..., None, None].expand(3, 3, 1, 9)).squeeze(-2)
        ref = ref.masked_fill(~b.avail_actions[:, t].bool(), float("-inf")).argmax(-1)
        assert torch.equal(actions, ref)
        last = F.one_hot(actions, 9).float()
        st = st_new


@pytest.mark.parametrize("with_h0", [False, True])
def test_packed_gru_equals_nn_gru_on_each_episode(with_h0):
    """packed_gru (sorted episodes, one-node recurrence, hand-written backward) against nn.GRU
    run on each episode's valid steps alone: outputs, last hidden and every gradient."""
    from hygen.encoders.attention import unpack_rows
    from hygen.encoders.recurrent import packed_gru

    torch.set_default_dtype(torch.float64)
    try:
        B, T, n, d, H = 4, 6, 3, 5, 7
        gru = torch.nn.GRU(d, H, batch_first=True)
        lengths = torch.tensor([6, 2, 4, 1])  # unsorted, one full episode
        valid = torch.arange(T)[None] < lengths[:, None]
        x = torch.randn(int(lengths.sum()), n, d, requires_grad=True)  # packed valid rows, episode-major
        h0 = torch.randn(B, n, H, requires_grad=True) if with_h0 else None
        h, last = packed_gru(gru, x, valid, (B, T), h0)
        w = torch.randn_like(h)
        (h * w).sum().add_((last ** 2).sum()).backward()
        got = [x.grad.clone(), *(p.grad.clone() for p in gru.parameters())] + ([h0.grad.clone()] if with_h0 else [])

        for t in [x, *gru.parameters()] + ([h0] if with_h0 else []):
            t.grad = None
        xs, ws = unpack_rows(x, valid, B, T), unpack_rows(w, valid, B, T)  # [B, T, n, ...]
        loss, ref_h, ref_last = 0.0, [], []
        for b in range(B):
            L = int(lengths[b])
            seq = xs[b, :L].transpose(0, 1)  # [n, L, d]: agents are sequences
            out, hl = gru(seq, None if h0 is None else h0[b][None].contiguous())
            loss = loss + (out.transpose(0, 1) * ws[b, :L]).sum() + (hl ** 2).sum()
            ref_h.append(out.transpose(0, 1))
            ref_last.append(hl[0])
        loss.backward()
        want = [x.grad, *(p.grad for p in gru.parameters())] + ([h0.grad] if with_h0 else [])
        torch.testing.assert_close(h, torch.cat(ref_h), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(last, torch.stack(ref_last), rtol=1e-10, atol=1e-10)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    finally:
        torch.set_default_dtype(torch.float32)


def test_packed_gru_rejects_holes_in_an_episode():
    from hygen.encoders.recurrent import packed_gru

    gru = torch.nn.GRU(3, 4, batch_first=True)
    valid = torch.tensor([[True, False, True]])
    with pytest.raises(ValueError, match="prefix"):
        packed_gru(gru, torch.randn(2, 1, 3), valid, (1, 3))


# ----- bit-exact fast paths of acting: the same bits as the plain computation, not just close -----
# (a Table-2 cell run before and after them must give the identical results.json)

def _bits(x: torch.Tensor) -> torch.Tensor:
    return x.view(torch.int32) if x.dtype == torch.float32 else x  # -0.0 and 0.0 differ here


@pytest.mark.parametrize("map_name", ["3m", "5m_vs_6m"])
def test_act_shares_tokens_bit_exactly(map_name):
    """act builds the entity tokens once for both networks: skills, actions and both hidden
    states equal those of each network building its own tokens, bit for bit."""
    from hygen.envs import make

    lr = HyGenLearner(maps=[map_name])
    ctl = lr.controller()
    env = make(map_name, num_envs=3, seed=5)
    obs, _, avail = env.reset()
    st = ctl.initial_state(map_name, 3)
    for t in range(12):
        actions, new = ctl.act(map_name, obs, avail.bool(), st, 0.0)
        with torch.no_grad():
            last = st["last_action"][:, None]
            qs, _, q_h = lr.q_network(obs[:, None], last, map_name, st["q_hidden"])  # its own tokens
            skills = qs[:, 0].argmax(-1)
            logits, dec_h = lr.action_decoder.logits_at(obs[:, None], last, map_name, skills[:, None],
                                                        st["dec_hidden"])
        ref = logits[:, 0].masked_fill(~avail.bool(), float("-inf")).argmax(-1)
        assert torch.equal(new["skill"], skills) and torch.equal(actions, ref)
        assert torch.equal(_bits(new["q_hidden"]), _bits(q_h)) and torch.equal(_bits(new["dec_hidden"]), _bits(dec_h))
        out = env.step(actions)
        obs, avail, st = out.obs, out.avail_actions, new


@pytest.mark.parametrize("with_h", [False, True])
def test_gru_step_is_bit_identical_to_nn_gru(with_h):
    """gru_step (acting's one GRU step) against nn.GRU on one step: the same bits, on sizes
    from one agent to a large evaluation batch and on unit-scale to large pre-activations."""
    from hygen.encoders.recurrent import gru_step

    for d, H in [(64, 64), (24, 40)]:
        gru = torch.nn.GRU(d, H, batch_first=True)
        with torch.no_grad():
            for p in gru.parameters():
                p.mul_(3.0)  # pre-activations well outside [-1, 1]: saturating gates included
            for R in [1, 6, 27, 416]:
                for scale in (1.0, 5.0):
                    x = torch.randn(R, d) * scale
                    h = torch.randn(R, H) if with_h else None
                    seq, last = gru(x.view(R, 1, d), None if h is None else h.view(1, R, H).contiguous())
                    got = gru_step(gru, x, h)
                    assert torch.equal(_bits(got), _bits(seq.view(R, H))) and torch.equal(_bits(got), _bits(last.view(R, H)))


def test_obs_entities_gather_equals_the_slice_writes_on_every_map(monkeypatch):
    """Small inputs take the one-gather form of obs_entities, large ones the slice writes: both
    give the same bits on every registered map (random features with exact zeros, one-hot and
    arbitrary last actions, none, and the simulator's observations)."""
    import hygen.entities as ent
    from hygen.envs import make
    from hygen.envs.maps import MAPS

    def both(obs, name, last):
        monkeypatch.setattr(ent, "_GATHER_MAX_ELEMENTS", 0)
        slices = obs_entities(obs, name, last)
        monkeypatch.setattr(ent, "_GATHER_MAX_ELEMENTS", 1 << 62)
        return slices, obs_entities(obs, name, last)

    for name, spec in MAPS.items():
        lay = spec.layout
        assert ent._obs_token_index(lay) is not None, name  # every map can take the gather
        obs = torch.randn(3, 4, lay.n_agents, lay.obs_shape)
        obs[obs.abs() < 0.5] = 0.0  # absent units, unavailable moves
        one_hot = F.one_hot(torch.randint(0, lay.n_actions, (3, 4, lay.n_agents)), lay.n_actions).float()
        for x, last in [(obs, one_hot), (obs.clamp(min=0), None),
                        (obs, torch.randn(3, 4, lay.n_agents, lay.n_actions))]:
            slices, gather = both(x, name, last)
            assert torch.equal(_bits(slices), _bits(gather)), name
    for name in ["3m", "3s5z"]:  # one map per layout kind: no unit types / types and shields
        env = make(name, num_envs=4, seed=1)
        obs, _, avail = env.reset()
        for _ in range(20):
            actions = torch.multinomial(avail.float().flatten(0, 1), 1).view(avail.shape[:-1])
            slices, gather = both(obs, name, F.one_hot(actions, avail.shape[-1]).float())
            assert torch.equal(_bits(slices), _bits(gather)), name
            out = env.step(actions)
            obs, avail = out.obs, out.avail_actions
