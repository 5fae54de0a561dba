"""Whole-loop QMIX training speed: env steps/s and where the time goes.

Runs the real Trainer (QMIX, PyMARL defaults: 1 online episode per update, batch 32;
or the bindings of ``--gin_file``, e.g. ``qmix_tuned``: 8 episodes per update, Adam, TD(lambda))
for a number of updates after the replay buffer warm-up and splits wall time into
simulator (env.step), acting (controller.act: one forward pass for all envs), learner
update (forward + backward + RMSprop) and the rest (buffer insert/sample, bookkeeping).
Evaluation time is excluded. One torch thread.

    python benchmarks/qmix_speed.py [--maps 3m 3s5z] [--updates 200] [--num-envs 8] [--out qmix_speed.json]
    python benchmarks/qmix_speed.py --gin_file qmix_tuned --out benchmarks/results/qmix_speed_tuned.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from hygen import config
from hygen.learners.qmix import QMIXLearner
from hygen.rundir import RunDir
from hygen.runner import LinearEpsilon, Runner
from hygen.trainer import Phase, Trainer


class Timers:
    def __init__(self):
        self.t = defaultdict(float)

    def wrap(self, obj, name: str, key: str):
        fn = getattr(obj, name)

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.t[key] += time.perf_counter() - t0

        setattr(obj, name, timed)


def bench(map_name: str, updates: int, num_envs: int, device: str) -> dict:
    timers = Timers()
    learner = QMIXLearner([map_name], device=device)  # hyperparameters: gin bindings, if any
    timers.wrap(learner, "update", "update")
    timers.wrap(learner.controller(), "act", "act")
    orig_eval = Runner.evaluate

    def evaluate(self, *a, **k):  # excluded from the timing, with the acting done inside it
        t0, act0 = time.perf_counter(), timers.t["act"]
        try:
            return orig_eval(self, *a, **k)
        finally:
            timers.t["eval"] += time.perf_counter() - t0
            timers.t["eval_act"] += timers.t["act"] - act0

    Runner.evaluate = evaluate
    try:
        with tempfile.TemporaryDirectory() as d:
            # episodes_per_step and target_update_every come from the gin file when one is given
            tr = Trainer(run_dir=RunDir(d), seed=0, device=device, learner=learner, source_maps=[map_name],
                         eval_maps=[map_name],
                         phases=[Phase("online", updates)], num_envs=num_envs, eval_episodes=8,
                         eval_every=10**9, checkpoint_every=10**9, log_every=10**9,
                         epsilon=LinearEpsilon(1.0, 0.05, 50_000))
            timers.wrap(tr.runners[map_name].env, "step", "sim")
            t0 = time.perf_counter()
            res = tr.run()
            wall = time.perf_counter() - t0
            tr.run_dir.close()
    finally:
        Runner.evaluate = orig_eval
    train_wall = wall - timers.t["eval"]
    # the warm-up episodes (the first 32, no updates yet) are part of the loop and counted
    sim, act, upd = timers.t["sim"], timers.t["act"] - timers.t["eval_act"], timers.t["update"]
    other = train_wall - sim - act - upd
    return {"map": map_name, "num_envs": num_envs, "episodes_per_update": tr.episodes_per_step, "updates": res["steps"], "env_steps": res["env_steps"],
            "wall_s": round(train_wall, 2), "env_steps_per_s": round(res["env_steps"] / train_wall, 1),
            "updates_per_s": round(res["steps"] / train_wall, 2),
            "ms_per_update": round(1000 * upd / max(res["steps"], 1), 1),
            "share": {k: round(v / train_wall, 3) for k, v in
                      (("simulator", sim), ("acting", act), ("update", upd), ("other", other))}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--maps", nargs="+", default=["3m", "3s5z"])
    p.add_argument("--updates", type=int, default=200)
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--gin_file", action="append", default=[],
                   help="QMIX bindings to time (e.g. qmix_tuned); default: PyMARL's defaults")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if args.gin_file:
        config.parse_config(args.gin_file)
    torch.set_num_threads(1)
    os.environ.setdefault("HYGEN_NO_PROGRESS", "1")
    rows = []
    for m in args.maps:
        r = bench(m, args.updates, args.num_envs, args.device)
        rows.append(r)
    head = f"{'map':<8}{'envs':>5}{'ep/upd':>7}{'updates':>8}{'env steps':>10}{'steps/s':>9}{'ms/upd':>8}" \
           f"{'sim':>7}{'act':>7}{'update':>8}{'other':>7}"
    print(head)
    for r in rows:
        s = r["share"]
        print(f"{r['map']:<8}{r['num_envs']:>5}{r['episodes_per_update']:>7}{r['updates']:>8}{r['env_steps']:>10}{r['env_steps_per_s']:>9}"
              f"{r['ms_per_update']:>8}{s['simulator']:>7.0%}{s['acting']:>7.0%}{s['update']:>8.0%}"
              f"{s['other']:>7.0%}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"threads": 1, "device": args.device, "gin_files": args.gin_file, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
