"""QMIX: mixer monotonicity, TD target by hand, and (slow) learning 3m well above random."""

from __future__ import annotations

import pytest
import torch

from hygen.buffers import EpisodeBatch
from hygen.learners.qmix import QMIXLearner, agent_inputs
from hygen.losses import lambda_returns
from hygen.mixers import QMixer
from hygen.rundir import RunDir
from hygen.runner import LinearEpsilon, Runner, epsilon_greedy
from hygen.trainer import Phase, Trainer

torch.set_num_threads(1)  # tiny networks on a shared 2-core CPU: extra threads only spin


def test_mixer_is_monotonic_in_every_agent_q():
    torch.manual_seed(0)
    mixer = QMixer(n_agents=3, state_dim=48, embed_dim=32, hypernet_embed=64)
    qs = torch.randn(4, 5, 3, requires_grad=True)
    states = torch.randn(4, 5, 48)
    q_tot = mixer(qs, states)
    assert q_tot.shape == (4, 5, 1)
    (grad,) = torch.autograd.grad(q_tot.sum(), qs)
    assert (grad >= 0).all()  # dQ_tot/dQ_i >= 0 (IGM)


def test_agent_inputs_layout():
    obs = torch.randn(2, 7, 3, 30)
    last = torch.zeros(2, 7, 3, 9)
    x = agent_inputs(obs, last)
    assert x.shape == (2, 7, 3, 30 + 9 + 3)
    assert torch.equal(x[0, 0, :, -3:], torch.eye(3))


def test_update_matches_hand_computed_td_target():
    """One-step episodes: target = r (terminal), so the loss is mean (Q_tot - r)^2 over agents' chosen Qs."""
    torch.manual_seed(0)
    learner = QMIXLearner(["3m"], gamma=0.99)
    batch = EpisodeBatch.zeros("3m", 4, max_seq_length=3)
    batch.obs.normal_()
    batch.state.normal_()
    batch.avail_actions[..., 1:] = True
    batch.actions[:, 0] = torch.randint(1, 9, (4, 3, 1))
    batch.reward[:, 0, 0] = torch.tensor([1.0, 2.0, 0.0, -1.0])
    batch.terminated[:, 0] = 1.0
    batch.filled[:, :2] = 1.0
    with torch.no_grad():
        onehot = torch.nn.functional.one_hot(batch.actions.squeeze(-1), 9).float()
        last = torch.cat([torch.zeros_like(onehot[:, :1]), onehot[:, :-1]], 1)
        q = learner.agent.unroll(agent_inputs(batch.obs, last))
        chosen = q[:, :1].gather(3, batch.actions[:, :1]).squeeze(3)
        expected = ((learner.mixer(chosen, batch.state[:, :1]) - batch.reward[:, :1]) ** 2).mean()
    metrics = learner.update({"3m": batch}, 0, "online")
    assert metrics["loss"] == pytest.approx(float(expected), rel=1e-5)


def test_lambda_returns_match_hand_computation():
    # episode 0: 3 steps, terminated at t=2, one padded step; episode 1: 2 steps of data, not terminated
    r = torch.tensor([[1.0, 2.0, 3.0, 0.0], [1.0, 2.0, 0.0, 0.0]])[..., None]
    d = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])[..., None]
    m = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])[..., None]
    v = torch.tensor([[10.0, 20.0, 30.0, 40.0], [10.0, 20.0, 30.0, 40.0]])[..., None]
    one_step = lambda_returns(r, d, m, v, 0.5, 0.0)[..., 0]
    assert torch.allclose(one_step[0, :3], torch.tensor([6.0, 12.0, 3.0]))
    half = lambda_returns(r, d, m, v, 0.5, 0.5)[..., 0]
    # G2 = 3; G1 = 2 + .5 (.5*20 + .5*3) = 7.75; G0 = 1 + .5 (.5*10 + .5*7.75) = 5.4375
    assert torch.allclose(half[0, :3], torch.tensor([5.4375, 7.75, 3.0]))
    mc = lambda_returns(r, d, m, v, 0.5, 1.0)[..., 0]
    assert torch.allclose(mc[0, :3], torch.tensor([2.75, 3.5, 3.0]))  # Monte Carlo return
    # no data after t=1: bootstrap from V of row 2 (20), then G0 = 1 + .5 * 12
    assert torch.allclose(mc[1, :2], torch.tensor([7.0, 12.0]))


def test_state_dict_round_trip_and_wrong_map():
    a, b = QMIXLearner(["3m"]), QMIXLearner(["3m"])
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 42)
    h = torch.zeros(2, 3, 64)
    assert torch.equal(a.agent.step(x, h)[0], b.agent.step(x, h)[0])
    with pytest.raises(ValueError, match="single-task"):
        QMIXLearner(["3m", "5m"])
    with pytest.raises(ValueError, match="map_name='3m', this learner '4m'"):
        QMIXLearner(["4m"]).load_state_dict(a.state_dict())


class RandomController:
    def initial_state(self, map_name, num_envs):
        return {}

    def act(self, map_name, obs, avail, agent_state, epsilon, generator):
        return epsilon_greedy(torch.zeros(avail.shape), avail, 1.0, generator), agent_state


@pytest.mark.slow
def test_qmix_learns_3m_above_random(tmp_path, monkeypatch):
    monkeypatch.setenv("HYGEN_NO_PROGRESS", "1")
    from hygen.utils import seed_everything

    seed_everything(0)  # network init must not depend on which tests ran before
    learner = QMIXLearner(["3m"])
    random_wr = Runner("3m", num_envs=8, seed=7).evaluate(RandomController(), 64)["win_rate"]
    trainer = Trainer(run_dir=RunDir(tmp_path), seed=0, device="cpu", learner=learner, source_maps=["3m"],
                      # 3000 updates (~86k env steps): since the built-in AI answers attackers and
                      # fires on its weapon period (issue 14), 1500 were no longer enough on 3m
                      # (best of the last 4 evaluations 0.09; at 3000: 0.59)
                      phases=[Phase("online", 3000)], num_envs=8, epsilon=LinearEpsilon(1.0, 0.05, 15_000),
                      target_update_every=200, eval_every=250, eval_episodes=32, checkpoint_every=10_000)
    res = trainer.run()
    curve = [e["win_rate"]["3m"] for e in res["evals"]]
    print("random", random_wr, "QMIX win rate curve", curve, "env steps", res["env_steps"],
          "wall", res["wall_time_s"])
    assert random_wr <= 0.05
    assert max(curve[-4:]) >= 0.25, curve  # clearly above the random policy (~0 %)
