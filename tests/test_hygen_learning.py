"""HyGenLearner: what each phase trains, the gradient sum over maps, R_h, acting, checkpoints,
the gin configs, and (slow) learning on the real 3m dataset."""

from __future__ import annotations

import copy
import math

import gin
import pytest
import torch
from helpers import changed, params

from hygen import config
from hygen.buffers import read_episodes
from hygen.buffers.synthetic import random_episodes
from hygen.envs.maps import UnknownNameError, get_map
from hygen.learners.base import CheckpointError, DeprecatedBindingWarning
from hygen.learners.exploration import (
    EpsilonActions,
    EpsilonSkills,
    EpsilonSkillsEpsilonSampledActions,
    EpsilonSkillsSampledActions,
)
from hygen.learners.hygen import HyGenConfigError, HyGenLearner
from hygen.learners.skill_labels import ExecutedSkills, RelabelledSkills
from hygen.losses import (
    ArgmaxConsistency,
    CloneAllEpisodes,
    CloneByReturn,
    CloneWonEpisodes,
    CQLLoss,
    KLConsistency,
    MixedCQLLoss,
    NoConservativeLoss,
    NoRefinement,
    ODISGapLoss,
)
from hygen.losses.objectives import alive_agents
from hygen.runner import reset_agent_state


def small_learner(**kw) -> HyGenLearner:
    from hygen.encoders import AttentionActionDecoder, AttentionObservationEncoder, AttentionTrajectoryEncoder
    from hygen.mixers import AttentionMixer

    torch.manual_seed(0)
    args = {
        "maps": ["3m", "3s5z"],
        "global_encoder": lambda num_skills: AttentionTrajectoryEncoder(4, num_skills, emb_dim=32),
        "q_network": lambda num_skills: AttentionObservationEncoder(num_skills, emb_dim=32, hidden_dim=32),
        "action_decoder": lambda num_skills: AttentionActionDecoder(num_skills, emb_dim=32, hidden_dim=32),
        "mixer": lambda: AttentionMixer(emb_dim=32, mixing_dim=16),
        "conservative": CQLLoss}  # deterministic (MixedCQLLoss draws joint skills): exact comparisons hold
    args.update(kw)
    return HyGenLearner(**args)


def batches(n_offline: int = 4, B: int = 6) -> dict:
    out = {}
    for i, m in enumerate(["3m", "3s5z"]):
        b = random_episodes(m, B, lengths=[5, 9, 3, 7, 8, 4][:B], seed=i)
        b.n_offline = n_offline
        out[m] = b
    return out


def test_skill_discovery_trains_only_encoder_and_decoder():
    L = small_learner()
    snap = {k: params(getattr(L, k)) for k in ("global_encoder", "action_decoder", "q_network", "mixer")}
    stats = L.update(batches(), 0, "skill_discovery")
    assert changed(snap["global_encoder"], L.global_encoder) and changed(snap["action_decoder"], L.action_decoder)
    assert not changed(snap["q_network"], L.q_network) and not changed(snap["mixer"], L.mixer)
    for k in ("loss", "nll", "action_acc", "3m/nll", "3s5z/nll", "grad_norm"):
        assert k in stats and math.isfinite(stats[k])


@pytest.mark.parametrize("refine", [True, False])
def test_policy_phase_freezes_global_encoder_and_refines_decoder_on_request(refine):
    L = small_learner(refinement=CloneWonEpisodes() if refine else NoRefinement())
    snap = {k: params(getattr(L, k)) for k in ("global_encoder", "action_decoder", "q_network", "mixer", "target_q_network")}
    stats = L.update(batches(), 0, "policy")
    assert not changed(snap["global_encoder"], L.global_encoder)
    assert changed(snap["q_network"], L.q_network) and changed(snap["mixer"], L.mixer)
    assert changed(snap["action_decoder"], L.action_decoder) == refine
    assert ("refine_nll" in stats) == refine
    assert not changed(snap["target_q_network"], L.target_q_network)  # only update_targets moves targets
    L.update_targets()
    assert all(torch.equal(a, b) for a, b in zip(L.q_network.parameters(), L.target_q_network.parameters()))


