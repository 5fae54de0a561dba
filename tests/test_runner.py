"""Runner: batch layout, masks vs. env termination, per-env hidden reset, stats."""

from __future__ import annotations

import pytest
import torch

from hygen.envs import get_map
from hygen.envs.sim import StepOutput
from hygen.learners.qmix import QMIXLearner
from hygen.runner import LinearEpsilon, Runner, epsilon_greedy, reset_agent_state

torch.set_num_threads(1)  # tiny networks on a shared 2-core CPU: extra threads only spin


class FakeEnv:
    """3m-shaped env with known episodes: env e's k-th episode lasts 2 + (e + k) % 5 steps,
    reward 1 per step, won when its length is even. obs[..., 0] = time index, obs[..., 1] = env id."""

    def __init__(self, num_envs: int = 4, map_name: str = "3m"):
        self.spec = get_map(map_name)
        self.env_info = self.spec.env_info
        self.num_envs = num_envs
        self.n, self.A = self.spec.n_agents, self.spec.n_actions
        self.k = torch.zeros(num_envs, dtype=torch.long)
        self.t = torch.zeros(num_envs, dtype=torch.long)
        self.needs_reset = torch.zeros(num_envs, dtype=torch.bool)

    def length(self) -> torch.Tensor:
        return 2 + (torch.arange(self.num_envs) + self.k) % 5

    def _obs(self):
        E = self.num_envs
        obs = torch.zeros(E, self.n, self.env_info["obs_shape"])
        obs[..., 0] = self.t[:, None].float()
        obs[..., 1] = torch.arange(E)[:, None].float()
        state = torch.zeros(E, self.env_info["state_shape"])
        state[:, 0] = self.t.float()
        return obs, state, torch.ones(E, self.n, self.A, dtype=torch.bool)

    def reset(self):
        self.t.zero_()
        self.needs_reset.zero_()
        return self._obs()

    def step(self, actions):
        reset = self.needs_reset.clone()
        self.k += reset.long()
        self.t = torch.where(reset, 0, self.t + 1)
        term = ~reset & (self.t >= self.length())
        won = term & (self.t % 2 == 0)
        self.needs_reset = term
        obs, state, avail = self._obs()
        reward = (~reset).float()
        info = {"battle_won": won, "dead_allies": torch.zeros_like(self.t),
                "dead_enemies": torch.zeros_like(self.t), "episode_limit": torch.zeros_like(won)}
        return StepOutput(obs, state, avail, reward, term, info, reset)


class CountingController:
    """State 'count' = steps since its episode began; acts min(count, A-1) so the batch shows it."""

    def __init__(self, n_actions: int, n_agents: int = 3):
        self.A, self.n = n_actions, n_agents

    def initial_state(self, map_name, num_envs):
        return {"count": torch.zeros(num_envs, self.n, dtype=torch.long)}

    def act(self, map_name, obs, avail, agent_state, epsilon, generator):
        c = agent_state["count"]
        return c.clamp(max=self.A - 1), {"count": c + 1}


def test_fake_env_episodes_rows_masks_and_hidden_reset():
    env = FakeEnv(num_envs=4)
    runner = Runner("3m", env=env, epsilon=LinearEpsilon(0.0, 0.0, 1))
    ctrl = CountingController(env.A)
    batch, stats = runner.collect(ctrl, n_episodes=13)
    assert len(batch) == stats.episodes == 13
    assert batch.obs.shape == (13, 61, 3, 30) and batch.state.shape == (13, 61, 48)
    assert batch.actions.shape == (13, 61, 3, 1) and batch.avail_actions.shape == (13, 61, 3, 9)
    L = batch.episode_lengths
    assert set(L.tolist()) <= {2, 3, 4, 5, 6}
    for b in range(13):  # check each episode row by row against the env's known dynamics
        n = int(L[b])
        assert batch.filled[b, :, 0].tolist() == [1.0] * (n + 1) + [0.0] * (60 - n)
        assert batch.terminated[b, :, 0].nonzero().flatten().tolist() == [n - 1]
        assert batch.obs[b, : n + 1, 0, 0].tolist() == list(range(n + 1))  # final obs in row n
        assert batch.obs[b, :, 0, 1].unique().numel() <= 2  # one env per episode (plus zero padding)
        assert batch.reward[b, :, 0].tolist() == [1.0] * n + [0.0] * (61 - n)
        # hidden state reset exactly at the episode start: action at row t == min(t, A-1)
        assert batch.actions[b, : n + 1, 0, 0].tolist() == [min(t, 8) for t in range(n + 1)]
        assert bool(batch.battle_won[b]) == (n % 2 == 0)
    assert batch.mask.sum().item() == L.sum().item()
    assert stats.lengths == L.tolist()
    assert stats.returns == [float(x) for x in L.tolist()]
    assert stats.wins == int(batch.battle_won.sum())
    assert runner.t_env >= int(L.sum())


