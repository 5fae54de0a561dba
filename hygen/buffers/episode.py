"""``EpisodeBatch``: a batch of whole episodes in PyMARL's layout.

Fields, their shapes per map and their dtypes (in a batch, in storage, in ODIS files) are
defined once in :mod:`hygen.buffers.scheme`. In a batch (B episodes, T+1 time rows, n agents)::

    obs            [B, T+1, n, obs]  float32
    state          [B, T+1, S]       float32
    actions        [B, T+1, n, 1]    int64
    avail_actions  [B, T+1, n, A]    bool
    reward         [B, T+1, 1]       float32
    terminated     [B, T+1, 1]       float32 (0/1)
    filled         [B, T+1, 1]       float32 (0/1)
    skills         [B, T+1, n, 1]    int64, optional: the skill each agent executed (online
                                     episodes of a skill-based policy), -1 where unknown
    episode_ids    [B]               int64, optional: which stored episode each one is (its
                                     index in an offline dataset, its insertion number in a
                                     replay buffer), -1 where unknown

Row convention (PyMARL's episode runner, verified on the ODIS 3m file): an episode of
``L`` environment steps fills rows ``0..L``. Rows ``0..L-1`` hold the step data
(obs/state/avail at step t, the action taken, the reward received, ``terminated=1``
only at row ``L-1``); row ``L`` holds the final obs/state/avail (and the action the
policy would have taken there, which no loss uses). Rows after ``L`` are zero padding.
A timeout at the episode limit is recorded as ``terminated=1`` too (SMAC/ODIS).

The learner mask is derived in exactly one place, :attr:`EpisodeBatch.mask`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from hygen.buffers.scheme import EPISODE_SCHEME, STEP_FIELDS, allocate, field_shape
from hygen.envs.maps import get_map

__all__ = ["EpisodeBatch", "EpisodeBatchError", "win_bonus"]

# Max health + shield per unit type (reference sec. 5), for SMAC's reward scale.
_UNIT_HP_SHIELD = {"marine": 45.0, "stalker": 80.0 + 80.0, "zealot": 100.0 + 50.0}

_TENSOR_FIELDS = STEP_FIELDS
_DTYPES = {k: EPISODE_SCHEME[k].batch for k in _TENSOR_FIELDS}
_SKILL_FILL = EPISODE_SCHEME["skills"].fill


class EpisodeBatchError(ValueError):
    """Tensors that do not form a consistent episode batch."""


def win_bonus(map_name: str) -> float:
    """The win bonus in SMAC's scaled reward: 200 * 20 / max_reward (reference sec. 4).

    max_reward = 10 * n_enemies + 200 + sum over enemies of (max health + max shield).
    3m: 200 * 20 / 365 = 10.96.
    """
    spec = get_map(map_name)
    max_reward = 10 * spec.n_enemies + 200 + sum(_UNIT_HP_SHIELD[u] for u in spec.enemy_unit_types)
    return 200.0 * 20.0 / max_reward


@dataclass
class EpisodeBatch:
    """B whole episodes of one map, padded to a common number of time rows.

    ``n_offline``: the first ``n_offline`` episodes came from an offline dataset (the
    hybrid sampler puts them first); 0 for purely online batches.
    ``won``: optional [B] bool "battle won" per episode when the producer knows it
    (env runner); otherwise :attr:`battle_won` derives it from the rewards.
    ``skills``: optional [B, T+1, n, 1] skill each agent executed (the env runner records
    what a skill controller chose), -1 where unknown (offline data); None: none known.
    ``episode_ids``: optional [B] identity of each episode in the store it was sampled from
    (offline episodes: dataset index; online: the replay buffer's insertion number; the two
    are told apart by ``n_offline``), so a learner can cache what a frozen network computes
    from a stored episode; -1 where unknown, None: none known.
    """

    obs: torch.Tensor
    state: torch.Tensor
    actions: torch.Tensor
    avail_actions: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    filled: torch.Tensor
    map_name: str
    n_offline: int = 0
    won: torch.Tensor | None = None
    skills: torch.Tensor | None = None
    episode_ids: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for name in _TENSOR_FIELDS:  # canonical dtypes; a no-op when they already match
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor):
                raise EpisodeBatchError(f"EpisodeBatch.{name}: expected a torch.Tensor, got {type(value).__name__}")
            setattr(self, name, value.to(_DTYPES[name]))
        if self.won is not None:
            self.won = self.won.to(torch.bool).reshape(-1)
        if self.skills is not None:
            if not isinstance(self.skills, torch.Tensor):
                raise EpisodeBatchError(f"EpisodeBatch.skills: expected a torch.Tensor or None, "
                                        f"got {type(self.skills).__name__}")
            self.skills = self.skills.to(torch.int64)
        if self.episode_ids is not None:
            self.episode_ids = torch.as_tensor(self.episode_ids).to(torch.int64).reshape(-1)
        self._check_shapes()

    def _check_shapes(self) -> None:
        if self.obs.dim() != 4:
            raise EpisodeBatchError(f"EpisodeBatch.obs: expected [B, T+1, n, obs], got {tuple(self.obs.shape)}")
        B, T1 = self.obs.shape[:2]
        spec = get_map(self.map_name)
        for name in _TENSOR_FIELDS:  # shapes from the episode scheme and the map
            got, want = tuple(getattr(self, name).shape), field_shape(name, spec, B, T1)
            if got != want:
                raise EpisodeBatchError(f"EpisodeBatch.{name}: expected shape {list(want)} for map "
                                        f"{self.map_name!r}, got {list(got)}")
        if self.skills is not None and tuple(self.skills.shape) != tuple(self.actions.shape):
            raise EpisodeBatchError(f"EpisodeBatch.skills: expected shape {list(self.actions.shape)} "
                                    f"(as actions), got {list(self.skills.shape)}")
        if self.episode_ids is not None and self.episode_ids.shape[0] != B:
            raise EpisodeBatchError(f"EpisodeBatch.episode_ids: expected {B} entries, got {self.episode_ids.shape[0]}")
        if self.won is not None and self.won.shape[0] != B:
            raise EpisodeBatchError(f"EpisodeBatch.won: expected {B} entries, got {self.won.shape[0]}")
        if not 0 <= self.n_offline <= B:
            raise EpisodeBatchError(f"EpisodeBatch.n_offline={self.n_offline} outside [0, {B}]")

    # ----- construction -----------------------------------------------------------------
    @classmethod
    def zeros(cls, map_name: str, batch_size: int, max_seq_length: int | None = None,
              device: str | torch.device = "cpu") -> EpisodeBatch:
        """An all-zero batch for ``map_name`` with ``max_seq_length`` rows (default limit + 1)."""
        spec = get_map(map_name)
        T1 = spec.episode_limit + 1 if max_seq_length is None else max_seq_length
        fields = allocate(spec, batch_size, T1, "batch", device, fields=_TENSOR_FIELDS)
        return cls(**fields, map_name=map_name)

    @classmethod
    def cat(cls, batches: Sequence[EpisodeBatch]) -> EpisodeBatch:
        """Concatenate along the episode axis; shorter time axes are zero-padded.

        ``n_offline`` of the result is the total of the parts, which requires every
        offline episode to come before every online one (e.g. ``cat([offline, online])``).
        """
        if not batches:
            raise EpisodeBatchError("EpisodeBatch.cat: got an empty list")
        names = {b.map_name for b in batches}
        if len(names) > 1:
            raise EpisodeBatchError(f"EpisodeBatch.cat: batches from different maps {sorted(names)}")
        is_off = torch.cat([b._offline_flags() for b in batches])
        T1 = max(b.max_seq_length for b in batches)
        first, B = batches[0], sum(len(b) for b in batches)
        out = {}
        for k in _TENSOR_FIELDS:  # one zero-filled output, each part copied into its slice
            v = getattr(first, k)
            out[k] = torch.zeros((B, T1, *v.shape[2:]), dtype=v.dtype, device=v.device)
            start = 0
            for b in batches:
                out[k][start:start + len(b), : b.max_seq_length] = getattr(b, k)
                start += len(b)
        won = skills = ids = None
        if any(b.episode_ids is not None for b in batches):  # parts without: -1 (unknown)
            ids = torch.cat([b.episode_ids if b.episode_ids is not None
                             else torch.full((len(b),), -1, device=b.device) for b in batches])
        if any(b.won is not None for b in batches):
            won = torch.cat([b.battle_won for b in batches])
        if any(b.skills is not None for b in batches):  # parts without: -1 (unknown)
            skills = torch.full_like(out["actions"], _SKILL_FILL)
            start = 0
            for b in batches:
                if b.skills is not None:
                    skills[start:start + len(b), : b.max_seq_length] = b.skills
                start += len(b)
        return cls(**out, map_name=batches[0].map_name, n_offline=_prefix_count(is_off, "EpisodeBatch.cat"),
                   won=won, skills=skills, episode_ids=ids)

    # ----- basic container protocol ----------------------------------------------------
    def __len__(self) -> int:
        return self.obs.shape[0]

    @property
    def batch_size(self) -> int:
        return self.obs.shape[0]

    @property
    def max_seq_length(self) -> int:
        """Number of time rows (T+1)."""
        return self.obs.shape[1]

    @property
    def n_agents(self) -> int:
        return self.obs.shape[2]

    @property
    def n_actions(self) -> int:
        return self.avail_actions.shape[-1]

    @property
    def device(self) -> torch.device:
        return self.obs.device

    def to(self, device: str | torch.device) -> EpisodeBatch:
        """A copy on ``device`` (tensors already there are shared, not copied)."""
        moved = {k: getattr(self, k).to(device) for k in _TENSOR_FIELDS}
        won = None if self.won is None else self.won.to(device)
        skills = None if self.skills is None else self.skills.to(device)
        ids = None if self.episode_ids is None else self.episode_ids.to(device)
        return replace(self, **moved, won=won, skills=skills, episode_ids=ids)

    def __getitem__(self, idx: int | slice | Sequence[int] | torch.Tensor) -> EpisodeBatch:
        """Select episodes; an int keeps the batch axis (``batch[3]`` has B=1)."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1) if idx != -1 else slice(-1, None)
        elif not isinstance(idx, slice):
            idx = torch.as_tensor(idx, dtype=torch.long if not _is_bool(idx) else torch.bool)
            idx = idx.to(self.device)
        sel = {k: getattr(self, k)[idx] for k in _TENSOR_FIELDS}
        is_off = self._offline_flags().to(self.device)[idx]
        won = None if self.won is None else self.won[idx]
        skills = None if self.skills is None else self.skills[idx]
        ids = None if self.episode_ids is None else self.episode_ids[idx]
        return replace(self, **sel, won=won, skills=skills, episode_ids=ids,
                       n_offline=_prefix_count(is_off.cpu(), "EpisodeBatch[idx]"))

    def trim(self) -> EpisodeBatch:
        """Cut the time axis to the longest filled episode (learners skip the padding)."""
        t_max = int(self.filled.sum(1).max().item()) if len(self) else 0
        if t_max == self.max_seq_length:
            return self
        skills = None if self.skills is None else self.skills[:, :t_max]
        return replace(self, **{k: getattr(self, k)[:, :t_max] for k in _TENSOR_FIELDS}, skills=skills)

    # ----- derived quantities ----------------------------------------------------------
    @property
    def mask(self) -> torch.Tensor:
        """[B, T, 1] float learner mask over transitions t = 0..T-1.

        PyMARL: mask = filled[:, :-1]; mask[:, 1:] *= 1 - terminated[:, :-1] (terminated
        also sliced to [:, :-1] first). It is 1 exactly on the L step rows of each episode.
        """
        mask = self.filled[:, :-1].clone()
        mask[:, 1:] = mask[:, 1:] * (1 - self.terminated[:, :-2])
        return mask

    @property
    def actions_onehot(self) -> torch.Tensor:
        """[B, T+1, n, A] float one-hot of ``actions``, zero on padding rows (as ODIS stores it)."""
        onehot = F.one_hot(self.actions.squeeze(-1), self.n_actions).to(torch.float32)
        return onehot * self.filled.unsqueeze(-1)

    @property
    def last_actions_onehot(self) -> torch.Tensor:
        """[B, T+1, n, A] one-hot of a_{t-1} at row t, zeros at row 0: the agents' recurrent input."""
        onehot = self.actions_onehot
        return torch.cat([torch.zeros_like(onehot[:, :1]), onehot[:, :-1]], dim=1)

    @property
    def episode_lengths(self) -> torch.Tensor:
        """[B] long: environment steps per episode (= mask rows = filled rows - 1)."""
        return self.mask.sum((1, 2)).long()

    @property
    def returns(self) -> torch.Tensor:
        """[B] float: undiscounted return of each episode."""
        return (self.reward[:, :-1] * self.mask).sum((1, 2))

    @property
    def battle_won(self) -> torch.Tensor:
        """[B] bool: battle won per episode.

        Uses ``won`` when the producer stored it. Otherwise derived like SMAC scores it:
        the last step (row L-1) is terminal and its reward contains the win bonus
        (>= 0.999 * 200 * 20 / max_reward; kills and damage on a losing step stay far
        below it). On the ODIS 3m medium file this equals "return == 20" (54.15 %).
        """
        if self.won is not None:
            return self.won
        last = (self.episode_lengths - 1).clamp(min=0)
        rows = torch.arange(len(self), device=self.device)
        last_reward = self.reward[rows, last, 0]
        last_term = self.terminated[rows, last, 0] > 0
        has_steps = self.episode_lengths > 0
        return has_steps & last_term & (last_reward >= 0.999 * win_bonus(self.map_name))

    # ----- helpers ---------------------------------------------------------------------
    def _offline_flags(self) -> torch.Tensor:
        return torch.arange(len(self)) < self.n_offline

    def _pad_time(self, T1: int) -> EpisodeBatch:
        extra = T1 - self.max_seq_length
        if extra == 0:
            return self
        out = {}
        for k in _TENSOR_FIELDS:
            v = getattr(self, k)
            pad = torch.zeros((v.shape[0], extra, *v.shape[2:]), dtype=v.dtype, device=v.device)
            out[k] = torch.cat([v, pad], dim=1)
        if self.skills is not None:
            out["skills"] = F.pad(self.skills, (0, 0, 0, 0, 0, extra), value=_SKILL_FILL)
        return replace(self, **out)

    def __repr__(self) -> str:
        return (f"EpisodeBatch(map={self.map_name!r}, B={len(self)}, T+1={self.max_seq_length}, "
                f"n={self.n_agents}, obs={self.obs.shape[-1]}, state={self.state.shape[-1]}, "
                f"A={self.n_actions}, n_offline={self.n_offline}, device={self.device})")


def _is_bool(idx: object) -> bool:
    if isinstance(idx, torch.Tensor):
        return idx.dtype == torch.bool
    return bool(idx) and all(isinstance(i, bool) for i in idx)  # type: ignore[union-attr]


def _prefix_count(is_off: torch.Tensor, where: str) -> int:
    """Number of offline flags, checking they form a prefix (offline episodes first)."""
    k = int(is_off.sum().item())
    if not bool(is_off[:k].all()):
        raise EpisodeBatchError(f"{where}: offline episodes must come before online ones to keep n_offline")
    return k

