"""Batched rollout runner: one controller acting in E parallel environments of one map.

Episodes are written into preallocated ``[E, T+1, ...]`` storage indexed by each
environment's own time step, the PyMARL/ODIS layout: row ``t < L`` holds
(obs_t, state_t, avail_t, a_t, r_t, terminated_t), row ``L`` the final obs/state/avail
(and the action the controller picked there, as PyMARL records it), ``filled`` is 1 on
rows ``0..L`` and ``terminated`` is 1 on row ``L-1`` (timeouts included, as in ODIS's
data). Finished episodes are handed over as ONE :class:`EpisodeBatch`.

The simulator auto-resets: an environment that ended on call k is reset at the start
of call k+1 (``out.reset_mask``) and ignores the actions given there. The runner uses
that call to record the final-row action, hand the episode over and start the next one,
with the controller's recurrent state reset for exactly those environments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import gin
import torch
from torch import Tensor

from hygen.buffers.scheme import EPISODE_SCHEME, allocate
from hygen.learners.exploration import epsilon_greedy

__all__ = [
    "Controller",
    "LinearEpsilon",
    "RolloutStats",
    "Runner",
    "epsilon_greedy",
    "reset_agent_state",
]


@runtime_checkable
class Controller(Protocol):
    """What the runner needs from a policy. Exploration happens inside ``act``. Optional:
    ``observe_reward(agent_state, reward)`` is called after every env step (BC-r)."""

    def initial_state(self, map_name: str, num_envs: int) -> dict[str, Tensor]:
        """Recurrent state (hidden, last action, ...) of a fresh episode; leading dim num_envs."""
        ...

    def act(self, map_name: str, obs: Tensor, avail: Tensor, agent_state: dict[str, Tensor],
            epsilon: float, generator: torch.Generator | None) -> tuple[Tensor, dict[str, Tensor]]:
        """Actions [E, n] (long, always available ones) and the new agent state."""
        ...


def reset_agent_state(state: dict[str, Tensor], fresh: dict[str, Tensor], mask: Tensor) -> dict[str, Tensor]:
    """Per-environment reset: entries where ``mask`` [E] is True take ``fresh``'s values."""
    out = {}
    for k, v in state.items():
        m = mask.view(-1, *([1] * (v.dim() - 1))).to(v.device)
        out[k] = torch.where(m, fresh[k].to(v.device, v.dtype), v)
    return out


@gin.configurable
class LinearEpsilon:
    """epsilon(t) = start -> finish linearly over ``anneal_steps`` env steps, then constant (PyMARL)."""

    def __init__(self, start: float = 1.0, finish: float = 0.05, anneal_steps: int = 50_000):
        if anneal_steps < 0 or not (0.0 <= finish <= 1.0 and 0.0 <= start <= 1.0):
            raise ValueError(f"LinearEpsilon: need 0 <= start, finish <= 1 and anneal_steps >= 0, got "
                             f"start={start}, finish={finish}, anneal_steps={anneal_steps}")
        self.start, self.finish, self.anneal_steps = float(start), float(finish), int(anneal_steps)

    def __call__(self, t: int) -> float:
        if t >= self.anneal_steps:
            return self.finish
        frac = max(t, 0) / self.anneal_steps
        return self.start + frac * (self.finish - self.start)


@dataclass
class RolloutStats:
    """What one ``collect`` call did (episodes = those handed over)."""

    episodes: int = 0
    env_steps: int = 0
    wins: int = 0
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    epsilon: float = 0.0

    @property
    def win_rate(self) -> float:
        return self.wins / max(self.episodes, 1)

    @property
    def return_mean(self) -> float:
        return sum(self.returns) / max(len(self.returns), 1)

    @property
    def episode_length_mean(self) -> float:
        return sum(self.lengths) / max(len(self.lengths), 1)


# Episodes in flight are stored as the episode scheme says (hygen.buffers.scheme); "skills":
# what a skill controller's agent_state["skill"] held at each step (-1: none).
_FIELDS = tuple(EPISODE_SCHEME)