def test_surplus_episodes_carry_over_and_t_env_counts_real_steps():
    env = FakeEnv(num_envs=4)
    runner = Runner("3m", env=env)
    ctrl = CountingController(env.A)
    total_env_steps = 0
    seen = []
    for _ in range(5):
        batch, stats = runner.collect(ctrl, n_episodes=3)
        assert len(batch) == 3
        total_env_steps += stats.env_steps
        seen += batch.episode_lengths.tolist()
    assert runner.t_env == total_env_steps
    # every step taken belongs to a handed-over episode or one still in flight/pending
    in_flight = int(runner.t.sum()) + sum(int(i[1].sum()) for i in runner._pending_info)
    assert sum(seen) + in_flight == total_env_steps
    batch, stats = runner.collect(ctrl, n_steps=10)
    assert stats.env_steps >= 10 and stats.episodes == (0 if batch is None else len(batch))


def test_real_sim_qmix_controller_batch_and_eval():
    learner = QMIXLearner(["3m"])
    runner = Runner("3m", num_envs=8, seed=3)
    batch, stats = runner.collect(learner.controller(), n_episodes=10)
    assert len(batch) == 10 and stats.epsilon == 1.0
    L = batch.episode_lengths
    assert (L >= 1).all() and (L <= 60).all()
    rows = torch.arange(10)
    assert (batch.terminated[rows, L - 1, 0] == 1).all() and batch.terminated.sum() == 10
    # chosen actions were available on every step row
    chosen = batch.avail_actions[:, :-1].gather(3, batch.actions[:, :-1]).squeeze(-1)
    assert chosen[batch.mask[..., 0].bool()].all()
    assert torch.allclose(batch.returns, torch.tensor(stats.returns), atol=1e-5)
    ev = runner.evaluate(learner.controller(), n_episodes=12)
    assert set(ev) == {"win_rate", "return_mean", "episode_length_mean"}
    assert 0.0 <= ev["win_rate"] <= 1.0 and 1 <= ev["episode_length_mean"] <= 60


@pytest.mark.parametrize("map_name", ["2s3z", "5m_vs_6m"])
def test_other_maps_shapes(map_name):
    learner = QMIXLearner([map_name])
    runner = Runner(map_name, num_envs=4, seed=0)
    batch, _ = runner.collect(learner.controller(), n_episodes=4)
    info = get_map(map_name).env_info
    assert batch.obs.shape == (4, info["episode_limit"] + 1, info["n_agents"], info["obs_shape"])
    assert batch.state.shape[-1] == info["state_shape"]


def test_epsilon_greedy_and_schedule_and_reset():
    q = torch.tensor([[[0.0, 5.0, 1.0, 9.0]]])
    avail = torch.tensor([[[True, True, True, False]]])
    assert epsilon_greedy(q, avail, 0.0).item() == 1  # best *available* action
    g = torch.Generator().manual_seed(0)
    qs, av = q.expand(2000, 1, 4), avail.expand(2000, 1, 4)
    a = epsilon_greedy(qs, av, 1.0, g)
    counts = torch.bincount(a.flatten(), minlength=4)
    assert counts[3] == 0 and (counts[:3] > 500).all()  # uniform over available ones
    eps = LinearEpsilon(1.0, 0.05, 100)
    assert eps(0) == 1.0 and eps(50) == pytest.approx(0.525) and eps(100) == eps(10**6) == 0.05
    with pytest.raises(ValueError, match="LinearEpsilon"):
        LinearEpsilon(1.5, 0.05, 10)
    state = {"h": torch.ones(3, 2, 4)}
    fresh = {"h": torch.zeros(3, 2, 4)}
    out = reset_agent_state(state, fresh, torch.tensor([False, True, False]))
    assert out["h"][1].abs().sum() == 0 and out["h"][0].sum() == 8 and out["h"][2].sum() == 8


def test_collect_arguments_are_checked():
    runner = Runner("3m", env=FakeEnv(2))
    with pytest.raises(ValueError, match="exactly one"):
        runner.collect(CountingController(9))


def test_runner_records_the_skills_a_controller_reports():
    """A skill controller's agent_state["skill"] of each step lands in the batch's skills (-1 elsewhere)."""
    from hygen.learners.hygen import HyGenLearner

    learner = HyGenLearner(["3m"])
    ctrl = learner.controller()
    seen = []

    class Spy:
        def initial_state(self, m, e):
            return ctrl.initial_state(m, e)

        def act(self, *a, **k):
            actions, state = ctrl.act(*a, **k)
            seen.append(state["skill"].clone())
            return actions, state

    runner = Runner("3m", num_envs=1, seed=0)
    batch, _ = runner.collect(Spy(), n_episodes=1, epsilon=1.0)
    L = int(batch.episode_lengths[0])
    assert torch.equal(batch.skills[0, :L, :, 0], torch.stack(seen[:L])[:, 0])
    assert (batch.skills[0, L:] == -1).all()
    assert torch.stack(seen).unique().numel() > 1
    qbatch, _ = Runner("3m", num_envs=1, seed=0).collect(QMIXLearner(["3m"]).controller(), n_episodes=1)
    assert qbatch.skills is None  # controllers without skills