def test_one_step_uses_the_sum_of_per_map_gradients():
    L = small_learner(grad_norm_clip=1e9)
    bs = batches()
    ref = copy.deepcopy(L)
    L.update(bs, 0, "policy")
    summed = None
    for b in bs.values():
        ref.optimizer.zero_grad(set_to_none=True)
        loss, _ = ref._policy_loss(b.trim(), ratio=4 / 6)
        loss.backward()
        g = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in ref.params]
        summed = g if summed is None else [a + c for a, c in zip(summed, g)]
    got = [p.grad if p.grad is not None else torch.zeros_like(p) for p in L.params]
    for a, c in zip(got, summed):
        torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-4)


def test_hybrid_ratio_comes_from_the_batch_and_scales_cql():
    L = small_learner(conservative=CQLLoss(weight=5.0, mode="dynamic"))
    stats = L.update(batches(n_offline=3, B=6), 0, "policy")  # 3 of 6 episodes offline per map
    assert stats["ratio"] == pytest.approx(0.5)
    assert stats["cql_coef"] == pytest.approx(2.5)
    stats = L.update(batches(), 1, "policy", ratio=0.1)
    assert stats["cql_coef"] == pytest.approx(0.5)
    fixed = small_learner(conservative=ODISGapLoss(weight=5.0, mode="fixed")).update(batches(1), 0, "policy")
    assert fixed["cql_coef"] == 5.0
    assert small_learner(conservative=NoConservativeLoss).update(batches(), 0, "policy")["cql_coef"] == 0.0


def test_cql_over_offline_samples_only():
    """offline_only: L_CQL is the term of the batch's offline episodes alone (0 with none)."""
    def cql(n_offline, first=6, cql_samples="all"):
        L = small_learner(maps=["3m"], conservative=CQLLoss(offline_only=cql_samples == "offline"))
        b = random_episodes("3m", 6, lengths=[5, 9, 3, 7, 8, 4], seed=0)
        b.n_offline = n_offline
        b = b[torch.arange(first)]
        return L._policy_loss(b.trim(), ratio=0.5)[1]["cql_loss"].item()

    assert cql(0, cql_samples="offline") == 0.0
    assert cql(0, cql_samples="all") > 0.0
    assert cql(6, cql_samples="offline") == pytest.approx(cql(6, cql_samples="all"), rel=1e-6)
    # the first 3 episodes are the offline ones: the same as a batch of just those, with 'all'
    assert cql(3, cql_samples="offline") == pytest.approx(cql(3, first=3, cql_samples="all"), rel=1e-5)
    assert cql(3, cql_samples="offline") != pytest.approx(cql(3, cql_samples="all"), rel=1e-3)


def test_online_skills_executed_replaces_the_relabelled_skill_where_recorded():
    """ExecutedSkills: eq. 4, L_CQL and refinement read the skill the agent executed;
    the consistency loss (eq. 5) still matches the global encoder."""
    def stats(skills, online_skills):
        labels = ExecutedSkills() if online_skills == "executed" else RelabelledSkills()
        L = small_learner(maps=["3m"], skill_labels=labels)
        b = random_episodes("3m", 4, lengths=[5, 9, 3, 7], seed=0)
        b.n_offline = 2
        b.skills = skills
        return {k: float(v) for k, v in L._policy_loss(b.trim(), ratio=0.5)[1].items()}

    L = small_learner(maps=["3m"])
    b = random_episodes("3m", 4, lengths=[5, 9, 3, 7], seed=0).trim()
    with torch.no_grad():
        relabel = L.global_encoder(b.state[:, :-1], b.actions_onehot[:, :-1], "3m", b.mask[..., 0] > 0).argmax(-1)
    same = torch.full((4, 10, 3, 1), -1)
    same[:, :-1] = relabel[..., None]
    other = torch.full((4, 10, 3, 1), -1)
    other[2:, :-1] = (relabel[2:, ..., None] + 1) % 4  # online episodes executed another skill
    base = stats(None, "relabelled")
    for key in ("td_loss", "cql_loss", "refine_nll", "consistency_loss"):
        assert stats(same, "executed")[key] == pytest.approx(base[key], rel=1e-6), key
        assert stats(other, "relabelled")[key] == pytest.approx(base[key], rel=1e-6), key  # ignored
        assert stats(torch.full_like(other, -1), "executed")[key] == pytest.approx(base[key], rel=1e-6), key
    moved = stats(other, "executed")
    for key in ("td_loss", "cql_loss", "refine_nll"):
        assert moved[key] != pytest.approx(base[key], rel=1e-4), key
    assert moved["consistency_loss"] == pytest.approx(base["consistency_loss"], rel=1e-6)
    assert moved["local_skill_agreement"] == pytest.approx(base["local_skill_agreement"], rel=1e-6)