class Runner:
    """E parallel environments of one map driven by a :class:`Controller`.

    Environments persist across ``collect`` calls (an episode in flight at the end of
    one call continues in the next), so any number of episodes can be asked for with
    any E. ``evaluate`` uses its own environments and plays fresh episodes.
    """

    def __init__(self, map_name: str, num_envs: int = 8, seed: int = 0, device: str | torch.device = "cpu",
                 epsilon: LinearEpsilon | None = None, env=None):
        from hygen.envs import get_map

        self.spec = get_map(map_name)  # fails clearly on an unknown map
        self.map_name = map_name
        self.device = torch.device(device)
        self.seed = int(seed)
        self.epsilon = epsilon if epsilon is not None else LinearEpsilon()
        self._env = env  # training envs, made on first use (an eval-only runner never needs them)
        info = env.env_info if env is not None else self.spec.env_info
        self.num_envs = int(getattr(env, "num_envs", num_envs)) if env is not None else int(num_envs)
        self.n_agents, self.n_actions = int(info["n_agents"]), int(info["n_actions"])
        self.obs_dim, self.state_dim = int(info["obs_shape"]), int(info["state_shape"])
        self.episode_limit = int(info["episode_limit"])
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.seed + 1)
        self.t_env = 0  # env transitions taken by this runner's training envs (all envs summed)
        self.episodes_done = 0
        self._eval_env = None
        self._eval_env_n = 0
        self._started = False
        self._pending: list[dict[str, Tensor]] = []  # finished episodes not handed over yet
        self._pending_info: list[tuple[Tensor, Tensor, Tensor]] = []  # (return, length, won)
        self._alloc()

    @property
    def env(self):
        if self._env is None:
            from hygen.envs import make

            self._env = make(self.map_name, num_envs=self.num_envs, seed=self.seed, device=self.device)
        return self._env

    # ---------------------------------------------------------------- storage
    def _alloc(self) -> None:
        E, T1, dev = self.num_envs, self.episode_limit + 1, self.device
        self.buf = allocate(self.spec, E, T1, "storage", dev)
        self.t = torch.zeros(E, dtype=torch.long, device=dev)  # each env's current row
        self.ep_return = torch.zeros(E, device=dev)
        self.ep_won = torch.zeros(E, dtype=torch.bool, device=dev)

    def _write_first(self, idx: Tensor, obs: Tensor, state: Tensor, avail: Tensor) -> None:
        """Start fresh episodes in envs ``idx`` (row 0)."""
        for k in _FIELDS:
            self.buf[k][idx] = EPISODE_SCHEME[k].fill
        self.t[idx] = 0
        self.ep_return[idx] = 0.0
        self.ep_won[idx] = False
        self.buf["obs"][idx, 0] = obs[idx]
        self.buf["state"][idx, 0] = state[idx]
        self.buf["avail_actions"][idx, 0] = avail[idx].bool()
        self.buf["filled"][idx, 0] = True

    def _start(self, controller: Controller) -> None:
        obs, state, avail = self.env.reset()
        self.obs, self.state, self.avail = obs, state, avail.bool()
        self._write_first(torch.arange(self.num_envs, device=self.device), obs, state, self.avail)
        self.agent_state = controller.initial_state(self.map_name, self.num_envs)
        self._started = True

    # ---------------------------------------------------------------- stepping
    def _step(self, controller: Controller, epsilon: float) -> int:
        """One batched env step; returns the number of real transitions taken."""
        actions, new_state = controller.act(self.map_name, self.obs, self.avail, self.agent_state,
                                            epsilon, self.generator)
        skills = new_state.get("skill")  # [E, n] of a skill controller, else None
        out = self.env.step(actions)
        new_state = _observe_reward(controller, new_state, out.reward)
        reset = out.reset_mask.bool()
        stepped = (~reset).nonzero(as_tuple=True)[0]
        if stepped.numel():
            e, t = stepped, self.t[stepped]
            if int(t.max()) >= self.episode_limit:
                raise RuntimeError(f"{self.map_name}: an episode ran past episode_limit={self.episode_limit} "
                                   "without the environment ending it")
            self.buf["actions"][e, t] = actions[e].unsqueeze(-1).to(self.buf["actions"].dtype)
            if skills is not None:
                self.buf["skills"][e, t] = skills[e].unsqueeze(-1).to(self.buf["skills"].dtype)
            self.buf["reward"][e, t, 0] = out.reward[e].float()
            term = out.terminated[e].bool()
            self.buf["terminated"][e, t, 0] = term
            t1 = t + 1
            self.buf["obs"][e, t1] = out.obs[e]
            self.buf["state"][e, t1] = out.state[e]
            self.buf["avail_actions"][e, t1] = out.avail_actions[e].bool()
            self.buf["filled"][e, t1] = True
            self.t[e] = t1
            self.ep_return[e] += out.reward[e].float()
            self.ep_won[e] = self.ep_won[e] | (term & out.info["battle_won"][e].bool())
        ended = reset.nonzero(as_tuple=True)[0]
        if ended.numel():
            # PyMARL records the action picked on the final observation in the final row.
            self.buf["actions"][ended, self.t[ended]] = actions[ended].unsqueeze(-1).to(self.buf["actions"].dtype)
            self._pending.append({k: self.buf[k][ended].clone() for k in _FIELDS})
            self._pending_info.append((self.ep_return[ended].clone(), self.t[ended].clone(),
                                       self.ep_won[ended].clone()))
            self._write_first(ended, out.obs, out.state, out.avail_actions.bool())
            fresh = controller.initial_state(self.map_name, self.num_envs)
            new_state = reset_agent_state(new_state, fresh, reset)
        self.obs, self.state, self.avail = out.obs, out.state, out.avail_actions.bool()
        self.agent_state = new_state
        n = int(stepped.numel())
        self.t_env += n
        return n

    def _n_pending(self) -> int:
        return sum(int(x[1].numel()) for x in self._pending_info)

    def _hand_over(self, limit: int | None) -> tuple[dict[str, Tensor], tuple[Tensor, Tensor, Tensor]]:
        eps = {k: torch.cat([p[k] for p in self._pending]) for k in _FIELDS}
        info = tuple(torch.cat([p[i] for p in self._pending_info]) for i in range(3))
        self._pending, self._pending_info = [], []
        if limit is not None and info[0].numel() > limit:  # keep the surplus for the next call
            self._pending = [{k: v[limit:] for k, v in eps.items()}]
            self._pending_info = [tuple(x[limit:] for x in info)]
            eps = {k: v[:limit] for k, v in eps.items()}
            info = tuple(x[:limit] for x in info)
        return eps, info

    @torch.no_grad()
    def collect(self, controller: Controller, n_episodes: int | None = None, n_steps: int | None = None,
                epsilon: float | None = None):
        """Run until ``n_episodes`` episodes finished (exactly that many are returned) or
        ``n_steps`` env transitions were taken (the episodes finished meanwhile are returned).

        ``epsilon`` defaults to the schedule at this runner's ``t_env``.
        Returns ``(EpisodeBatch | None, RolloutStats)``; None when no episode finished.
        """
        if (n_episodes is None) == (n_steps is None):
            raise ValueError("Runner.collect: give exactly one of n_episodes or n_steps")
        if not self._started:
            self._start(controller)
        _bind(controller, self.env)
        eps = float(self.epsilon(self.t_env) if epsilon is None else epsilon)
        stats = RolloutStats(epsilon=eps)
        while True:
            if n_episodes is not None and self._n_pending() >= n_episodes:
                break
            if n_steps is not None and stats.env_steps >= n_steps:
                break
            stats.env_steps += self._step(controller, eps)
            if epsilon is None:
                eps = float(self.epsilon(self.t_env))
        if not self._pending:
            return None, stats
        fields, (ret, length, won) = self._hand_over(n_episodes)
        stats.episodes = int(ret.numel())
        stats.wins = int(won.sum())
        stats.returns = ret.tolist()
        stats.lengths = length.tolist()
        self.episodes_done += stats.episodes
        return make_episode_batch(fields, self.map_name, won), stats

    @torch.no_grad()
    def evaluate(self, controller: Controller, n_episodes: int = 32, max_envs: int = 64) -> dict[str, float]:
        """Greedy test: ``n_episodes`` fresh episodes on separate environments.

        Each eval environment plays exactly one episode per round (so short episodes are
        not over-counted). Returns win_rate, return_mean, episode_length_mean.
        """
        from hygen.envs import make

        E = min(n_episodes, max_envs)
        if self._eval_env is None or self._eval_env_n != E:
            self._eval_env = make(self.map_name, num_envs=E, seed=self.seed + 100_003, device=self.device)
            self._eval_env_n = E
        env = self._eval_env
        _bind(controller, env)
        wins, returns, lengths = [], [], []
        remaining = n_episodes
        while remaining > 0:
            obs, _state, avail = env.reset()
            agent_state = controller.initial_state(self.map_name, E)
            ret = torch.zeros(E, device=self.device)
            length = torch.zeros(E, dtype=torch.long, device=self.device)
            won = torch.zeros(E, dtype=torch.bool, device=self.device)
            running = torch.ones(E, dtype=torch.bool, device=self.device)
            for _ in range(self.episode_limit + 1):
                actions, agent_state = controller.act(self.map_name, obs, avail.bool(), agent_state, 0.0,
                                                      self.generator)
                out = env.step(actions)
                agent_state = _observe_reward(controller, agent_state, out.reward)
                live = running & ~out.reset_mask.bool()
                ret += torch.where(live, out.reward.float(), torch.zeros_like(ret))
                length += live.long()
                term = live & out.terminated.bool()
                won |= term & out.info["battle_won"].bool()
                running &= ~term
                obs, avail = out.obs, out.avail_actions
                if not bool(running.any()):
                    break
            k = min(E, remaining)
            wins.append(won[:k].float())
            returns.append(ret[:k])
            lengths.append(length[:k].float())
            remaining -= k
        if self._env is not None:
            _bind(controller, self._env)
        return {"win_rate": float(torch.cat(wins).mean()), "return_mean": float(torch.cat(returns).mean()),
                "episode_length_mean": float(torch.cat(lengths).mean())}

    # ---------------------------------------------------------------- resume
    def state_dict(self) -> dict:
        """Counters, RNG, and, with the built-in simulator, the episodes in flight and the
        evaluation environments: a resumed run then plays exactly what an uninterrupted one
        would have played. (Environments without ``state_dict``, e.g. real SC2, restart.)"""
        sd = {"t_env": self.t_env, "episodes_done": self.episodes_done, "generator": self.generator.get_state()}
        if self._eval_env is not None and hasattr(self._eval_env, "state_dict"):
            sd["eval_env"] = self._eval_env.state_dict()
        if self._started and hasattr(self.env, "state_dict"):
            sd["in_flight"] = {
                "env": self.env.state_dict(), "buf": {k: v.clone() for k, v in self.buf.items()},
                "t": self.t.clone(), "ep_return": self.ep_return.clone(), "ep_won": self.ep_won.clone(),
                "observed": (self.obs, self.state, self.avail), "agent_state": dict(self.agent_state),
                "pending": list(self._pending), "pending_info": list(self._pending_info)}
        return sd

    def load_state_dict(self, sd: dict) -> None:
        self.t_env = int(sd["t_env"])
        self.episodes_done = int(sd["episodes_done"])
        self.generator.set_state(sd["generator"].cpu())
        self._started = False
        self._pending, self._pending_info = [], []
        if "eval_env" in sd:
            from hygen.envs import make

            n = int(sd["eval_env"]["num_envs"])
            self._eval_env = make(self.map_name, num_envs=n, seed=self.seed + 100_003, device=self.device)
            self._eval_env.load_state_dict(sd["eval_env"])
            self._eval_env_n = n
        flight = sd.get("in_flight")
        if flight is not None and hasattr(self.env, "load_state_dict"):
            self.env.load_state_dict(flight["env"])
            dev = self.device
            for k, v in flight["buf"].items():
                self.buf[k].copy_(v)
            self.t, self.ep_return, self.ep_won = (flight[k].to(dev) for k in ("t", "ep_return", "ep_won"))
            self.obs, self.state, self.avail = (x.to(dev) for x in flight["observed"])
            self.agent_state = {k: v.to(dev) for k, v in flight["agent_state"].items()}
            self._pending = [{k: v.to(dev) for k, v in p.items()} for p in flight["pending"]]
            self._pending_info = [tuple(x.to(dev) for x in info) for info in flight["pending_info"]]
            self._started = True


def _bind(controller, env) -> None:
    """Scripted controllers read the environment they act in (``bind_env``)."""
    bind = getattr(controller, "bind_env", None)
    if bind is not None:
        bind(env)


def _observe_reward(controller, agent_state: dict[str, Tensor], reward: Tensor) -> dict[str, Tensor]:
    """Controllers that condition on the rewards received (BC-r's return-to-go) define
    ``observe_reward(agent_state, reward [E]) -> agent_state``; others are left alone."""
    observe = getattr(controller, "observe_reward", None)
    return agent_state if observe is None else observe(agent_state, reward)


def make_episode_batch(fields: dict[str, Tensor], map_name: str, won: Tensor | None = None):
    """Build a hygen.buffers.EpisodeBatch from runner storage."""
    from hygen.buffers.episode import EpisodeBatch

    fields = dict(fields)
    if "skills" in fields and not bool((fields["skills"] >= 0).any()):
        fields["skills"] = None  # the controller reports no skills
    return EpisodeBatch(map_name=map_name, won=won, **fields)
