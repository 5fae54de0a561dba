"""QMIX (Rashid et al. 2018), single-task, PyMARL defaults: the online baseline and the
data-collection policy.

Agents: one GRU network shared by all agents, input [obs, last action one-hot, agent id
one-hot]. Mixer: :class:`hygen.mixers.QMixer`. Loss: masked one-step TD with double-Q
targets from target networks::

    y_t = r_t + gamma * (1 - terminated_t) * Q_tot^-(s_{t+1}, Q_i^-(tau_{t+1}, argmax_a Q_i(tau_{t+1}, a)))
    L   = sum_t mask_t * (Q_tot(s_t, Q_i(tau_t, a_t)) - y_t)^2 / sum_t mask_t
"""

from __future__ import annotations

import copy

import gin
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hygen.learners.base import LearnerBase
from hygen.learners.exploration import epsilon_greedy
from hygen.losses.objectives import lambda_returns
from hygen.mixers.qmix import QMixer
from hygen.utils import check_sizes

# Value given to unavailable actions before the max over next-step actions (PyMARL).
_UNAVAILABLE = -9999.0


@gin.configurable
class RNNAgent(nn.Module):
    """Per-agent recurrent Q network: fc -> ReLU -> GRUCell -> fc (PyMARL's rnn agent)."""

    def __init__(self, input_dim: int, n_actions: int, hidden_dim: int = 64):
        super().__init__()
        check_sizes("RNNAgent", hidden_dim=hidden_dim)
        self.hidden_dim = hidden_dim
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.rnn = nn.GRUCell(hidden_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, n_actions)

    def step(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """One time step. x [..., in], h [..., H] -> q [..., A], h' [..., H]."""
        lead = x.shape[:-1]
        h = self.rnn(F.relu(self.fc1(x)).reshape(-1, self.hidden_dim), h.reshape(-1, self.hidden_dim))
        return self.fc2(h).view(*lead, -1), h.view(*lead, self.hidden_dim)

    def unroll(self, x: Tensor) -> Tensor:
        """Whole sequences from a zero hidden state. x [B, T, n, in] -> q [B, T, n, A]."""
        B, T, n, _ = x.shape
        z = F.relu(self.fc1(x))  # input layer for all t at once; only the GRU is sequential
        h = z.new_zeros(B * n, self.hidden_dim)
        hs = []
        for t in range(T):
            h = self.rnn(z[:, t].reshape(B * n, -1), h)
            hs.append(h)
        return self.fc2(torch.stack(hs, 1).view(B, n, T, -1).transpose(1, 2))


def agent_inputs(obs: Tensor, last_actions_onehot: Tensor) -> Tensor:
    """[obs, last action, agent id] for every agent. obs [..., n, obs], last [..., n, A]."""
    n = obs.shape[-2]
    ids = torch.eye(n, device=obs.device, dtype=obs.dtype).expand(*obs.shape[:-2], n, n)
    return torch.cat([obs, last_actions_onehot.to(obs.dtype), ids], dim=-1)


class QMIXController:
    """Acting with the live agent network: ONE forward pass for all environments."""

    def __init__(self, agent: RNNAgent, map_name: str, n_agents: int, n_actions: int):
        self.agent, self.map_name, self.n_agents, self.n_actions = agent, map_name, n_agents, n_actions

    def _check(self, map_name: str) -> None:
        if map_name != self.map_name:
            raise ValueError(f"QMIX is single-task: trained on {self.map_name!r}, asked to act on {map_name!r}")

    def initial_state(self, map_name: str, num_envs: int) -> dict[str, Tensor]:
        self._check(map_name)
        dev = next(self.agent.parameters()).device
        return {"hidden": torch.zeros(num_envs, self.n_agents, self.agent.hidden_dim, device=dev),
                "last_action": torch.zeros(num_envs, self.n_agents, self.n_actions, device=dev)}

    @torch.no_grad()
    def act(self, map_name: str, obs: Tensor, avail: Tensor, agent_state: dict[str, Tensor], epsilon: float,
            generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        self._check(map_name)
        q, h = self.agent.step(agent_inputs(obs, agent_state["last_action"]), agent_state["hidden"])
        actions = epsilon_greedy(q, avail, epsilon, generator)
        return actions, {"hidden": h, "last_action": F.one_hot(actions, self.n_actions).float()}


@gin.configurable
class QMIXLearner(LearnerBase):
    """Single-task QMIX. ``maps`` must name exactly one map."""

    def __init__(self, maps, device: str | torch.device = "cpu", hidden_dim: int = 64,
                 mixing_embed_dim: int = 32, hypernet_embed: int = 64, lr: float = 5e-4,
                 optim_alpha: float = 0.99, optim_eps: float = 1e-5, gamma: float = 0.99,
                 grad_norm_clip: float = 10.0, double_q: bool = True, optimizer: str = "rmsprop",
                 td_lambda: float = 0.0):
        from hygen.envs import get_map

        maps = [maps] if isinstance(maps, str) else list(maps)
        if len(maps) != 1:
            raise ValueError(f"QMIXLearner is single-task; got maps={maps}. Bind SOURCE_MAPS to one map.")
        self.map_name = maps[0]
        info = get_map(self.map_name).env_info
        self.n_agents, self.n_actions = info["n_agents"], info["n_actions"]
        self.device = torch.device(device)
        if optimizer not in ("rmsprop", "adam"):
            raise ValueError(f"QMIXLearner.optimizer must be 'rmsprop' or 'adam', got {optimizer!r}")
        if not 0.0 <= td_lambda <= 1.0:
            raise ValueError(f"QMIXLearner.td_lambda must be in [0, 1], got {td_lambda}")
        self.gamma, self.grad_norm_clip, self.double_q = gamma, grad_norm_clip, double_q
        self.td_lambda = float(td_lambda)
        in_dim = info["obs_shape"] + self.n_actions + self.n_agents
        self.agent = RNNAgent(in_dim, self.n_actions, hidden_dim).to(self.device)
        self.mixer = QMixer(self.n_agents, info["state_shape"], mixing_embed_dim, hypernet_embed).to(self.device)
        self.target_agent = copy.deepcopy(self.agent).requires_grad_(False)
        self.target_mixer = copy.deepcopy(self.mixer).requires_grad_(False)
        self.params = list(self.agent.parameters()) + list(self.mixer.parameters())
        if optimizer == "adam":  # pymarl2 (Hu et al. 2021)
            self.optimizer = torch.optim.Adam(self.params, lr=lr)
        else:  # PyMARL
            self.optimizer = torch.optim.RMSprop(self.params, lr=lr, alpha=optim_alpha, eps=optim_eps)
        self._controller = QMIXController(self.agent, self.map_name, self.n_agents, self.n_actions)

    def controller(self) -> QMIXController:
        return self._controller

    def _q_values(self, agent: RNNAgent, obs: Tensor, last_actions: Tensor) -> Tensor:
        return agent.unroll(agent_inputs(obs, last_actions))  # [B, T+1, n, A]

    def update(self, batches: dict, step: int, phase: str) -> dict[str, float]:
        if set(batches) != {self.map_name}:
            raise ValueError(f"QMIXLearner({self.map_name!r}) got batches for {sorted(batches)}")
        b = batches[self.map_name]
        obs, state = b.obs.to(self.device), b.state.to(self.device)
        actions = b.actions.to(self.device).long()
        avail = b.avail_actions.to(self.device).bool()
        reward = b.reward.to(self.device)[:, :-1].float()
        terminated = b.terminated.to(self.device)[:, :-1].float()
        mask = b.mask.to(self.device).float()  # [B, T, 1]: filled and not after termination

        last = b.last_actions_onehot.to(self.device)  # [B, T+1, n, A]
        q = self._q_values(self.agent, obs, last)  # [B, T+1, n, A]
        chosen = q[:, :-1].gather(3, actions[:, :-1]).squeeze(3)  # [B, T, n]
        with torch.no_grad():
            target_q = self._q_values(self.target_agent, obs, last)[:, 1:]
            target_q = target_q.masked_fill(~avail[:, 1:], _UNAVAILABLE)
            if self.double_q:  # action chosen by the live network, valued by the target one
                best = q.detach()[:, 1:].masked_fill(~avail[:, 1:], _UNAVAILABLE).argmax(3, keepdim=True)
                target_max = target_q.gather(3, best).squeeze(3)
            else:
                target_max = target_q.max(3).values
            next_v = self.target_mixer(target_max, state[:, 1:])  # Q_tot^-(s_{t+1}, greedy a'), [B, T, 1]
            y = lambda_returns(reward, terminated, mask, next_v, self.gamma, self.td_lambda)
        q_tot = self.mixer(chosen, state[:, :-1])
        td = (q_tot - y) * mask
        loss = td.pow(2).sum() / mask.sum().clamp(min=1.0)  # masked mean squared TD error

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_norm_clip)
        self.optimizer.step()
        n = mask.sum().clamp(min=1.0)
        td, chosen = td.detach(), chosen.detach()
        return {"loss": float(loss.detach()), "grad_norm": float(grad_norm),
                "td_error_abs": float(td.abs().sum() / n),
                "q_taken_mean": float((chosen * mask).sum() / (n * self.n_agents)),
                "target_mean": float((y * mask).sum() / n)}

    multi_task = False
    _MODULES = ("agent", "mixer", "target_agent", "target_mixer")
    _TARGETS = (("target_agent", "agent"), ("target_mixer", "mixer"))

    def _checkpoint_fingerprint(self) -> dict:
        return {"map_name": self.map_name}