@pytest.mark.parametrize("name", ["3m", "3s5z", "13m_vs_15m"])
def test_controller_acts_on_any_map_with_available_actions(name):
    L = small_learner()
    spec = get_map(name)
    c = L.controller()
    E = 5
    state = c.initial_state(name, E)
    g = torch.Generator().manual_seed(0)
    b = random_episodes(name, E, lengths=[3] * E, seed=1)
    skills = []
    for t in range(3):
        avail = b.avail_actions[:, t]
        acts, state = c.act(name, b.obs[:, t], avail, state, epsilon=1.0, generator=g)
        assert acts.shape == (E, spec.n_agents) and acts.dtype == torch.long
        assert avail.gather(-1, acts.unsqueeze(-1)).all()
        skills.append(state["skill"])
    assert torch.stack(skills).unique().numel() > 1  # epsilon = 1: random skills
    # greedy acting is deterministic; the state works with the runner's per-env reset
    s0 = c.initial_state(name, E)
    a1, st1 = c.act(name, b.obs[:, 0], b.avail_actions[:, 0], s0, 0.0, None)
    a2, _ = c.act(name, b.obs[:, 0], b.avail_actions[:, 0], s0, 0.0, None)
    assert torch.equal(a1, a2)
    reset = reset_agent_state(st1, c.initial_state(name, E), torch.tensor([True, False, True, False, False]))
    assert reset["q_hidden"][0].abs().sum() == 0 and torch.equal(reset["q_hidden"][1], st1["q_hidden"][1])


def test_fixed_skill_forces_every_agent_and_decodes_that_skill():
    L = small_learner(exploration=EpsilonSkills())  # actions: the decoder's argmax even at epsilon 1
    c = L.controller()
    E, name = 4, "5m"
    b = random_episodes(name, E, lengths=[2] * E, seed=3)
    obs, avail = b.obs[:, 0], b.avail_actions[:, 0].bool()
    for k in range(L.num_skills):
        c.fixed_skill = k
        acts, st = c.act(name, obs, avail, c.initial_state(name, E), epsilon=1.0)  # no skill exploration
        assert (st["skill"] == k).all()
        logits, _ = L.action_decoder.logits_at(obs[:, None], torch.zeros_like(b.actions_onehot[:, :1]), name,
                                        torch.full((E, 1, get_map(name).n_agents), k))
        assert torch.equal(acts, logits[:, 0].masked_fill(~avail, float("-inf")).argmax(-1))
    c.fixed_skill = None
    _, st = c.act(name, obs, avail, c.initial_state(name, E), epsilon=0.0)
    q, _, _ = L.q_network(obs[:, None], torch.zeros_like(b.actions_onehot[:, :1]), name)
    assert torch.equal(st["skill"], q[:, 0].argmax(-1))  # back to argmax_z Q_i


def test_sampled_exploration_draws_available_actions_and_greedy_eval_stays_argmax():
    L = small_learner(exploration=EpsilonSkillsSampledActions())
    c = L.controller()
    E, name = 64, "3m"
    b = random_episodes(name, E, lengths=[2] * E, seed=4)
    obs, avail = b.obs[:, 0], b.avail_actions[:, 0].bool()
    g = torch.Generator().manual_seed(0)
    greedy, _ = c.act(name, obs, avail, c.initial_state(name, E), epsilon=0.0)
    drawn = [c.act(name, obs, avail, c.initial_state(name, E), epsilon=1e-9, generator=g)[0] for _ in range(20)]
    for a in drawn:
        assert avail.gather(-1, a.unsqueeze(-1)).all()  # only available actions
    # skills are (almost surely) the greedy ones at this epsilon, so a changed action is a sampled one
    assert any(not torch.equal(a, greedy) for a in drawn)
    L.exploration = EpsilonSkills()
    assert all(torch.equal(c.act(name, obs, avail, c.initial_state(name, E), epsilon=1e-9, generator=g)[0], greedy)
               for _ in range(3))
    with pytest.raises(HyGenConfigError, match="EpsilonSkillsSampledActions"):  # the old binding names the class
        small_learner(explore_actions="sample")
    with pytest.raises(HyGenConfigError, match="exploration: expected a SkillExploration"):
        small_learner(exploration=CQLLoss())


