"""Closed-loop fidelity: a policy cloned from the real SC2 3m episodes, played in each simulator game.

The real 3m medium data were played by a QMIX policy in StarCraft II. Behaviour cloning on
them gives a policy that acts like it; played in the simulator, its actions step by step should
follow the real data's as long as the simulator's fights unfold like SC2's. Per step, the share
of each action kind (no-op, stop, north, south, east, west, attack) in the simulator is compared
with the real data's: the total variation distance (0: the same mix, 1: disjoint). The win rate
and return are printed beside the real data's.

    # the clone (BC-t on the real data, about 4 min on one CPU thread)
    hygen train --gin_file methods/bc_t --gin_file runs/offline --gin_file data/medium \\
        --gin_param "SOURCE_MAPS = ['3m']" --gin_param "EVAL_MAPS = ['3m']" \\
        --gin_param "DATA_ROOT = '../shared/data/smac'" --gin_param "SKILL_STEPS = 600" \\
        --gin_param "POLICY_STEPS = 1400" --gin_param "Trainer.batch_size = 32" \\
        --gin_param "Trainer.offline_episodes = 2000" --run_dir runs/bc_real3m --threads 1
    python benchmarks/sim_closed_loop.py --run runs/bc_real3m [--episodes 128] [--out closed_loop.json] [--plot closed_loop.png]

A clone of the simulator's own QMIX data (DATA_ROOT = the simulator's data root) is the control:
in the game its data came from it should follow its data closely.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from hygen.envs import CALIBRATED_GAME, LEGACY_GAME
from hygen.envs.maps import get_map
from hygen.envs.sim_fidelity import _hold_final, _Units, load_real

DEFAULT_DATA = Path(os.environ.get("HYGEN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
def _bindings(**kw) -> list[str]:
    return [f"SimEnv.{k} = {v}" for k, v in kw.items()]


# the legacy game, the calibrated one (hygen.envs.CALIBRATED_GAME, the default) and the steps between
def _legacy_plus(**on) -> list[str]:
    return _bindings(**(LEGACY_GAME | on))


GAMES = {"legacy": _legacy_plus(), "collisions": _legacy_plus(collisions=True),
         "collisions + sticky": _legacy_plus(collisions=True, sticky_retaliation=True),  # session 10's calibrated
         "collisions + sticky + formation": _legacy_plus(collisions=True, sticky_retaliation=True, formation_move=True),
         "calibrated": _bindings(**CALIBRATED_GAME),
         "calibrated + variation": _bindings(**CALIBRATED_GAME, collision_variation=True),
         "calibrated + ordered fire": _bindings(**CALIBRATED_GAME, ordered_fire=True),  # mechanic 12
         "calibrated + variation + ordered fire": _bindings(**CALIBRATED_GAME, collision_variation=True,
                                                            ordered_fire=True)}
KINDS = ("no-op", "stop", "north", "south", "east", "west", "attack")


def kind_shares(actions: np.ndarray, filled: np.ndarray, steps: int) -> np.ndarray:
    """[steps, 7] share of each action kind among the agents' actions recorded at each step."""
    out = np.full((steps, len(KINDS)), np.nan)
    for t in range(min(steps, actions.shape[1])):
        a = actions[:, t][filled[:, t]].ravel()
        if a.size:
            out[t] = np.bincount(np.minimum(a, 6), minlength=7) / a.size
    return out


def play(run: Path, bindings: list[str], episodes: int, seed: int, sample: bool = False) -> dict:
    """The run's greedy policy (``sample``: actions drawn from its softmax, for a HyGen-family
    learner) for ``episodes`` 3m episodes in the game ``bindings`` set."""
    import gin

    from hygen import config
    from hygen.rundir import RunDir
    from hygen.runner import Runner
    from hygen.trainer import Trainer

    config.reset()
    sampled = ["HyGenLearner.exploration = @EpsilonSkillsSampledActions()"] if sample else []
    config.parse_config([run / "config.gin"], ["Trainer.data_root = None", *bindings, *sampled], unused_macros_ok=True)
    trainer = Trainer(run_dir=RunDir(run), seed=0, device="cpu", num_threads=1)
    trainer.restore()
    batch, stats = Runner("3m", num_envs=min(64, episodes), seed=seed).collect(
        trainer.learner.controller(), n_episodes=episodes, epsilon=1e-9 if sample else 0.0)  # > 0: explore = sample
    gin.clear_config()
    actions = batch.actions.numpy().reshape(batch.actions.shape[0], batch.actions.shape[1], -1)
    filled = batch.filled.numpy().reshape(batch.filled.shape[0], batch.filled.shape[1], -1)[..., 0].astype(bool)
    return {"actions": actions, "filled": filled, "state": batch.state.numpy(), "win_rate": stats.win_rate,
            "return_mean": float(np.mean(stats.returns))}


