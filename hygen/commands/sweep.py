"""hygen sweep: configs x task sets x --gin_param grids x seeds, one run directory per cell."""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "run a sweep (configs x task sets x grids x seeds) locally or on Ray; resumes"
DESCRIPTION = """\
Expand a sweep into one run directory per cell under --out (named after the config, task
set, grid values and seed) and train each cell with `hygen train` in its own process.
Rerunning skips finished cells and resumes interrupted ones; `hygen sweep --out DIR` alone
reruns the sweep recorded in DIR/sweep.json. A failing cell is reported with its log
(DIR/logs/<cell>.log) and does not stop the others. Then: hygen report DIR.

examples:
  hygen sweep --out runs/sweep --config HyGen=hygen --config offline-only=hygen,no_online \\
      --task-set marine_hard --gin_file data/medium --gin_file scales/demo \\
      --gin_param "DATA_ROOT = 'runs/demo/data'" --seeds 0 1 2 --workers 2
  hygen sweep --out runs/grid --config HyGen=hygen --task-set marine_hard --gin_file data/medium \\
      --grid "LinearDecayRatio.decay_steps = [1000, 5000]" --seeds 0 1
  hygen sweep --out runs/sweep --backend ray                    # same sweep on a local Ray instance
  hygen sweep --out runs/sweep --backend ray --address ray://head:10001 --gpus-per-cell 0.25
  hygen sweep --spec sweep.json --out runs/sweep --dry-run      # list the cells, run nothing
"""


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="sweep root: one run directory per cell, logs/, sweep.json")
    parser.add_argument("--spec", default=None, metavar="FILE.json",
                        help="sweep spec as JSON: {configs: {label: [gin files]}, task_sets, gin_files, "
                             "gin_params, grid: {binding: [values]}, seeds}; flags below add to it")
    parser.add_argument("--config", action="append", default=[], metavar="LABEL=FILE[,FILE...]",
                        help="a method: label and its gin files, e.g. offline-only=hygen,no_online (repeatable)")
    parser.add_argument("--task-set", action="append", default=[], metavar="NAME",
                        help="configs/tasksets/NAME.gin for every config (repeatable: one cell per task set)")
    parser.add_argument("--gin_file", action="append", default=[], metavar="FILE",
                        help="gin file for every cell, after the config and task set (data quality, scale)")
    parser.add_argument("--gin_param", action="append", default=[], metavar="BINDING",
                        help="gin binding for every cell (repeatable)")
    parser.add_argument("--grid", action="append", default=[], metavar="'BINDING = [V1, V2]'",
                        help="one cell per value (repeatable: the product of the grids)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="local: a pool of worker processes (default); ray: Ray tasks")
    parser.add_argument("--workers", type=int, default=None,
                        help="cells at once (default: the CPU count; one torch thread each)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: a local instance)")
    parser.add_argument("--gpus-per-cell", type=float, default=0.0, help="Ray: GPU fraction per cell (default 0)")
    parser.add_argument("--device", default="cpu", help="device for every cell (default cpu)")
    parser.add_argument("--dry-run", action="store_true", help="list the cells and their state; run nothing")


def build_spec(args):
    from hygen.sweep import SPEC_FILE, SweepError, SweepSpec, parse_grid

    stored = Path(args.out) / SPEC_FILE
    if args.spec:
        base = SweepSpec.from_json(args.spec).to_dict()
    elif not args.config and stored.is_file():
        base = SweepSpec.from_json(stored).to_dict()  # `hygen sweep --out DIR`: rerun what DIR holds
    else:
        base = {"configs": {}}
    for item in args.config:
        label, sep, files = item.partition("=")
        names = [f.strip() for f in files.split(",") if f.strip()]
        if not sep or not label.strip() or not names:
            raise SweepError(f"--config {item!r}: expected LABEL=FILE[,FILE...], e.g. offline-only=hygen,no_online")
        base["configs"][label.strip()] = names
    base["task_sets"] = [*base.get("task_sets", []), *args.task_set]
    base["gin_files"] = [*base.get("gin_files", []), *args.gin_file]
    base["gin_params"] = [*base.get("gin_params", []), *args.gin_param]
    base["grid"] = {**base.get("grid", {}), **parse_grid(args.grid)}
    if args.seeds is not None:
        base["seeds"] = args.seeds
    if not base["configs"]:
        raise SweepError(f"no configs: give --config LABEL=FILES or --spec FILE.json ({stored} does not exist yet)")
    return SweepSpec.from_dict(base)


def run(args) -> int:
    from hygen.config import GinConfigError, parse_config, reset
    from hygen.sweep import cell_status, run_sweep

    spec = build_spec(args)
    cells = spec.cells()
    # every distinct config parses here first: a typo fails now, not in every cell's log
    checked = set()
    for c in cells:
        key = (c.gin_files, c.gin_params)
        if key not in checked:
            checked.add(key)
            reset()
            try:
                parse_config(list(c.gin_files), list(c.gin_params))
            except GinConfigError as e:
                raise GinConfigError(f"sweep cell {c.name}: {e}") from None
    reset()
    if args.dry_run:
        for c in cells:
            print(f"{cell_status(c, args.out):8s} {c.name}  [{' '.join(c.gin_files)}]"
                  + (f" {'; '.join(c.gin_params)}" if c.gin_params else ""))
        print(f"{len(cells)} cells")
        return 0
    out = run_sweep(spec, args.out, backend=args.backend, workers=args.workers, device=args.device,
                    address=args.address, gpus_per_cell=args.gpus_per_cell, print_fn=lambda s: print(s, flush=True))
    failed = [n for n, r in out.items() if r["status"] == "failed"]
    if failed:
        print(f"{len(failed)} cell(s) failed; fix and rerun the same command to retry them", file=sys.stderr)
    return 1 if failed else 0
