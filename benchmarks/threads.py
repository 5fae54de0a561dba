"""Training and collection speed against torch threads and competing busy processes.

    python benchmarks/threads.py --out benchmarks/results/threads.json

For every thread policy (--threads, default 0 1 2 auto; 0 = torch's own default, one thread per
core, what hygen used before issue 18; auto = hygen.threads.AdaptiveThreads, re-measuring the
other processes' load every 3 s) and every number of competing busy-loop processes (--busy,
default 0 1 2: each ``while True: pass``, one core's worth of load, as another user's job would
be), a fresh worker process runs --warmup seconds of updates (an adaptive policy settles, as it
has in a running demo) and then measures

- train: HyGen phase-2 updates per second at demo scale (configs/demo.gin: marine-hard,
  8 episodes per map per batch, lengths drawn from the real 3m medium data scaled to each map
  as in train_speed.py); the learner's frozen-skill cache is warm, as in a running demo;
- collect: online env steps per second of the untrained HyGen controller on 3m
  (2 environments, as Trainer.num_envs in hygen.gin).

Each worker sets its policy before torch does any work (hygen.utils.set_threads, as every
command does) and calls hygen.threads.tick() after every update and collection, as the Trainer
does. The machine may be shared with other people's jobs: the cells are interleaved (repeat 1 of
every cell, then repeat 2, ...; within a repeat the policies alternate for each busy count), so
background load falls on the compared policies alike, and every measurement records the 1-min load
average. Each cell's best repeat is kept (the least disturbed one). "slowdown" is the cell's time
per update over the same policy's time with no busy process. The busy processes are started
before and ended after each cell.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BUSY_LOOP = "while True: pass"


def worker(threads: str, seconds: float, warmup: float) -> dict:
    """Measure in this process (thread policy set first); returns rates."""
    from hygen import threads as thread_policy
    from hygen.utils import set_threads

    if threads != "0":  # 0: torch's own default (one thread per core), as hygen ran before --threads
        set_threads(threads if threads == "auto" else int(threads))
    import torch

    from hygen.buffers.synthetic import random_episodes
    from hygen.envs.maps import task_set
    from hygen.learners.hygen import HyGenLearner
    from hygen.runner import Runner
    from hygen.utils import keep_freed_memory

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_speed import episode_lengths

    keep_freed_memory()
    maps = task_set("marine-hard").source
    g = torch.Generator().manual_seed(0)
    batches = {}
    for i, m in enumerate(maps):
        b = random_episodes(m, 8, lengths=episode_lengths(m, 8, "realistic", g), seed=i)
        b.n_offline = 4
        b.episode_ids = torch.arange(8)
        batches[m] = b
    torch.manual_seed(0)
    learner = HyGenLearner(maps=list(maps))
    t0 = time.perf_counter()
    while True:  # allocations, the frozen-skill cache, an adaptive policy's first readings
        learner.update(batches, 0, "policy")
        thread_policy.tick()
        if time.perf_counter() - t0 >= warmup:
            break
    counts = []
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds or n < 2:
        learner.update(batches, 0, "policy")
        counts.append(thread_policy.tick())
        n += 1
    train_s = (time.perf_counter() - t0) / n
    # CPU seconds of this process per update: with one thread, about what an update takes on an
    # idle core however busy the machine is (its threads' spinning counts too when there are more)
    train_cpu_s = (time.process_time() - c0) / n

    runner = Runner("3m", num_envs=2, seed=0)
    ctl = learner.controller()
    runner.collect(ctl, n_episodes=2, epsilon=0.05)  # warm-up
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds / 2:
        steps += runner.collect(ctl, n_episodes=2, epsilon=0.05)[1].env_steps
        counts.append(thread_policy.tick())
    collect_rate = steps / (time.perf_counter() - t0)
    policy = thread_policy.current()
    return {"threads": threads, "intra_threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "threads_while_timed": sorted(set(counts)),
            "policy_changes": getattr(policy, "changes", 0),
            "others_cores_last_reading": getattr(policy, "others", None),
            "train_s_per_update": train_s, "train_cpu_s_per_update": train_cpu_s,
            "train_updates_per_s": 1 / train_s, "updates_timed": n,
            "collect_env_steps_per_s": collect_rate}


def measure_cell(threads: str, busy: int, seconds: float, warmup: float) -> dict:
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(busy)]
    try:
        time.sleep(0.5 if busy else 0.0)  # let the busy loops get going
        load_before = os.getloadavg()[0]
        out = subprocess.run([sys.executable, __file__, "--worker", "--threads-one", threads,
                              "--seconds", str(seconds), "--warmup", str(warmup)], capture_output=True,
                             text=True, check=True, env=_env(threads))
        # the machine's own load around the cell (other users' jobs): the busy loops add to it
        return {**json.loads(out.stdout.strip().splitlines()[-1]), "busy_processes": busy,
                "load_average_1min_before": load_before, "load_average_1min": os.getloadavg()[0]}
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _env(threads: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    return {**env, "OMP_NUM_THREADS": threads} if threads.isdigit() and threads != "0" else env


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", nargs="+", default=["0", "1", "2", "auto"],
                    help="thread policies to compare: counts, 0 = torch's default (one per core), auto")
    ap.add_argument("--busy", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--seconds", type=float, default=6.0, help="timing window per measurement (train; collect half)")
    ap.add_argument("--warmup", type=float, default=8.0,
                    help="seconds of untimed updates first (auto starts at 1 thread and needs 2 readings 3 s apart to go up)")
    ap.add_argument("--repeats", type=int, default=2, help="measurements per cell, interleaved; the best is kept")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads-one", default="1", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.threads_one, args.seconds, args.warmup)))
        return 0

    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores, 1-min load average {load:.2f} before; best of {args.repeats} x {args.seconds:.0f} s",
          flush=True)
    rows = []
    for rep in range(args.repeats):
        for busy in args.busy:
            # A/B/A/B: alternate the order of the policies between repeats as well
            for threads in (args.threads if rep % 2 == 0 else args.threads[::-1]):
                r = measure_cell(threads, busy, args.seconds, args.warmup)
                rows.append(r)
                print(f"  repeat {rep} busy {busy} threads {threads:>4}: {r['train_s_per_update']:.3f} s/update, "
                      f"{r['collect_env_steps_per_s']:.0f} steps/s, torch threads {r['threads_while_timed']}, "
                      f"load {r['load_average_1min']:.2f}", flush=True)
    best = {}
    for r in rows:
        key = (r["threads"], r["busy_processes"])
        if key not in best or r["train_s_per_update"] < best[key]["train_s_per_update"]:
            best[key] = {**r, "collect_env_steps_per_s": max(r["collect_env_steps_per_s"],
                                                              best.get(key, r)["collect_env_steps_per_s"])}
    table = []
    loads = [r["load_average_1min"] for r in rows]
    print(f"1-min load average during the cells: {min(loads):.1f} to {max(loads):.1f}")
    two_alone = best.get(("2", 0)) or best.get(("0", 0))  # the figure "alone" has to match
    print(f"{'threads':>7} {'busy':>5} {'s/update':>9} {'updates/s':>10} {'slowdown':>9} {'vs 2 alone':>10} "
          f"{'collect steps/s':>16} {'load':>5}")
    for (threads, busy), r in sorted(best.items(), key=lambda kv: (args.threads.index(kv[0][0]), kv[0][1])):
        alone = best.get((threads, 0))
        r["slowdown"] = r["train_s_per_update"] / alone["train_s_per_update"] if alone else None
        r["vs_two_threads_alone"] = r["train_s_per_update"] / two_alone["train_s_per_update"] if two_alone else None
        table.append(r)
        print(f"{threads:>7} {busy:>5} {r['train_s_per_update']:>9.3f} {r['train_updates_per_s']:>10.2f} "
              f"{(r['slowdown'] or float('nan')):>8.2f}x {(r['vs_two_threads_alone'] or float('nan')):>9.2f}x "
              f"{r['collect_env_steps_per_s']:>16.0f} {r['load_average_1min']:>5.2f}")
    if args.out:
        import torch

        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"cores": os.cpu_count(), "load_average_before": load, "torch": torch.__version__,
                                        "seconds": args.seconds, "repeats": args.repeats, "rows": table,
                                        "all_measurements": rows}, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
