"""The generic training loop shared by every method (HyGen, QMIX, offline baselines).

A run is a list of :class:`Phase` s. In each step of a phase the trainer

1. (``collect_online``) collects ``episodes_per_step`` episodes per source map with the
   learner's controller into that map's replay buffer;
2. samples one batch per source map with the phase's sampler (offline, online or a
   hybrid mix, eq. 3);
3. calls ``learner.update(batches, step, objective)``: ONE optimizer step over all maps;
4. syncs target networks every ``target_update_every`` steps, evaluates every
   ``eval_every`` steps (and at the end) on the eval maps, logs, checkpoints.

With ``stop_win_rate`` bound, the run ends early once an evaluation's mean source win
rate reaches it (dataset collection trains QMIX "to expert level", not for a fixed budget).

Step convention: ``step`` counts learner updates (optimizer steps), summed over phases;
the paper's "15k steps of phase 1, 35k of phase 2" are bound as Phase(steps=...) in these
units. (The public HyGen code's ``t_env`` adds 1 per train task per update, so its
35 000 t_env on 3 tasks are about 11 700 of our steps.) Online episodes collected while
the replay buffers fill up (``learning_starts``) do not count as steps. Environment
transitions are counted separately (``env_steps``) and recorded with every evaluation.

A killed run resumes from the newest checkpoint in its run directory: learner, replay
buffers, counters, results so far, RNG states and (built-in simulator) the episodes in
flight are restored, so it goes on exactly as the uninterrupted run would have; on real
StarCraft II the environments start fresh episodes instead.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gin
import torch

from hygen.buffers import DatasetError, HybridSampler, OfflineDataset, OnlineOnly, ReplayBuffer
from hygen.runner import Controller, LinearEpsilon, Runner

__all__ = ["Learner", "Phase", "Trainer", "TrainerError", "total_steps", "train"]


class TrainerError(ValueError):
    """A Trainer configuration that cannot run; the message names the binding."""


@runtime_checkable
class Learner(Protocol):
    """What the trainer needs from a method. Constructed as ``learner(maps=..., device=...)``."""

    def controller(self) -> Controller: ...

    def update(self, batches: dict, step: int, phase: str) -> dict[str, float]:
        """One optimizer step on one batch per source map; returns scalars to log."""
        ...

    def update_targets(self) -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, sd: dict) -> None: ...


def _check_data_game(data_root, maps) -> None:
    """Offline data collected in one game (SimEnv mechanics, or real SC2) and played online and
    evaluated in another is a different experiment from the one the paper runs: refuse it unless
    asked for (``Trainer.data_from_other_game = True``). Data without ``collect.json`` (ODIS's
    SC2 files) are not checked; a ``collect.json`` without the record (collections made before
    it existed) was collected in the legacy game, every mechanic off."""
    import json

    from hygen.envs import bound_game, game_differences, recorded_game

    for m in maps:
        meta_path = Path(data_root) / m / "collect.json"
        if not meta_path.exists():
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise DatasetError(f"{meta_path}: cannot read the collection record ({e}); expected the JSON "
                               "`hygen collect` writes. Remove it to train on the data without the game check") from e
        if not isinstance(meta, dict):
            raise DatasetError(f"{meta_path}: expected a JSON object (the record `hygen collect` writes), "
                               f"got {type(meta).__name__}")
        diff = game_differences(recorded_game(meta), bound_game(m))
        if diff:
            raise DatasetError(f"{meta_path}: the {m} data were collected in another game than this run plays "
                               f"(data / run: {', '.join(diff)}). Bind the data's game (--gin_file envs/legacy: every "
                               "mechanic off, as before the calibrated game became the default), recollect, or set "
                               "Trainer.data_from_other_game = True to train on them anyway")


@gin.configurable
@dataclass
class Phase:
    """``steps`` learner updates drawing batches with ``sampler``.

    name: the display name (logs, results.json, progress).
    objective: what the learner optimises in this phase, passed to ``learner.update``
        (HyGen: 'skill_discovery' or 'policy'); None: the phase's name.
    sampler: an object with ``sample(offline, online, batch_size, t, generator)`` and
    ``ratio(t)`` (hygen.buffers samplers); ``t`` is the step within this phase.
    collect_online: collect online episodes into the replay buffers at every step.
    """

    name: str = "train"
    steps: int = 1000
    sampler: Any = None
    collect_online: bool = True
    objective: str | None = None

    @property
    def learner_objective(self) -> str:
        return self.objective or self.name


@gin.configurable
def total_steps(parts=gin.REQUIRED) -> int:
    """The sum of step budgets: a one-phase baseline gets HyGen's whole two-phase budget
    (``Phase.steps = @total_steps()`` with ``total_steps.parts = [%SKILL_STEPS, %POLICY_STEPS]``),
    so a scale that sets those two macros scales every method alike."""
    if not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in parts):
        raise TrainerError(f"total_steps.parts: expected whole step counts >= 0, got {parts!r}")
    return sum(parts)


@gin.configurable
class Trainer:
    """Owns runners, replay buffers, the loop, evaluation, logging and checkpoints."""

    def __init__(self, run_dir, seed: int = 0, device: str | torch.device = "cpu",
                 learner=gin.REQUIRED, source_maps=gin.REQUIRED, eval_maps=None, phases=None,
                 num_envs: int = 8, episodes_per_step: int = 1, buffer_size: int = 5000,
                 batch_size: int = 32, learning_starts: int | None = None,
                 epsilon: LinearEpsilon | None = None, target_update_every: int = 200,
                 eval_every: int = 1000, eval_episodes: int = 32, checkpoint_every: int = 1000,
                 log_every: int = 100, data_root: str | None = None, data_quality: str | None = None,
                 offline_episodes: int | None = 2000, num_threads=None,
                 stop_win_rate: float | None = None, callbacks=(), diagnostics=None,
                 data_from_other_game: bool = False, keep_buffers_when_done: bool = True):
        from hygen.envs import check_backend, get_map
        from hygen.rundir import RunDir
        from hygen.utils import keep_freed_memory, resolve_device, set_threads, threads_were_set

        # small nets on a shared CPU: extra threads spin-wait (hygen.utils.set_threads, hygen.threads);
        # num_threads: N, 'auto' or a policy (@AdaptiveThreads()). A bound value wins, else the process
        # keeps what the CLI's --threads set, else hygen's measured default
        if num_threads is not None or not threads_were_set():
            try:
                set_threads(num_threads)
            except ValueError as e:
                raise TrainerError(f"Trainer.num_threads: {e}") from None
        self.run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.seed = int(seed)
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            keep_freed_memory()  # updates free and re-allocate the same big tensors: keep the pages
        self.source_maps = _map_list(source_maps, "Trainer.source_maps")
        self.eval_maps = _map_list(eval_maps, "Trainer.eval_maps") if eval_maps else list(self.source_maps)
        for binding, maps in (("Trainer.source_maps", self.source_maps), ("Trainer.eval_maps", self.eval_maps)):
            for m in maps:
                try:
                    get_map(m)
                except KeyError as e:  # UnknownNameError: lists the known maps
                    raise TrainerError(f"{binding}: {e}") from None
        check_backend(self.source_maps + self.eval_maps)  # environment.backend = @SC2Env without SC2: say so now
        self.phases = list(phases) if phases else [Phase("online", 10_000, None, True)]
        for p in self.phases:
            _count(f"Phase {p.name!r}: steps", p.steps, minimum=0)
            if p.sampler is None:
                p.sampler = OnlineOnly()
        self.total_steps = sum(p.steps for p in self.phases)
        for name, v in (("eval_every", eval_every), ("checkpoint_every", checkpoint_every),
                        ("target_update_every", target_update_every), ("log_every", log_every),
                        ("batch_size", batch_size), ("eval_episodes", eval_episodes), ("num_envs", num_envs),
                        ("episodes_per_step", episodes_per_step), ("buffer_size", buffer_size)):
            _count(f"Trainer.{name}", v, minimum=1)
        if offline_episodes is not None:  # None: every episode of the dataset
            _count("Trainer.offline_episodes", offline_episodes, minimum=1)
        if learning_starts is not None:
            _count("Trainer.learning_starts", learning_starts, minimum=0)
        self.num_envs, self.episodes_per_step = int(num_envs), int(episodes_per_step)
        self.buffer_size, self.batch_size = int(buffer_size), int(batch_size)
        self.learning_starts = int(batch_size if learning_starts is None else learning_starts)
        if any(p.collect_online for p in self.phases) and self.learning_starts > self.buffer_size:
            # the warm-up waits for learning_starts episodes per map: it would never end
            raise TrainerError(f"Trainer.buffer_size ({self.buffer_size}) is smaller than Trainer.learning_starts "
                               f"({self.learning_starts}{'' if learning_starts is not None else ' = batch_size'}): "
                               "the replay buffers could never hold enough episodes to start learning")
        self.target_update_every, self.eval_every = int(target_update_every), int(eval_every)
        self.eval_episodes, self.checkpoint_every = int(eval_episodes), int(checkpoint_every)
        self.log_every = int(log_every)
        if stop_win_rate is not None and not 0.0 < float(stop_win_rate) <= 1.0:
            raise TrainerError(f"Trainer.stop_win_rate must be in (0, 1] or None, got {stop_win_rate}")
        # early stop (e.g. dataset collection: train QMIX until it is an expert, not for a fixed budget)
        self.stop_win_rate = None if stop_win_rate is None else float(stop_win_rate)
        # diagnostics (hygen.diagnostics.Diagnostics): one more callback, recorded with every evaluation
        self.callbacks = list(callbacks) + ([diagnostics] if diagnostics is not None else [])

        # a class or factory (gin: `Trainer.learner = @QMIXLearner`) is built here; an instance is used as is
        is_factory = isinstance(learner, type) or (callable(learner) and not hasattr(learner, "update"))
        self.learner = learner(maps=tuple(self.source_maps), device=self.device) if is_factory else learner
        if not isinstance(self.learner, Learner):
            raise TrainerError(f"Trainer.learner: {type(self.learner).__name__} does not implement the Learner "
                               "contract (controller, update, update_targets, state_dict, load_state_dict)")
        self.generator = torch.Generator()
        self.generator.manual_seed(self.seed)
        eps = epsilon if epsilon is not None else LinearEpsilon()
        self.runners = {m: Runner(m, num_envs=self.num_envs, seed=self.seed * 1000 + i, device=self.device,
                                  epsilon=eps) for i, m in enumerate(self.source_maps)}
        self.eval_runners = {m: self.runners.get(m) or Runner(m, num_envs=1, seed=self.seed * 1000 + 500 + i,
                                                              device=self.device)
                             for i, m in enumerate(self.eval_maps)}
        self._buffers: dict | None = None
        # A finished run's replay buffers are ~98 % of its last checkpoint (0.45 GB for a Table-2
        # cell). Without them it still evaluates and reports; continued, it starts them empty.
        self.keep_buffers_when_done = bool(keep_buffers_when_done)
        if data_root is not None and not data_from_other_game:  # before the (slow) load, not after
            _check_data_game(data_root, self.source_maps)
        self.offline = self._load_offline(data_root, data_quality, offline_episodes)

        self.step = 0
        self.env_steps = 0
        self.wall_time = 0.0
        self.evals: list[dict] = []
        self._last_metrics: dict[str, float] = {}
        self._restored = False  # restore() ran (run() does it once when the caller did not)
        self._online_stats: dict[str, list] = {}  # per map since the last log: episodes, wins, return sum, eps

    # ------------------------------------------------------------------ data
    @property
    def buffers(self) -> dict:
        """Per-map online replay buffers (made on first use: offline-only runs have none)."""
        if self._buffers is None:
            self._buffers = {m: ReplayBuffer(m, self.buffer_size, self.device) for m in self.source_maps}
        return self._buffers

    def _load_offline(self, data_root, quality, n_episodes) -> dict | None:
        if data_root is None:
            return None
        if quality is None:
            raise TrainerError("Trainer.data_root is bound but Trainer.data_quality is not "
                               "(expected one of expert, medium, medium-replay, medium-expert)")
        out = {}
        for m in self.source_maps:
            try:
                out[m] = OfflineDataset.load(data_root, m, quality, max_episodes=n_episodes, device=self.device)
            except DatasetError as e:
                hint = "" if str(e).startswith("unknown dataset quality") else (
                    f" (make data in a minute with `hygen collect --map {m} --policy heuristic --data-root {data_root}`"
                    f", scripted; or train QMIX behaviour policies, hours per map, with --policy qmix)")
                raise DatasetError(f"Trainer.data_root={str(data_root)!r}, data_quality={quality!r}: {e}{hint}") from None
        return out

    def _phase_at(self, step: int) -> tuple[int, Phase, int]:
        """(index, phase, step within the phase) for a global step."""
        start = 0
        for i, p in enumerate(self.phases):
            if step < start + p.steps:
                return i, p, step - start
            start += p.steps
        return len(self.phases) - 1, self.phases[-1], self.phases[-1].steps

    # ------------------------------------------------------------------ loop
    def run(self) -> dict:
        """Train (or continue training) to the end; returns the results dict (also results.json)."""
        self.run_dir.lock()  # one writer per run (a Trainer that only evaluates takes none)
        try:
            if not self._restored:
                self.restore()
        except BaseException:
            self.run_dir.unlock()
            raise
        from hygen import threads

        bar = self.run_dir.progress(self.total_steps, initial=self.step, desc="train")
        controller = self.learner.controller()
        t0 = time.perf_counter() - self.wall_time
        try:
            if not self.evals:  # the untrained policy: the first point of every learning curve
                self._evaluate(self.phases[0].name if self.phases else "")
            while self.step < self.total_steps and not self.reached_stop_win_rate():
                _, phase, t_phase = self._phase_at(self.step)
                if phase.collect_online:
                    self._collect(controller)
                    if not all(b.can_sample(self.learning_starts) for b in self.buffers.values()):
                        continue  # warm-up: fill the replay buffers first
                batches = {m: phase.sampler.sample(self.offline[m] if self.offline else None,
                                                   self._buffers[m] if self._buffers else None,
                                                   self.batch_size, t_phase, self.generator,
                                                   **self._sampler_stats(phase.sampler, m)).to(self.device)
                           for m in self.source_maps}
                metrics = self.learner.update(batches, self.step, phase.learner_objective)
                threads.tick()  # an adaptive policy re-measures the machine's load every few seconds
                self.step += 1
                bar.update(1)
                if self.step % self.target_update_every == 0:
                    self.learner.update_targets()
                self.wall_time = time.perf_counter() - t0
                if self.step % self.log_every == 0:
                    self._log_train(metrics, phase, t_phase, bar)
                if self.step % self.eval_every == 0 and self.step < self.total_steps:
                    self._evaluate(phase.name)
                    bar.set_postfix(self._postfix(phase.name))
                if self.step % self.checkpoint_every == 0:
                    self._save_checkpoint()
            self.wall_time = time.perf_counter() - t0
            if not self.evals or self.evals[-1]["step"] != self.step:
                self._evaluate(self.phases[-1].name if self.phases else "")
            self._save_checkpoint(final=True)
            self.run_dir.keep_only_newest_checkpoint()
            return self._write_results()
        finally:
            bar.close()
            self.run_dir.writer.flush()
            self.run_dir.unlock()  # done, failed or stopped (SIGTERM: hygen.cli): the next process may write

    def _write_results(self) -> dict:
        """results.json, and the win-rate curves as curves.svg next to it."""
        from hygen.report import curves_svg, results_curves
        from hygen.rundir import atomic_write_text

        results = self.results()
        self.run_dir.write_results(results)
        atomic_write_text(self.run_dir.path / "curves.svg",
                          curves_svg(results_curves(results), title=f"{results['method']}, seed {self.seed}"))
        return results

    def _sampler_stats(self, sampler, map_name: str) -> dict[str, float]:
        """Latest test win rate on the map, for performance-driven ratios (PerformanceRatio).
        Only hygen.buffers samplers take these keywords; a minimal sampler gets none."""
        if isinstance(sampler, HybridSampler) and self.evals and map_name in self.evals[-1]["win_rate"]:
            return {"win_rate": self.evals[-1]["win_rate"][map_name]}
        return {}

    def _collect(self, controller) -> None:
        for m, runner in self.runners.items():
            batch, stats = runner.collect(controller, n_episodes=self.episodes_per_step)
            self.env_steps += stats.env_steps
            self.buffers[m].insert(batch)
            for cb in self.callbacks:
                if hasattr(cb, "on_collect"):
                    cb.on_collect(self, m, batch, stats)
            agg = self._online_stats.setdefault(m, [0, 0, 0.0, 0.0])  # episodes, wins, return sum, epsilon
            agg[0] += stats.episodes
            agg[1] += stats.wins
            agg[2] += sum(stats.returns)
            agg[3] = stats.epsilon

    def _log_train(self, metrics: dict, phase: Phase, t_phase: int, bar) -> None:
        w = self.run_dir.writer
        for k, v in metrics.items():
            w.add_scalar(f"train/{k}", float(v), self.step)
        w.add_scalar("train/env_steps", self.env_steps, self.step)
        ratio = getattr(phase.sampler, "last_ratio", None)  # R_h of the last batch (eq. 3)
        if ratio is None and hasattr(phase.sampler, "ratio"):
            ratio = phase.sampler.ratio(t_phase)
        if ratio is not None:
            w.add_scalar("sampler/ratio", float(ratio), self.step)
        for m, (n, wins, ret, eps) in self._online_stats.items():
            if n:
                w.add_scalar(f"online/{m}/win_rate", wins / n, self.step)
                w.add_scalar(f"online/{m}/return_mean", ret / n, self.step)
                w.add_scalar(f"online/{m}/epsilon", eps, self.step)
        self._online_stats = {}
        elapsed = max(self.wall_time, 1e-9)
        w.add_scalar("perf/env_steps_per_s", self.env_steps / elapsed, self.step)
        w.add_scalar("perf/torch_threads", torch.get_num_threads(), self.step)  # what --threads auto chose
        self._last_metrics = metrics
        bar.set_postfix(self._postfix(phase.name))

    def _postfix(self, phase: str) -> dict:
        pf = {"phase": phase, "env": self.env_steps}
        if "loss" in self._last_metrics:
            pf["loss"] = f"{self._last_metrics['loss']:.3g}"
        if self.evals:
            wr = self.evals[-1]["win_rate"]
            pf["win"] = f"{sum(wr.values()) / len(wr):.2f}"
        return pf

    @torch.no_grad()
    def evaluate(self) -> dict[str, dict[str, float]]:
        """Greedy test on every eval map: {map: {win_rate, return_mean, episode_length_mean}}."""
        controller = self.learner.controller()
        return {m: r.evaluate(controller, self.eval_episodes) for m, r in self.eval_runners.items()}

    def _evaluate(self, phase: str) -> dict:
        res = self.evaluate()
        record = {"step": self.step, "phase": phase, "env_steps": self.env_steps,
                  "wall_time": round(self.wall_time, 2),
                  **{k: {m: res[m][k] for m in res} for k in ("win_rate", "return_mean", "episode_length_mean")}}
        self.evals.append(record)
        w = self.run_dir.writer
        for m, r in res.items():
            for k, v in r.items():
                w.add_scalar(f"eval/{m}/{k}", v, self.step)
        for group, maps in (("source", self.source_maps), ("unseen", self._unseen())):
            maps = [m for m in maps if m in res]  # eval_maps may leave source maps out
            if maps:
                w.add_scalar(f"eval/{group}_win_rate_mean", sum(res[m]["win_rate"] for m in maps) / len(maps),
                             self.step)
        for cb in self.callbacks:
            if hasattr(cb, "on_eval"):
                cb.on_eval(self, record)
        self._write_results()  # partial results survive a kill
        return record

    def reached_stop_win_rate(self) -> bool:
        """The latest evaluation's mean source win rate reached ``stop_win_rate`` (if bound)."""
        if self.stop_win_rate is None or not self.evals or self.evals[-1]["step"] == 0:
            return False  # the untrained policy's evaluation never stops a run
        wr = self.evals[-1]["win_rate"]
        evaluated = [m for m in self.source_maps if m in wr] or list(wr)  # eval_maps may leave source maps out
        return sum(wr[m] for m in evaluated) / len(evaluated) >= self.stop_win_rate

    def _unseen(self) -> list[str]:
        return [m for m in self.eval_maps if m not in self.source_maps]

    def results(self) -> dict:
        final = self.evals[-1] if self.evals else None

        def mean(maps):  # over the maps evaluated (eval_maps may leave source maps out)
            maps = [m for m in maps if final and m in final["win_rate"]]
            return sum(final["win_rate"][m] for m in maps) / len(maps) if maps else None

        return {
            "method": type(self.learner).__name__,
            "seed": self.seed,
            "source_maps": self.source_maps,
            "eval_maps": self.eval_maps,
            "phases": [{"name": p.name, "steps": p.steps, "sampler": type(p.sampler).__name__,
                        "collect_online": p.collect_online} for p in self.phases],
            "step_unit": "learner update (one optimizer step over all source maps)",
            "steps": self.step,
            "total_steps": self.total_steps,
            "env_steps": self.env_steps,
            "wall_time_s": round(self.wall_time, 2),
            "done": self.step >= self.total_steps or self.reached_stop_win_rate(),
            "stopped_at_win_rate": self.stop_win_rate if self.reached_stop_win_rate() else None,
            "evals": self.evals,
            "final": None if final is None else {
                "step": final["step"], "win_rate": final["win_rate"], "return_mean": final["return_mean"],
                "win_rate_source_mean": mean(self.source_maps), "win_rate_unseen_mean": mean(self._unseen())},
        }

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        from hygen.utils import rng_state

        return {
            "learner": self.learner.state_dict(),
            "buffers": {m: b.state_dict() for m, b in self._buffers.items()} if self._buffers else None,
            "runners": {m: r.state_dict() for m, r in self.runners.items()},
            "eval_runners": {m: r.state_dict() for m, r in self.eval_runners.items() if m not in self.runners},
            "env_steps": self.env_steps,
            "wall_time": self.wall_time,
            "evals": self.evals,
            "online_stats": self._online_stats,
            "generator": self.generator.get_state(),
            "rng": rng_state(),
            "source_maps": self.source_maps,
            "learner_class": type(self.learner).__name__,
            "callbacks": [cb.state_dict() if hasattr(cb, "state_dict") else None for cb in self.callbacks],
        }

    def _save_checkpoint(self, final: bool = False) -> None:
        state = self.state_dict()
        if final and not self.keep_buffers_when_done:
            state["buffers"] = None
        self.run_dir.save_checkpoint(state, self.step)

    def restore(self) -> bool:
        """Load the run directory's newest checkpoint (learner, buffers, counters, RNG); False if none."""
        from hygen.rundir import CheckpointError
        from hygen.utils import set_rng_state

        self._restored = True
        ckpt = self.run_dir.load_checkpoint(map_location=self.device)
        if ckpt is None:
            return False
        path, learner = self.run_dir.loaded_checkpoint, type(self.learner).__name__
        if ckpt.get("learner_class", learner) != learner:  # (older checkpoints do not record it)
            raise CheckpointError(f"{path}: written by {ckpt['learner_class']}, but this config builds {learner}; "
                                  "use another run directory")
        if ckpt.get("source_maps") != self.source_maps:
            raise CheckpointError(f"{path}: trained on {ckpt.get('source_maps')}, "
                                  f"this run asks for {self.source_maps}; use another run directory")
        try:
            self.learner.load_state_dict(ckpt["learner"])
        except (ValueError, KeyError, RuntimeError) as e:  # a checkpoint of another model or config
            raise CheckpointError(f"{path} (step {ckpt.get('step')}) does not fit {learner}: {e}") from None
        if ckpt["buffers"]:
            for m, sd in ckpt["buffers"].items():
                self.buffers[m].load_state_dict(sd)
        elif int(ckpt["step"]) < self.total_steps and any(p.collect_online for p in self.phases):
            print(f"warning: {path} holds no replay buffers (the run had finished with "
                  "Trainer.keep_buffers_when_done = False): it continues with empty ones, so it is not the "
                  "run a longer budget would have made", file=sys.stderr)
        for m, sd in ckpt["runners"].items():
            self.runners[m].load_state_dict(sd)
        for m, sd in ckpt.get("eval_runners", {}).items():
            self.eval_runners[m].load_state_dict(sd)
        self.step, self.env_steps = int(ckpt["step"]), int(ckpt["env_steps"])
        # TensorBoard hides what a killed run logged after this checkpoint (what it logged at the
        # checkpoint step itself came before the save and is kept: the resumed run does not log it again)
        self.run_dir.purge_step = self.step + 1
        self.wall_time, self.evals = float(ckpt["wall_time"]), list(ckpt["evals"])
        self._online_stats = {m: list(v) for m, v in ckpt.get("online_stats", {}).items()}
        self.generator.set_state(ckpt["generator"].cpu())
        set_rng_state(ckpt["rng"])
        for cb, sd in zip(self.callbacks, ckpt.get("callbacks") or []):
            if sd is not None and hasattr(cb, "load_state_dict"):
                cb.load_state_dict(sd)
        return True


def _count(what: str, v, minimum: int) -> None:
    """A step or episode count from a binding: a whole number >= minimum (2.5 steps or '10' would
    otherwise be truncated silently or fail later with an unrelated error)."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise TrainerError(f"{what} must be a whole number >= {minimum}, got {v!r} ({type(v).__name__})")
    if v < minimum:
        raise TrainerError(f"{what} must be >= {minimum}, got {v}")


def _map_list(maps, binding: str) -> list[str]:
    if isinstance(maps, str):
        maps = [maps]
    try:
        maps = [str(m) for m in maps]
    except TypeError:
        raise TrainerError(f"{binding}: expected a list of map names, got {maps!r}") from None
    if not maps:
        raise TrainerError(f"{binding}: expected at least one map name")
    return maps


@gin.configurable
def train(run_dir, seed: int = 0, device: str | torch.device = "cpu") -> dict:
    """Gin entry point: ``Trainer(run_dir, seed, device).run()`` with everything else from bindings."""
    return Trainer(run_dir=run_dir, seed=seed, device=device).run()