def test_epsilon_exploration_samples_with_probability_epsilon():
    """EpsilonSkillsEpsilonSampledActions: an agent's action is drawn from p(a | tau, z) with
    probability epsilon, else the argmax; at epsilon 1 it is EpsilonSkillsSampledActions, near 0
    the greedy action (skills fixed to isolate actions)."""
    rules = {"greedy": EpsilonSkills(), "sample": EpsilonSkillsSampledActions(),
             "epsilon": EpsilonSkillsEpsilonSampledActions()}
    L = small_learner(exploration=rules["epsilon"])
    c = L.controller()
    c.fixed_skill = 1
    E, name = 64, "3m"
    b = random_episodes(name, E, lengths=[2] * E, seed=4)
    obs, avail = b.obs[:, 0], b.avail_actions[:, 0].bool()

    def act(mode, eps, seed=0):
        L.exploration = rules[mode]
        return c.act(name, obs, avail, c.initial_state(name, E), epsilon=eps,
                     generator=torch.Generator().manual_seed(seed))[0]

    greedy = act("greedy", 0.0)
    assert torch.equal(act("epsilon", 1e-9), greedy)
    for seed in range(3):
        assert torch.equal(act("epsilon", 1.0, seed), act("sample", 1.0, seed))
    half = torch.stack([act("epsilon", 0.5, s) for s in range(20)])
    full = torch.stack([act("sample", 1.0, s) for s in range(20)])
    changed_half, changed_full = (half != greedy).float().mean(), (full != greedy).float().mean()
    assert 0.3 < changed_half / changed_full < 0.7  # about half as many departures from the argmax


def test_public_code_exploration_keeps_greedy_skills_and_draws_uniform_actions():
    """EpsilonActions: skills stay argmax_z Q_i; with probability epsilon an agent takes a
    uniformly random available action instead of the decoder's argmax."""
    L = small_learner(exploration=EpsilonActions())
    c = L.controller()
    E, name = 256, "3m"
    b = random_episodes(name, E, lengths=[2] * E, seed=4)
    obs, avail = b.obs[:, 0], b.avail_actions[:, 0].bool()
    greedy, st0 = c.act(name, obs, avail, c.initial_state(name, E), epsilon=0.0)
    g = torch.Generator().manual_seed(0)
    acts, st = c.act(name, obs, avail, c.initial_state(name, E), epsilon=1.0, generator=g)
    assert torch.equal(st["skill"], st0["skill"])  # no exploration over skills
    assert avail.gather(-1, acts.unsqueeze(-1)).all()
    # uniform over the available actions: the share that equals the argmax is about E[1 / #available]
    expected = (1.0 / avail.sum(-1).float()).mean()
    assert (acts == greedy).float().mean() == pytest.approx(float(expected), abs=0.05)
    assert torch.equal(c.act(name, obs, avail, c.initial_state(name, E), epsilon=1e-9, generator=g)[0], greedy)


@pytest.mark.parametrize("term,trains_mixer", [(CQLLoss(), False), (ODISGapLoss(), True), (MixedCQLLoss(), True)])
def test_only_the_mixed_conservative_terms_train_the_mixer(term, trains_mixer):
    """The per-agent CQL term gives the mixer no gradient (issue #15); the mixed ones do."""
    L = small_learner(maps=["3m"], conservative=term, alpha=0.0, refinement=NoRefinement())
    b = batches()["3m"].trim()
    cond = L.mixer.condition(b.state[:, :-1], "3m", b.mask[..., 0] > 0)
    qs = L.q_network(b.obs, torch.zeros_like(b.actions_onehot), "3m")[0][:, :-1]
    data = qs.argmin(-1)  # any data skills that are not the greedy ones
    loss = term(qs, data, lambda q: L.mixer.mix(q, cond), b.mask, alive_agents(b.avail_actions[:, :-1], b.mask))
    L.mixer.zero_grad()
    loss.backward()
    grads = [p.grad for p in L.mixer.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads) == trains_mixer


def test_argmax_consistency_by_hand():
    local = torch.tensor([[[[0.0, math.log(3.0)]]]])  # q_hat = (1/4, 3/4)
    glob = torch.tensor([[[[2.0, 1.0]]]])  # argmax: skill 0
    mask = torch.ones(1, 1, 1)
    assert ArgmaxConsistency()(local, glob, mask).item() == pytest.approx(math.log(4.0))
    q = torch.softmax(glob, -1)[0, 0, 0]  # the KL of eq. 5 reads the whole distribution
    kl = 0.25 * math.log(0.25 / q[0]) + 0.75 * math.log(0.75 / q[1])
    assert KLConsistency()(local, glob, mask).item() == pytest.approx(float(kl), rel=1e-5)


