"""Benchmark the episode data layer: hybrid sampling, replay insertion, dataset loading, memory.

    python benchmarks/buffers.py --out benchmarks/results/buffers.json [--episodes 2000] [--device cpu]

Synthetic datasets are written with ``write_episodes`` (ODIS format) to a temp dir, with
episode lengths uniform in [limit/4, limit] (longer than real data: 3m medium averages 25
of 60 steps), then loaded like real ones. Timings are medians over repeats, one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from hygen.buffers import LinearDecayRatio, OfflineDataset, ReplayBuffer, write_episodes
from hygen.buffers.synthetic import random_episodes
from hygen.envs.maps import get_map

REAL_3M = Path(os.environ.get("HYGEN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) \
    / "smac" / "3m" / "medium" / "part_0.h5"
MiB = 2**20


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn, repeats: int) -> float:
    """Median seconds per call."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def write_synthetic(root: Path, map_name: str, episodes: int, part_size: int = 250) -> Path:
    qdir = root / map_name / "expert"
    for k, start in enumerate(range(0, episodes, part_size)):
        n = min(part_size, episodes - start)
        write_episodes(qdir / f"part_{k}.h5", random_episodes(map_name, n, seed=k), compression_level=1)
    return qdir


def bytes_per_episode(map_name: str, steps: int, compact: bool) -> int:
    """Storage of one episode with ``steps`` steps: ODIS float32 padded layout, or ours packed."""
    spec, lay = get_map(map_name), get_map(map_name).layout
    n, A = spec.n_agents, spec.n_actions
    if not compact:  # as ODIS holds it in memory: T = limit + 1 rows, all 8 keys
        T = spec.episode_limit + 1
        return T * (4 * n * lay.obs_shape + 4 * lay.state_shape + 8 * n + 4 * n * A + 4 * n * A + 4 + 1 + 8)
    rows = steps + 1  # packed filled rows: obs/state f16, actions u8, avail bool, reward f32, terminated bool
    return rows * (2 * n * lay.obs_shape + 2 * lay.state_shape + n + n * A + 4 + 1) + 8 * 2 + 1 + 4


def memory_table(episodes: int = 2000) -> list[dict]:
    rows = []
    for name in ("3m", "5m_vs_6m", "9m_vs_10m", "13m_vs_15m"):
        limit = get_map(name).episode_limit
        odis = episodes * bytes_per_episode(name, limit, compact=False)
        ours = episodes * bytes_per_episode(name, limit, compact=True)
        spec = get_map(name)
        lay = spec.layout
        T = limit + 1
        replay_f32 = episodes * T * (4 * spec.n_agents * lay.obs_shape + 4 * lay.state_shape + spec.n_agents
                                     + spec.n_agents * spec.n_actions + 4 + 1 + 1) + episodes * 9
        rows.append({"map": name, "episodes": episodes, "full_length_steps": limit,
                     "odis_f32_padded_MiB": odis / MiB, "hygen_packed_f16_MiB": ours / MiB,
                     "replay_f32_MiB": replay_f32 / MiB})
    return rows


