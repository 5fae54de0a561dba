"""The episode scheme: every per-step field of an episode, defined once (PyMARL's scheme).

Each field has a shape per time row, derived from the map's :class:`MapSpec`, and three
dtypes, one for each place an episode lives:

- ``batch``: in an :class:`~hygen.buffers.EpisodeBatch`, what learners compute with;
- ``storage``: in replay buffers, the runner's episodes in flight and the packed offline
  dataset, the most compact type that holds the values;
- ``odis``: in ODIS HDF5 files (what ODIS writes; ``None``: not a file key), with the dtype
  kinds accepted when reading files written by other tools.

Padding rows hold ``fill``. Whole episodes are ``[B, T+1, *shape]`` with a ``filled`` mask
(row convention: :mod:`hygen.buffers.episode`). The runner, the replay buffer, the ODIS
reader and writer, the dataset validator and EpisodeBatch all read this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from hygen.envs.maps import MapSpec

__all__ = ["EPISODE_SCHEME", "STEP_FIELDS", "Field", "allocate", "field_shape"]


@dataclass(frozen=True)
class Field:
    name: str
    shape: Callable[[MapSpec], tuple[int, ...]]  # per time row
    batch: torch.dtype
    storage: torch.dtype
    odis: np.dtype | None = None
    odis_read_kinds: str = ""  # numpy dtype kinds accepted when reading a file
    fill: int = 0
    doc: str = ""


EPISODE_SCHEME: dict[str, Field] = {f.name: f for f in (
    Field("obs", lambda s: (s.n_agents, s.layout.obs_shape), torch.float32, torch.float32,
          np.dtype(np.float32), "f", doc="each agent's observation o_t^i"),
    Field("state", lambda s: (s.layout.state_shape,), torch.float32, torch.float32,
          np.dtype(np.float32), "f", doc="global state s_t"),
    # uint8 holds every registered map's action count (at most 6 + 15 = 21)
    Field("actions", lambda s: (s.n_agents, 1), torch.int64, torch.uint8,
          np.dtype(np.int64), "iu", doc="the action a_t^i taken (row L: the one picked on the final obs)"),
    Field("avail_actions", lambda s: (s.n_agents, s.n_actions), torch.bool, torch.bool,
          np.dtype(np.int32), "iub", doc="actions available at t"),
    Field("reward", lambda s: (1,), torch.float32, torch.float32,
          np.dtype(np.float32), "f", doc="SMAC's scaled team reward r_t"),
    # float in a batch because the learner mask multiplies it; uint8 in files as ODIS writes it
    Field("terminated", lambda s: (1,), torch.float32, torch.bool,
          np.dtype(np.uint8), "iubf", doc="1 on the last step row L-1 (timeouts too)"),
    Field("filled", lambda s: (1,), torch.float32, torch.bool,
          np.dtype(np.int64), "iubf", doc="1 on rows 0..L"),
    # not in ODIS files: what a skill controller's agents executed; int16 holds any skill count
    Field("skills", lambda s: (s.n_agents, 1), torch.int64, torch.int16,
          None, "", fill=-1, doc="the skill each agent executed, -1 unknown"),
)}

# The fields every episode has (ODIS's required keys); ``skills`` is optional.
STEP_FIELDS: tuple[str, ...] = tuple(k for k, f in EPISODE_SCHEME.items() if f.odis is not None)


def field_shape(name: str, spec: MapSpec, batch_size: int, rows: int) -> tuple[int, ...]:
    """``[batch_size, rows, *shape]`` of field ``name`` for map ``spec``."""
    return (batch_size, rows, *EPISODE_SCHEME[name].shape(spec))


def allocate(spec: MapSpec, batch_size: int, rows: int, where: str = "storage",
             device: str | torch.device = "cpu", float_dtype: torch.dtype | None = None,
             fields: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
    """Padding-filled tensors for ``fields`` (default: all) of ``batch_size`` episodes.

    ``where``: "storage" or "batch" dtypes; ``float_dtype`` overrides the dtype of the
    float observation fields (obs, state), e.g. float16 storage.
    """
    if where not in ("storage", "batch"):
        raise ValueError(f"allocate(where={where!r}): expected 'storage' or 'batch'")
    out = {}
    for name in fields or tuple(EPISODE_SCHEME):
        f = EPISODE_SCHEME[name]
        dtype = getattr(f, where)
        if float_dtype is not None and name in ("obs", "state"):
            dtype = float_dtype
        out[name] = torch.full(field_shape(name, spec, batch_size, rows), f.fill, dtype=dtype, device=device)
    return out
