"""Calibration table: the built-in simulator against real SC2 episodes (3m medium).

    python benchmarks/sim_fidelity.py [--data PATH] [--episodes 512] [--out fidelity.json]

Pinned rows are game mechanics the real data determines (must agree within 5 %); the
others depend on the behaviour policy (the sim runs the focus-fire heuristic with 30 %
random actions, the data a medium QMIX policy) and are shown for orientation only.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from hygen.envs.scripted import focus_fire_actions
from hygen.envs.sim_fidelity import compare, fidelity_stats, load_real, record_sim

DEFAULT_DATA = Path(os.environ.get("HYGEN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA / "smac/3m/medium/part_0.h5")
    p.add_argument("--episodes", type=int, default=512, help="simulated episodes")
    p.add_argument("--epsilon", type=float, default=0.3, help="random-action share of the sim's policy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the table as JSON")
    args = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    real = fidelity_stats(load_real(args.data), "3m")
    g = torch.Generator().manual_seed(args.seed)
    sim_eps = record_sim("3m", lambda env: focus_fire_actions(env, args.epsilon, g), args.episodes, args.seed)
    sim = fidelity_stats(sim_eps, "3m")
    rows = compare(real, sim)
    print(f"{'statistic':24s} {'unit':10s} {'real SC2':>10s} {'sim':>10s} {'rel err':>8s}  pinned")
    for r in rows:
        flag = ("ok" if r["ok"] else "FAIL") if r["pinned"] else "-"
        print(f"{r['stat']:24s} {r['unit']:10s} {r['real']:10.4f} {r['sim']:10.4f} {r['rel_err']:8.3f}  {flag}")
    bad = [r["stat"] for r in rows if r["pinned"] and not r["ok"]]
    print(f"{sum(r['pinned'] for r in rows) - len(bad)}/{sum(r['pinned'] for r in rows)} pinned rows within 5 % "
          f"({time.perf_counter() - t0:.1f} s)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"data": str(args.data), "sim_episodes": args.episodes,
                                        "sim_policy": f"focus_fire epsilon={args.epsilon}", "rows": rows}, indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
