"""Simulator throughput: env-steps/s and agent-steps/s with random valid actions.

    python benchmarks/env_throughput.py [--maps 3m 3s5z 13m_vs_15m] [--envs 1 64 512] [--collisions on|off|both]
        [--game calibrated|legacy|both] [--out tp.json]

One CPU thread (torch.set_num_threads(1)); CUDA too when available. Random actions are
drawn from avail_actions every step (that sampling is included in the timing, as a runner
would pay it); --no-validate skips the env's action check. Each cell is timed --repeats
times and the best is reported (the machine is shared: the best run is the least disturbed);
the 1-minute load average is printed and stored with the results. Next to the wall-clock rate
the rate per CPU-second of this process is reported: on a loaded machine it stays close to
the quiet-machine wall-clock rate, while the wall-clock rate halves. ``--collisions both`` times
collisions on and off interleaved in one process (repeat k of each back to back) and prints
their ratio, the measure that survives a loaded machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

import hygen.envs as he
from hygen.envs.scripted import random_actions

# "collisions on/off": the default game with only collisions (mechanics 5-7) switched
GAMES = {"default": {}, "calibrated": dict(he.CALIBRATED_GAME), "legacy": dict(he.LEGACY_GAME),
         "collisions on": {"collisions": True}, "collisions off": {"collisions": False}}


def measure(map_name: str, num_envs: int, device: str, seconds: float, validate: bool, repeats: int = 3,
            substeps: int = 2, game: str = "default") -> dict:
    return measure_interleaved(map_name, num_envs, device, seconds, validate, repeats, substeps, [game])[0]


def measure_interleaved(map_name: str, num_envs: int, device: str, seconds: float, validate: bool, repeats: int,
                        substeps: int, games: list[str]) -> list[dict]:
    """One row per game of ``GAMES``, their timing windows interleaved so that machine load
    falls on all of them alike."""
    runs = []
    for game in games:
        kw = GAMES[game]
        env = he.make(map_name, num_envs=num_envs, seed=0, device=device, validate_actions=validate,
                      substeps=substeps, **kw)
        env.reset()
        g = torch.Generator(device=device).manual_seed(0)
        for _ in range(3):
            env.step(random_actions(env.get_avail_actions(), g))
        runs.append({"env": env, "g": g, "best": float("inf"), "best_cpu": float("inf")})  # s per step
    for _ in range(repeats):
        for r in runs:
            env, g = r["env"], r["g"]
            steps, t0, c0 = 0, time.perf_counter(), time.process_time()
            while True:
                env.step(random_actions(env.get_avail_actions(), g))
                steps += 1
                if steps % 10 == 0:
                    if device.startswith("cuda"):
                        torch.cuda.synchronize()
                    if time.perf_counter() - t0 >= seconds:
                        break
            r["best"] = min(r["best"], (time.perf_counter() - t0) / steps)
            r["best_cpu"] = min(r["best_cpu"], (time.process_time() - c0) / steps)
    rows = []
    for game, r in zip(games, runs):
        eps = num_envs / r["best"]
        rows.append({"map": map_name, "num_envs": num_envs, "device": device, "game": game, "env": GAMES[game],
                     "env_steps_per_s": eps, "agent_steps_per_s": eps * r["env"].n_agents,
                     "ms_per_step": 1e3 * r["best"], "env_steps_per_cpu_s": num_envs / r["best_cpu"]})
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--maps", nargs="+", default=["3m", "3s5z", "13m_vs_15m"])
    p.add_argument("--envs", nargs="+", type=int, default=[1, 64, 512])
    p.add_argument("--seconds", type=float, default=1.0, help="timing window per repeat")
    p.add_argument("--repeats", type=int, default=3, help="timing windows per cell; the best is reported")
    p.add_argument("--substeps", type=int, default=2, help="game-loop chunks per step (SimEnv substeps)")
    p.add_argument("--no-validate", action="store_true", help="skip the env's available-action check")
    p.add_argument("--collisions", choices=["on", "off", "both"], default=None,
                   help="SimEnv collisions (units steer around each other; docs/simulator.md); default: the env's; "
                        "both: on and off interleaved, with their ratio")
    p.add_argument("--game", choices=["calibrated", "legacy", "both"], default=None,
                   help="the calibrated game (the default; hygen.envs.CALIBRATED_GAME), the legacy one (every "
                        "mechanic off, envs/legacy), or both interleaved with their ratio; overrides --collisions")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    games = ({"calibrated": ["calibrated"], "legacy": ["legacy"], "both": ["calibrated", "legacy"]}[args.game]
             if args.game else {None: ["default"], "on": ["collisions on"], "off": ["collisions off"],
                                "both": ["collisions on", "collisions off"]}[args.collisions])
    torch.set_num_threads(1)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"1-min load average {load:.2f} on {os.cpu_count()} cores; best of {args.repeats} x {args.seconds:.1f} s")
    print(f"{'map':12s} {'envs':>5s} {'device':6s} {'env-steps/s':>12s} {'agent-steps/s':>14s} {'ms/step':>8s} "
          f"{'env-steps/CPU-s':>16s}")
    for dev in devices:
        for m in args.maps:
            for e in args.envs:
                got = measure_interleaved(m, e, dev, args.seconds, not args.no_validate, args.repeats,
                                          args.substeps, games)
                rows += got
                for r in got:
                    print(f"{m:12s} {e:5d} {dev:6s} {r['env_steps_per_s']:12.0f} {r['agent_steps_per_s']:14.0f} "
                          f"{r['ms_per_step']:8.2f} {r['env_steps_per_cpu_s']:16.0f} {r['game']}")
                if len(got) == 2:
                    print(f"{'':25s} {got[0]['game']} / {got[1]['game']}: "
                          f"{got[0]['env_steps_per_cpu_s'] / got[1]['env_steps_per_cpu_s']:.3f} (per CPU-second)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"threads": 1, "validate_actions": not args.no_validate, "substeps": args.substeps,
                                        "games": games,
                                        "repeats": args.repeats, "load_average_1min": load, "rows": rows},
                                       indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