def test_state_dict_round_trip_and_mismatch():
    L = small_learner()
    L.update(batches(), 0, "skill_discovery")
    L2 = small_learner()
    L2.load_state_dict(L.state_dict())
    b = batches()["3m"]
    q1, _, _ = L.q_network(b.obs, b.actions_onehot, "3m")
    q2, _, _ = L2.q_network(b.obs, b.actions_onehot, "3m")
    torch.testing.assert_close(q1, q2)
    with pytest.raises(ValueError, match="num_skills"):
        small_learner(num_skills=3).load_state_dict(L.state_dict())


def test_a_checkpoint_with_the_old_network_names_loads():
    """Checkpoints written before the networks took their gin parameters' names (q_net, decoder)."""
    L = small_learner()
    L.update(batches(), 0, "skill_discovery")
    old_names = {"q_network": "q_net", "target_q_network": "target_q_net", "action_decoder": "decoder"}
    sd = {old_names.get(k, k): v for k, v in L.state_dict().items()}
    assert "q_net" in sd and "q_network" not in sd
    L2 = small_learner()
    L2.load_state_dict(sd)
    b = batches()["3m"]
    torch.testing.assert_close(L.q_network(b.obs, b.actions_onehot, "3m")[0], L2.q_network(b.obs, b.actions_onehot, "3m")[0])
    torch.testing.assert_close(L.action_decoder(b.obs, b.actions_onehot, "3m")[0],
                               L2.action_decoder(b.obs, b.actions_onehot, "3m")[0])
    del sd["decoder"]
    with pytest.raises(CheckpointError, match="lacks 'action_decoder'"):
        small_learner().load_state_dict(sd)


@pytest.mark.parametrize("old,new,cls", [("observation_encoder", "q_network", "AttentionObservationEncoder"),
                                         ("trajectory_encoder", "global_encoder", "AttentionTrajectoryEncoder")])
def test_old_network_bindings_work_with_a_warning_naming_the_new_one(old, new, cls):
    """HyGenLearner.observation_encoder / trajectory_encoder: the names of the previous release."""
    size = lambda net: sum(p.numel() for p in net.parameters())
    config.parse_config(BASE)
    default = size(getattr(HyGenLearner(maps=["3m"]), new))
    config.reset()
    config.parse_config(BASE, [f"HyGenLearner.{old} = @small/{cls}", f"small/{cls}.emb_dim = 16"])
    with pytest.warns(DeprecatedBindingWarning, match=f"HyGenLearner.{old} is deprecated.*bind HyGenLearner.{new}"):
        L = HyGenLearner(maps=["3m"])
    assert size(getattr(L, new)) < default  # the network bound under the old name is the one built
    config.reset()
    config.parse_config(BASE, [f"HyGenLearner.{old} = @small/{cls}", f"HyGenLearner.{new} = @other/{cls}"])
    with pytest.raises(HyGenConfigError, match=f"HyGenLearner.{old} and HyGenLearner.{new} are both bound"):
        HyGenLearner(maps=["3m"])


class _ObsTableQ(torch.nn.Module):
    """Stub value network for hand-checked TD targets: Q_i(tau_i, z) = scale * obs_i[z]."""

    hidden_dim = 1

    def __init__(self, num_skills: int):
        super().__init__()
        self.num_skills = num_skills
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, obs, last_actions_onehot, map_name, hidden=None, valid=None, tokens=None):
        qs = self.scale * obs[..., :self.num_skills]
        return qs, torch.zeros_like(qs), obs.new_zeros(obs.shape[0], obs.shape[2], 1)


