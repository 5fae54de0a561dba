"""Seconds per HyGen update on marine-hard (3 source maps x 32 episodes), and FLOPs vs matmul peak.

Two episode-length settings:
  full       every episode runs to its map's limit (3m 60, 5m_vs_6m 70, 9m_vs_10m 140 steps);
  realistic  lengths drawn from the real 3m medium data (mean ~26 of 60 steps) scaled to each
             map's limit (uniform in [limit/4, 3 limit/4] when the data is absent).
Anchors from the public HyGen code on this machine (2 threads): ~15 s per phase-1 update at
full lengths, ~13 s per phase-2 update (with 9m_vs_10m episodes of 71 steps; the "full" rows
here use 140, so the speed-up printed for them is conservative).

Also measured: acting time per batched env step and the time to collect 2 online episodes
per map (``Runner`` on the simulator, 2 environments per map, untrained policy), and the
projected wall time of the full protocol: 15 000 phase-1 updates + 35 000 phase-2 updates,
each phase-2 update preceded by the online collection (realistic lengths).

Phase 2 is timed in the steady state of a run, where every sampled stored episode's
q(z | s, a, i) is already in the learner's frozen-skill cache, and once more with the cache
off (``frozen_skill_cache = 0``: the frozen global encoder recomputed for every sample).

FLOPs are counted by ``torch.utils.flop_counter`` (matmuls and attention); "x floor" is the
time divided by FLOPs / matmul peak, the time if every FLOP ran at the measured peak.

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
from hygen.runner import Runner
from hygen.utils import keep_freed_memory

ANCHORS_S = {"skill_discovery": 15.0, "policy": 13.0}
PROTOCOL = {"skill_discovery": 15_000, "policy": 35_000}  # updates per phase (paper)
ONLINE_EPISODES = 2  # per source map per phase-2 update
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


def sync(device: str) -> None:
    """CUDA runs asynchronously: wait for queued work before reading the clock."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak_gflops(size: int = 1024, reps: int = 10, device: str = "cpu") -> float:
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * size ** 3 * reps / (time.perf_counter() - t) / 1e9


def bench(maps, batch_size: int, mode: str, phase: str, repeats: int, seed: int = 0,
          skill_cache: bool = True, device: str = "cpu") -> dict:
    g = torch.Generator().manual_seed(seed)
    batches = {}
    for i, m in enumerate(maps):
        b = random_episodes(m, batch_size, lengths=episode_lengths(m, batch_size, mode, g), seed=seed + i)
        b.n_offline = batch_size // 2
        b.episode_ids = torch.arange(batch_size)  # stored episodes, as the samplers give them
        batches[m] = b.to(device)
    torch.manual_seed(seed)
    learner = HyGenLearner(maps=list(maps), frozen_skill_cache=5000 if skill_cache else 0, device=device)
    learner.update(batches, 0, phase)  # warm-up (allocations, first-call overheads; fills the cache)
    with FlopCounterMode(display=False) as fc:
        learner.update(batches, 0, phase)
    flops = fc.get_total_flops()
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        learner.update(batches, 0, phase)
        sync(device)
        times.append(time.perf_counter() - t)
    steps = {m: int(b.episode_lengths.sum()) for m, b in batches.items()}
    return {"phase": phase if skill_cache or phase != "policy" else "policy, no cache", "lengths": mode,
            "skill_cache": skill_cache, "seconds_median": statistics.median(times), "seconds": times,
            "gflop": flops / 1e9, "transitions": steps}


class TimedController:
    """Wraps a controller and adds up the seconds spent in ``act``."""

    def __init__(self, inner):
        self.inner, self.act_s, self.act_calls = inner, 0.0, 0

    def initial_state(self, map_name: str, num_envs: int):
        return self.inner.initial_state(map_name, num_envs)

    def act(self, *args, **kwargs):
        t = time.perf_counter()
        out = self.inner.act(*args, **kwargs)
        self.act_s += time.perf_counter() - t
        self.act_calls += 1
        return out


