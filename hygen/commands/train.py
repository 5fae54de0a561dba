"""hygen train: run a method (HyGen, QMIX, an ablation or a baseline) from gin configs."""

from __future__ import annotations

import sys

import gin

from hygen.cli import add_common_arguments
from hygen.commands.run_setup import setup_run

HELP = "train a method described by gin configs; resumes an existing run directory"
DESCRIPTION = """\
Train a method described by gin configs (configs/*.gin). The run directory receives
the config, seed, git revision, TensorBoard events, checkpoints and results.json;
running the same command again resumes from the newest checkpoint.

examples:
  hygen train --gin_file methods/qmix --gin_file runs/online --gin_param "SOURCE_MAPS = ['3m']" \\
              --run_dir runs/qmix-3m
  hygen train --gin_file methods/hygen --gin_file runs/hybrid --gin_file tasksets/marine_hard \\
              --gin_file data/medium --gin_file ablations/no_cql --run_dir runs/hygen-no-cql
  hygen train --run_dir runs/qmix-3m          # resume with the stored config and seed
"""


def add_arguments(parser) -> None:
    add_common_arguments(parser)


def run(args) -> int:
    ctx = setup_run(args)  # bad configs fail here, before anything is built
    try:
        return _train(args, ctx)
    finally:
        ctx.run_dir.unlock()  # setup_run's hold on the run directory


def _train(args, ctx) -> int:
    from hygen.trainer import Trainer

    try:
        threads = {} if getattr(args, "threads", None) is None else {"num_threads": args.threads}  # over gin's
        trainer = Trainer(run_dir=ctx.run_dir, seed=ctx.seed, device=ctx.device, **threads)
        resumed = trainer.restore()  # a checkpoint that does not fit this config fails here, before any work
    except BaseException:
        ctx.undo()  # a refused run leaves the directory as it was
        raise
    if resumed:
        print(f"resuming {ctx.run_dir.path} from {ctx.run_dir.loaded_checkpoint.name} (step {trainer.step})",
              file=sys.stderr)
    ctx.run_dir.write_config(gin.operative_config_str(), name="operative_config.gin")
    results = trainer.run()
    ctx.run_dir.write_config(gin.operative_config_str(), name="operative_config.gin")
    print(f"run directory: {ctx.run_dir.path}")
    return 0 if results is not None else 1