@pytest.mark.parametrize("double_q,td_lambda", [(False, 0.0), (True, 0.0), (False, 1.0)])
def test_td_targets_on_a_hand_made_batch(double_q, td_lambda):
    """Eq. 4 by hand: Q_tot at the data skills vs r + gamma * (1 - terminated) * the target
    network's value at t+1 (max over skills, or at the live argmax with double_q); padded
    rows and the rows after a terminal step never enter the loss. td_lambda = 1: the target
    is the discounted return of the rest of the (terminated) episode."""
    from hygen.mixers import VDNMixer

    L = small_learner(maps=["3m"], q_network=_ObsTableQ, mixer=VDNMixer, conservative=NoConservativeLoss,
                      refinement=NoRefinement(), gamma=0.5, double_q=double_q, td_lambda=td_lambda)
    with torch.no_grad():
        L.target_q_network.scale.fill_(-2.0)  # a target network whose argmax differs from the live one
    b = random_episodes("3m", 3, lengths=[2, 4, 1], seed=3)
    _, stats = L._policy_loss(b.trim(), ratio=1.0)
    with torch.no_grad():
        data_skill = L.global_encoder(b.state[:, :-1], b.actions_onehot[:, :-1], "3m").argmax(-1)  # [B, T, n]
    q, K = b.obs[..., :4], 4
    errors = []
    for e, length in enumerate([2, 4, 1]):
        for t in range(length):
            q_tot = sum(q[e, t, i, data_skill[e, t, i]] for i in range(3))
            nxt = q[e, t + 1, :, :K]  # row t+1 exists for every step (the final observation row)
            target_q = -2.0 * nxt
            pick = nxt.argmax(-1) if double_q else target_q.argmax(-1)  # double-Q: the live network picks
            target_next = sum(target_q[i, pick[i]] for i in range(3))
            done = float(t == length - 1)
            y = b.reward[e, t, 0] + 0.5 * (1.0 - done) * target_next
            if td_lambda == 1.0:
                assert b.terminated[e, length - 1, 0] == 1.0
                y = sum(0.5 ** k * b.reward[e, t + k, 0] for k in range(length - t))
            errors.append(float(q_tot - y))
    expect = sum(x * x for x in errors) / len(errors)
    assert stats["td_loss"].item() == pytest.approx(expect, rel=1e-5)


def test_resume_keeps_the_bound_learning_rate():
    """A run resumed with another HyGenLearner.lr uses it (the optimizer state keeps only Adam's moments)."""
    L = small_learner(lr=5e-4)
    L.update(batches(), 0, "skill_discovery")
    L2 = small_learner(lr=1e-4)
    L2.load_state_dict(L.state_dict())
    assert all(g["lr"] == 1e-4 for g in L2.optimizer.param_groups)
    assert L2.optimizer.state  # the moments came along


def test_bad_settings_give_clear_errors():
    # the string bindings that became classes name their replacement
    with pytest.raises(HyGenConfigError, match="refine_weighting.*CloneWonEpisodes"):
        HyGenLearner(maps=["3m"], refine_weighting="best")
    with pytest.raises(HyGenConfigError, match="cql_samples.*CQLLoss.offline_only"):
        HyGenLearner(maps=["3m"], cql_samples="online")
    with pytest.raises(HyGenConfigError, match="td_lambda"):
        HyGenLearner(maps=["3m"], td_lambda=1.5)
    with pytest.raises(HyGenConfigError, match="online_skills.*ExecutedSkills"):
        HyGenLearner(maps=["3m"], online_skills="chosen")
    with pytest.raises(HyGenConfigError, match="refine_decoder.*NoRefinement"):
        HyGenLearner(maps=["3m"], refine_decoder=False)
    with pytest.raises(HyGenConfigError, match="unknown argument 'skils'"):
        HyGenLearner(maps=["3m"], skils=4)
    from hygen.learners.conditioning import ReturnToGo

    with pytest.raises(HyGenConfigError, match="return_conditioned is False.*bc_r.gin"):
        small_learner(maps=["3m"], return_conditioning=ReturnToGo())
    with pytest.raises(UnknownNameError, match="known maps"):
        HyGenLearner(maps=["3mm"])
    with pytest.raises(ValueError, match="unknown objective"):
        small_learner().update(batches(), 0, "pretrain")
    with pytest.raises(HyGenConfigError, match="num_skills"):
        from hygen.encoders import AttentionObservationEncoder

        HyGenLearner(maps=["3m"], num_skills=4, q_network=AttentionObservationEncoder(num_skills=3))


# ----- gin configs -------------------------------------------------------------------------
BASE = ["hygen", "tasksets/marine_hard", "data/medium"]


def _policy_phase():
    from hygen.trainer import Phase

    with gin.config_scope("policy"):
        return Phase()


