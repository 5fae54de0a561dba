"""What every run-like subcommand does first: gin, run directory, provenance, seed, device."""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hygen.config import GinConfigError, parse_config, reset
from hygen.rundir import RunDir, atomic_write_text
from hygen.utils import resolve_device, seed_everything


@dataclass
class RunContext:
    run_dir: RunDir
    seed: int
    device: torch.device
    generator: torch.Generator
    resumed: bool
    created: bool = False  # this call made the run directory
    previous: dict[str, str | None] = field(default_factory=dict)  # file name -> text before this call

    def undo(self) -> None:
        """The run was refused (its config cannot be built, or does not fit its checkpoint):
        leave the directory as it was, removing it if this call created it."""
        if self.created:
            shutil.rmtree(self.run_dir.path, ignore_errors=True)
            return
        for name, text in self.previous.items():
            path = self.run_dir.path / name
            if text is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write_text(path, text)


def default_run_dir(args: argparse.Namespace) -> Path:
    stem = "-".join(Path(f).stem for f in args.gin_file) or "run"
    return Path("runs") / f"{stem}-seed{args.seed or 0}"


def config_changes(before: str, after: str, limit: int = 20) -> list[str]:
    """The lines of a stored config that a resume changes, as a short unified diff."""
    import difflib

    diff = [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return diff[:limit] + ([f"... ({len(diff) - limit} more lines)"] if len(diff) > limit else [])


def _check_game(run_path: Path, meta_text: str | None, resumed: bool) -> dict:
    """The game the parsed config plays (``hygen.envs.bound_game``). A resumed run must go on in
    the game it was made in: the stored config names only its bindings, so a changed default
    (the calibrated game replaced the legacy one) would otherwise change its game silently. A
    run recorded before the record existed was made in the legacy game (every mechanic off)."""
    import json

    from hygen.envs import bound_game, game_differences, recorded_game

    game = bound_game()
    if resumed and meta_text and game["backend"] == "sim":
        made_in = recorded_game(json.loads(meta_text))
        diff = game_differences(made_in, game)
        if diff:
            raise GinConfigError(
                f"{run_path / 'meta.json'}: this run was made in another game than the config now binds "
                f"(run / now: {', '.join(diff)}); resume it in its own game, e.g. hygen train --run_dir {run_path} "
                f"--gin_file {run_path / 'config.gin'} --gin_file envs/legacy (the game before the calibrated "
                "mechanics became the default)")
    return game


def setup_run(args: argparse.Namespace) -> RunContext:
    """Parse gin strictly, create or reopen the run directory, record provenance, seed.

    Re-running with an existing run directory and no --gin_file reuses the config
    stored there, so ``hygen train --run_dir X`` alone resumes run X (and meta.json keeps
    the gin files and parameters the run was made with). Without --seed a resumed run keeps
    the seed in its meta.json (a new one gets 0).
    """
    run_path = Path(args.run_dir) if args.run_dir else default_run_dir(args)
    if args.seed is None:
        args.seed = int(RunDir.peek_meta(run_path).get("seed", 0))
    stored = run_path / "config.gin"
    gin_files = list(args.gin_file)
    resumed = stored.exists()
    if not gin_files:
        if not resumed:
            raise GinConfigError("no --gin_file given and the run directory has no config.gin to resume; "
                                 "e.g. --gin_file methods/hygen --gin_file runs/hybrid --gin_file tasksets/marine_hard "
                                 "--gin_file data/medium")
        gin_files = [stored]
    reset()  # the config is what this command parses, also when main() runs twice in one process
    config_str = parse_config(gin_files, args.gin_param)
    created = not run_path.exists()
    run_dir = RunDir(run_path)
    run_dir.lock()  # a second process on the same run stops here, before anything is written;
    try:  # the caller releases it when done (hygen train: after the run)
        run_dir.check_seed(args.seed)  # before anything is written
        previous = {name: (run_path / name).read_text() if (run_path / name).exists() else None
                    for name in ("config.gin", "meta.json")}
        game = _check_game(run_path, previous["meta.json"], resumed)  # before anything is written
        if resumed and previous["config.gin"] != config_str:
            # A changed config on resume (e.g. more steps) is allowed; keep what was used before, and say so
            kept = run_path / f"config.previous-{len(list(run_path.glob('config.previous-*.gin'))) + 1}.gin"
            atomic_write_text(kept, previous["config.gin"])
            previous[kept.name] = None
            changes = "\n".join(f"  {line}" for line in config_changes(previous["config.gin"], config_str))
            print(f"warning: {run_path} is resumed with a changed config (the old one is kept as {kept.name}):\n"
                  f"{changes}", file=sys.stderr)
        run_dir.write_config(config_str)
        if args.gin_file:
            how = {"gin_files": [str(f) for f in gin_files], "gin_params": list(args.gin_param)}
        else:  # the stored config, perhaps with more bindings: keep the record of how the run was made
            how = {"gin_params": run_dir.read_meta().get("gin_params", []) + list(args.gin_param)} if args.gin_param else {}
        run_dir.write_meta(seed=args.seed, game=game, **how)
        generator = seed_everything(args.seed)
    except BaseException:
        run_dir.unlock()
        raise
    return RunContext(run_dir, args.seed, resolve_device(args.device), generator, resumed, created, previous)
