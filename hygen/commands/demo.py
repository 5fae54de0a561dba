"""hygen demo: the main job end to end, small enough for a laptop CPU."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hygen.cli import add_threads_argument

HELP = "quick end-to-end HyGen: heuristic marine-hard datasets, a short run, the zero-shot table"
DESCRIPTION = """\
The whole pipeline at demo scale (minutes on 2 CPU cores):
  1. collect quick datasets for the task set's source maps with the scripted policy
     (expert: focus fire; medium: focus fire with random actions, about half the win rate);
  2. train HyGen (phase 1 skill discovery, phase 2 hybrid training) at the scale of configs/demo.gin;
  3. print the zero-shot win-rate table over source and unseen maps (as the paper's Table 1).
Rerunning resumes: finished datasets are skipped and training continues from its checkpoint.
"""


def add_arguments(parser) -> None:
    parser.add_argument("--run_dir", default="runs/demo",
                        help="where data, checkpoints and results go (default runs/demo)")
    parser.add_argument("--task-set", default="marine-hard",
                        help="source maps to train on and unseen maps to test on (default marine-hard; "
                             "hygen list task-sets)")
    parser.add_argument("--quality", default="medium", choices=("expert", "medium", "medium_expert", "medium_replay"),
                        help="offline dataset quality HyGen trains on (default medium)")
    parser.add_argument("--episodes", type=int, default=400, help="episodes per dataset (default 400)")
    parser.add_argument("--gin_param", action="append", default=[], metavar="BINDING",
                        help="extra gin binding, e.g. 'POLICY_STEPS = 1000'")
    parser.add_argument("--seed", type=int, default=0, help="random seed of data and training (default 0)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    add_threads_argument(parser)


def run(args) -> int:
    from hygen.collect import collect_map, write_manifest
    from hygen.commands import train
    from hygen.commands.evaluate import from_results
    from hygen.envs import task_set
    from hygen.report import to_markdown, to_text, win_rate_rows
    from hygen.utils import resolve_device

    t0 = time.time()
    ts = task_set(args.task_set)
    root = Path(args.run_dir)
    data_root = root / "data"
    device = resolve_device(args.device)
    print(f"[1/3] datasets for {ts.name} source maps {', '.join(ts.source)} -> {data_root}", flush=True)
    for m in ts.source:
        entry = collect_map(m, data_root, policy="heuristic", episodes=args.episodes, seed=args.seed,
                            device=device)
        write_manifest(data_root, {m: entry})
    print(f"      {time.time() - t0:.0f} s", flush=True)

    print("[2/3] HyGen at demo scale (configs/demo.gin)", flush=True)
    train_args = argparse.Namespace(
        gin_file=["hygen", f"tasksets/{ts.name.replace('-', '_')}", f"data/{args.quality}", "demo"],
        gin_param=[f"DATA_ROOT = '{data_root}'", *args.gin_param],
        run_dir=str(root / "hygen"), seed=args.seed, device=str(device), threads=args.threads)
    rc = train.run(train_args)
    if rc:
        return rc
    print(f"      {time.time() - t0:.0f} s", flush=True)

    print("[3/3] zero-shot evaluation", flush=True)
    r = from_results(root / "hygen")
    unseen = [m for m in r["eval_maps"] if m not in r["source_maps"]]
    rows = win_rate_rows({"HyGen (demo)": [r["win_rate"]]}, r["source_maps"], unseen)
    print(to_text(rows, ["HyGen (demo)"], title=f"zero-shot win rate (%), {ts.name}, step {r['step']}"))
    (root / "table.md").write_text(to_markdown(rows, ["HyGen (demo)"]))
    print(f"table: {root / 'table.md'}   curves: {root / 'hygen' / 'curves.svg'}   total {time.time() - t0:.0f} s")
    return 0