@pytest.mark.parametrize("files,params,check", [
    ([], [], lambda L, p: isinstance(L.conservative, MixedCQLLoss) and L.conservative.mode == "dynamic"
     and L.num_skills == 4 and L.refinement.trains_decoder and type(p.sampler).__name__ == "LinearDecayRatio"
     and type(L.refinement) is CloneWonEpisodes and type(L.exploration) is EpsilonSkills
     and type(L.consistency) is KLConsistency and type(L.skill_labels) is RelabelledSkills),
    (["ablations/greedy_exploration"], [], lambda L, p: type(L.exploration) is EpsilonSkills
     and type(L.refinement) is CloneByReturn and L.refinement.trains_decoder),
    (["ablations/fixed_ratio_20"], [], lambda L, p: p.sampler.ratio(0) == 0.2),
    (["ablations/fixed_ratio_50"], [], lambda L, p: p.sampler.ratio(0) == 0.5),
    (["ablations/fixed_ratio_80"], [], lambda L, p: p.sampler.ratio(0) == 0.8),
    (["ablations/no_refinement"], [], lambda L, p: isinstance(L.refinement, NoRefinement)
     and not L.refinement.trains_decoder),
    (["ablations/no_cql"], [], lambda L, p: isinstance(L.conservative, NoConservativeLoss)),
    (["ablations/fixed_cql"], [], lambda L, p: isinstance(L.conservative, MixedCQLLoss)
     and L.conservative.mode == "fixed" and L.conservative.weight == 5.0),
    (["ablations/skill_count"], ["NUM_SKILLS = 6"], lambda L, p: L.num_skills == 6
     and L.global_encoder.transformer.attn.n_heads == 4),
    (["no_online"], [], lambda L, p: p.sampler.ratio(0) == 1.0 and not p.collect_online),
])
def test_configs_bind_what_they_say(files, params, check):
    config.parse_config(BASE + files, params)
    assert gin.query_parameter("%SOURCE_MAPS") == ["3m", "5m_vs_6m", "9m_vs_10m"]
    assert gin.query_parameter("%DATA_QUALITY") == "medium"
    L = HyGenLearner(maps=["3m"])
    assert check(L, _policy_phase())


def test_target_networks_sync_every_25_updates_with_the_mixed_cql_term():
    """Chosen together by the diagnostics (configs/hygen.gin): per-agent CQL needed a slow sync
    and then did not learn; the mixed term bounds Q_tot, so the sync can be fast."""
    config.parse_config(BASE)
    assert gin.query_parameter("Trainer.target_update_every") == 25
    assert gin.query_parameter("HyGenLearner.conservative").selector == "MixedCQLLoss"


@pytest.mark.parametrize("taskset", ["marine_easy", "marine_hard", "stalker_zealot"])
@pytest.mark.parametrize("quality", ["expert", "medium", "medium_expert", "medium_replay"])
def test_tasksets_and_data_configs(taskset, quality):
    from hygen.envs.maps import task_set

    config.parse_config(["hygen", f"tasksets/{taskset}", f"data/{quality}"])
    ts = task_set(taskset)
    assert tuple(gin.query_parameter("%SOURCE_MAPS")) == ts.source
    assert set(gin.query_parameter("%EVAL_MAPS")) == set(ts.maps)
    assert gin.query_parameter("%DATA_QUALITY") == quality.replace("_", "-")


def test_baseline_configs():
    config.parse_config(["odis", "tasksets/stalker_zealot", "data/expert"])
    L = HyGenLearner(maps=["2s3z"])
    p = _policy_phase()
    assert isinstance(L.conservative, ODISGapLoss) and L.conservative.mode == "fixed"
    assert isinstance(L.refinement, NoRefinement) and isinstance(L.consistency, ArgmaxConsistency)
    assert p.sampler.ratio(0) == 1.0 and not p.collect_online
    config.reset()
    config.parse_config(["bc_t", "tasksets/marine_easy", "data/expert"])
    assert HyGenLearner(maps=["3m"]).num_skills == 1
    assert len(gin.query_parameter("Trainer.phases")) == 1


def test_missing_taskset_is_reported_at_parse_time():
    with pytest.raises(config.GinConfigError, match="required macro.*SOURCE_MAPS"):  # left at %gin.REQUIRED
        config.parse_config(["hygen", "data/medium"])