def bench_map(tmp: Path, map_name: str, episodes: int, repeats: int, device: torch.device) -> dict:
    """Write, load, fill a replay buffer, then time sampling and insertion for one map."""
    t0 = time.perf_counter()
    qdir = write_synthetic(tmp, map_name, episodes)
    write_s = time.perf_counter() - t0
    before = rss_mib()
    t0 = time.perf_counter()
    offline = OfflineDataset(qdir, map_name, max_episodes=None, device=device)
    load_s = time.perf_counter() - t0
    load_rss = rss_mib() - before

    online = ReplayBuffer(map_name, capacity=episodes, device=device)
    fresh = random_episodes(map_name, 64, seed=123)  # full T+1 rows, as the runner hands them over
    insert_s = timed(lambda: online.insert(fresh), max(repeats, episodes // 64 + 1))  # also fills it
    sampler = LinearDecayRatio()  # t = 2500: R_h = 0.55, 18 offline + 14 online episodes
    g = torch.Generator().manual_seed(0)
    hybrid_s = timed(lambda: sampler.sample(offline, online, 32, t=2500, generator=g), repeats)
    offline_s = timed(lambda: offline.sample(32, g), repeats)
    online_s = timed(lambda: online.sample(32, g), repeats)
    return {
        "write_s": write_s, "load_s": load_s, "load_rss_increase_MiB": load_rss,
        "offline_storage_MiB": offline.nbytes() / MiB, "replay_storage_MiB": online.nbytes() / MiB,
        "mean_steps": float(offline.episode_lengths.float().mean()),
        "hybrid32_ms": 1e3 * hybrid_s, "hybrid32_ms_per_episode": 1e3 * hybrid_s / 32,
        "offline32_ms": 1e3 * offline_s, "online32_ms": 1e3 * online_s, "insert64_ms": 1e3 * insert_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=2000, help="episodes per synthetic dataset")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    results: dict = {"device": str(device), "episodes": args.episodes, "torch": torch.__version__, "maps": {}}

    # real dataset: load time and resident memory
    if REAL_3M.is_file():
        before = rss_mib()
        t0 = time.perf_counter()
        real = OfflineDataset(REAL_3M, device=device)
        load_s = time.perf_counter() - t0
        results["real_3m"] = {"load_s": load_s, "rss_increase_MiB": rss_mib() - before,
                              "storage_MiB": real.nbytes() / MiB, "episodes": len(real),
                              "sample32_ms": 1e3 * timed(lambda: real.sample(32), args.repeats)}
        del real

    with tempfile.TemporaryDirectory() as tmp:
        for map_name in ("3m", "9m_vs_10m"):
            results["maps"][map_name] = bench_map(Path(tmp), map_name, args.episodes, args.repeats, device)

    results["memory_2000_full_length"] = memory_table()
    hard = [r for r in results["memory_2000_full_length"] if r["map"] in ("3m", "5m_vs_6m", "9m_vs_10m")]
    results["marine_hard_offline_MiB"] = {
        "odis_f32_padded": sum(r["odis_f32_padded_MiB"] for r in hard),
        "hygen_packed_f16": sum(r["hygen_packed_f16_MiB"] for r in hard),
        "online_replay_f32": sum(r["replay_f32_MiB"] for r in hard),
    }

    print(f"device {device}, {args.episodes} episodes per synthetic dataset, 1 thread")
    print(f"{'map':<11}{'hybrid 32':>11}{'per ep':>9}{'offline 32':>12}{'online 32':>11}{'insert 64':>11}"
          f"{'load':>8}{'storage':>10}{'replay':>10}")
    for m, r in results["maps"].items():
        print(f"{m:<11}{r['hybrid32_ms']:>8.2f} ms{r['hybrid32_ms_per_episode']:>6.3f} ms"
              f"{r['offline32_ms']:>9.2f} ms{r['online32_ms']:>8.2f} ms{r['insert64_ms']:>8.2f} ms"
              f"{r['load_s']:>6.2f} s{r['offline_storage_MiB']:>6.0f} MiB{r['replay_storage_MiB']:>6.0f} MiB")
    if "real_3m" in results:
        r = results["real_3m"]
        print(f"real 3m medium: load {r['load_s']:.2f} s, RSS +{r['rss_increase_MiB']:.0f} MiB, "
              f"storage {r['storage_MiB']:.1f} MiB, sample 32 {r['sample32_ms']:.2f} ms")
    print("\nmemory for 2000 full-length episodes (worst case; real data is shorter):")
    print(f"{'map':<12}{'ODIS f32 padded':>17}{'hygen packed':>14}{'replay f32':>12}")
    for r in results["memory_2000_full_length"]:
        print(f"{r['map']:<12}{r['odis_f32_padded_MiB']:>13.0f} MiB{r['hygen_packed_f16_MiB']:>10.0f} MiB"
              f"{r['replay_f32_MiB']:>8.0f} MiB")
    h = results["marine_hard_offline_MiB"]
    print(f"marine-hard offline set: ODIS {h['odis_f32_padded']:.0f} MiB, hygen {h['hygen_packed_f16']:.0f} MiB; "
          f"online replay (2000/task, f32) {h['online_replay_f32']:.0f} MiB")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
