"""HiSSD as bindings of hygen's machinery: config, shapes on seen and unseen maps, the loss terms
by hand (expectile, advantage weights, InfoNCE), what an update trains, checkpoints, and
(real 3m data) that a short offline run learns the data's actions."""

from __future__ import annotations

import math

import gin
import pytest
import torch
import torch.nn.functional as F
from helpers import changed, params

from hygen import config
from hygen.buffers import OfflineOnly, read_episodes
from hygen.buffers.synthetic import random_episodes
from hygen.encoders import AttentionActionDecoder, AttentionObservationEncoder
from hygen.entities import obs_entities
from hygen.envs.maps import get_map
from hygen.learners.hissd import (
    EntityForwardModel,
    HiSSDConfigError,
    HiSSDLearner,
    SkillConditionedDecoder,
    SkillEncoder,
    _entity_view_index,
    advantage_weights,
    expectile_loss,
    info_nce_loss,
)
from hygen.mixers import AttentionMixer

D = 8


def small_learner(maps=("3m", "3s5z"), **kw) -> HiSSDLearner:
    torch.manual_seed(0)
    args = {
        "maps": list(maps), "skill_dim": D,
        "common_encoder": lambda skill_dim: SkillEncoder(skill_dim, emb_dim=32, hidden_dim=32),
        "task_encoder": lambda skill_dim: SkillEncoder(skill_dim, emb_dim=32, hidden_dim=32),
        "decoder": lambda skill_dim: SkillConditionedDecoder(skill_dim, emb_dim=32, hidden_dim=32),
        "forward_model": lambda skill_dim: EntityForwardModel(skill_dim, hidden_dim=32),
        "q_network": lambda num_skills: AttentionActionDecoder(num_skills, emb_dim=32, hidden_dim=32),
        "v_network": lambda num_skills: AttentionObservationEncoder(num_skills, emb_dim=32, hidden_dim=32),
        "mixer": lambda: AttentionMixer(emb_dim=32, mixing_dim=16)}
    args.update(kw)
    return HiSSDLearner(**args)


def batches(maps=("3m", "3s5z"), B: int = 6) -> dict:
    out = {}
    for i, m in enumerate(maps):
        b = random_episodes(m, B, lengths=[5, 9, 3, 7, 8, 4][:B], seed=i)
        b.n_offline = B
        out[m] = b
    return out


# ----- config -------------------------------------------------------------------------------
def test_config_parses_with_taskset_and_data_and_binds_an_offline_hissd():
    config.parse_config(["hissd", "tasksets/marine_hard", "data/medium"])
    assert gin.query_parameter("%SOURCE_MAPS") == ["3m", "5m_vs_6m", "9m_vs_10m"]
    assert gin.query_parameter("%DATA_QUALITY") == "medium"
    phases = gin.query_parameter("Trainer.phases")
    assert len(phases) == 1
    p = phases[0].scoped_configurable_fn()
    assert p.name == p.objective == "hissd" and not p.collect_online and isinstance(p.sampler, OfflineOnly)
    L = HiSSDLearner(maps=["3m"])
    assert (L.expectile, L.awr_temperature, L.max_weight) == (0.9, 10.0, 100.0)
    assert L.target_update_rate == 0.005 and gin.query_parameter("Trainer.target_update_every") == 1
    assert L.decoder.skill_dim == 2 * L.skill_dim
    assert L.task_encoder is not L.common_encoder and L.v_mixer is not L.q_mixer


