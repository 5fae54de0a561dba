"""Seconds per HyGen update on marine-hard (3 source maps x 32 episodes), and FLOPs vs matmul peak.

Two episode-length settings:
  full       every episode runs to its map's limit (3m 60, 5m_vs_6m 70, 9m_vs_10m 140 steps);
  realistic  lengths drawn from the real 3m medium data (mean ~26 of 60 steps) scaled to each
             map's limit (uniform in [limit/4, 3 limit/4] when the data is absent).
Anchors from the public HyGen code on this machine: ~15 s per phase-1 update at full lengths,
~13 s per phase-2 update.

    python benchmarks/train_speed.py --out results/train_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from hygen.buffers.synthetic import random_episodes
from hygen.envs.maps import get_map, task_set
from hygen.learners.hygen import HyGenLearner

ANCHORS_S = {"skill_discovery": 15.0, "policy": 13.0}
DATA = Path(os.environ.get("HYGEN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
REAL_3M = DATA / "smac" / "3m" / "medium" / "part_0.h5"


def episode_lengths(map_name: str, n: int, mode: str, g: torch.Generator) -> torch.Tensor:
    limit = get_map(map_name).episode_limit
    if mode == "full":
        return torch.full((n,), limit)
    if REAL_3M.is_file():
        import h5py

        with h5py.File(REAL_3M) as f:
            real = torch.tensor(f["terminated"][:, :, 0]).argmax(1) + 1  # steps per episode (limit 60)
        frac = real[torch.randint(0, len(real), (n,), generator=g)].float() / 60.0
        return (frac * limit).round().long().clamp(1, limit)
    return torch.randint(limit // 4, 3 * limit // 4 + 1, (n,), generator=g)


def matmul_peak_gflops(size: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * size ** 3 * reps / (time.perf_counter() - t) / 1e9


def bench(maps, batch_size: int, mode: str, phase: str, repeats: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    batches = {}
    for i, m in enumerate(maps):
        b = random_episodes(m, batch_size, lengths=episode_lengths(m, batch_size, mode, g), seed=seed + i)
        b.n_offline = batch_size // 2
        batches[m] = b
    torch.manual_seed(seed)
    learner = HyGenLearner(maps=list(maps))
    learner.update(batches, 0, phase)  # warm-up (allocations, first-call overheads)
    with FlopCounterMode(display=False) as fc:
        learner.update(batches, 0, phase)
    flops = fc.get_total_flops()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        learner.update(batches, 0, phase)
        times.append(time.perf_counter() - t)
    steps = {m: int(b.episode_lengths.sum()) for m, b in batches.items()}
    return {"phase": phase, "lengths": mode, "seconds_median": statistics.median(times), "seconds": times,
            "gflop": flops / 1e9, "transitions": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--taskset", default="marine-hard")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lengths", nargs="+", default=["full", "realistic"], choices=["full", "realistic"])
    ap.add_argument("--phases", nargs="+", default=["skill_discovery", "policy"],
                    choices=["skill_discovery", "policy"])
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    maps = task_set(args.taskset).source
    peak = matmul_peak_gflops()
    rows = [bench(maps, args.batch_size, mode, phase, args.repeats) for mode in args.lengths for phase in args.phases]
    print(f"HyGen update time, {args.taskset} {list(maps)} x {args.batch_size} episodes, "
          f"{args.threads} thread(s); matmul peak {peak:.1f} GFLOP/s")
    print(f"{'phase':<16}{'lengths':<11}{'s/update':>10}{'anchor s':>10}{'speed-up':>10}{'GFLOP':>9}"
          f"{'GFLOP/s':>9}{'% peak':>8}")
    for r in rows:
        s = r["seconds_median"]
        r["achieved_gflops"] = r["gflop"] / s
        r["fraction_of_peak"] = r["achieved_gflops"] / peak
        anchor = ANCHORS_S[r["phase"]] if r["lengths"] == "full" else None
        r["speedup_vs_public"] = anchor / s if anchor else None
        print(f"{r['phase']:<16}{r['lengths']:<11}{s:>10.2f}{anchor or float('nan'):>10.1f}"
              f"{(r['speedup_vs_public'] or float('nan')):>10.1f}{r['gflop']:>9.1f}{r['achieved_gflops']:>9.1f}"
              f"{100 * r['fraction_of_peak']:>7.0f}%")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"taskset": args.taskset, "maps": list(maps), "batch_size": args.batch_size,
                                        "threads": args.threads, "matmul_peak_gflops": peak,
                                        "anchors_s": ANCHORS_S, "torch": torch.__version__, "rows": rows},
                                       indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
