"""Offline datasets in ODIS's HDF5 format (reference sec. 6).

One file holds B episodes padded to T = episode_limit + 1 rows::

    obs             (B, T, n, obs)  float32     state     (B, T, S)  float32
    actions         (B, T, n, 1)    int64       reward    (B, T, 1)  float32
    actions_onehot  (B, T, n, A)    float32     terminated (B, T, 1) uint8
    avail_actions   (B, T, n, A)    int32       filled    (B, T, 1)  int64

Files live at ``<root>/<map>/<quality>/[<run>/]part_<k>.h5``.

Memory: ``OfflineDataset`` keeps only the filled rows of every episode, packed end to
end ("ragged" storage with per-episode start/length), in compact dtypes (obs/state
float16 by default, max abs error 2.4e-4 on values in [-1, 1]; actions uint8; avail and
terminated bool). Sampling gathers a padded [B, T_max+1, ...] float32 batch with one
index tensor, no Python loop over episodes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch

from hygen.buffers.episode import EpisodeBatch
from hygen.buffers.scheme import EPISODE_SCHEME, STEP_FIELDS, field_shape
from hygen.envs.maps import MAPS, MapSpec, UnknownNameError, get_map

__all__ = [
    "ODIS_KEYS",
    "QUALITIES",
    "DatasetError",
    "OfflineDataset",
    "dataset_files",
    "expand_paths",
    "infer_map_name",
    "read_episodes",
    "validate_file",
    "write_episodes",
]

# key -> (dtype ODIS writes, dtype kinds we accept when reading), from the episode scheme;
# actions_onehot is written for ODIS but derived from actions when reading.
ODIS_KEYS: dict[str, tuple[np.dtype, str]] = {
    **{k: (EPISODE_SCHEME[k].odis, EPISODE_SCHEME[k].odis_read_kinds) for k in STEP_FIELDS},
    "actions_onehot": (np.dtype(np.float32), "fiub"),
}
_REQUIRED = STEP_FIELDS
_KIND_NAMES = {"f": "float", "i": "signed int", "u": "unsigned int", "b": "bool"}

# quality -> directory names that make it up (medium-expert = medium + expert, as in ODIS)
QUALITIES: dict[str, tuple[str, ...]] = {
    "expert": ("expert",),
    "medium": ("medium",),
    "medium-replay": ("medium-replay",),
    "medium-expert": ("medium", "expert"),
}

_CHUNK = 256  # episodes read per h5 slice: bounds peak memory while loading


class DatasetError(ValueError):
    """A dataset file or directory that cannot be used; the message names file, key and expectation."""


# ----- locating files ------------------------------------------------------------------------
def dataset_files(root: str | Path, map_name: str, quality: str, run: str | None = None) -> list[Path]:
    """The ``part_*.h5`` files of one map and quality, in ODIS's order.

    ``run=None`` follows ODIS: the .h5 files directly in ``<root>/<map>/<quality>``, or,
    when there are none, those of the last run sub-directory in sorted order.
    ``run="all"`` takes every run sub-directory; any other value names one.
    ``medium-expert`` is the union of the medium and expert directories (unless a
    literal ``medium-expert`` directory exists).
    """
    key = quality.replace("_", "-")
    if key not in QUALITIES:
        import difflib

        close = difflib.get_close_matches(key, list(QUALITIES), n=1)
        raise DatasetError(f"unknown dataset quality {quality!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                           + f"; expected one of {', '.join(QUALITIES)}")
    map_dir = Path(root) / map_name
    parts = (key,) if _quality_dir(map_dir, key) is not None else QUALITIES[key]
    files: list[Path] = []
    for part in parts:
        qdir = _quality_dir(map_dir, part)
        if qdir is None:
            raise DatasetError(f"no {part!r} data for map {map_name!r}: {map_dir / part} does not exist")
        files += _h5_in(qdir, run)
    return files


def _quality_dir(map_dir: Path, quality: str) -> Path | None:
    for name in (quality, quality.replace("-", "_")):
        if (map_dir / name).is_dir():
            return map_dir / name
    return None


def _h5_in(qdir: Path, run: str | None) -> list[Path]:
    here = sorted(qdir.glob("*.h5"))
    runs = sorted(p for p in qdir.iterdir() if p.is_dir())
    if run is None:
        if here:
            return here
        if not runs:
            raise DatasetError(f"{qdir}: no .h5 files and no run sub-directories")
        chosen = [runs[-1]]
    elif run == "all":
        chosen = runs
    else:
        chosen = [qdir / run]
        if not chosen[0].is_dir():
            raise DatasetError(f"{qdir}: no run directory {run!r}; found {[p.name for p in runs]}")
    files = [f for r in chosen for f in sorted(r.glob("*.h5"))]
    if not files:
        raise DatasetError(f"{qdir}: no .h5 files in run directories {[p.name for p in chosen]}")
    return here + files if run == "all" else files


def expand_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Files as given; a directory stands for the .h5 files under it (recursively)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("*.h5"))
            if not found:
                raise DatasetError(f"{p}: directory holds no .h5 files")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise DatasetError(f"{p}: no such file or directory")
    return out


def infer_map_name(path: str | Path, shapes: dict[str, tuple[int, ...]] | None = None) -> str:
    """Map of a dataset file: a known map name among the path's parts (``<map>/<quality>``),
    else the unique map whose sizes fit the file's shapes."""
    for part in reversed(Path(path).parts[:-1]):
        if part in MAPS:
            return part
    if shapes is None:
        shapes = _shapes(path)
    for key, ndim in (("obs", 4), ("state", 3), ("avail_actions", 4)):
        if key not in shapes:
            raise DatasetError(f"{path}: missing key {key!r} (ODIS files hold {', '.join(ODIS_KEYS)})")
        if len(shapes[key]) != ndim:
            raise DatasetError(f"{path}: key {key!r} has shape {shapes[key]}, expected {ndim} dimensions")
    n, obs, A = shapes["obs"][2], shapes["obs"][3], shapes["avail_actions"][3]
    S = shapes["state"][2]
    fits = [m for m, spec in MAPS.items()
            if (spec.n_agents, spec.layout.obs_shape, spec.layout.state_shape, spec.n_actions) == (n, obs, S, A)]
    if len(fits) != 1:
        why = "no map" if not fits else f"several maps ({', '.join(fits)})"
        raise DatasetError(f"{path}: {why} fit n_agents={n}, obs={obs}, state={S}, n_actions={A}; "
                           "pass the map name")
    return fits[0]