# ----- shapes, seen and unseen maps -----------------------------------------------------------
@pytest.mark.parametrize("name", ["3m", "5m_vs_6m"])  # trained on 3m only: 5m_vs_6m is zero-shot
def test_networks_and_controller_shapes_on_seen_and_unseen_maps(name):
    L = small_learner(maps=["3m"])
    spec = get_map(name)
    n, A = spec.n_agents, spec.n_actions
    b = random_episodes(name, 3, lengths=[4, 6, 2], seed=1).trim()
    B, T1 = b.obs.shape[:2]
    last = torch.zeros_like(b.actions_onehot)
    c, h = L.common_encoder(b.obs, last, name)
    e, _ = L.task_encoder(b.obs, last, name)
    assert c.shape == e.shape == (B, T1, n, D) and h.shape == (B, n, 32)
    logits, _ = L.decoder(b.obs, last, name, L.skills(c, e))
    assert logits.shape == (B, T1, n, A) == (B, T1, n, 6 + spec.n_enemies)
    assert L.q_network(b.obs, last, name)[0].shape == (B, T1, n, 1, A)
    assert L.v_network(b.obs, last, name)[0].shape == (B, T1, n, 1)
    loss, stats, e_sample = L._map_loss(b)
    assert loss.dim() == 0 and all(math.isfinite(float(v)) for v in stats.values())
    assert e_sample.shape[1] == D
    # decentralised acting, step by step, always available actions
    ctl = L.controller()
    state = ctl.initial_state(name, B)
    g = torch.Generator().manual_seed(0)
    for t in range(2):
        acts, state = ctl.act(name, b.obs[:, t], b.avail_actions[:, t], state, epsilon=0.5, generator=g)
        assert acts.shape == (B, n) and b.avail_actions[:, t].gather(-1, acts.unsqueeze(-1)).all()


def test_greedy_acting_equals_the_training_time_decoder():
    """The controller's recurrent step-by-step pass gives the decoder's whole-sequence argmax."""
    L = small_learner(maps=["3m"])
    b = random_episodes("3m", 2, lengths=[5, 5], seed=2).trim()
    last = torch.cat([torch.zeros_like(b.actions_onehot[:, :1]), b.actions_onehot[:, :-1]], 1)
    c, _ = L.common_encoder(b.obs, last, "3m")
    e, _ = L.task_encoder(b.obs, last, "3m")
    logits, _ = L.decoder(b.obs, last, "3m", L.skills(c, e))
    greedy = logits.masked_fill(~b.avail_actions, float("-inf")).argmax(-1)
    ctl = L.controller()
    state = ctl.initial_state("3m", 2)
    for t in range(5):
        acts, state = ctl.act("3m", b.obs[:, t], b.avail_actions[:, t], state, 0.0, None)
        assert torch.equal(acts, greedy[:, t])
        state["last_action"] = b.actions_onehot[:, t]  # follow the data's actions, as in training


def test_entity_view_index_points_each_agent_at_its_token_of_each_state_entity():
    idx = _entity_view_index(3, 4)  # 3 allies, 4 enemies; obs tokens [own, e0..e3, other allies]
    assert idx[0].tolist() == [0, 5, 6, 1, 2, 3, 4]
    assert idx[1].tolist() == [5, 0, 6, 1, 2, 3, 4]
    assert idx[2].tolist() == [5, 6, 0, 1, 2, 3, 4]
    b = random_episodes("3m", 1, lengths=[2], seed=0)
    tok = obs_entities(b.obs[0, 0], "3m")  # [n, E, F]
    views = tok.gather(1, _entity_view_index(3, 3)[:, :, None].expand(-1, -1, tok.shape[-1]))
    kinds = views[..., :3].argmax(-1)  # 0 own, 1 ally, 2 enemy
    assert kinds.tolist() == [[0, 1, 1, 2, 2, 2], [1, 0, 1, 2, 2, 2], [1, 1, 0, 2, 2, 2]]


# ----- loss terms by hand --------------------------------------------------------------------
def test_expectile_loss_weights_residuals_09_and_01():
    u = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])  # target - prediction
    mask = torch.tensor([[1.0], [1.0], [1.0], [0.0]])
    expected = (0.9 * 4.0 + 0.1 * 1.0 + 0.9 * 0.25) / 3
    assert expectile_loss(u, mask, 0.9).item() == pytest.approx(expected)
    # tau = 0.5 is half the mean squared error
    assert expectile_loss(u, mask, 0.5).item() == pytest.approx(0.5 * (4.0 + 1.0 + 0.25) / 3)


