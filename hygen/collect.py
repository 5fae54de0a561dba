"""Offline dataset collection in ODIS's format (reference sec. 6; paper App. Table 5).

For each map four qualities are written to ``<data-root>/<map>/<quality>/part_0.h5``:

- expert: ``episodes`` greedy episodes of the expert policy;
- medium: ``episodes`` greedy episodes of a policy whose test win rate is about half
  the expert's;
- medium-replay: what the medium policy's training run had in its replay buffer when
  the medium snapshot was taken (the last ``buffer_size`` episodes it collected);
- medium-expert: medium + expert.

Policies:

- ``qmix``: train QMIX (PyMARL defaults) with the Trainer, snapshotting the agent at
  every evaluation; expert = best snapshot, medium = :func:`choose_medium_snapshot`.
  Every online episode is logged (compressed ODIS chunks) so medium-replay is exact.
- ``heuristic`` (fast, for demos and tests): expert = the best scripted policy on the map
  (focus fire, nearest enemy, flank or ambush: :class:`HeuristicController`);
  medium = focus fire with random actions at the rate (from a small grid) whose win
  rate is closest to half the expert's; medium-replay = episodes with that random-action
  rate annealed from 1.0 down to the medium rate, like a training run's replay.

Every part is written atomically and skipped when it already exists and validates, and
QMIX training resumes from its run directory, so a killed collection resumes.
A manifest (``manifest.json`` + ``manifest.md``) lists episodes, win rate and mean
return per map and quality.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from hygen.buffers import EpisodeBatch, read_episodes, validate_file, write_episodes
from hygen.envs import bound_game, game_differences, get_map, recorded_game
from hygen.runner import Runner

__all__ = ["QUALITIES", "CollectError", "HeuristicController", "choose_medium_snapshot", "collect_map",
           "write_manifest"]

QUALITIES = ("expert", "medium", "medium-replay", "medium-expert")
# random-action rates tried for 'medium'. 0.01 came last (issue 18): the ambush script loses half its
# wins at 1 % random actions (5m_vs_6m 61 -> 24 %, 9m_vs_10m 52 -> 18 %) and nearly all at 2 %; appended
# so the rates before it keep their calibration runners' seeds.
MEDIUM_EPSILON_GRID = (0.02, 0.05, 0.1, 0.2, 0.4, 0.01)


class CollectError(ValueError):
    """A collection that cannot proceed (e.g. an expert that never wins)."""


# ------------------------------------------------------------------------------ snapshot choice
def choose_medium_snapshot(history: Sequence[Mapping], expert_win_rate: float | None = None) -> Mapping:
    """The snapshot whose test win rate is closest to half the expert's.

    history: records with at least ``win_rate`` (and usually ``step``, ``return_mean``),
    in training order. expert_win_rate: defaults to the best win rate in ``history``.
    Ties go to the earliest snapshot (the less trained policy). When the expert never
    wins, mean test return stands in for win rate (half the best return), so hard maps
    still get a medium policy. Pure function.
    """
    if not history:
        raise CollectError("choose_medium_snapshot: empty history")
    key = "win_rate"
    expert = max(float(h["win_rate"]) for h in history) if expert_win_rate is None else float(expert_win_rate)
    if expert <= 0.0 and all("return_mean" in h for h in history):
        key = "return_mean"
        expert = max(float(h[key]) for h in history)
    if expert <= 0.0:
        raise CollectError("choose_medium_snapshot: the expert never wins (and has no positive return), "
                           "so there is no 'half the expert'; train longer or use another map")
    target = expert / 2.0
    return min(history, key=lambda h: abs(float(h[key]) - target))  # min keeps the first of ties


def choose_expert_snapshot(history: Sequence[Mapping]) -> Mapping:
    """The best snapshot by test win rate (then mean return); ties go to the latest."""
    if not history:
        raise CollectError("choose_expert_snapshot: empty history")
    return max(reversed(list(history)), key=lambda h: (float(h["win_rate"]), float(h.get("return_mean", 0.0))))


# ------------------------------------------------------------------------------ heuristic policy
class HeuristicController:
    """A scripted policy of hygen.envs.scripted as a Controller.

    base: "focus_fire" (all agents shoot the enemy nearest the team), "nearest_enemy"
    (each agent shoots its own nearest enemy), "flank" (step aside while the enemies walk
    past, then focus fire) or "ambush" (step far aside, let the enemies stop, then take on the
    near edge of their group while the rest stand: wins 5m_vs_6m). It reads the environment it acts in (the runner binds it with
    ``bind_env``) and counts each episode's steps in its agent state (flank needs them); its
    own ``epsilon`` (random-action rate) is used instead of the runner's when set.
    """

    BASES = ("focus_fire", "nearest_enemy", "flank", "ambush")

    def __init__(self, epsilon: float | None = None, base: str = "focus_fire"):
        if base not in self.BASES:
            raise CollectError(f"HeuristicController: base must be one of {self.BASES}, got {base!r}")
        self.epsilon, self.base = epsilon, base
        self.env = None

    def bind_env(self, env) -> None:
        self.env = env

    def initial_state(self, map_name: str, num_envs: int) -> dict:
        return {"steps": torch.zeros(num_envs, dtype=torch.long)}  # (the runner resets it per episode)

    def act(self, map_name, obs, avail, agent_state, epsilon, generator=None):
        from hygen.envs import scripted

        eps = epsilon if self.epsilon is None else self.epsilon
        steps = agent_state["steps"].to(avail.device)
        if self.base in ("flank", "ambush"):  # (these two time their moves by the episode's step)
            actions = getattr(scripted, f"{self.base}_actions")(self.env, steps, epsilon=eps, generator=generator)
        else:
            actions = getattr(scripted, f"{self.base}_actions")(self.env, epsilon=eps, generator=generator)
        return actions, {"steps": steps + 1}


# ------------------------------------------------------------------------------ files
def part_path(data_root: str | Path, map_name: str, quality: str) -> Path:
    return Path(data_root) / map_name / quality / "part_0.h5"


def _atomic_write(path: Path, batch: EpisodeBatch) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write_episodes(tmp, batch)
    os.replace(tmp, path)


def _is_done(path: Path, map_name: str, episodes: int | None) -> bool:
    """An existing part is reused when it validates and has the expected episode count."""
    if not path.exists():
        return False
    try:
        _, n, problems = validate_file(path, map_name)
    except ValueError:
        return False
    return not problems and (episodes is None or n == episodes)


def _stats(batch: EpisodeBatch) -> dict:
    return {"episodes": len(batch), "win_rate": float(batch.battle_won.float().mean()),
            "return_mean": float(batch.returns.mean()),
            "episode_length_mean": float(batch.episode_lengths.float().mean())}


def _file_stats(path: Path, map_name: str) -> dict:
    return _stats(read_episodes(path, map_name))


def _rollouts(runner: Runner, controller, n: int, epsilon: float, chunk: int = 500) -> EpisodeBatch:
    parts = []
    while n > 0:
        b, _ = runner.collect(controller, n_episodes=min(chunk, n), epsilon=epsilon)
        parts.append(b.trim())
        n -= len(b)
    return EpisodeBatch.cat(parts)


# ------------------------------------------------------------------------------ per map
def collect_map(map_name: str, data_root: str | Path, policy: str = "heuristic", episodes: int = 2000,
                seed: int = 0, device: str | torch.device = "cpu", num_envs: int = 32,
                qmix_steps: int = 20_000, qmix_eval_every: int = 500, buffer_size: int = 5000,
                calibration_episodes: int = 64, log: Callable[[str], None] = print,
                trainer_kwargs: dict | None = None, config: dict | None = None,
                qualities: Sequence[str] = QUALITIES) -> dict:
    """Write the four qualities for one map (or those in ``qualities``; medium-expert brings medium
    and expert); returns the manifest entry {quality: stats}, earlier qualities of the map included.

    trainer_kwargs: Trainer arguments for QMIX training (others come from gin bindings, e.g.
    configs/qmix_tuned.gin); config: what produced them (gin files/params), kept in collect.json.
    """
    from hygen.utils import seed_everything

    get_map(map_name)
    seed_everything(seed)
    if policy not in ("qmix", "heuristic"):
        raise CollectError(f"--policy must be 'qmix' or 'heuristic', got {policy!r}")
    data_root = Path(data_root)
    meta_path = data_root / map_name / "collect.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta and meta.get("policy") != policy:
        raise CollectError(f"{meta_path}: this map was collected with --policy {meta.get('policy')}; "
                           f"remove {data_root / map_name} to recollect with --policy {policy}")
    meta.update(policy=policy, map=map_name, episodes=episodes, seed=seed)
    if config and policy == "qmix":
        meta["qmix_config"] = dict(config)
    if config and (config.get("gin_files") or config.get("gin_params")):
        meta["gin"] = dict(config)  # what shaped the data, the game included (e.g. envs/calibrated)
    game = bound_game(map_name)  # which the Trainer checks the data against
    made_in = recorded_game(meta)
    if meta_path.exists() and game_differences(made_in, game):
        raise CollectError(f"{meta_path}: this map's data were collected in another game than this collection "
                           f"plays (data / now: {', '.join(game_differences(made_in, game))}); bind the same "
                           f"game (e.g. --gin_file envs/legacy) or remove {data_root / map_name} to recollect")
    meta["game"] = game

    unknown = [q for q in qualities if q not in QUALITIES]
    if unknown or not qualities:
        raise CollectError(f"collect_map(qualities=...): expected some of {QUALITIES}, got {list(qualities)!r}")
    # the demo asks for the one it trains on: the others were ~half of its dataset time (issue 18)
    wanted = set(qualities) | ({"medium", "expert"} if "medium-expert" in qualities else set())
    all_done = all(_is_done(part_path(data_root, map_name, q), map_name, None) for q in wanted)
    if all_done and all(q in meta.get("qualities", {}) for q in wanted):
        log(f"{map_name}: all qualities exist, skipped")
        return {"policy": policy, **{k: v for k, v in meta.items() if k not in ("map", "policy")}}
    if policy == "heuristic":
        sources = _heuristic_sources(map_name, data_root, episodes, seed, device, num_envs,
                                     calibration_episodes, meta, log)
    else:
        sources = _qmix_sources(map_name, data_root, episodes, seed, device, num_envs, qmix_steps,
                                qmix_eval_every, buffer_size, meta, log, trainer_kwargs or {})

    entry = dict(meta.get("qualities", {}))
    for quality in ("expert", "medium", "medium-replay"):
        if quality not in wanted:
            continue
        path = part_path(data_root, map_name, quality)
        expected = None if quality == "medium-replay" else episodes
        if _is_done(path, map_name, expected):
            log(f"{map_name}/{quality}: exists, skipped")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            batch = sources[quality]()
            _atomic_write(path, batch)
            log(f"{map_name}/{quality}: wrote {len(batch)} episodes to {path}")
        entry[quality] = _file_stats(path, map_name)
    if "medium-expert" in wanted:
        path = part_path(data_root, map_name, "medium-expert")
        n_me = entry["medium"]["episodes"] + entry["expert"]["episodes"]
        if _is_done(path, map_name, n_me):
            log(f"{map_name}/medium-expert: exists, skipped")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            batch = EpisodeBatch.cat([read_episodes(part_path(data_root, map_name, q), map_name)
                                      for q in ("medium", "expert")])
            _atomic_write(path, batch)
            log(f"{map_name}/medium-expert: wrote {len(batch)} episodes to {path}")
        entry["medium-expert"] = _file_stats(path, map_name)
    meta["qualities"] = {q: entry[q] for q in QUALITIES if q in entry}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    if policy == "qmix":
        shutil.rmtree(data_root / "_runs" / map_name / "episode_log", ignore_errors=True)
    return {"policy": policy, **{k: v for k, v in meta.items() if k not in ("qualities", "map", "policy")},
            "qualities": entry}


def _heuristic_sources(map_name, data_root, episodes, seed, device, num_envs, calib_n, meta, log) -> dict:
    def runner(offset: int) -> Runner:
        return Runner(map_name, num_envs=num_envs, seed=seed * 1000 + offset, device=device)

    if "medium_epsilon" not in meta:  # calibration: best scripted policy, then the rate that halves it
        bases = {b: runner(10 + i).evaluate(HeuristicController(0.0, b), calib_n)["win_rate"]
                 for i, b in enumerate(HeuristicController.BASES)}
        base = max(HeuristicController.BASES, key=lambda b: bases[b])  # ties: focus fire
        rates = {0.0: bases[base]}
        for i, eps in enumerate(MEDIUM_EPSILON_GRID):
            rates[eps] = runner(20 + i).evaluate(HeuristicController(eps, base), calib_n)["win_rate"]
        med = min(MEDIUM_EPSILON_GRID, key=lambda e: abs(rates[e] - rates[0.0] / 2))
        meta.update(expert_policy=base, medium_epsilon=med, calibration={
            "episodes": calib_n, "expert_win_rate": bases, "medium_win_rate": {str(k): v for k, v in rates.items()}})
        meta_path = Path(data_root) / map_name / "collect.json"  # a killed run keeps its calibration
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        log(f"{map_name}: scripted {base} wins {rates[0.0]:.2f}; medium random-action rate {med} "
            f"(win rate {rates[med]:.2f} on {calib_n} episodes)")
    med, base = float(meta["medium_epsilon"]), meta["expert_policy"]

    def replay() -> EpisodeBatch:  # random-action rate annealed 1.0 -> med, like a training replay
        r, parts, chunks = runner(3), [], 10
        sizes = [episodes // chunks + (1 if i < episodes % chunks else 0) for i in range(chunks)]
        for i, n in enumerate(sizes):
            if n:
                eps = 1.0 + (med - 1.0) * i / (chunks - 1)
                parts.append(_rollouts(r, HeuristicController(eps, base), n, 0.0))
        return EpisodeBatch.cat(parts)

    return {"expert": lambda: _rollouts(runner(1), HeuristicController(0.0, base), episodes, 0.0),
            "medium": lambda: _rollouts(runner(2), HeuristicController(med, base), episodes, 0.0),
            "medium-replay": replay}


class _SnapshotLog:
    """Trainer callback: agent snapshot at every evaluation, and a log of every online episode."""

    CHUNK = 250

    def __init__(self, folder: Path):
        self.folder = folder
        self.history: list[dict] = []
        self.logged = 0  # episodes in completed chunk files
        self.pending: list[EpisodeBatch] = []
        (folder / "snapshots").mkdir(parents=True, exist_ok=True)
        (folder / "episode_log").mkdir(parents=True, exist_ok=True)

    def on_eval(self, trainer, record: dict) -> None:
        m = trainer.source_maps[0]
        path = self.folder / "snapshots" / f"step_{record['step']:08d}.pt"
        torch.save(trainer.learner.state_dict()["agent"], path)
        episodes = self.logged + sum(len(b) for b in self.pending)
        self.history.append({"step": record["step"], "env_steps": record["env_steps"], "episodes": episodes,
                             "win_rate": record["win_rate"][m], "return_mean": record["return_mean"][m],
                             "path": str(path)})

    def on_collect(self, trainer, map_name: str, batch: EpisodeBatch, stats) -> None:
        self.pending.append(batch.trim())
        if sum(len(b) for b in self.pending) >= self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        batch = EpisodeBatch.cat(self.pending)
        _atomic_write(self.folder / "episode_log" / f"log_{self.logged:09d}.h5", batch)
        self.logged += len(batch)
        self.pending = []

    def episodes(self, start: int, stop: int, map_name: str) -> EpisodeBatch:
        """Logged episodes start..stop-1 (in collection order)."""
        self._flush()
        parts = []
        for f in sorted((self.folder / "episode_log").glob("log_*.h5")):
            lo = int(f.stem.split("_")[1])
            b = read_episodes(f, map_name)
            hi = lo + len(b)
            if hi > start and lo < stop:
                parts.append(b[max(start - lo, 0): min(stop, hi) - lo].trim())
        return EpisodeBatch.cat(parts)

    def state_dict(self) -> dict:
        return {"history": self.history, "logged": self.logged,
                "pending": [b.to("cpu") for b in self.pending]}

    def load_state_dict(self, sd: dict) -> None:
        """Forget what was logged after the checkpoint (the resumed run collects it again)."""
        self.history, self.logged, self.pending = list(sd["history"]), int(sd["logged"]), list(sd["pending"])
        for f in (self.folder / "episode_log").glob("log_*.h5"):
            if int(f.stem.split("_")[1]) >= self.logged:
                f.unlink()


def _qmix_sources(map_name, data_root, episodes, seed, device, num_envs, steps, eval_every, buffer_size,
                  meta, log, trainer_kwargs) -> dict:
    from hygen.learners.qmix import QMIXLearner
    from hygen.rundir import RunDir
    from hygen.trainer import Phase, Trainer

    folder = data_root / "_runs" / map_name
    cb = _SnapshotLog(folder)
    # epsilon, episodes per update and the learner's hyperparameters come from gin (qmix.gin
    # defaults = PyMARL's; configs/qmix_tuned.gin = pymarl2's)
    kwargs = {"num_envs": 8, "buffer_size": buffer_size, "eval_every": eval_every,
              "checkpoint_every": eval_every}
    kwargs.update(trainer_kwargs)
    trainer = Trainer(run_dir=RunDir(folder / "qmix"), seed=seed, device=device, learner=QMIXLearner,
                      source_maps=[map_name], eval_maps=[map_name], phases=[Phase("online", steps)],
                      callbacks=[cb], **kwargs)
    log(f"{map_name}: training QMIX for {steps} updates in {folder / 'qmix'} (resumes if killed)")
    results = trainer.run()
    # the untrained policy's snapshot (step 0) had collected nothing, so it has no replay to offer
    trained = [h for h in cb.history if h["episodes"] > 0] or cb.history
    expert, medium = choose_expert_snapshot(cb.history), choose_medium_snapshot(trained)
    meta.update(qmix={"run_dir": str(folder / "qmix"), "env_steps": results["env_steps"],
                      "wall_time_s": results["wall_time_s"], "updates": results["steps"], "history": [{k: v for k, v in h.items() if k != "path"}
                                                               for h in cb.history],
                      "expert_snapshot": {k: v for k, v in expert.items() if k != "path"},
                      "medium_snapshot": {k: v for k, v in medium.items() if k != "path"}})
    log(f"{map_name}: expert snapshot step {expert['step']} (win {expert['win_rate']:.2f}), "
        f"medium snapshot step {medium['step']} (win {medium['win_rate']:.2f})")

    def greedy(snapshot: Mapping, offset: int) -> Callable[[], EpisodeBatch]:
        def run() -> EpisodeBatch:
            learner = QMIXLearner([map_name], device=device)
            learner.agent.load_state_dict(torch.load(snapshot["path"], map_location=learner.device))
            r = Runner(map_name, num_envs=num_envs, seed=seed * 1000 + offset, device=device)
            return _rollouts(r, learner.controller(), episodes, 0.0)
        return run

    def replay() -> EpisodeBatch:  # the replay buffer at the medium snapshot: its last buffer_size episodes
        stop = int(medium["episodes"])
        return cb.episodes(max(0, stop - buffer_size), stop, map_name)

    return {"expert": greedy(expert, 1), "medium": greedy(medium, 2), "medium-replay": replay}


# ------------------------------------------------------------------------------ manifest
def write_manifest(data_root: str | Path, entries: Mapping[str, Mapping]) -> tuple[Path, Path]:
    """Merge ``entries`` ({map: collect_map(...) result}) into manifest.json and write manifest.md
    (a table like the paper's Table 5)."""
    data_root = Path(data_root)
    jpath, mpath = data_root / "manifest.json", data_root / "manifest.md"
    manifest = json.loads(jpath.read_text()) if jpath.exists() else {}
    manifest.update({m: dict(e) for m, e in entries.items()})
    jpath.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    lines = ["# Offline datasets", "",
             "| map | quality | policy | episodes | win rate | mean return | mean length |",
             "|---|---|---|---:|---:|---:|---:|"]
    for m in sorted(manifest):
        for q in QUALITIES:
            s = manifest[m]["qualities"].get(q)
            if s:
                lines.append(f"| {m} | {q} | {manifest[m]['policy']} | {s['episodes']} | {s['win_rate']:.3f} | "
                             f"{s['return_mean']:.2f} | {s['episode_length_mean']:.1f} |")
    trained = [m for m in sorted(manifest) if "qmix" in manifest[m]]
    if trained:  # how the behaviour policies were trained (QMIX collections only)
        lines += ["", "## QMIX behaviour policies", "",
                  ("| map | updates | env steps | wall time | expert: test win (update) | "
                   "medium: test win (update) |"), "|---|---:|---:|---:|---:|---:|"]
        for m in trained:
            q = manifest[m]["qmix"]
            ex, med = q["expert_snapshot"], q["medium_snapshot"]
            wall = q.get("wall_time_s")
            if wall is None:  # entries written before wall time was recorded: the run's results file
                try:
                    wall = json.loads((Path(q["run_dir"]) / "results.json").read_text())["wall_time_s"]
                except (OSError, ValueError, KeyError):
                    pass
            lines.append(f"| {m} | {q['updates']} | {q['env_steps']:,} | "
                         f"{'' if wall is None else f'{wall / 60:.0f} min'} | "
                         f"{ex['win_rate']:.3f} ({ex['step']}) | {med['win_rate']:.3f} ({med['step']}) |")
    mpath.write_text("\n".join(lines) + "\n")
    return jpath, mpath
