"""HyGen's components: shapes on several maps, monotonic mixing, loss values by hand.

Registry-parametrised (BenchMARL style): a new implementation of an interface is tested
by adding one line to the matching list below.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hygen.encoders import (
    AttentionActionDecoder,
    AttentionObservationEncoder,
    AttentionTrajectoryEncoder,
)
from hygen.envs.maps import get_map
from hygen.losses import (
    CQLLoss,
    MixedCQLLoss,
    NoConservativeLoss,
    ODISGapLoss,
    consistency_loss,
    kl_to_uniform,
    td_loss,
    vae_loss,
)
from hygen.mixers import AttentionMixer, VDNMixer

K = 4
TRAJECTORY_ENCODERS = [
    lambda: AttentionTrajectoryEncoder(n_heads=4, emb_dim=32),
    lambda: AttentionTrajectoryEncoder(n_heads=8, num_skills=K, emb_dim=32),  # public code's 8 heads
    lambda: AttentionTrajectoryEncoder(n_heads=4, emb_dim=32, window=3),
]
OBSERVATION_ENCODERS = [lambda: AttentionObservationEncoder(num_skills=K, emb_dim=32, hidden_dim=16)]
ACTION_DECODERS = [lambda: AttentionActionDecoder(num_skills=K, emb_dim=32, hidden_dim=16)]
MIXERS = [lambda: AttentionMixer(emb_dim=32, mixing_dim=8), VDNMixer]
MAP_NAMES = ["3m", "3s5z", "13m_vs_15m"]


def _inputs(name: str, B: int = 2, T: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    spec = get_map(name)
    info = spec.env_info
    obs = torch.rand(B, T, spec.n_agents, info["obs_shape"], generator=g)
    state = torch.rand(B, T, info["state_shape"], generator=g)
    acts = torch.randint(0, spec.n_actions, (B, T, spec.n_agents), generator=g)
    return spec, obs, state, F.one_hot(acts, spec.n_actions).float()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ----- TrajectoryEncoder ---------------------------------------------------------------------
@pytest.mark.parametrize("make", TRAJECTORY_ENCODERS)
@pytest.mark.parametrize("name", MAP_NAMES)
def test_trajectory_encoder_shapes_and_action_dependence(make, name):
    enc = make()
    spec, _, state, acts = _inputs(name)
    logits = enc(state, acts, name)
    assert logits.shape == (2, 4, spec.n_agents, enc.num_skills)
    other = acts.roll(1, dims=-1)  # a different joint action, same states
    assert not torch.allclose(logits, enc(state, other, name))


def test_trajectory_encoder_skill_count_defaults_to_heads_and_window_is_causal():
    assert AttentionTrajectoryEncoder(n_heads=4).num_skills == 4
    assert AttentionTrajectoryEncoder(n_heads=8, num_skills=5).num_skills == 5
    enc = AttentionTrajectoryEncoder(n_heads=4, emb_dim=32, window=2)
    _, _, state, acts = _inputs("3m", T=5)
    a = enc(state, acts, "3m")
    state2 = state.clone()
    state2[:, 3:] += 1.0  # change the future from t=3 on
    b = enc(state2, acts, "3m")
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3:], b[:, 3:])
    with pytest.raises(ValueError, match="window"):
        AttentionTrajectoryEncoder(window=0)


# ----- ObservationEncoder / ActionDecoder -------------------------------------------------------
@pytest.mark.parametrize("make", OBSERVATION_ENCODERS)
@pytest.mark.parametrize("name", MAP_NAMES)
def test_observation_encoder_shapes_and_stepwise_equals_sequence(make, name):
    enc = make()
    spec, obs, _, acts = _inputs(name)
    q, local, h = enc(obs, acts, name)
    assert q.shape == local.shape == (2, 4, spec.n_agents, K)
    assert h.shape == (2, spec.n_agents, enc.hidden_dim)
    # acting one step at a time with the carried hidden state gives the training-time values
    hid, steps = None, []
    for t in range(4):
        qt, _, hid = enc(obs[:, t:t + 1], acts[:, t:t + 1], name, hid)
        steps.append(qt)
    torch.testing.assert_close(torch.cat(steps, 1), q, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("make", ACTION_DECODERS)
@pytest.mark.parametrize("name", MAP_NAMES)
def test_action_decoder_shapes_stepwise_and_attack_from_enemy_tokens(make, name):
    dec = make()
    spec, obs, _, acts = _inputs(name)
    logits, _ = dec(obs, acts, name)
    assert logits.shape == (2, 4, spec.n_agents, K, spec.n_actions)
    hid, steps = None, []
    for t in range(4):
        lt, hid = dec(obs[:, t:t + 1], acts[:, t:t + 1], name, hid)
        steps.append(lt)
    torch.testing.assert_close(torch.cat(steps, 1), logits, atol=1e-5, rtol=1e-4)
    # swapping enemies 0 and 1 in the observation (and in the last actions) swaps attack logits
    lay = spec.layout
    o = lay.obs_enemy_offset
    ef = lay.enemy_feat
    obs2 = obs.clone()
    obs2[..., o:o + ef], obs2[..., o + ef:o + 2 * ef] = obs[..., o + ef:o + 2 * ef], obs[..., o:o + ef]
    acts2 = acts.clone()
    acts2[..., 6], acts2[..., 7] = acts[..., 7], acts[..., 6]
    logits2, _ = dec(obs2, acts2, name)
    torch.testing.assert_close(logits2[..., 6], logits[..., 7], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits2[..., :6], logits[..., :6], atol=1e-5, rtol=1e-4)


def test_padding_rows_skip_attention_without_changing_real_rows():
    enc, dec = OBSERVATION_ENCODERS[0](), ACTION_DECODERS[0]()
    traj, mixer = TRAJECTORY_ENCODERS[0](), MIXERS[0]()
    _, obs, state, acts = _inputs("3s5z", B=3, T=6)
    valid = torch.ones(3, 6, dtype=torch.bool)
    valid[0, 4:] = False
    valid[2, 2:] = False  # episodes of length 4, 6, 2
    q_all, _, _ = enc(obs, acts, "3s5z")
    q_pack, _, _ = enc(obs, acts, "3s5z", valid=valid)
    torch.testing.assert_close(q_pack[valid], q_all[valid])
    torch.testing.assert_close(dec(obs, acts, "3s5z", valid=valid)[0][valid], dec(obs, acts, "3s5z")[0][valid])
    torch.testing.assert_close(traj(state, acts, "3s5z", valid)[valid], traj(state, acts, "3s5z")[valid])
    qs = torch.randn(3, 6, 8)
    torch.testing.assert_close(mixer(qs, state, "3s5z", valid)[valid], mixer(qs, state, "3s5z")[valid])


# ----- mixers --------------------------------------------------------------------------------
@pytest.mark.parametrize("make", MIXERS)
@pytest.mark.parametrize("name", MAP_NAMES)
def test_mixer_is_monotonic_in_agent_values(make, name):
    mixer = make()
    spec, _, state, _ = _inputs(name, B=3, T=5)
    qs = (torch.randn(3, 5, spec.n_agents) * 3).requires_grad_(True)
    q_tot = mixer(qs, state, name)
    assert q_tot.shape == (3, 5, 1)
    (grad,) = torch.autograd.grad(q_tot.sum(), qs)
    assert (grad >= 0).all()  # IGM: dQ_tot / dQ_i >= 0
    # split form equals the one-call form
    torch.testing.assert_close(mixer.mix(qs, mixer.condition(state, name)), q_tot)


def test_vdn_is_the_sum():
    qs = torch.tensor([[[1.0, -2.0, 4.0]]])
    assert VDNMixer()(qs, torch.zeros(1, 1, 48), "3m").item() == 3.0


def test_attention_mixer_rejects_wrong_agent_count():
    mixer = AttentionMixer(emb_dim=32)
    with pytest.raises(ValueError, match="agent"):
        mixer(torch.zeros(1, 1, 4), torch.zeros(1, 1, 48), "3m")


# ----- losses by hand ------------------------------------------------------------------------
def test_kl_to_uniform_by_hand():
    p = torch.tensor([0.5, 0.25, 0.25])
    expected = sum(pi * math.log(pi / (1 / 3)) for pi in p.tolist())
    assert kl_to_uniform(p.log()).item() == pytest.approx(expected, abs=1e-6)
    assert kl_to_uniform(torch.zeros(4)).item() == pytest.approx(0.0, abs=1e-7)


def test_vae_loss_by_hand():
    # one agent-step, 2 skills, 3 actions, action 2 unavailable
    q = torch.tensor([0.75, 0.25])
    dec = torch.tensor([[1.0, 0.0, 5.0], [0.0, 2.0, 5.0]])  # logits per skill
    avail = torch.tensor([1, 1, 0])
    p0 = math.exp(1) / (math.exp(1) + 1)  # p(a=0 | z=0) over available actions
    p1 = 1 / (1 + math.exp(2))  # p(a=0 | z=1)
    nll = -(0.75 * math.log(p0) + 0.25 * math.log(p1))
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    loss, stats = vae_loss(dec.view(1, 1, 1, 2, 3), q.log().view(1, 1, 1, 2), torch.zeros(1, 1, 1, dtype=torch.long),
                           avail.view(1, 1, 1, 3), torch.ones(1, 1, 1), beta=0.1)
    assert loss.item() == pytest.approx(nll + 0.1 * kl, abs=1e-5)
    assert stats["nll"].item() == pytest.approx(nll, abs=1e-5)
    # masked-out agent-steps do not count
    dec2 = torch.cat([dec.view(1, 1, 1, 2, 3), torch.randn(1, 1, 1, 2, 3)], 2)
    q2 = torch.cat([q.log().view(1, 1, 1, 2), torch.randn(1, 1, 1, 2)], 2)
    loss2, _ = vae_loss(dec2, q2, torch.zeros(1, 1, 2, dtype=torch.long), avail.expand(1, 1, 2, 3),
                        torch.tensor([[[1.0, 0.0]]]), beta=0.1)
    assert loss2.item() == pytest.approx(loss.item(), abs=1e-5)


def test_consistency_kl_direction_and_value():
    local = torch.tensor([0.9, 0.1]).log().view(1, 1, 1, 2).requires_grad_(True)
    glob = torch.tensor([0.5, 0.5]).log().view(1, 1, 1, 2).requires_grad_(True)
    v = consistency_loss(local, glob, torch.ones(1, 1, 1))
    assert v.item() == pytest.approx(0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5), abs=1e-6)  # KL(q_hat||q)
    g_local, g_glob = torch.autograd.grad(v, [local, glob], allow_unused=True)
    assert g_glob is None and g_local is not None  # the global encoder is a fixed target


def test_td_loss_by_hand():
    q_tot = torch.tensor([[[1.0], [2.0], [9.0]]])
    nxt = torch.tensor([[[3.0], [4.0], [9.0]]])
    r = torch.tensor([[[0.5], [1.0], [0.0]]])
    term = torch.tensor([[[0.0], [1.0], [0.0]]])
    mask = torch.tensor([[[1.0], [1.0], [0.0]]])  # third row is padding
    loss, td = td_loss(q_tot, nxt, r, term, mask, gamma=0.5)
    e0 = 1.0 - (0.5 + 0.5 * 3.0)
    e1 = 2.0 - 1.0  # terminal: no bootstrap
    assert loss.item() == pytest.approx((e0 ** 2 + e1 ** 2) / 2)
    assert td[0, 2, 0] == 0


def _tiny_qs():
    qs = torch.tensor([[[[1.0, 2.0, 0.0], [0.5, 0.5, 3.0]]]])  # [B=1, T=1, n=2, K=3]
    data = torch.tensor([[[0, 2]]])
    return qs, data


def test_cql_loss_by_hand():
    qs, data = _tiny_qs()
    a0 = math.log(math.exp(1) + math.exp(2) + 1) - 1.0
    a1 = math.log(2 * math.exp(0.5) + math.exp(3)) - 3.0
    loss = CQLLoss()(qs, data, lambda q: q.sum(-1, keepdim=True), torch.ones(1, 1, 1), torch.ones(1, 1, 2))
    assert loss.item() == pytest.approx((a0 + a1) / 2, abs=1e-6)
    only_first = CQLLoss()(qs, data, None, torch.ones(1, 1, 1), torch.tensor([[[1.0, 0.0]]]))
    assert only_first.item() == pytest.approx(a0, abs=1e-6)


def test_odis_gap_loss_by_hand():
    qs, data = _tiny_qs()
    mix = lambda q: (q * torch.tensor([2.0, 1.0])).sum(-1, keepdim=True)
    # greedy: [2, 3] -> 7; data: [1, 3] -> 5
    loss = ODISGapLoss()(qs, data, mix, torch.ones(1, 1, 1), torch.ones(1, 1, 2))
    assert loss.item() == pytest.approx(2.0)


def test_mixed_cql_loss_by_hand():
    qs, data = _tiny_qs()
    mix = lambda q: (q * torch.tensor([2.0, 1.0])).sum(-1, keepdim=True)
    ones = torch.ones(1, 1, 1), torch.ones(1, 1, 2)
    # no samples: the set is the greedy joint skill alone -> ODIS's gap, 7 - 5
    assert MixedCQLLoss(joint_samples=0)(qs, data, mix, *ones).item() == pytest.approx(2.0)
    torch.manual_seed(3)
    z = torch.randint(3, (2, 1, 1, 2))  # the two joint skills the loss will draw
    q_tot = [7.0] + [2 * qs[0, 0, 0, int(a)].item() + qs[0, 0, 1, int(b)].item() for a, b in z[:, 0, 0]]
    torch.manual_seed(3)
    loss = MixedCQLLoss(joint_samples=2)(qs, data, mix, *ones)
    assert loss.item() == pytest.approx(math.log(sum(math.exp(q) for q in q_tot)) - 5.0, abs=1e-5)
    with pytest.raises(ValueError, match="joint_samples"):
        MixedCQLLoss(joint_samples=-1)


@pytest.mark.parametrize("cls", [CQLLoss, ODISGapLoss, MixedCQLLoss])
def test_weight_modes(cls):
    assert cls(weight=5.0, mode="dynamic").coefficient(0.3) == pytest.approx(1.5)
    assert cls(weight=5.0, mode="fixed").coefficient(0.3) == 5.0
    assert cls(weight=5.0, mode="zero").coefficient(0.3) == 0.0
    with pytest.raises(ValueError, match="mode must be one of"):
        cls(mode="sometimes")
    nc = NoConservativeLoss()
    qs, data = _tiny_qs()
    assert nc.coefficient(1.0) == 0.0 and nc(qs, data, None, None, None).item() == 0.0