def test_advantage_weights_are_exp_10a_clamped_at_100():
    a = torch.tensor([-1.0, 0.0, 0.1, math.log(100) / 10 - 1e-3, 0.5, 10.0, 1e4])
    w = advantage_weights(a, 10.0, 100.0)
    assert torch.isfinite(w).all()
    torch.testing.assert_close(w[:4], torch.exp(10 * a[:4]))
    assert w[:4].max() < 100.0
    assert torch.equal(w[4:], torch.full((3,), 100.0))


def test_info_nce_is_lower_for_separable_task_embeddings():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 8 + [1] * 8)
    centres = torch.eye(4)[labels]  # task 0 along e0, task 1 along e1
    separable = centres + 0.05 * torch.randn(16, 4, generator=g)
    identical = torch.ones(16, 4)
    l_sep, l_same = info_nce_loss(separable, labels), info_nce_loss(identical, labels)
    assert l_same.item() == pytest.approx(math.log(15), rel=1e-5)  # all 15 others equally likely
    # separable: all the mass on the 7 positives, spread evenly over them -- SupCon's minimum log 7
    assert l_sep.item() < l_same.item() and l_sep.item() == pytest.approx(math.log(7), abs=0.02)
    swapped = info_nce_loss(separable, 1 - labels)  # labels permuted: the same clustering
    assert swapped.item() == pytest.approx(l_sep.item(), rel=1e-5)
    mixed = info_nce_loss(separable, torch.arange(16) % 2)  # labels that cut across the clusters
    assert mixed.item() > l_same.item()
    assert info_nce_loss(separable, torch.zeros(16, dtype=torch.long)).item() == 0.0  # one task: no negatives


# ----- the update ----------------------------------------------------------------------------
def test_one_update_trains_every_network_and_leaves_targets_to_update_targets():
    L = small_learner()
    names = ("common_encoder", "task_encoder", "decoder", "forward_model", "q_network", "v_network", "q_mixer", "v_mixer")
    snap = {k: params(getattr(L, k)) for k in names + ("target_q_network", "target_q_mixer")}
    stats = L.update(batches(), 0, "hissd")
    for k in names:
        assert changed(snap[k], getattr(L, k)), k
    assert not changed(snap["target_q_network"], L.target_q_network) and not changed(snap["target_q_mixer"], L.target_q_mixer)
    for k in ("loss", "q_loss", "v_loss", "fwd_loss", "policy_loss", "nce_loss", "action_acc", "weight_mean",
              "3m/q_loss", "3s5z/fwd_loss", "grad_norm"):
        assert k in stats and math.isfinite(stats[k]), k
    assert stats["nce_loss"] > 0.0  # two tasks in the update
    online, target = params(L.q_network), params(L.target_q_network)
    L.update_targets()  # Polyak: theta^- <- 0.005 theta + 0.995 theta^-
    for o, t, new in zip(online, target, L.target_q_network.parameters()):
        torch.testing.assert_close(new, 0.005 * o + 0.995 * t)
    L.target_update_rate = 1.0  # hard copy
    L.update_targets()
    assert all(torch.equal(a, b) for a, b in zip(L.q_network.parameters(), L.target_q_network.parameters()))
    with pytest.raises(ValueError, match="unknown objective 'policy'"):
        L.update(batches(), 1, "policy")


def test_task_skills_of_two_maps_separate_under_training():
    L = small_learner(contrastive_weight=1.0, lr=3e-3)
    bs = batches()
    first = L.update(bs, 0, "hissd")["nce_loss"]
    for step in range(1, 25):
        last = L.update(bs, step, "hissd")["nce_loss"]
    # 64 samples per map: SupCon's minimum is log 63 (mass spread over the positives), log 127 if all alike
    assert last < math.log(63) + 0.2 < first - 1.0, (first, last)
    with torch.no_grad():  # every (step, agent) task skill: same-map pairs alike, cross-map pairs apart
        z = {m: F.normalize(L.task_encoder(b.obs, b.actions_onehot, m)[0][b.filled[..., 0] > 0], dim=-1)
             .flatten(0, -2) for m, b in bs.items()}
    within = min((z[m] @ z[m].t()).mean().item() for m in z)
    across = (z["3m"] @ z["3s5z"].t()).mean().item()
    assert within > 0.9 and across < 0.3, (within, across)


