"""What every run-like subcommand does first: gin, run directory, provenance, seed, device."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from hygen.config import GinConfigError, parse_config
from hygen.rundir import RunDir
from hygen.utils import resolve_device, seed_everything


@dataclass
class RunContext:
    run_dir: RunDir
    seed: int
    device: torch.device
    generator: torch.Generator
    resumed: bool
    previous_config: Path | None = None  # the config this run had before, when this call changed it

    def restore_previous_config(self) -> None:
        """Put the run's earlier config back (after the changed one was refused)."""
        if self.previous_config is not None:
            self.previous_config.replace(self.run_dir.path / "config.gin")


def default_run_dir(args: argparse.Namespace) -> Path:
    stem = "-".join(Path(f).stem for f in args.gin_file) or "run"
    return Path("runs") / f"{stem}-seed{args.seed}"


def setup_run(args: argparse.Namespace) -> RunContext:
    """Parse gin strictly, create or reopen the run directory, record provenance, seed.

    Re-running with an existing run directory and no --gin_file reuses the config
    stored there, so ``hygen train --run_dir X`` alone resumes run X.
    """
    run_path = Path(args.run_dir) if args.run_dir else default_run_dir(args)
    stored = run_path / "config.gin"
    gin_files = list(args.gin_file)
    resumed = stored.exists()
    if not gin_files:
        if not resumed:
            raise GinConfigError("no --gin_file given and the run directory has no config.gin to resume; "
                                 "e.g. --gin_file hygen --gin_file tasksets/marine_hard --gin_file data/medium")
        gin_files = [stored]
    config_str = parse_config(gin_files, args.gin_param)
    run_dir = RunDir(run_path)
    previous = None
    if resumed and stored.read_text() != config_str:
        # A changed config on resume (e.g. more steps) is allowed; keep what was used before.
        previous = run_path / f"config.previous-{len(list(run_path.glob('config.previous-*.gin'))) + 1}.gin"
        stored.rename(previous)
    run_dir.write_config(config_str)
    run_dir.write_meta(seed=args.seed, gin_files=[str(f) for f in gin_files], gin_params=list(args.gin_param))
    generator = seed_everything(args.seed)
    return RunContext(run_dir, args.seed, resolve_device(args.device), generator, resumed, previous)
