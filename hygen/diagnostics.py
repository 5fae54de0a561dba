"""Diagnostics recorded at every evaluation (issue #15): does the value track the return,
does the online data come from a policy like the evaluated one, do the skills differ?

``Diagnostics`` is a trainer callback (``Trainer.diagnostics = @Diagnostics()``, on in
``configs/hygen.gin``). Per source map, at every evaluation, it adds to the evaluation
record (``results.json`` ``evals[i]["diagnostics"][map]``) and to TensorBoard
(``diag/<map>/<name>``):

value vs return, on held-out offline episodes (``offline_*``: the first ``value_episodes``
of the map's first dataset file, which training never reads when the file holds more than
``Trainer.offline_episodes + value_episodes``; ``offline_held_out`` says whether it does)
and on the most recent online episodes (``online_*``):
    value_corr    Pearson correlation over alive steps of Q_tot(s_t, data skill/action)
                  with the discounted return G_t = sum_k gamma^k r_{t+k}
    q_tot_mean, return_mean   their means (Q_tot should sit near the return scale)
    skill_agreement           executed skill == the global encoder's relabelled skill, on
                              alive agent-steps of online episodes (skill learners)
    label_share [K], labels_used   offline only (skill learners): how often the global encoder
                              labels the held-out alive agent-steps with each skill, and the
                              skills on more than 5 % of them. Phase 2's values learn these
                              labels, so a map labelled with two skills gets two skills used.
online vs greedy:
    online_win_rate, online_epsilon   the episodes collected since the last evaluation
    greedy_win_rate                   this evaluation's test win rate
play (every ``play_every``-th evaluation, ``play_episodes`` greedy episodes each, skill
learners: the controller has ``fixed_skill``):
    skill_share [K]       how often greedy play picks each skill (alive agent-steps);
    skills_used           skills picked on more than 5 % of them
    action_hist [7]       greedy play's actions: no-op, stop, north, south, east, west, attack
    forced_win_rate [K], forced_action_hist [K][7]   every agent forced to skill k
    distinct_forced_play  forced skills whose action histograms differ pairwise by more
                          than ``distinct_tv`` in total variation (a greedy count)

Learners opt in with ``value_estimates(batch) -> Q_tot [B, T, 1]`` (at the batch's data
skills or actions) and, for skills, ``relabelled_skills(batch) -> [B, T, n]``; whatever a
learner lacks is left out. The play episodes (greedy and every forced skill, one batch of
(1 + K) x ``play_episodes`` environments) run on environments made afresh for each evaluation
(seeded), so they change neither the test episodes nor resume.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import gin
import torch
import torch.nn.functional as F
from torch import Tensor

ACTION_CLASSES = ("no_op", "stop", "north", "south", "east", "west", "attack")

__all__ = ["ACTION_CLASSES", "Diagnostics", "action_classes", "discounted_returns", "distinct_count", "pearson",
           "play", "value_return_stats"]


def discounted_returns(reward: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """G_t = r_t + gamma G_{t+1} within each episode, [B, T, 1] (0 on padding)."""
    out = torch.zeros_like(reward)
    g = torch.zeros_like(reward[:, 0])
    for t in range(reward.shape[1] - 1, -1, -1):  # backwards over time, batched over episodes
        g = (reward[:, t] + gamma * g) * mask[:, t]
        out[:, t] = g
    return out


def pearson(x: Tensor, y: Tensor) -> float:
    """Pearson correlation of two 1-D tensors (nan if either is constant or empty)."""
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    den = float((x.square().sum() * y.square().sum()).sqrt())
    return float((x * y).sum()) / den if den > 0 else math.nan


def value_return_stats(q_tot: Tensor, reward: Tensor, mask: Tensor, gamma: float) -> dict[str, float]:
    """corr(Q_tot, G) and both means over the valid steps; all inputs [B, T, 1]."""
    g = discounted_returns(reward, mask, gamma)
    valid = mask[..., 0] > 0
    q, g = q_tot[..., 0][valid], g[..., 0][valid]
    return {"value_corr": pearson(q, g), "q_tot_mean": float(q.mean()) if len(q) else math.nan,
            "return_mean": float(g.mean()) if len(g) else math.nan}


def action_classes(actions: Tensor) -> Tensor:
    """SMAC action index -> class index of ACTION_CLASSES (every attack-j is 'attack')."""
    return actions.clamp(max=len(ACTION_CLASSES) - 1)


def distinct_count(hists: Tensor, tv: float) -> int:
    """Rows of ``hists`` [K, C] (distributions) that differ from every row kept before them
    by more than ``tv`` in total variation."""
    kept: list[Tensor] = []
    for h in hists:
        if all(0.5 * float((h - k).abs().sum()) > tv for k in kept):
            kept.append(h)
    return len(kept)


@torch.no_grad()
def play(controller, map_name: str, fixed: Tensor, seed: int, device, num_skills: int) -> dict[str, Tensor]:
    """One greedy episode in each of E = len(fixed) fresh environments, environment e with
    every agent forced to skill ``fixed[e]`` (-1: the learned policy; needs a controller with
    ``fixed_skill``, unless all are -1). Returns per environment: ``won`` [E] bool and the
    counts over alive agent-steps of ``skills`` [E, K] and action classes ``actions`` [E, 7]."""
    from hygen.envs import get_map, make

    E, C = len(fixed), len(ACTION_CLASSES)
    env = make(map_name, num_envs=E, seed=seed, device=device)
    if hasattr(controller, "bind_env"):
        controller.bind_env(env)
    forcing = bool((fixed >= 0).any())
    if forcing:
        controller.fixed_skill = fixed.to(device)
    skills, actions = torch.zeros(E, max(num_skills, 1)), torch.zeros(E, C)
    won, running = torch.zeros(E, dtype=torch.bool), torch.ones(E, dtype=torch.bool)
    try:
        obs, _, avail = env.reset()
        state = controller.initial_state(map_name, E)
        for _ in range(get_map(map_name).episode_limit + 1):
            act, state = controller.act(map_name, obs, avail.bool(), state, 0.0, None)
            alive = (avail[..., 1:].any(-1).cpu() & running[:, None]).float()  # [E, n]; dead agents only no-op
            actions += (F.one_hot(action_classes(act.cpu()), C) * alive[..., None]).sum(1)
            if "skill" in state and num_skills:
                skills += (F.one_hot(state["skill"].cpu(), skills.shape[1]) * alive[..., None]).sum(1)
            out = env.step(act)
            observe = getattr(controller, "observe_reward", None)
            state = state if observe is None else observe(state, out.reward)
            live = running & ~out.reset_mask.bool().cpu()
            term = live & out.terminated.bool().cpu()
            won |= term & out.info["battle_won"].bool().cpu()
            running &= ~term
            obs, avail = out.obs, out.avail_actions
            if not bool(running.any()):
                break
    finally:
        if forcing:
            controller.fixed_skill = None
    return {"won": won, "skills": skills, "actions": actions}


def _share(counts: Tensor) -> Tensor:
    return counts / counts.sum().clamp_min(1.0)


@gin.configurable
class Diagnostics:
    """Trainer callback recording the diagnostics above (see the module docstring).

    Args:
        value_episodes: held-out offline and recent online episodes per map for value_corr.
        play_episodes: greedy episodes per play pass (one greedy, one per forced skill); 0: no play part.
        play_every: run the play part at every k-th evaluation (the first one included).
        distinct_tv: total-variation distance above which two forced skills count as different play.
    """

    def __init__(self, value_episodes: int = 32, play_episodes: int = 8, play_every: int = 1,
                 distinct_tv: float = 0.1):
        if value_episodes < 0 or play_episodes < 0 or play_every < 1 or not 0.0 <= distinct_tv <= 1.0:
            raise ValueError(f"Diagnostics: need value_episodes >= 0, play_episodes >= 0, play_every >= 1 and "
                             f"0 <= distinct_tv <= 1, got {value_episodes}, {play_episodes}, {play_every}, "
                             f"{distinct_tv}")
        self.value_episodes, self.play_episodes = int(value_episodes), int(play_episodes)
        self.play_every, self.distinct_tv = int(play_every), float(distinct_tv)
        self._online: dict[str, list[float]] = {}  # map -> [episodes, wins, epsilon] since the last evaluation
        self._held_out: dict[str, tuple[object, bool]] = {}  # map -> (episodes, held out), read once
        self._evals = 0

    # ----- trainer callback ----------------------------------------------------------------
    def on_collect(self, trainer, map_name: str, batch, stats) -> None:
        agg = self._online.setdefault(map_name, [0, 0, 0.0])
        agg[0] += stats.episodes
        agg[1] += stats.wins
        agg[2] = stats.epsilon

    def on_eval(self, trainer, record: dict) -> None:
        play = self.play_episodes > 0 and self._evals % self.play_every == 0
        self._evals += 1
        out = {}
        for i, m in enumerate(trainer.source_maps):
            d = self.map_diagnostics(trainer, m, i, play)
            d["greedy_win_rate"] = record["win_rate"].get(m, math.nan)
            out[m] = d
        self._online = {}
        record["diagnostics"] = out
        w = trainer.run_dir.writer
        for m, d in out.items():
            for k, v in d.items():
                if isinstance(v, float) and not math.isnan(v):
                    w.add_scalar(f"diag/{m}/{k}", v, trainer.step)

    def state_dict(self) -> dict:
        return {"online": self._online, "evals": self._evals}

    def load_state_dict(self, sd: dict) -> None:
        self._online = {m: list(v) for m, v in sd["online"].items()}
        self._evals = int(sd["evals"])

    # ----- the measurements ----------------------------------------------------------------
    def map_diagnostics(self, trainer, map_name: str, index: int, play: bool) -> dict:
        learner, out = trainer.learner, {}
        gamma = float(getattr(learner, "gamma", 0.99))
        batches = {"offline": self._held_out_episodes(trainer, map_name, out),
                   "online": self._recent_online(trainer, map_name)}
        for src, b in batches.items():
            if b is None or not len(b):
                continue
            b = b.trim().to(learner.device) if hasattr(learner, "device") else b.trim()
            if hasattr(learner, "value_estimates"):
                stats = value_return_stats(learner.value_estimates(b).cpu(), b.reward[:, :-1].cpu(),
                                           b.mask.cpu(), gamma)
                out.update({f"{src}_{k}": v for k, v in stats.items()})
            alive = b.avail_actions[:, :-1, :, 1:].any(-1) & (b.mask > 0)  # [B, T, n] agent-steps
            if src == "offline" and hasattr(learner, "relabelled_skills"):
                labels = learner.relabelled_skills(b).cpu()[alive.cpu()]
                share = _share(F.one_hot(labels, int(learner.num_skills)).sum(0))
                out.update(label_share=share.tolist(), labels_used=float((share > 0.05).sum()))
            if src == "online" and b.skills is not None and hasattr(learner, "relabelled_skills"):
                executed = b.skills[:, :-1, :, 0]
                same = (learner.relabelled_skills(b) == executed)[alive & (executed >= 0)]
                out["skill_agreement"] = float(same.float().mean()) if len(same) else math.nan
        n, wins, eps = self._online.get(map_name, (0, 0, math.nan))
        out["online_win_rate"] = wins / n if n else math.nan
        out["online_epsilon"] = float(eps)
        if play:
            out.update(self._play(trainer, map_name, index))
        return out

    def _held_out_episodes(self, trainer, map_name: str, out: dict):
        if not self.value_episodes or not trainer.offline or map_name not in trainer.offline:
            return None
        if map_name not in self._held_out:
            import h5py

            from hygen.buffers.offline import read_episodes

            ds = trainer.offline[map_name]
            path = ds.files[0]
            with h5py.File(path, "r") as f:
                in_file = len(f["filled"])
            used = len(ds) // len(ds.files)  # the dataset keeps the last episodes of each file
            self._held_out[map_name] = (read_episodes(path, map_name, 0, self.value_episodes),
                                        in_file - used >= self.value_episodes)
        batch, held_out = self._held_out[map_name]
        out["offline_held_out"] = float(held_out)
        return batch

    def _recent_online(self, trainer, map_name: str):
        buffers = getattr(trainer, "_buffers", None)
        if not self.value_episodes or not buffers or map_name not in buffers or not len(buffers[map_name]):
            return None
        buf = buffers[map_name]
        n = min(self.value_episodes, len(buf))
        newest = buf.episodes_inserted - 1 - torch.arange(n)  # insertion numbers; slot = number % capacity
        return buf.episodes(newest % buf.capacity)

    def _play(self, trainer, map_name: str, index: int) -> dict:
        """Greedy play and every forced skill, ``play_episodes`` each, in one batched pass."""
        controller = trainer.learner.controller()
        K = int(getattr(trainer.learner, "num_skills", 0)) if hasattr(controller, "fixed_skill") else 0
        n = self.play_episodes
        fixed = torch.arange(-1, K).repeat_interleave(n)  # n learned-policy episodes, then n per skill
        res = play(controller, map_name, fixed, trainer.seed * 1000 + 700 + index, trainer.device, K)
        groups = {k: slice((k + 1) * n, (k + 2) * n) for k in range(-1, K)}
        greedy = groups[-1]
        out: dict = {"action_hist": _share(res["actions"][greedy].sum(0)).tolist()}
        if K:
            share = _share(res["skills"][greedy].sum(0))
            hists = torch.stack([_share(res["actions"][groups[k]].sum(0)) for k in range(K)])
            out.update(skill_share=share.tolist(), skills_used=float((share > 0.05).sum()),
                       forced_win_rate=[float(res["won"][groups[k]].float().mean()) for k in range(K)],
                       forced_action_hist=hists.tolist(),
                       distinct_forced_play=float(distinct_count(hists, self.distinct_tv)))
        return out


def summarize(record: Mapping) -> dict[str, float]:
    """The scalar diagnostics of one evaluation record, ``<map>/<name>`` -> value (for tables)."""
    return {f"{m}/{k}": v for m, d in record.get("diagnostics", {}).items() for k, v in d.items()
            if isinstance(v, float)}