def test_state_dict_round_trip_and_mismatch():
    L = small_learner()
    L.update(batches(), 0, "hissd")
    L2 = small_learner()
    L2.load_state_dict(L.state_dict())
    b = batches()["3m"]
    for a, c in zip(L.decoder.parameters(), L2.decoder.parameters()):
        torch.testing.assert_close(a, c)
    torch.testing.assert_close(L.v_network(b.obs, b.actions_onehot, "3m")[0], L2.v_network(b.obs, b.actions_onehot, "3m")[0])
    with pytest.raises(ValueError, match="skill_dim"):
        small_learner(skill_dim=4).load_state_dict(L.state_dict())


def test_a_checkpoint_with_the_old_network_names_loads():
    """Written before the attributes took their gin parameters' names (q_net, v_net)."""
    L = small_learner()
    L.update(batches(), 0, "hissd")
    old = {"q_network": "q_net", "v_network": "v_net", "target_q_network": "target_q_net"}
    sd = {old.get(k, k): v for k, v in L.state_dict().items()}
    L2 = small_learner()
    L2.load_state_dict(sd)
    b = batches()["3m"]
    for name in ("q_network", "v_network", "target_q_network"):
        torch.testing.assert_close(getattr(L, name)(b.obs, b.actions_onehot, "3m")[0],
                                   getattr(L2, name)(b.obs, b.actions_onehot, "3m")[0])


def test_bad_settings_give_clear_errors():
    with pytest.raises(HiSSDConfigError, match="expectile"):
        HiSSDLearner(maps=["3m"], expectile=1.5)
    with pytest.raises(HiSSDConfigError, match="target_update_rate"):
        HiSSDLearner(maps=["3m"], target_update_rate=0.0)
    with pytest.raises(HiSSDConfigError, match="HiSSDLearner.decoder has skill_dim 5"):
        small_learner(decoder=SkillConditionedDecoder(skill_dim=5, emb_dim=32, hidden_dim=32))
    with pytest.raises(HiSSDConfigError, match="q_network"):
        small_learner(q_network=AttentionActionDecoder(num_skills=3, emb_dim=32, hidden_dim=32))
    with pytest.raises(ValueError, match="batch keyed"):
        small_learner().update({"3s5z": batches()["3m"]}, 0, "hissd")


# ----- learning on the real data -------------------------------------------------------------
def test_short_offline_run_on_real_3m_learns_the_data_actions(real_3m_path):
    data = read_episodes(real_3m_path, "3m", 0, 300)
    train, held_out = data[list(range(250))], data[list(range(250, 300))].trim()
    L = small_learner(maps=["3m"], lr=1e-3)  # Polyak targets (rate 0.005) synced every step, as in hissd.gin
    with torch.no_grad():
        _, before, _ = L._map_loss(held_out)
    g = torch.Generator().manual_seed(0)
    for step in range(80):
        b = train[torch.randint(0, len(train), (16,), generator=g)]
        b.n_offline = len(b)
        L.update({"3m": b}, step, "hissd")
        L.update_targets()
    with torch.no_grad():
        _, after, _ = L._map_loss(held_out)
    avail = held_out.avail_actions[:, :-1].float()
    alive = (avail[..., 1:].sum(-1) > 0) & (held_out.mask > 0)
    chance = (1.0 / avail.sum(-1))[alive].mean().item()  # a uniformly random available action
    acc = after["action_acc"].item()
    assert acc > 2.5 * chance and acc > 0.5 and before["action_acc"] < 2 * chance, (before, after, chance)
    for k in ("nll", "q_loss", "fwd_loss"):  # held-out episodes
        assert after[k] < 0.9 * before[k], (k, before, after)
    assert 0.0 < after["weight_mean"] < 100.0 and after["weight_clamped"] < 0.2, after