# ----- reading -------------------------------------------------------------------------------
def _open(path: str | Path) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {e}") from None


def _shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    with _open(path) as f:
        return {k: f[k].shape for k in f if isinstance(f[k], h5py.Dataset)}


def _check_structure(f: h5py.File, path: Path, spec: MapSpec) -> int:
    """Check keys, dtypes and shapes against ``spec``; return the episode count."""
    for key in _REQUIRED:
        if key not in f or not isinstance(f[key], h5py.Dataset):
            raise DatasetError(f"{path}: missing key {key!r} (ODIS files hold {', '.join(ODIS_KEYS)})")
    B, T = f["obs"].shape[:2] if f["obs"].ndim >= 2 else (None, None)
    n, A = spec.n_agents, spec.n_actions
    expect = {k: field_shape(k, spec, B, T) for k in STEP_FIELDS}
    expect["actions_onehot"] = (B, T, n, A)
    for key, shape in expect.items():
        if key not in f:
            continue  # actions_onehot is optional for reading (derived on demand)
        ds = f[key]
        if ds.shape != shape:
            want = "(" + ", ".join("BT"[i] if s is None else str(s) for i, s in enumerate(shape)) + ")"
            raise DatasetError(f"{path}: key {key!r} has shape {ds.shape}, expected {want} for map "
                               f"{spec.name!r} (B episodes, T={T} rows, n_agents={n}, n_actions={A})")
        kinds = ODIS_KEYS[key][1]
        if ds.dtype.kind not in kinds:
            allowed = " or ".join(_KIND_NAMES[k] for k in kinds)
            raise DatasetError(f"{path}: key {key!r} has dtype {ds.dtype}, expected {allowed} "
                               f"(ODIS writes {ODIS_KEYS[key][0]})")
    if B == 0:
        raise DatasetError(f"{path}: empty dataset (0 episodes)")
    if T is not None and T < 2:
        raise DatasetError(f"{path}: key 'obs' has {T} time rows, expected at least 2")
    return B


