"""The ``hygen`` command line: one subcommand per module in ``hygen.commands``."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys

# Subcommand name -> module in hygen.commands exposing HELP, add_arguments(parser), run(args) -> int.
SUBCOMMANDS = {
    "train": "train",
    "evaluate": "evaluate",
    "collect": "collect",
    "data": "data",
    "demo": "demo",
    "list": "list",
    "sweep": "sweep",
    "report": "report",
    "render": "render",
}

DESCRIPTION = """\
hygen: multi-task multi-agent RL with hybrid offline/online training (HyGen),
on a built-in batched SMAC-compatible simulator (or real StarCraft II).

Typical session (hygen list shows the maps, task sets and configs):
  hygen collect --task-set marine-hard --policy heuristic --data-root data/smac
  hygen train --gin_file methods/hygen --gin_file runs/hybrid --gin_file tasksets/marine_hard \\
              --gin_file data/medium --run_dir runs/hygen
  hygen evaluate runs/hygen --markdown table.md
"""


def add_common_arguments(p: argparse.ArgumentParser, run_dir_required: bool = False) -> None:
    """Flags every run-like subcommand takes."""
    p.add_argument("--gin_file", action="append", default=[], metavar="FILE",
                   help="gin config file (repeatable; a name like 'hygen' or 'ablations/no_cql' "
                        "is looked up in configs/)")
    p.add_argument("--gin_param", action="append", default=[], metavar="BINDING",
                   help="gin binding overriding the files, e.g. --gin_param 'Trainer.eval_every = 500' (repeatable)")
    p.add_argument("--run_dir", required=run_dir_required, default=None,
                   help="run directory: config, checkpoints, TensorBoard events, results.json; "
                        "an existing one is resumed from its newest checkpoint")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed (python, numpy, torch, environments); default 0, or a resumed run's own")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    add_threads_argument(p)


def add_threads_argument(p: argparse.ArgumentParser, default: int | str | None = None) -> None:
    """--threads: torch CPU threads, set before torch does any work (see hygen.utils.set_threads).
    ``default``: this command's own default (None: hygen.utils.COMMAND_DEFAULT_THREADS)."""
    from hygen.utils import COMMAND_DEFAULT_THREADS

    shown = COMMAND_DEFAULT_THREADS if default is None else default
    p.add_argument("--threads", type=_threads, default=default, metavar="N|auto",
                   help=f"torch CPU threads: a fixed count (repeatable bit for bit), or 'auto' (the cores "
                        f"other processes leave free, re-measured every 3 s: 2 threads on an idle 2-core "
                        f"machine, 1 beside another job; faster alone, but a run whose count changed is not "
                        f"repeatable bit for bit). Default {shown}, or a bound Trainer.num_threads; see "
                        f"docs/speed.md")


def _threads(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number or 'auto', got {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hygen", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from hygen import __version__

    parser.add_argument("--version", action="version", version=f"hygen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, module in SUBCOMMANDS.items():
        try:
            mod = importlib.import_module(f"hygen.commands.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"hygen.commands.{module}":
                raise
            continue  # a subcommand not built yet
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    restore_threads = None
    if hasattr(args, "threads"):  # before torch does any work: it sizes its thread pools once
        from hygen.utils import COMMAND_DEFAULT_THREADS, save_threads, set_threads

        # The command's policy holds for this call only: a process that calls main() again (the
        # tests) or builds a Trainer afterwards gets back what it had (an 'auto' left installed
        # would keep changing the count, and bits, of later runs). A bound Trainer.num_threads may
        # still change it during the command.
        restore_threads = save_threads()
        set_threads(COMMAND_DEFAULT_THREADS if args.threads is None else args.threads)
    try:
        with sigterm_as_interrupt():
            return _run_command(args)
    except KeyboardInterrupt:
        print(f"hygen {args.command}: stopped; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        if restore_threads is not None:
            restore_threads()


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Inside, SIGTERM (kill, a scheduler's stop) raises KeyboardInterrupt like Ctrl-C, so cleanup
    runs: a half-written checkpoint is removed, a run and a sweep let go of their directories, a
    sweep stops its cells. (Python's default for SIGTERM ends the process on the spot.)"""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # only the main thread takes signals
        yield
        return

    def interrupt(signum, frame):
        # once: a second SIGTERM (a process-group kill, then the sweep's own stop) must not cut the cleanup short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _run_command(args) -> int:
    from hygen.config import GinConfigError
    from hygen.envs.sc2 import SC2NotAvailableError
    from hygen.rundir import CheckpointError

    try:
        return int(args._run(args) or 0)
    except Exception as e:
        # Bad input ends in one clear line, not a traceback; HYGEN_DEBUG=1 shows it.
        import os

        msg, configurables = _without_gin_context(str(e).strip("'\"") if isinstance(e, KeyError) else str(e))
        if isinstance(e, (GinConfigError, CheckpointError, SC2NotAvailableError, FileNotFoundError, KeyError,
                          ValueError)):
            chain = [c for c in configurables if c != "Trainer"]  # innermost first
            if chain and not all(c in msg for c in chain):
                msg += f" (while building {' in '.join(chain)})"
        elif configurables:  # raised while gin built a component: a bound value it cannot use
            msg = (f"{configurables[0]} could not be built from its bindings: {type(e).__name__}: {msg}; "
                   f"check the {configurables[0]}.* values in the config (HYGEN_DEBUG=1 shows the traceback)")
        else:
            raise  # a bug, not bad input: the traceback is what helps
        if os.environ.get("HYGEN_DEBUG"):
            raise
        print(f"hygen {args.command}: error: {msg}", file=sys.stderr)
        return 2


def _without_gin_context(msg: str) -> tuple[str, list[str]]:
    """Strip the "In call to configurable 'X' (...)" lines gin appends to an error raised in a
    configurable; return the message and those configurables, innermost first."""
    import re

    pattern = r"^\s*In call to configurable '([^']+)' \(.*\)\s*$"
    names = re.findall(pattern, msg, flags=re.MULTILINE)
    return re.sub(pattern, "", msg, flags=re.MULTILINE).strip(), names


if __name__ == "__main__":
    sys.exit(main())