# ----- learning on the real data (slow) -----------------------------------------------------
@pytest.mark.slow
def test_phase1_on_real_3m_learns_actions_and_uses_several_skills(real_3m_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: one thread is fastest under load
    try:
        _phase1_then_policy(real_3m_path)
    finally:
        torch.set_num_threads(threads)


def _phase1_then_policy(real_3m_path):
    data = read_episodes(real_3m_path, "3m", 0, 600)
    train, held_out = data[list(range(500))], data[list(range(500, 600))]
    L = HyGenLearner(maps=["3m"])
    g = torch.Generator().manual_seed(0)
    for step in range(60):
        idx = torch.randint(0, len(train), (32,), generator=g)
        b = train[idx]
        b.n_offline = 32
        stats = L.update({"3m": b}, step, "skill_discovery")
    with torch.no_grad():
        _, ev = L._skill_discovery_loss(held_out.trim())
    # chance: a uniformly random available action for living agents
    hb = held_out.trim()
    avail = hb.avail_actions[:, :-1].float()
    alive = avail[..., 1:].sum(-1) > 0
    mask = hb.mask.expand(-1, -1, 3).bool() & alive
    chance = (1.0 / avail.sum(-1))[mask].mean().item()
    assert ev["action_acc"].item() > 0.6 and ev["action_acc"].item() > 2.5 * chance, (ev, chance)
    assert ev["skills_used"].item() >= 2, ev
    assert stats["nll"] < 1.0

    # a few policy steps on the same data: finite losses, local encoder moves toward the global one
    first = None
    for step in range(15):
        idx = torch.randint(0, len(train), (32,), generator=g)
        b = train[idx]
        b.n_offline = 32
        s = L.update({"3m": b}, 60 + step, "policy")
        first = s if first is None else first
        if step % 5 == 4:
            L.update_targets()
    assert all(math.isfinite(v) and abs(v) < 1e6 for v in s.values())
    assert s["consistency_loss"] < first["consistency_loss"]


def test_frozen_skill_cache_changes_nothing_but_encodes_each_stored_episode_once():
    from hygen.buffers import FixedRatio, OfflineDataset, ReplayBuffer

    offline = OfflineDataset.from_batch(random_episodes("3m", 12, seed=1))
    online = ReplayBuffer("3m", capacity=6)
    online.insert(random_episodes("3m", 9, seed=2))  # ids 3..8 remain
    sampler, gen = FixedRatio(0.5), torch.Generator().manual_seed(0)
    batches = [{"3m": sampler.sample(offline, online, 8, 0, gen)} for _ in range(4)]
    cached, plain = small_learner(maps=["3m"]), small_learner(maps=["3m"], frozen_skill_cache=0)
    plain.load_state_dict(cached.state_dict())
    encoded = []
    forward = cached.global_encoder.forward
    cached.global_encoder.forward = lambda state, *a, **k: (encoded.append(state.shape[0]), forward(state, *a, **k))[1]

    for b in batches:
        s_cached, s_plain = cached.update(b, 0, "policy"), plain.update(b, 0, "policy")
        for k in ("td_loss", "consistency_loss", "cql_loss", "refine_nll", "loss"):
            assert math.isclose(s_cached[k], s_plain[k], rel_tol=1e-5, abs_tol=1e-6), k
    for name in ("q_network", "action_decoder", "mixer"):
        for p, q in zip(getattr(cached, name).parameters(), getattr(plain, name).parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    distinct = {(i < b["3m"].n_offline, int(e)) for b in batches for i, e in enumerate(b["3m"].episode_ids)}
    assert sum(encoded) == len(distinct) < 4 * 8  # each stored episode once, not once per sample
    cached.update({"3m": offline.sample(4, gen)}, 0, "skill_discovery")  # the encoder moves: cache dropped
    assert not cached._skill_caches


def test_refine_samples_offline_clones_only_the_offline_episodes():
    b = random_episodes("3m", 4, lengths=[5, 9, 3, 7], seed=0)
    b.n_offline = 2

    def refine_nll(batch, **kw):
        L = small_learner(maps=["3m"], refinement=CloneAllEpisodes(**kw))
        return float(L._policy_loss(batch.trim(), ratio=0.5)[1]["refine_nll"])

    only_offline = refine_nll(b, offline_only=True)
    assert only_offline == pytest.approx(refine_nll(b[[0, 1]]), rel=1e-5)  # the NLL of the offline part alone
    assert only_offline != pytest.approx(refine_nll(b), rel=1e-4)  # "all" also clones the online episodes
    b.n_offline = 0
    assert refine_nll(b, offline_only=True) == 0.0  # an all-online batch refines nothing
    with pytest.raises(HyGenConfigError, match="refine_samples.*offline_only"):
        small_learner(maps=["3m"], refine_samples="offline")
