"""Run directories: config, seed, provenance, TensorBoard events, checkpoints, results.

A run directory holds everything needed to understand and continue a run::

    RUN_DIR/
      config.gin            the parsed gin config (what was asked for)
      operative_config.gin  the bindings actually used (written once components exist)
      meta.json             seed, git revision, library versions, command line
      events.out.tfevents.* TensorBoard scalars
      checkpoints/ckpt_00001000.pt   (atomic: written to a temp file, then renamed)
      results.json          machine-readable results (atomic)
      .lock                 while a process writes the run (``RunDir.lock``)

Re-running with the same directory resumes from the newest checkpoint.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from hygen.dirlock import DirectoryInUseError, hold_directory, release_directory  # noqa: F401  (re-exported)
from hygen.learners.base import CheckpointError, check_state_dict  # noqa: F401  (re-exported: rundir raises them)

CHECKPOINT_GLOB = "ckpt_*.pt"


def git_revision(path: str | Path | None = None) -> str | None:
    """The git revision of the hygen source tree (with '-dirty' when modified), or None."""
    cwd = Path(path) if path else Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5, check=False).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("hygen", "torch", "numpy", "gin-config", "h5py", "einops", "tensorboard"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, write_fn) -> None:
    """Write via ``write_fn(file)`` to a temp file in the same folder, fsync, then rename.

    A crash mid-write leaves the previous file intact: a half-written file never
    replaces a good one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it 0600; the result is an ordinary file
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: Path) -> dict:
    """A JSON file of a run directory; a damaged one is a clear error naming it."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None


def _json_default(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    return str(o)


class RunDir:
    """One run's directory. Creating it is idempotent; an existing one is resumed."""

    def __init__(self, path: str | Path, keep_checkpoints: int = 3):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoint_dir = self.path / "checkpoints"
        self.keep_checkpoints = keep_checkpoints
        self.loaded_checkpoint: Path | None = None  # the file load_checkpoint read
        self.purge_step: int | None = None  # set on resume: TensorBoard drops later events of the killed run
        self._writer = None

    # -- provenance ---------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.path / "meta.json"

    @staticmethod
    def peek_meta(path: str | Path) -> dict:
        """meta.json of the run directory at ``path`` without creating it ({} when absent)."""
        p = Path(path) / "meta.json"
        return read_json(p) if p.is_file() else {}

    def read_meta(self) -> dict:
        if not self.meta_path.exists():
            return {}
        return read_json(self.meta_path)

    def check_seed(self, seed: int) -> None:
        """A resumed run keeps its seed."""
        meta = self.read_meta()
        if meta and "seed" in meta and int(meta["seed"]) != int(seed):
            raise CheckpointError(
                f"{self.meta_path}: run directory was created with seed {meta['seed']}, "
                f"but this run asks for seed {seed}; use another --run_dir or the same seed")

    def write_meta(self, seed: int, **extra: Any) -> dict:
        """Record seed, git revision, versions and command line (``extra`` replaces those keys)."""
        self.check_seed(seed)
        meta = self.read_meta()
        meta.update({"seed": int(seed), "git_revision": git_revision(), "versions": library_versions(),
                     "argv": sys.argv, **extra})
        meta.setdefault("history", []).append({"git_revision": meta["git_revision"], "argv": sys.argv})
        write_json(self.meta_path, meta)
        return meta

    def write_config(self, config_str: str, name: str = "config.gin") -> Path:
        p = self.path / name
        atomic_write_text(p, config_str)
        return p

    # -- TensorBoard ----------------------------------------------------------------
    @property
    def writer(self):
        if self._writer is None:  # TensorBoard, scalars.csv and the loggers bound in gin (hygen.loggers)
            from hygen.loggers import ScalarLogs

            self._writer = ScalarLogs(self.path, purge_step=self.purge_step)
        return self._writer

    def log_scalars(self, scalars: dict[str, float], step: int, prefix: str = "") -> None:
        for k, v in scalars.items():
            self.writer.add_scalar(f"{prefix}{k}", float(v), step)

    # -- checkpoints ----------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        """Checkpoints, oldest first (by step number in the name)."""
        return sorted(self.checkpoint_dir.glob(CHECKPOINT_GLOB), key=lambda p: int(p.stem.split("_")[1]))

    def save_checkpoint(self, state: dict, step: int) -> Path:
        path = self.checkpoint_dir / f"ckpt_{int(step):08d}.pt"
        # a write killed midway (SIGKILL, power loss) leaves its temporary file behind, as large as a
        # checkpoint; only this run's writer makes them, so any present now are such leftovers
        for partial in self.checkpoint_dir.glob(f".{CHECKPOINT_GLOB}.*.tmp"):
            partial.unlink(missing_ok=True)
        atomic_write_bytes(path, lambda f: torch.save({"step": int(step), **state}, f))
        for old in self.checkpoints()[:-self.keep_checkpoints]:
            old.unlink(missing_ok=True)
        return path

    def keep_only_newest_checkpoint(self) -> None:
        """A finished run needs one checkpoint (to evaluate or continue it); the older ones,
        kept while it ran in case the newest write was cut off, would cost a sweep of hybrid
        cells about 1 GB each (the replay buffers are in them)."""
        for old in self.checkpoints()[:-1]:
            old.unlink(missing_ok=True)

    def load_checkpoint(self, path: str | Path | None = None, map_location="cpu") -> dict | None:
        """The newest readable checkpoint (or ``path``); None when there is none."""
        candidates = [Path(path)] if path else list(reversed(self.checkpoints()))
        errors = []
        for p in candidates:
            try:
                ckpt = torch.load(p, map_location=map_location, weights_only=False)
            except Exception as e:  # noqa: BLE001  (a corrupt file, whatever torch raises: fall back)
                errors.append(f"{p}: {type(e).__name__}: {e}")
                if path:
                    break
                continue
            for err in errors:  # a newer file was unreadable (e.g. killed mid-write on a full disk)
                print(f"warning: skipped unreadable checkpoint {err}; using {p.name}", file=sys.stderr)
            self.loaded_checkpoint = p
            return ckpt
        if errors:
            raise CheckpointError("no readable checkpoint; tried:\n  " + "\n  ".join(errors))
        return None

    # -- results ----------------------------------------------------------------------
    @property
    def results_path(self) -> Path:
        return self.path / "results.json"

    def read_results(self) -> dict:
        if not self.results_path.exists():
            return {}
        return read_json(self.results_path)

    def write_results(self, results: dict) -> None:
        write_json(self.results_path, results)

    # -- progress -----------------------------------------------------------------------
    @staticmethod
    def progress(total: int, initial: int = 0, desc: str = "", unit: str = "step", interval: float = 30.0):
        """Progress with throughput and ETA: a tqdm bar on a terminal, plain lines every ``interval``
        seconds otherwise (a log file); quiet when HYGEN_NO_PROGRESS is set."""
        from tqdm.auto import tqdm

        quiet = bool(os.environ.get("HYGEN_NO_PROGRESS"))
        if not quiet and not sys.stderr.isatty():  # a bar's carriage returns would make one endless line
            return LineProgress(total, initial, desc, unit, interval)
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, disable=quiet,
                    smoothing=0.1)

    def lock(self) -> None:
        """Hold the directory while this process writes it (:func:`hold_directory`)."""
        hold_directory(self.path)

    def unlock(self) -> None:
        release_directory(self.path)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class LineProgress:
    """tqdm's update / set_postfix / close, written as one plain line every ``interval`` seconds
    (and at the end) to stderr, for logs. The rate is measured between lines, so the first line
    (whose interval holds the slow start: imports, the step-0 evaluation) gives none."""

    def __init__(self, total: int, initial: int = 0, desc: str = "", unit: str = "step", interval: float = 30.0):
        import time

        self._clock = time.monotonic
        self.total, self.n, self.desc, self.unit, self.interval = total, initial, desc, unit, interval
        self.postfix: dict = {}
        self._last_t, self._last_n = self._clock(), initial
        self._rate: float | None = None  # units per second over the last interval
        self._lines = 0

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._clock() - self._last_t >= self.interval:
            self._line()

    def set_postfix(self, postfix: dict | None = None, **kwargs) -> None:
        self.postfix = {**(postfix or {}), **kwargs}

    def close(self) -> None:
        if self.n != self._last_n:
            self._line()

    def _line(self) -> None:
        now = self._clock()
        if self._lines and now > self._last_t and self.n > self._last_n:
            self._rate = (self.n - self._last_n) / (now - self._last_t)
        self._last_t, self._last_n, self._lines = now, self.n, self._lines + 1
        parts = [f"{self.desc} {self.n}/{self.total} {self.unit}s ({100 * self.n / max(self.total, 1):.0f} %)"]
        if self._rate:
            eta = (self.total - self.n) / self._rate
            per = f"{1 / self._rate:.2f} s/{self.unit}" if self._rate < 1 else f"{self._rate:.1f} {self.unit}s/s"
            parts.append(f"{per}, ETA {int(eta // 60)} min {int(eta % 60):02d} s")
        parts += [f"{k}={v}" for k, v in self.postfix.items()]
        print(", ".join(parts), file=sys.stderr, flush=True)