def _read_slice(f: h5py.File, path: Path, key: str, lo: int, hi: int) -> np.ndarray:
    try:
        return f[key][lo:hi]
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read key {key!r} episodes {lo}..{hi - 1} (corrupt data?): {e}") from None


def _chunk_batch(f: h5py.File, path: Path, spec: MapSpec, lo: int, hi: int) -> EpisodeBatch:
    arr = {k: _read_slice(f, path, k, lo, hi) for k in _REQUIRED}
    if arr["actions"].size and (arr["actions"].min() < 0 or arr["actions"].max() >= spec.n_actions):
        raise DatasetError(f"{path}: key 'actions' holds values outside [0, {spec.n_actions}) "
                           f"(episodes {lo}..{hi - 1})")
    for k in ("obs", "state", "reward"):  # a NaN would only surface as a NaN loss much later
        finite = np.isfinite(arr[k]).reshape(hi - lo, -1).all(1)
        if not finite.all():
            bad = (lo + np.nonzero(~finite)[0]).tolist()
            raise DatasetError(f"{path}: key {k!r} holds NaN/inf in {len(bad)} episode(s), e.g. {bad[:5]} "
                               f"(`hygen data validate {path}` lists every problem)")
    filled = arr["filled"][..., 0] > 0
    if (filled[:, 1:] & ~filled[:, :-1]).any():  # filled must be a prefix of each episode
        bad = lo + int(np.nonzero((filled[:, 1:] & ~filled[:, :-1]).any(1))[0][0])
        raise DatasetError(f"{path}: key 'filled' of episode {bad} has gaps; expected 1s then 0s")
    t = lambda k: torch.from_numpy(np.ascontiguousarray(arr[k]))
    return EpisodeBatch(obs=t("obs"), state=t("state"), actions=t("actions"),
                        avail_actions=t("avail_actions") != 0, reward=t("reward"),
                        terminated=t("terminated"), filled=t("filled"), map_name=spec.name)


def read_episodes(path: str | Path, map_name: str | None = None, start: int = 0,
                  stop: int | None = None) -> EpisodeBatch:
    """Episodes ``start..stop-1`` of one ODIS file as a float32 :class:`EpisodeBatch`
    (full T rows; call ``.trim()`` to drop padding)."""
    path = Path(path)
    with _open(path) as f:
        spec = get_map(map_name or infer_map_name(path, {k: f[k].shape for k in f}))
        B = _check_structure(f, path, spec)
        stop = B if stop is None else min(stop, B)
        return _chunk_batch(f, path, spec, start, stop)


