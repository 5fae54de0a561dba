"""Sweeps: configs x task sets x ``--gin_param`` grids x seeds, one run directory per cell.

A :class:`SweepSpec` expands to :class:`Cell` s; each cell is one ``hygen train`` run in
``<root>/<cell name>`` (the name is made from the config, task set, grid values and seed, so the
same spec always gives the same directories). Running a sweep again skips the cells whose
``results.json`` says ``done`` and resumes the others from their newest checkpoint (run
directories resume exactly). Every cell runs in its own process that parses its gin files
itself (gin state never crosses processes); its output goes to ``<root>/logs/<cell>.log``.

Backends:

- ``local`` (default): a bounded pool of worker processes on this machine, one torch thread
  each (``OMP_NUM_THREADS=1``: the networks are small, extra threads only spin);
- ``ray``: one Ray task per cell on a local Ray instance, or on an existing cluster with
  ``address`` (then ``<root>`` must be on storage every node sees, and hygen installed on each);
  ``gpus_per_cell`` reserves a GPU fraction per cell.

A failing cell is reported with its log path and does not stop the others.

    spec = SweepSpec(configs={"HyGen": ["hygen"], "offline-only": ["hygen", "no_online"]},
                     task_sets=["marine_hard"], gin_files=["data/medium", "scales/demo"], seeds=[0, 1, 2])
    run_sweep(spec, "runs/sweep", backend="local", workers=2)
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hygen.dirlock import hold_directory, release_directory

__all__ = ["BACKENDS", "Cell", "SweepError", "SweepSpec", "cell_status", "load_sweep", "parse_grid", "run_sweep",
           "write_spec"]

BACKENDS = ("local", "ray")
SPEC_FILE = "sweep.json"


class SweepError(ValueError):
    """A sweep spec that cannot be expanded or run; the message names the field."""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", text).strip("_") or "x"


@dataclass(frozen=True)
class Cell:
    """One run of a sweep. ``label`` is what a report pools over seeds: everything but the seed."""

    name: str
    label: str
    config: str
    task_set: str | None
    grid: tuple[tuple[str, str], ...]
    seed: int
    gin_files: tuple[str, ...]
    gin_params: tuple[str, ...]

    def run_dir(self, root: str | Path) -> Path:
        return Path(root) / self.name

    def log_path(self, root: str | Path) -> Path:
        return Path(root) / "logs" / f"{self.name}.log"

    def command(self, root: str | Path, device: str = "cpu") -> list[str]:
        cmd = [sys.executable, "-m", "hygen.cli", "train", "--run_dir", str(self.run_dir(root)),
               "--seed", str(self.seed), "--device", device]
        for f in self.gin_files:
            cmd += ["--gin_file", f]
        for p in self.gin_params:
            cmd += ["--gin_param", p]
        return cmd


def _method_and_run(files: Sequence[str]) -> int:
    """How many leading files of a config are its method and run: the first file (a method, or
    an old one-word name that includes both) and the ``runs/...`` files right after it."""
    n = 1
    while n < len(files) and str(files[n]).startswith("runs/"):
        n += 1
    return n


@dataclass
class SweepSpec:
    """configs: label -> gin files (a method, its run and its ablation configs, e.g.
    ``["methods/hygen", "runs/hybrid", "ablations/no_online"]``, or ``["hygen", "no_online"]``);
    a cell's files are the method and run, the task set, the ablations, then ``gin_files``;
    task_sets: names of ``configs/tasksets/*.gin`` (none: the configs name their maps);
    gin_files: after the config and task set (data quality, scale); gin_params: bindings for every
    cell; grid: binding -> values, one cell per combination; seeds: one cell per seed."""

    configs: Mapping[str, Sequence[str]]
    seeds: Sequence[int] = (0,)
    task_sets: Sequence[str] = ()
    gin_files: Sequence[str] = ()
    gin_params: Sequence[str] = ()
    grid: Mapping[str, Sequence] = field(default_factory=dict)

    def __post_init__(self):
        if not self.configs:
            raise SweepError("sweep spec: 'configs' is empty; give at least one, e.g. {'HyGen': ['hygen']}")
        for label, files in self.configs.items():
            if isinstance(files, str) or not files:
                raise SweepError(f"sweep spec: configs[{label!r}] must be a non-empty list of gin files, got {files!r}")
        if not self.seeds:
            raise SweepError("sweep spec: 'seeds' is empty")
        for k, values in self.grid.items():
            if isinstance(values, str) or not isinstance(values, Sequence) or not values:
                raise SweepError(f"sweep spec: grid[{k!r}] must be a non-empty list of values, got {values!r}")

    def cells(self) -> list[Cell]:
        """Every cell, seed-major: a sweep cut off early has compared every config on the first seeds."""
        keys = list(self.grid)
        combos = list(itertools.product(*(self.grid[k] for k in keys)))
        cells, names = [], set()
        for seed in self.seeds:
            for task_set in list(self.task_sets) or [None]:
                for combo in combos:
                    for config, files in self.configs.items():
                        grid = tuple((k, repr(v) if not isinstance(v, str) else v) for k, v in zip(keys, combo))
                        label = " ".join([config, *([task_set] if task_set else []),
                                          *(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in grid)])
                        name = "-".join(_slug(p) for p in label.split(" ")) + f"-seed{int(seed)}"
                        if name in names:
                            raise SweepError(f"sweep spec: two cells would share the directory {name!r}; "
                                             "give the configs distinct labels")
                        names.add(name)
                        ts = [f"tasksets/{task_set}"] if task_set else []
                        head = _method_and_run(files)  # the task set binds what the run leaves REQUIRED
                        cells.append(Cell(
                            name=name, label=label, config=config, task_set=task_set, grid=grid, seed=int(seed),
                            gin_files=(*files[:head], *ts, *files[head:], *self.gin_files) if ts else
                            (*files, *self.gin_files),
                            gin_params=(*self.gin_params, *(f"{k} = {v}" for k, v in grid))))
        return cells

    def to_dict(self) -> dict:
        return {"configs": {k: list(v) for k, v in self.configs.items()}, "seeds": [int(s) for s in self.seeds],
                "task_sets": list(self.task_sets), "gin_files": list(self.gin_files),
                "gin_params": list(self.gin_params), "grid": {k: list(v) for k, v in self.grid.items()}}

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "sweep spec") -> SweepSpec:
        unknown = set(d) - {"configs", "seeds", "task_sets", "gin_files", "gin_params", "grid"}
        if unknown:
            raise SweepError(f"{source}: unknown keys {sorted(unknown)}; expected configs, seeds, task_sets, "
                             "gin_files, gin_params, grid")
        if "configs" not in d:
            raise SweepError(f"{source}: missing 'configs' (label -> list of gin files)")
        return cls(**{k: d[k] for k in d})

    @classmethod
    def from_json(cls, path: str | Path) -> SweepSpec:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise SweepError(f"{path}: cannot read the sweep spec ({e})") from None
        return cls.from_dict(d.get("spec", d), source=str(path))


def parse_grid(items: Sequence[str]) -> dict[str, list]:
    """``["Trainer.batch_size = [8, 16]"]`` -> ``{"Trainer.batch_size": [8, 16]}``."""
    grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        try:
            parsed = ast.literal_eval(values.strip()) if sep else None
        except (ValueError, SyntaxError):
            parsed = None
        if not key.strip() or not isinstance(parsed, list) or not parsed:
            raise SweepError(f"--grid {item!r}: expected 'Binding.name = [value, value, ...]' "
                             "(a Python/gin list literal, strings quoted)")
        grid[key.strip()] = parsed
    return grid


def cell_status(cell: Cell, root: str | Path) -> str:
    """'done' (results.json says so), 'partial' (a run directory to resume) or 'new'."""
    d = cell.run_dir(root)
    res = d / "results.json"
    if res.is_file():
        try:
            if json.loads(res.read_text()).get("done"):
                return "done"
        except json.JSONDecodeError:
            pass
    return "partial" if (d / "config.gin").is_file() else "new"


def cell_steps(cell: Cell, root: str | Path) -> tuple[int, int | None]:
    """How far a cell's run is: (step of its newest checkpoint, its total steps), the total from
    results.json (written from the first evaluation on; None before). Cheap: a glob and a small file."""
    d = cell.run_dir(root)
    steps = [int(m[1]) for p in (d / "checkpoints").glob("ckpt_*.pt") if (m := re.fullmatch(r"ckpt_([0-9]+)", p.stem))]
    total = None
    try:
        total = int(json.loads((d / "results.json").read_text())["total_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return max(steps, default=0), total


def check_cell_config(cell: Cell, root: str | Path) -> None:
    """A cell's run directory must hold the run this cell describes: the same gin files and
    parameters in its meta.json (the sweep passes them on every start). Otherwise the directory
    holds another experiment under this cell's name (the same --out reused with another game, data
    root or scale), and skipping or resuming it would put that experiment's numbers in this table."""
    meta_path = cell.run_dir(root) / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return  # nothing recorded yet (a cell killed before its first write): it starts afresh
    recorded = (list(meta.get("gin_files", [])), list(meta.get("gin_params", [])))
    if recorded != (list(cell.gin_files), list(cell.gin_params)):
        raise SweepError(f"{meta_path}: the run in cell {cell.name} was made with gin files {recorded[0]} and "
                         f"parameters {recorded[1]}, this sweep asks for {list(cell.gin_files)} and "
                         f"{list(cell.gin_params)}; use another --out, or remove {cell.run_dir(root)} to run it again")


def _cell_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HYGEN_NO_PROGRESS="1")
    return env


def execute_cell(command: Sequence[str], log_path: str, started_marker: str, env: Mapping[str, str] | None = None,
                 cwd: str | None = None) -> int:
    """Run one cell's command with its output appended to ``log_path``; the exit code.
    (Top-level, so a Ray worker can run it; it touches ``started_marker`` first so the
    progress view can tell running cells from queued ones.)"""
    log = Path(log_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    Path(started_marker).touch()
    with open(log, "a") as f:
        f.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n")
        f.flush()
        proc = subprocess.Popen(list(command), stdout=f, stderr=subprocess.STDOUT, env=dict(env or _cell_env()),
                                cwd=cwd)
        _cells_running.add(proc)
        try:
            if _stopping.is_set():  # the sweep was stopped while this cell was starting
                _stop([proc])
            return proc.wait()
        except BaseException:
            _stop([proc])
            raise
        finally:
            _cells_running.discard(proc)


_cells_running: set[subprocess.Popen] = set()  # this process's cell processes (the local pool's threads add them)
_stopping = threading.Event()  # set when the sweep stops: a cell starting after that stops at once


def _stop(procs, grace: float = 30.0) -> None:
    """An interrupted sweep leaves no orphans: every cell is asked to stop at once (each saves
    nothing more; its run resumes next time), then those still running after ``grace`` seconds
    are killed."""
    procs = [p for p in procs if p.poll() is None]
    for p in procs:
        p.terminate()
    deadline = time.time() + grace
    for p in procs:
        try:
            p.wait(timeout=max(deadline - time.time(), 0.0))
        except subprocess.TimeoutExpired:
            p.kill()


@dataclass
class _Progress:
    """One progress view for the whole sweep: cells done / running / failed, elapsed, ETA."""

    total: int
    workers: int
    print_fn: Callable[[str], None]
    skipped: int = 0
    done: int = 0
    failed: int = 0
    finished_work: list = field(default_factory=list)  # per finished cell: (seconds, fraction of its steps run)
    t0: float = field(default_factory=time.time)

    def line(self, running: list[tuple[float, float, float]]) -> str:
        """``running``: per running cell, its start time and the fraction of its steps done at
        the start and now. The time of a whole cell is the seconds spent over the fractions
        done, of the finished cells, else of the running ones (a cell resumed half-way counts
        as half a cell), so the ETA holds from the first checkpoints on."""
        now = time.time()
        left = self.total - self.skipped - self.done - self.failed
        work_done = self.finished_work or [(now - t, f - f0) for t, f0, f in running]
        seconds, fractions = sum(w[0] for w in work_done), sum(w[1] for w in work_done)
        eta = "?"
        if fractions > 0:  # what the running cells still need, plus the queued ones, spread over the workers
            per = seconds / fractions
            work = sum(per * (1 - f) for _, _, f in running) + per * max(left - len(running), 0)
            eta = _duration(work / max(min(self.workers, left), 1))
        cells = ", ".join(f"{100 * f:.0f} %" for _, _, f in running)
        return (f"sweep: {self.done + self.skipped}/{self.total} done ({self.skipped} skipped), {len(running)} running"
                f"{f' ({cells})' if cells else ''}, {self.failed} failed, {left - len(running)} queued, "
                f"elapsed {_duration(now - self.t0)}, ETA {eta}")


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s} s" if s < 600 else f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else f"{s // 60} min"


def run_sweep(spec: SweepSpec, root: str | Path, backend: str = "local", workers: int | None = None,
              device: str = "cpu", address: str | None = None, gpus_per_cell: float = 0.0,
              print_fn: Callable[[str], None] = print, status_every: float = 30.0) -> dict[str, dict]:
    """Run every cell not done yet; returns {cell name: {status, log, rc, seconds}}
    (status: done, skipped, failed). Writes ``<root>/sweep.json`` (spec and cells) first."""
    if backend not in BACKENDS:
        raise SweepError(f"unknown sweep backend {backend!r}; expected one of {BACKENDS}")
    root = Path(root)
    cells = spec.cells()
    root.mkdir(parents=True, exist_ok=True)
    hold_directory(root)  # a second sweep on the same root stops here (each cell is held by its run, too)
    try:
        return _run_held_sweep(spec, cells, root, backend, workers, device, address, gpus_per_cell, print_fn,
                               status_every)
    finally:
        release_directory(root)


def _run_held_sweep(spec, cells, root, backend, workers, device, address, gpus_per_cell, print_fn,
                    status_every) -> dict[str, dict]:
    (root / "logs").mkdir(exist_ok=True)
    for stale in (root / "logs").glob(".*.started-*"):  # a sweep killed outright left them; none runs now
        stale.unlink(missing_ok=True)
    for c in cells:  # before anything is written
        check_cell_config(c, root)
    write_spec(spec, root)
    workers = max(1, int(workers or os.cpu_count() or 1))
    out: dict[str, dict] = {}
    todo = []
    for c in cells:
        status = cell_status(c, root)
        if status == "done":
            out[c.name] = {"status": "skipped", "log": str(c.log_path(root)), "rc": 0, "seconds": 0.0}
        else:
            todo.append(c)
    progress = _Progress(len(cells), workers, print_fn, skipped=len(cells) - len(todo))
    session = uuid.uuid4().hex[:8]
    marker = {c.name: root / "logs" / f".{c.name}.started-{session}" for c in todo}
    print_fn(f"sweep {root}: {len(cells)} cells, {len(todo)} to run on {backend} "
             f"({workers} worker{'s' * (workers > 1)})")

    def fraction(c: Cell) -> float:  # of the cell's steps its newest checkpoint holds
        step, total = cell_steps(c, root)
        return min(step / total, 1.0) if total else 0.0

    at_start = {c.name: fraction(c) for c in todo}

    def finished(c: Cell, rc: int, seconds: float) -> None:
        marker[c.name].unlink(missing_ok=True)
        ok = rc == 0 and cell_status(c, root) == "done"
        out[c.name] = {"status": "done" if ok else "failed", "log": str(c.log_path(root)), "rc": rc,
                       "seconds": round(seconds, 1)}
        if ok:
            progress.done += 1
            progress.finished_work.append((seconds, 1 - at_start[c.name]))  # a resumed cell did only part
        else:
            progress.failed += 1
        what = "done" if ok else f"FAILED (exit {rc}); log: {c.log_path(root)}"
        print_fn(f"  {c.name}: {what} in {seconds:.0f} s")
        print_fn(progress.line(running()))

    def running() -> list[tuple[float, float, float]]:  # start time (marker mtime), fraction at start, now
        now = []
        for c in todo:
            try:
                t = marker[c.name].stat().st_mtime
            except FileNotFoundError:
                continue
            now.append((t, at_start[c.name], fraction(c)))
        return now

    try:
        if todo and backend == "local":
            _run_local(todo, root, workers, device, marker, finished, progress, running, status_every)
        elif todo:
            _run_ray(todo, root, workers, device, address, gpus_per_cell, marker, finished, progress, running,
                     status_every)
    finally:  # an interrupted sweep leaves no markers behind
        for m in marker.values():
            m.unlink(missing_ok=True)
    failed = [(n, r) for n, r in out.items() if r["status"] == "failed"]
    for n, r in failed:
        print_fn(f"failed: {n} (exit {r['rc']}), log: {r['log']}")
    print_fn(f"sweep {root}: {progress.done} done, {progress.skipped} skipped, {len(failed)} failed, "
             f"{time.time() - progress.t0:.0f} s")
    return {c.name: out[c.name] for c in cells}


def _run_local(todo, root, workers, device, marker, finished, progress, running, status_every) -> None:
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    _stopping.clear()
    # Threads only wait on child processes: the work is in the ``hygen train`` subprocesses.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        t_start = {}

        def launch(c):
            t_start[c.name] = time.time()
            return execute_cell(c.command(root, device), str(c.log_path(root)), str(marker[c.name]))

        futures = {pool.submit(launch, c): c for c in todo}
        pending = set(futures)
        last = time.time()
        try:
            while pending:
                done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                for f in done:
                    c = futures[f]
                    try:
                        rc = f.result()
                    except Exception as e:  # noqa: BLE001  (could not even start: report it as the cell's failure)
                        with open(c.log_path(root), "a") as log:
                            log.write(f"could not run the cell: {type(e).__name__}: {e}\n")
                        rc = -1
                    finished(c, rc, time.time() - t_start.get(c.name, time.time()))
                if time.time() - last > status_every:
                    progress.print_fn(progress.line(running()))
                    last = time.time()
        except BaseException:  # Ctrl-C, or SIGTERM (hygen.cli): stop the running cells, not only the queue
            _stopping.set()
            for f in pending:
                f.cancel()
            _stop(list(_cells_running))
            raise


def _run_ray(todo, root, workers, device, address, gpus_per_cell, marker, finished, progress, running,
             status_every) -> None:
    try:
        import ray
    except ImportError:
        raise SweepError("the 'ray' backend needs Ray: pip install 'hygen[ray]' (or pip install ray)") from None
    started_here = not ray.is_initialized()
    if started_here:
        kwargs = {"include_dashboard": False, "log_to_driver": False}
        if address:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = workers  # a local instance sized like the local pool
        ray.init(**kwargs)
    try:
        task = ray.remote(num_cpus=1, num_gpus=float(gpus_per_cell))(_ray_cell)
        if gpus_per_cell and device == "cpu":
            device = "cuda"
        refs = {task.remote(c.command(root, device), str(c.log_path(root)), str(marker[c.name]), _cell_env(),
                            os.getcwd()): c for c in todo}
        last = time.time()
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
            for r in ready:
                c = refs.pop(r)
                try:
                    rc, seconds = ray.get(r)
                except Exception as e:  # noqa: BLE001  (the task itself died: the cell failed)
                    with open(c.log_path(root), "a") as log:
                        log.write(f"ray task failed: {type(e).__name__}: {e}\n")
                    rc, seconds = -1, 0.0
                finished(c, rc, seconds)
            if time.time() - last > status_every:
                progress.print_fn(progress.line(running()))
                last = time.time()
    finally:
        if started_here:
            ray.shutdown()


def _ray_cell(command, log_path, started_marker, env, cwd) -> tuple[int, float]:
    t0 = time.time()
    env = dict(env)
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:  # the GPU Ray assigned to this task
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    rc = execute_cell(command, log_path, started_marker, env, cwd)
    return rc, time.time() - t0


def write_spec(spec: SweepSpec, root: str | Path) -> Path:
    """``<root>/sweep.json``: the spec and its cells (what hygen report reads)."""
    from hygen.rundir import write_json

    path = Path(root) / SPEC_FILE
    write_json(path, {"spec": spec.to_dict(), "cells": [asdict(c) for c in spec.cells()]})
    return path


def load_sweep(root: str | Path) -> tuple[SweepSpec, list[Cell]]:
    """The spec and cells recorded in ``<root>/sweep.json``."""
    path = Path(root) / SPEC_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a sweep directory (no {SPEC_FILE})")
    d = json.loads(path.read_text())
    cells = [Cell(**{**c, "grid": tuple(tuple(g) for g in c["grid"]), "gin_files": tuple(c["gin_files"]),
                     "gin_params": tuple(c["gin_params"])}) for c in d["cells"]]
    return SweepSpec.from_dict(d["spec"], source=str(path)), cells