def win_interval(wins: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson interval of a win rate from n episodes (256 episodes: about +-6 points)."""
    p = wins / n
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def health_curves(state: np.ndarray, filled: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    """Mean health fraction of each side per step (an ended episode keeps its final state)."""
    lengths = filled.sum(1) - 1
    u = _Units(_hold_final(state, lengths)[:, :steps], get_map("3m"))
    return {"ally": u.hp[..., :3].mean((0, 2)), "enemy": u.hp[..., 3:].mean((0, 2))}


def plot_games(real_hp: dict, out: dict, path: Path) -> None:
    """Per game: the action mix's distance from SC2's and both sides' health, against SC2's."""
    try:
        import matplotlib
    except ImportError:
        print(f"matplotlib is not installed: no plot written to {path} (pip install matplotlib)")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    t = np.arange(len(real_hp["ally"]))
    for side, ax in zip(("ally", "enemy"), axes[1:]):
        ax.plot(t, real_hp[side], "k", lw=2.5, label="SC2")
    for i, (game, g) in enumerate(out["games"].items()):
        c = f"C{i}"
        lo, hi = g["win_rate_ci95"]
        axes[0].plot(t, [np.nan if x is None else x for x in g["tv_per_step"]], c,
                     label=f"{game}: win {100 * g['win_rate']:.0f} % [{100 * lo:.0f}, {100 * hi:.0f}]")
        for side, ax in zip(("ally", "enemy"), axes[1:]):
            ax.plot(t, g[f"{side}_health"], c + "--", label=game)
    axes[0].set_title("total variation of the action-kind mix from SC2's")
    axes[1].set_title("mean ally health")
    axes[2].set_title("mean enemy health")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.suptitle(f"Closed loop: {out['run']} in each game, {out['episodes']} episodes "
                 f"(SC2 win {100 * out['sc2_win_rate']:.0f} %)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    print(f"plot written to {path}")


def main() -> int:
    torch.set_num_threads(1)  # the numbers are one thread's, as the simulator's speed pin
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="run directory of a policy trained on 3m")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA / "smac/3m/medium/part_0.h5")
    p.add_argument("--episodes", type=int, default=128)
    p.add_argument("--steps", type=int, default=21, help="steps compared (0 .. steps-1)")
    p.add_argument("--seed", type=int, default=99)
    p.add_argument("--sample", action="store_true",
                   help="draw each action from the policy's softmax instead of its argmax (the data's policy "
                        "was not greedy either)")
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    p.add_argument("--plot", type=Path, default=None, help="write the curves as a PNG (needs matplotlib)")
    p.add_argument("--games", nargs="+", default=list(GAMES), choices=list(GAMES), metavar="GAME",
                   help=f"games to play (default: all of {', '.join(GAMES)})")
    args = p.parse_args()
    if not (args.run / "config.gin").is_file():
        p.error(f"--run {args.run}: not a run directory (no config.gin); train the clone first (see --help)")
    real = load_real(args.data)
    fil = real["filled"].astype(bool)
    lengths = fil.sum(1) - 1
    real_shares = kind_shares(real["actions"], np.arange(fil.shape[1])[None] < lengths[:, None], args.steps)
    rets = (real["reward"] * fil).sum(1)
    real_hp = health_curves(real["state"], fil, args.steps)
    final = _Units(_hold_final(real["state"], lengths)[:, -1], get_map("3m"))
    won = int((final.hp[:, 3:] == 0).all(-1).sum())  # every enemy dead in the last recorded state
    lo, hi = win_interval(won, len(lengths))
    print(f"real SC2 ({args.data}): {len(lengths)} episodes, win {won / len(lengths):.3f} [{lo:.3f}, {hi:.3f}], "
          f"return {rets.mean():.2f}")
    marks = [t for t in (8, 12, 16, 20) if t < args.steps]
    print("  health ally / enemy at steps " + ", ".join(map(str, marks)) + ": "
          + "  ".join(f"{real_hp['ally'][t]:.2f}/{real_hp['enemy'][t]:.2f}" for t in marks))
    out = {"run": str(args.run), "data": str(args.data), "episodes": args.episodes, "sample": args.sample,
           "sc2_win_rate": won / len(lengths), "games": {}}
    print(f"{'game':34s} {'win [95 % interval]':>20s} {'return':>7s}  total variation of the action-kind mix per step, "
          f"0..{args.steps - 1}")
    for game in args.games:
        bindings = GAMES[game]
        res = play(args.run, bindings, args.episodes, args.seed, args.sample)
        shares = kind_shares(res["actions"], res["filled"], args.steps)
        tv = 0.5 * np.abs(shares - real_shares).sum(1)
        hp = health_curves(res["state"], res["filled"], args.steps)
        lo, hi = win_interval(res["win_rate"] * args.episodes, args.episodes)
        print(f"{game:34s} {res['win_rate']:6.3f} [{lo:.3f}, {hi:.3f}] {res['return_mean']:7.2f}  mean {np.nanmean(tv):.3f}: "
              + " ".join("-" if np.isnan(x) else f"{x:.2f}" for x in tv))
        print(f"{'':34s} health ally / enemy: " + "  ".join(f"{hp['ally'][t]:.2f}/{hp['enemy'][t]:.2f}" for t in marks))
        out["games"][game] = {"win_rate": res["win_rate"], "win_rate_ci95": [lo, hi], "return_mean": res["return_mean"],
                              "tv_per_step": [None if np.isnan(x) else float(x) for x in tv],
                              "tv_mean": float(np.nanmean(tv)),
                              "ally_health": [float(x) for x in hp["ally"]], "enemy_health": [float(x) for x in hp["enemy"]]}
    if args.out:
        args.out.write_text(json.dumps(out, indent=2))
    if args.plot:
        plot_games(real_hp, out, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