# ----- writing -------------------------------------------------------------------------------
def write_episodes(path: str | Path, batch: EpisodeBatch, compression_level: int = 4) -> Path:
    """Write ``batch`` as an ODIS HDF5 file (gzip, ODIS dtypes, T padded to episode_limit + 1).

    ODIS concatenates files of one task along the episode axis, so every file of a map
    must have the same T; padding to the map's limit guarantees it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    T1 = get_map(batch.map_name).episode_limit + 1
    if batch.max_seq_length > T1:
        batch = batch.trim()
        if batch.max_seq_length > T1:
            raise DatasetError(f"{path}: episodes have {batch.max_seq_length} rows, more than "
                               f"{batch.map_name}'s episode_limit + 1 = {T1}")
    batch = batch.to("cpu")._pad_time(T1)
    data = {k: getattr(batch, k) for k in STEP_FIELDS}
    data["actions_onehot"] = batch.actions_onehot
    with h5py.File(path, "w") as f:
        for key, value in data.items():
            arr = value.numpy().astype(ODIS_KEYS[key][0])
            chunks = (max(1, min(len(batch), 64)), *arr.shape[1:])
            f.create_dataset(key, data=arr, compression="gzip", compression_opts=compression_level,
                             chunks=chunks)
    return path


# ----- the dataset ---------------------------------------------------------------------------
class OfflineDataset:
    """Episodes of one map from ODIS files, packed (filled rows only) in compact dtypes.

    Args:
        paths: .h5 files, or directories standing for the .h5 files under them.
        map_name: the map; inferred from the path (``<map>/<quality>``) or shapes if None.
        max_episodes: keep at most this many (ODIS: 2000 per task, split evenly over the
            files, the last ones of each file). None keeps everything.
        selection: "last" (ODIS with shuffle off: the last episodes of each file) or
            "random" (a random subset per file, seeded by ``seed``).
        device: where the packed storage lives (sampling happens there).
        float_dtype: storage dtype of obs and state (float16 or float32); batches are float32.
    """

    def __init__(self, paths: str | Path | Sequence[str | Path], map_name: str | None = None, *,
                 max_episodes: int | None = 2000, selection: str = "last",
                 device: str | torch.device = "cpu", float_dtype: torch.dtype = torch.float16,
                 seed: int = 0) -> None:
        files = expand_paths(paths)
        if not files:
            raise DatasetError(f"no dataset files in {paths!r}")
        if selection not in ("last", "random"):
            raise DatasetError(f"selection must be 'last' or 'random', got {selection!r}")
        try:
            map_name = map_name or infer_map_name(files[0])
            spec = get_map(map_name)
        except UnknownNameError as e:
            raise DatasetError(str(e)) from None
        self._init_storage(spec, device, float_dtype)
        self.files = files
        per_file = None if max_episodes is None else max(1, max_episodes // len(files))
        rng = np.random.default_rng(seed)
        for path in files:
            with _open(path) as f:
                B = _check_structure(f, path, spec)
                keep = np.arange(B) if per_file is None or per_file >= B else (
                    np.arange(B - per_file, B) if selection == "last"
                    else np.sort(rng.choice(B, per_file, replace=False)))
                for lo, hi in _chunks(int(keep[0]), int(keep[-1]) + 1):
                    chunk = _chunk_batch(f, path, spec, lo, hi)
                    sel = torch.from_numpy(keep[(keep >= lo) & (keep < hi)] - lo)
                    self._append(chunk[sel] if len(sel) < hi - lo else chunk)
        self._finish()

    @classmethod
    def load(cls, root: str | Path, map_name: str, quality: str, run: str | None = None,
             **kwargs) -> OfflineDataset:
        """ODIS layout: ``<root>/<map>/<quality>/[<run>/]part_*.h5`` (see :func:`dataset_files`)."""
        ds = cls(dataset_files(root, map_name, quality, run), map_name, **kwargs)
        ds.quality = quality
        return ds

    @classmethod
    def from_batch(cls, batch: EpisodeBatch, device: str | torch.device = "cpu",
                   float_dtype: torch.dtype = torch.float16) -> OfflineDataset:
        """An in-memory dataset holding the episodes of ``batch`` (tests, synthetic data)."""
        ds = cls.__new__(cls)
        ds._init_storage(get_map(batch.map_name), device, float_dtype)
        ds.files = []
        ds._append(batch.to("cpu"))
        ds._finish()
        return ds

    # ----- storage ---------------------------------------------------------------------------
    def _init_storage(self, spec: MapSpec, device: str | torch.device, float_dtype: torch.dtype) -> None:
        if spec.n_actions > 255:
            raise DatasetError(f"map {spec.name!r} has {spec.n_actions} actions; uint8 storage holds 255")
        self.map_name = spec.name
        self.quality: str | None = None
        self.device = torch.device(device)
        self.float_dtype = float_dtype
        self.n_dropped = 0  # episodes with no complete step (fewer than 2 filled rows)
        self._parts: list[dict[str, torch.Tensor]] = []

    def _append(self, batch: EpisodeBatch) -> None:
        """Pack the filled rows of ``batch`` (row order: episode by episode)."""
        rows = batch.filled[..., 0] > 0  # [B, T+1]
        n_rows = rows.sum(1)
        ok = n_rows >= 2
        self.n_dropped += int((~ok).sum())
        if not ok.all():
            batch, rows, n_rows = batch[ok], rows[ok], n_rows[ok]
        self._parts.append({
            "obs": batch.obs[rows].to(self.float_dtype),
            "state": batch.state[rows].to(self.float_dtype),
            "actions": batch.actions[rows][..., 0].to(EPISODE_SCHEME["actions"].storage),
            "avail": batch.avail_actions[rows],
            "reward": batch.reward[rows][:, 0],
            "terminated": batch.terminated[rows][:, 0] > 0,
            "n_rows": n_rows.long(),
            "won": batch.battle_won,
            "returns": batch.returns,
        })

    def _finish(self) -> None:
        parts, self._parts = self._parts, []
        if not parts or sum(len(p["n_rows"]) for p in parts) == 0:
            raise DatasetError(f"empty dataset: no usable episodes in {[str(f) for f in self.files]}")
        cat = {k: torch.cat([p[k] for p in parts]).to(self.device) for k in parts[0]}
        for k in ("obs", "state", "actions", "avail", "reward", "terminated"):
            # one all-zero row at the end: padding gathers it, so sampling needs no masking pass
            cat[k] = torch.cat([cat[k], torch.zeros_like(cat[k][:1])])
        self.obs, self.state, self.actions = cat["obs"], cat["state"], cat["actions"]
        self.avail, self.reward, self.terminated = cat["avail"], cat["reward"], cat["terminated"]
        self.n_rows = cat["n_rows"]  # filled rows per episode (= steps + 1)
        self.starts = torch.cumsum(self.n_rows, 0) - self.n_rows
        self.won, self.episode_returns = cat["won"], cat["returns"]

    # ----- public API ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.n_rows)

    def can_sample(self, n: int) -> bool:
        return len(self) > 0 and n >= 0

    @property
    def episode_lengths(self) -> torch.Tensor:
        """[E] environment steps per episode."""
        return self.n_rows - 1

    @property
    def win_rate(self) -> float:
        return float(self.won.float().mean())

    def nbytes(self) -> int:
        """Bytes held by the packed storage."""
        tensors = (self.obs, self.state, self.actions, self.avail, self.reward, self.terminated,
                   self.n_rows, self.starts, self.won, self.episode_returns)
        return sum(t.numel() * t.element_size() for t in tensors)

    def episodes(self, idx: torch.Tensor) -> EpisodeBatch:
        """The episodes ``idx`` ([k] long) as a float32 batch trimmed to their longest one."""
        idx = idx.to(self.device)
        n_rows = self.n_rows[idx]
        t = torch.arange(int(n_rows.max()), device=self.device)
        valid = t[None] < n_rows[:, None]  # [k, T+1]
        pad_row = self.obs.shape[0] - 1  # the zero row
        rows = torch.where(valid, self.starts[idx, None] + t[None], pad_row)
        return EpisodeBatch(
            obs=self.obs[rows].float(), state=self.state[rows].float(),
            actions=self.actions[rows].long()[..., None], avail_actions=self.avail[rows],
            reward=self.reward[rows][..., None], terminated=self.terminated[rows][..., None].float(),
            filled=valid[..., None].float(), map_name=self.map_name, n_offline=len(idx),
            won=self.won[idx], episode_ids=idx)

    def sample(self, n: int, generator: torch.Generator | None = None) -> EpisodeBatch:
        """``n`` episodes drawn uniformly without replacement (with replacement when n > len).

        The batch counts as offline (``n_offline = n``) and is trimmed to its longest episode.
        """
        dev = generator.device if generator is not None else "cpu"  # a CUDA generator draws on CUDA
        if n > len(self):
            idx = torch.randint(len(self), (n,), generator=generator, device=dev)
        else:
            idx = torch.randperm(len(self), generator=generator, device=dev)[:n]
        return self.episodes(idx)

    def stats(self) -> dict:
        """Episodes, steps, episode length, win rate and return statistics."""
        lengths, returns = self.episode_lengths.double(), self.episode_returns.double()
        return {
            "map": self.map_name,
            "episodes": len(self),
            "steps": int(lengths.sum()),
            "length_mean": float(lengths.mean()), "length_min": int(lengths.min()),
            "length_max": int(lengths.max()),
            "win_rate": self.win_rate,
            "return_mean": float(returns.mean()),
            "return_std": float(returns.std()) if len(self) > 1 else 0.0,
            "return_min": float(returns.min()), "return_max": float(returns.max()),
            "dropped": self.n_dropped,
            "nbytes": self.nbytes(),
        }

    def __repr__(self) -> str:
        return (f"OfflineDataset(map={self.map_name!r}, episodes={len(self)}, "
                f"MiB={self.nbytes() / 2**20:.1f}, device={self.device})")


def _chunks(lo: int, hi: int, size: int = _CHUNK) -> Iterator[tuple[int, int]]:
    for s in range(lo, hi, size):
        yield s, min(s + size, hi)


# ----- deep validation (hygen data validate) -------------------------------------------------
def validate_file(path: str | Path, map_name: str | None = None) -> tuple[str, int, list[str]]:
    """Check one ODIS file against its map's layout. Returns (map, episodes, problems).

    Structure problems (missing key, shape, dtype, unreadable file) raise DatasetError;
    content problems are collected: filled not a prefix, terminated not exactly at the
    last step, actions out of range, actions_onehot inconsistent with actions, chosen
    actions unavailable, rows with no available action, non-finite values, reward on
    padding, T different from episode_limit + 1.
    """
    path = Path(path)
    problems: dict[str, list[int]] = {}

    def flag(what: str, bad: np.ndarray, lo: int) -> None:
        idx = np.nonzero(bad)[0]
        if len(idx):
            problems.setdefault(what, []).extend((idx + lo).tolist())

    with _open(path) as f:
        try:
            spec = get_map(map_name or infer_map_name(path, {k: f[k].shape for k in f}))
        except UnknownNameError as e:
            raise DatasetError(str(e)) from None
        B = _check_structure(f, path, spec)
        T = f["obs"].shape[1]
        out = []
        if T != spec.episode_limit + 1:
            out.append(f"T = {T} rows, expected episode_limit + 1 = {spec.episode_limit + 1} for {spec.name}")
        if "actions_onehot" not in f:
            out.append("missing key 'actions_onehot' (ODIS's learner reads it)")
        A = spec.n_actions
        for lo, hi in _chunks(0, B):
            a = {k: _read_slice(f, path, k, lo, hi) for k in f if k in ODIS_KEYS}
            filled = a["filled"][..., 0] != 0
            term = a["terminated"][..., 0] != 0
            n_rows = filled.sum(1)
            t = np.arange(T)[None]
            last_step = n_rows - 2  # the row with terminated = 1
            flag("'filled' is not 1s then 0s", (filled[:, 1:] & ~filled[:, :-1]).any(1), lo)
            flag("fewer than 2 filled rows (no complete step)", n_rows < 2, lo)
            want_term = t == last_step[:, None]
            flag("'terminated' is not 1 exactly at the last step (row filled-2)", (term != want_term).any(1), lo)
            acts = a["actions"][..., 0]
            in_range = (acts >= 0) & (acts < A)
            flag(f"'actions' outside [0, {A})", (~in_range).any((1, 2)), lo)
            acts = np.where(in_range, acts, 0)
            onehot = np.eye(A, dtype=np.float32)[acts] * filled[:, :, None, None]
            if "actions_onehot" in a:
                flag("'actions_onehot' differs from one_hot(actions) on filled rows / nonzero on padding",
                     (a["actions_onehot"] != onehot).any((1, 2, 3)), lo)
            avail = a["avail_actions"] != 0
            chosen = np.take_along_axis(avail, acts[..., None], -1)[..., 0]
            steps = t < (n_rows - 1)[:, None]
            flag("a chosen action is not available", (steps[..., None] & ~chosen).any((1, 2)), lo)
            flag("a filled row has an agent with no available action",
                 (filled[..., None] & ~avail.any(-1)).any((1, 2)), lo)
            for k in ("obs", "state", "reward"):
                flag(f"'{k}' has NaN/inf", ~np.isfinite(a[k]).reshape(hi - lo, -1).all(1), lo)
            flag("'reward' nonzero on padding rows", ((a["reward"][..., 0] != 0) & ~steps).any(1), lo)
        for what, eps in problems.items():
            out.append(f"{what}: {len(eps)} episode(s), e.g. {eps[:5]}")
        return spec.name, B, out