def bench_collection(maps, repeats: int, num_envs: int = ONLINE_EPISODES, seed: int = 0, device: str = "cpu") -> dict:
    """Seconds to collect ONLINE_EPISODES episodes per map (best of ``repeats``) and acting time."""
    torch.manual_seed(seed)
    learner = HyGenLearner(maps=list(maps), device=device)
    out = {}
    for i, m in enumerate(maps):
        runner = Runner(m, num_envs=num_envs, seed=seed + i, device=device)
        ctl = TimedController(learner.controller())
        runner.collect(ctl, n_episodes=ONLINE_EPISODES, epsilon=0.05)  # warm-up
        best, lengths = float("inf"), []
        ctl.act_s, ctl.act_calls = 0.0, 0
        for _ in range(repeats):
            t = time.perf_counter()
            _, stats = runner.collect(ctl, n_episodes=ONLINE_EPISODES, epsilon=0.05)
            best = min(best, time.perf_counter() - t)
            lengths += stats.lengths
        out[m] = {"collect_s": best, "episode_length_mean": statistics.mean(lengths),
                  "act_ms_per_env_step": 1e3 * ctl.act_s / max(ctl.act_calls, 1), "num_envs": num_envs}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--taskset", default="marine-hard")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lengths", nargs="+", default=["full", "realistic"], choices=["full", "realistic"])
    ap.add_argument("--phases", nargs="+", default=["skill_discovery", "policy"],
                    choices=["skill_discovery", "policy"])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the Trainer does on CPU
    maps = task_set(args.taskset).source
    load_before = os.getloadavg()[0]
    peak = matmul_peak_gflops(device=args.device)
    rows = [bench(maps, args.batch_size, mode, phase, args.repeats, skill_cache=cache, device=args.device)
            for mode in args.lengths for phase in args.phases
            for cache in ((True, False) if phase == "policy" else (True,))]
    collection = bench_collection(maps, args.repeats, device=args.device)
    load = (load_before + os.getloadavg()[0]) / 2
    print(f"HyGen update time, {args.taskset} {list(maps)} x {args.batch_size} episodes, "
          f"{args.threads} thread(s), {args.device}; matmul peak {peak:.1f} GFLOP/s; load average {load:.1f}")
    print(f"{'phase':<18}{'lengths':<11}{'s/update':>10}{'anchor s':>10}{'speed-up':>10}{'GFLOP':>9}"
          f"{'GFLOP/s':>9}{'% peak':>8}{'x floor':>9}")
    for r in rows:
        s = r["seconds_median"]
        r["achieved_gflops"] = r["gflop"] / s
        r["fraction_of_peak"] = r["achieved_gflops"] / peak
        r["floor_s"] = r["gflop"] / peak
        anchor = ANCHORS_S[r["phase"].split(",")[0]] if r["lengths"] == "full" else None
        r["speedup_vs_public"] = anchor / s if anchor else None
        print(f"{r['phase']:<18}{r['lengths']:<11}{s:>10.2f}{anchor or float('nan'):>10.1f}"
              f"{(r['speedup_vs_public'] or float('nan')):>10.1f}{r['gflop']:>9.1f}{r['achieved_gflops']:>9.1f}"
              f"{100 * r['fraction_of_peak']:>7.0f}%{s / r['floor_s']:>9.1f}")
    print(f"online collection, {ONLINE_EPISODES} episodes per map ({ONLINE_EPISODES} envs, untrained policy):")
    for m, c in collection.items():
        print(f"  {m:<12} {c['collect_s']:6.3f} s  mean length {c['episode_length_mean']:5.1f}  "
              f"acting {c['act_ms_per_env_step']:.2f} ms per env step")
    collect_s = sum(c["collect_s"] for c in collection.values())
    projection = {}
    for mode in args.lengths:
        t = {r["phase"]: r["seconds_median"] for r in rows if r["lengths"] == mode}
        if "skill_discovery" in t and "policy" in t:
            hours = (PROTOCOL["skill_discovery"] * t["skill_discovery"]
                     + PROTOCOL["policy"] * (t["policy"] + collect_s)) / 3600
            projection[mode] = {"hours": hours, "phase1_h": PROTOCOL["skill_discovery"] * t["skill_discovery"] / 3600,
                                "phase2_h": PROTOCOL["policy"] * (t["policy"] + collect_s) / 3600}
            print(f"projected full protocol ({mode} lengths): {hours:.1f} h = 15k x {t['skill_discovery']:.2f} s "
                  f"+ 35k x ({t['policy']:.2f} s update + {collect_s:.2f} s collection)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"taskset": args.taskset, "maps": list(maps), "batch_size": args.batch_size,
                                        "threads": args.threads, "device": args.device,
                                        "matmul_peak_gflops": peak, "load_average": load,
                                        "anchors_s": ANCHORS_S, "torch": torch.__version__, "rows": rows,
                                        "collection": collection, "collection_s_per_update": collect_s,
                                        "protocol_updates": PROTOCOL, "projection": projection}, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
