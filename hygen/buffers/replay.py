"""Online replay: a fixed-capacity FIFO of whole episodes for one task.

Storage is preallocated on the device as [capacity, T+1, ...] tensors (PyMARL's
ReplayBuffer); ``insert`` writes a batch of finished episodes with one indexed copy per
field, wrapping around the end; ``sample`` draws uniformly without replacement.
"""

from __future__ import annotations

import torch

from hygen.buffers.episode import EpisodeBatch
from hygen.buffers.scheme import EPISODE_SCHEME, STEP_FIELDS, allocate
from hygen.envs.maps import get_map

__all__ = ["ReplayBuffer", "ReplayBufferError"]



class ReplayBufferError(ValueError):
    """Bad input to a ReplayBuffer (wrong map, too long episodes, mismatched checkpoint)."""


class ReplayBuffer:
    """FIFO episode buffer of one map.

    Args:
        map_name: the task; episodes from other maps are refused.
        capacity: episodes kept (the oldest are overwritten first).
        device: where the storage lives; samples come back on it.
        max_seq_length: time rows per episode (default episode_limit + 1).
        float_dtype: storage dtype of obs/state (float32 default; float16 halves memory).
    """

    def __init__(self, map_name: str, capacity: int, device: str | torch.device = "cpu",
                 max_seq_length: int | None = None, float_dtype: torch.dtype = torch.float32) -> None:
        if capacity <= 0:
            raise ReplayBufferError(f"ReplayBuffer capacity must be positive, got {capacity}")
        spec = get_map(map_name)
        self.map_name, self.capacity, self.device = map_name, capacity, torch.device(device)
        self.max_seq_length = max_seq_length or spec.episode_limit + 1
        self.float_dtype = float_dtype
        # every field of the episode scheme in its storage dtype; skills -1 (unknown) when empty
        self._data = allocate(spec, capacity, self.max_seq_length, "storage", self.device, float_dtype)
        per_slot = lambda dtype: torch.zeros(capacity, dtype=dtype, device=self.device)
        self._won = per_slot(torch.bool)
        self._n_rows = per_slot(torch.long)  # filled rows per slot, to trim samples
        self._ids = per_slot(torch.long)  # insertion number of the episode in each slot
        self._next = 0  # slot the next episode goes to
        self._size = 0
        self.episodes_inserted = 0

    def __len__(self) -> int:
        return self._size

    def can_sample(self, n: int) -> bool:
        return self._size >= n

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self._data.values(), self._won, self._n_rows))

    def insert(self, batch: EpisodeBatch) -> None:
        """Append the episodes of ``batch`` (oldest overwritten first; no per-episode loop)."""
        if batch.map_name != self.map_name:
            raise ReplayBufferError(f"ReplayBuffer({self.map_name!r}) got episodes of map {batch.map_name!r}")
        if batch.max_seq_length > self.max_seq_length:
            batch = batch.trim()
            if batch.max_seq_length > self.max_seq_length:
                raise ReplayBufferError(f"episodes have {batch.max_seq_length} rows; buffer holds "
                                        f"{self.max_seq_length} (max_seq_length)")
        first_id = self.episodes_inserted
        self.episodes_inserted += len(batch)
        if len(batch) > self.capacity:  # only the newest `capacity` would survive anyway
            first_id += len(batch) - self.capacity
            batch = batch[len(batch) - self.capacity:]
        B, T1 = len(batch), batch.max_seq_length
        if B == 0:
            return
        slots = (self._next + torch.arange(B, device=self.device)) % self.capacity
        batch = batch.to(self.device)
        for k in STEP_FIELDS:
            dst = self._data[k]
            dst[slots, :T1] = getattr(batch, k).to(dst.dtype)
            if T1 < self.max_seq_length:
                dst[slots, T1:] = EPISODE_SCHEME[k].fill  # clear what the overwritten episode left behind
        skills = self._data["skills"]
        skills[slots] = EPISODE_SCHEME["skills"].fill
        if batch.skills is not None:
            skills[slots, :T1] = batch.skills.to(skills.dtype)
        self._won[slots] = batch.battle_won
        self._ids[slots] = first_id + torch.arange(B, device=self.device)
        self._n_rows[slots] = batch.filled.sum((1, 2)).long()
        self._next = (self._next + B) % self.capacity
        self._size = min(self._size + B, self.capacity)

    def episodes(self, slots: torch.Tensor) -> EpisodeBatch:
        """The episodes in ``slots`` as a float32 batch trimmed to their longest one."""
        slots = slots.to(self.device)
        T1 = max(int(self._n_rows[slots].max()), 2) if len(slots) else 2
        d = {k: v[slots, :T1] for k, v in self._data.items()}
        return EpisodeBatch(**d, map_name=self.map_name, won=self._won[slots],  # skills: -1 where unknown
                            episode_ids=self._ids[slots])

    def sample(self, n: int, generator: torch.Generator | None = None) -> EpisodeBatch:
        """``n`` episodes uniformly without replacement; trimmed; ``n_offline = 0``."""
        if not self.can_sample(n):
            raise ReplayBufferError(f"ReplayBuffer({self.map_name!r}) holds {self._size} episodes, "
                                    f"cannot sample {n}")
        dev = generator.device if generator is not None else "cpu"  # a CUDA generator draws on CUDA
        slots = torch.randperm(self._size, generator=generator, device=dev)[:n]
        return self.episodes(slots)

    # ----- checkpointing -------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Contents (filled slots only, oldest first, on CPU) for a checkpoint."""
        size = self._size
        # chronological order, so a buffer of another capacity can load it and stay FIFO
        order = (self._next + torch.arange(size, device=self.device)) % self.capacity \
            if size == self.capacity else torch.arange(size, device=self.device)
        n_rows = self._n_rows[order]
        # Only the filled rows of each episode, packed end to end: checkpoints stay small.
        filled = torch.arange(self.max_seq_length, device=self.device) < n_rows[:, None]
        return {
            "map_name": self.map_name, "capacity": self.capacity, "max_seq_length": self.max_seq_length,
            "size": size, "episodes_inserted": self.episodes_inserted, "packed": True,
            "data": {k: v[order][filled].cpu() for k, v in self._data.items()},
            "won": self._won[order].cpu(), "n_rows": n_rows.cpu(),
        }

    def load_state_dict(self, sd: dict) -> None:
        """Restore :meth:`state_dict` output; the buffer must have the same map and shapes."""
        for key in ("map_name", "max_seq_length"):
            if sd.get(key) != getattr(self, key):
                raise ReplayBufferError(f"replay checkpoint has {key}={sd.get(key)!r}, buffer has "
                                        f"{getattr(self, key)!r}")
        size = int(sd["size"])
        keep = slice(max(0, size - self.capacity), size)  # a smaller buffer keeps the newest
        size = min(size, self.capacity)
        try:
            n_rows = sd["n_rows"].to(self.device)
            filled = torch.arange(self.max_seq_length, device=self.device) < n_rows[:, None]
            first_kept = int(filled[:keep.start].sum())  # packed rows of episodes a smaller buffer drops
            for k, v in self._data.items():
                v.fill_(-1 if k == "skills" else 0)
                if k == "skills" and k not in sd["data"]:
                    continue  # checkpoints written before skills were stored: unknown
                rows = sd["data"][k].to(self.device, v.dtype)
                if sd.get("packed"):
                    v[:size][filled[keep]] = rows[first_kept:]
                else:  # checkpoints written before packing
                    v[:size] = rows[keep]
            self._won.zero_()
            self._n_rows.zero_()
            self._won[:size] = sd["won"][keep].to(self.device)
            self._n_rows[:size] = sd["n_rows"][keep].to(self.device)
        except (KeyError, RuntimeError) as e:
            raise ReplayBufferError(f"replay checkpoint does not fit this buffer: {e}") from None
        self._next = size % self.capacity
        self._size = size
        self.episodes_inserted = int(sd.get("episodes_inserted", size))
        self._ids.zero_()  # chronological order: the newest `size` insertion numbers
        self._ids[:size] = self.episodes_inserted - size + torch.arange(size, device=self.device)

    def __repr__(self) -> str:
        return (f"ReplayBuffer(map={self.map_name!r}, {self._size}/{self.capacity} episodes, "
                f"T+1={self.max_seq_length}, MiB={self.nbytes() / 2**20:.1f}, device={self.device})")

