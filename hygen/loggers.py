"""Scalar loggers beside TensorBoard: CSV always, Weights & Biases when asked for.

A run directory's ``writer`` (hygen.rundir.RunDir) is a :class:`ScalarLogs`: every
``add_scalar(tag, value, step)`` the trainer (or a learner, or diagnostics) makes goes to
TensorBoard, to ``scalars.csv`` in the run directory (``step,tag,value,wall_time``: readable
with any tool, no TensorBoard needed) and to the loggers bound in gin::

    loggers.extra = [@WandbLogger()]
    WandbLogger.project = 'hygen'          # offline by default: WandbLogger.mode = 'online' to sync

On resume, like TensorBoard's ``purge_step``, the CSV drops the rows a killed run wrote after
the checkpoint it resumes from, so the file reads as one uninterrupted run.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import gin

__all__ = ["CSVLogger", "ScalarLogs", "WandbLogger", "loggers"]


@gin.configurable
def loggers(extra=()) -> list:
    """Loggers every run writes to besides TensorBoard and CSV (gin: ``loggers.extra = [...]``):
    classes or factories called as ``factory(run_dir, purge_step=...)`` returning an object with
    ``add_scalar(tag, value, step)``, ``flush()`` and ``close()``."""
    return list(extra)


class CSVLogger:
    """``<run dir>/scalars.csv``: one row per scalar (step, tag, value, wall_time)."""

    FIELDS = ("step", "tag", "value", "wall_time")

    def __init__(self, run_dir: str | Path, purge_step: int | None = None, filename: str = "scalars.csv"):
        self.path = Path(run_dir) / filename
        if purge_step is not None and self.path.is_file():  # a resumed run: forget what came after its checkpoint
            with open(self.path, newline="") as f:
                kept = [r for r in csv.DictReader(f) if int(r["step"]) < purge_step]
            with open(self.path, "w", newline="") as f:
                w = csv.DictWriter(f, self.FIELDS)
                w.writeheader()
                w.writerows(kept)
        new = not self.path.is_file()
        self._file = open(self.path, "a", newline="")  # noqa: SIM115  (open for the run's lifetime)
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(self.FIELDS)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self._csv.writerow([int(step), tag, f"{float(value):.6g}", f"{time.time():.3f}"])

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


@gin.configurable
class WandbLogger:
    """Weights & Biases (``pip install 'hygen[wandb]'``). Offline by default: the run is written
    under ``<run dir>/wandb`` and synced later with ``wandb sync``; ``mode='online'`` logs live.
    The W&B run id is derived from the run directory, so a resumed run continues the same W&B run."""

    def __init__(self, run_dir: str | Path, project: str = "hygen", entity: str | None = None,
                 mode: str | None = None, name: str | None = None, purge_step: int | None = None):
        try:
            import wandb
        except ImportError:
            raise ImportError("WandbLogger needs wandb: pip install 'hygen[wandb]' (or drop loggers.extra)") from None
        import hashlib
        import json

        run_dir = Path(run_dir)
        meta = run_dir / "meta.json"
        config = json.loads(meta.read_text()) if meta.is_file() else {}
        run_id = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:12]
        self._run = wandb.init(project=project, entity=entity, mode=mode or os.environ.get("WANDB_MODE", "offline"),
                               name=name or run_dir.name, id=run_id, resume="allow", dir=str(run_dir),
                               config={k: config.get(k) for k in ("seed", "gin_files", "gin_params", "git_revision")})

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self._run.log({tag: float(value)}, step=int(step))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._run.finish()


class ScalarLogs:
    """TensorBoard's SummaryWriter plus the CSV and bound loggers behind one ``add_scalar``.
    Anything else (histograms, ...) goes to TensorBoard only."""

    def __init__(self, run_dir: str | Path, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.tensorboard = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step)
        self.others = [CSVLogger(run_dir, purge_step=purge_step)]
        self.others += [factory(run_dir, purge_step=purge_step) for factory in loggers()]

    def add_scalar(self, tag: str, value, step: int, *args, **kwargs) -> None:
        self.tensorboard.add_scalar(tag, value, step, *args, **kwargs)
        for lg in self.others:
            lg.add_scalar(tag, float(value), step)

    def flush(self) -> None:
        self.tensorboard.flush()
        for lg in self.others:
            lg.flush()

    def close(self) -> None:
        self.tensorboard.close()
        for lg in self.others:
            lg.close()

    def __getattr__(self, name):
        return getattr(self.tensorboard, name)
