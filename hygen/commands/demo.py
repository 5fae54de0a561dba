"""hygen demo: the main job end to end, small enough for a laptop CPU."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hygen.cli import add_threads_argument

HELP = "quick end-to-end HyGen: scripted datasets, a short run, the zero-shot table"
DESCRIPTION = """\
The whole pipeline at demo scale (minutes on 2 CPU cores):
  1. collect a quick dataset of the quality trained on (--quality) for the task set's source
     maps with scripted policies (expert: the best of focus fire, nearest enemy, flank and
     ambush on each map; medium: it with random actions, about half the win rate);
  2. train HyGen (phase 1 skill discovery, phase 2 hybrid training) at the scale of configs/scales/demo.gin;
  3. print the win-rate table over source and unseen maps (as the paper's Table 1): the
     dataset's own win rate, the untrained policy (step 0) and the trained one side by side.
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
    from hygen.utils import DEMO_DEFAULT_THREADS

    add_threads_argument(parser, default=DEMO_DEFAULT_THREADS)


def run(args) -> int:
    from hygen.collect import collect_map, write_manifest
    from hygen.commands import train
    from hygen.envs import task_set
    from hygen.rundir import read_json
    from hygen.utils import resolve_device

    t0 = time.time()
    ts = task_set(args.task_set)
    root = Path(args.run_dir)
    data_root = root / "data"
    device = resolve_device(args.device)
    print(f"[1/3] datasets for {ts.name} source maps {', '.join(ts.source)} -> {data_root}", flush=True)
    for m in ts.source:
        # only the quality trained on: the other three were about half of this part's time
        entry = collect_map(m, data_root, policy="heuristic", episodes=args.episodes, seed=args.seed,
                            device=device, qualities=(args.quality.replace("_", "-"),))
        write_manifest(data_root, {m: entry})
    print(f"      {time.time() - t0:.0f} s", flush=True)

    print("[2/3] HyGen at demo scale (configs/scales/demo.gin)", flush=True)
    train_args = argparse.Namespace(
        gin_file=["methods/hygen", "runs/hybrid", f"tasksets/{ts.name.replace('-', '_')}", f"data/{args.quality}",
                  "scales/demo"],
        gin_param=[f"DATA_ROOT = '{data_root}'", *args.gin_param],
        run_dir=str(root / "hygen"), seed=args.seed, device=str(device), threads=args.threads)
    rc = train.run(train_args)
    if rc:
        return rc
    print(f"      {time.time() - t0:.0f} s", flush=True)

    print("[3/3] win rates: data, untrained and trained policies", flush=True)
    results = read_json(root / "hygen" / "results.json")
    lines, table = summary(results, read_json(data_root / "manifest.json"), args.quality, ts.name)
    (root / "table.md").write_text(table)
    import gin

    episodes = gin.query_parameter("Trainer.eval_episodes")  # (train.run parsed the demo's config)
    print("\n".join(lines + where(root, results["total_steps"], episodes, time.time() - t0)))
    return 0


def summary(results: dict, manifest: dict, quality: str, task_set_name: str) -> tuple[list[str], str]:
    """The demo's table (data, untrained, trained) for the terminal, and as Markdown."""
    from hygen.report import to_markdown, to_text, win_rate_rows

    first, final = results["evals"][0], results["evals"][-1]
    source = results["source_maps"]
    unseen = [m for m in results["eval_maps"] if m not in source]
    q = quality.replace("_", "-")
    data = {m: manifest[m]["qualities"][q]["win_rate"] for m in source if m in manifest}
    columns = {f"data ({q})": [data], "untrained (step 0)": [first["win_rate"]],
               f"HyGen (step {final['step']})": [final["win_rate"]]}
    rows = win_rate_rows(columns, source, unseen)
    title = f"win rate (%), {task_set_name}: greedy test episodes per map, source maps then unseen ones"
    return [to_text(rows, list(columns), title=title).rstrip("\n")], to_markdown(rows, list(columns))


def where(root: Path, steps: int, episodes: int, seconds: float) -> list[str]:
    """What a newcomer needs after the table: what the numbers mean, where the files are."""
    run = root / "hygen"
    return [
        "",
        f"What the numbers are: win rates in % of {episodes} greedy test episodes per map.",
        "  data: the offline dataset's own win rate (the scripted behaviour policy, source maps only).",
        "  untrained: the same networks before any update; HyGen: after phase 1 (skills, offline) and",
        "  phase 2 (hybrid offline + online). Source maps were trained on; unseen maps never were (zero-shot).",
        f"  This is a demo budget ({steps} updates; the paper's is 50 000): with {episodes} episodes per map a",
        f"  win rate is uncertain by up to +-{50 / episodes ** 0.5:.0f} points, and the scripted datasets are small",
        "  and hold fewer wins on the harder maps (the data column; docs/datasets.md).",
        f"Files: table {root / 'table.md'}; learning curves {run / 'curves.svg'}; per-evaluation numbers",
        f"  {run / 'results.json'}; datasets and their win rates {root / 'data' / 'manifest.md'};",
        f"  TensorBoard: tensorboard --logdir {run}",
        "Next: README.md (hygen train at the paper's scale, the methods and ablations as configs).",
        f"total {seconds:.0f} s",
    ]
