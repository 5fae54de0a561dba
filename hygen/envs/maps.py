"""Map and task-set registry, and SMAC's observation/state layout per map.

Adding a map is one entry in ``MAPS``. The layout (``MapSpec.layout``) is the single
place that knows where each feature of a SMAC observation or state lives; the
simulator writes observations with it and the entity decomposition reads them with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

# One unit-type vocabulary for every map, so a model can train on marine and
# stalker-zealot maps together. A map's own one-hot columns are mapped into it.
UNIT_VOCAB = ("marine", "stalker", "zealot")

# SMAC orders the unit-type one-hot per side by unit type id; on stalker-zealot
# maps this gives allies [stalker, zealot] and enemies [zealot, stalker].
# Recorded datasets carry that quirk, so it is kept.
_TYPE_ORDER = {
    "marines": {"ally": ("marine",), "enemy": ("marine",)},
    "stalkers_and_zealots": {"ally": ("stalker", "zealot"), "enemy": ("zealot", "stalker")},
}


class UnknownNameError(KeyError):
    """An unknown map or task-set name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


@dataclass(frozen=True)
class Layout:
    """Sizes and offsets of SMAC's observation and state vectors for one map."""

    n_agents: int
    n_enemies: int
    n_actions: int
    shield_bits: int  # 1 when the map has shielded units (SMAC: per side; same here)
    unit_type_bits: int  # 0 when the map has one unit type
    ally_types: tuple[str, ...]  # one-hot column order for allies
    enemy_types: tuple[str, ...]  # one-hot column order for enemies

    # observation: [move(4) | enemies(n_enemies x enemy_feat) | allies((n-1) x ally_feat) | own]
    n_move_feats: int = 4

    @property
    def enemy_feat(self) -> int:  # attack-available, dist, dx, dy, health, shield?, type?
        return 4 + 1 + self.shield_bits + self.unit_type_bits

    @property
    def ally_feat(self) -> int:  # visible, dist, dx, dy, health, shield?, type?
        return 4 + 1 + self.shield_bits + self.unit_type_bits

    @property
    def own_feat(self) -> int:  # health, shield?, type?
        return 1 + self.shield_bits + self.unit_type_bits

    @property
    def obs_enemy_offset(self) -> int:
        return self.n_move_feats

    @property
    def obs_ally_offset(self) -> int:
        return self.n_move_feats + self.n_enemies * self.enemy_feat

    @property
    def obs_own_offset(self) -> int:
        return self.obs_ally_offset + (self.n_agents - 1) * self.ally_feat

    @property
    def obs_shape(self) -> int:
        return self.obs_own_offset + self.own_feat

    # state: [allies(n x ally_state) | enemies(m x enemy_state) | last actions(n x n_actions)]
    @property
    def ally_state(self) -> int:  # health, cooldown, x, y, shield?, type?
        return 4 + self.shield_bits + self.unit_type_bits

    @property
    def enemy_state(self) -> int:  # health, x, y, shield?, type?
        return 3 + self.shield_bits + self.unit_type_bits

    @property
    def state_enemy_offset(self) -> int:
        return self.n_agents * self.ally_state

    @property
    def state_last_action_offset(self) -> int:
        return self.state_enemy_offset + self.n_enemies * self.enemy_state

    @property
    def state_shape(self) -> int:
        return self.state_last_action_offset + self.n_agents * self.n_actions


@dataclass(frozen=True)
class MapSpec:
    """One map: unit types and counts per side, episode limit, map family.

    ``allies``/``enemies`` are tuples of (unit type, count) in SMAC's unit order
    (agent ids are assigned in this order). Geometry (map size, spawn layout) is the
    simulator's business and lives with it, keyed by ``family``.
    """

    name: str
    allies: tuple[tuple[str, int], ...]
    enemies: tuple[tuple[str, int], ...]
    episode_limit: int
    family: str  # "marines" or "stalkers_and_zealots"
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def n_agents(self) -> int:
        return sum(c for _, c in self.allies)

    @property
    def n_enemies(self) -> int:
        return sum(c for _, c in self.enemies)

    @property
    def n_actions(self) -> int:
        return 6 + self.n_enemies  # no-op, stop, 4 moves, one attack per enemy

    @property
    def ally_unit_types(self) -> tuple[str, ...]:
        """Unit type of each agent, in agent-id order."""
        return tuple(t for t, c in self.allies for _ in range(c))

    @property
    def enemy_unit_types(self) -> tuple[str, ...]:
        return tuple(t for t, c in self.enemies for _ in range(c))

    @cached_property
    def layout(self) -> Layout:
        order = _TYPE_ORDER[self.family]
        n_types = len(order["ally"])
        return Layout(
            n_agents=self.n_agents,
            n_enemies=self.n_enemies,
            n_actions=self.n_actions,
            shield_bits=1 if self.family == "stalkers_and_zealots" else 0,
            unit_type_bits=n_types if n_types > 1 else 0,
            ally_types=order["ally"],
            enemy_types=order["enemy"],
        )

    @property
    def env_info(self) -> dict:
        """SMAC's ``get_env_info()`` fields."""
        lay = self.layout
        return {
            "n_agents": self.n_agents,
            "n_enemies": self.n_enemies,
            "n_actions": self.n_actions,
            "obs_shape": lay.obs_shape,
            "state_shape": lay.state_shape,
            "episode_limit": self.episode_limit,
        }


MAPS: dict[str, MapSpec] = {}


def register_map(spec: MapSpec) -> MapSpec:
    if spec.name in MAPS:
        raise ValueError(f"map {spec.name!r} is already registered")
    MAPS[spec.name] = spec
    return spec


def _marines(name: str, n_allies: int, n_enemies: int, limit: int) -> MapSpec:
    return register_map(MapSpec(name, (("marine", n_allies),), (("marine", n_enemies),), limit, "marines"))


def _sz(name: str, stalkers: int, zealots: int, limit: int) -> MapSpec:
    side = (("stalker", stalkers), ("zealot", zealots))
    return register_map(MapSpec(name, side, side, limit, "stalkers_and_zealots"))


# Episode limits: ODIS's map registry (reference section 3).
for _n, _limit in {3: 60, 4: 75, 5: 90, 6: 100, 7: 110, 8: 120, 9: 120, 10: 120, 11: 150, 12: 150}.items():
    _marines(f"{_n}m", _n, _n, _limit)
for (_a, _e), _limit in {(5, 6): 70, (7, 8): 90, (8, 9): 120, (9, 10): 140, (10, 11): 150,
                         (10, 12): 160, (13, 15): 160}.items():
    _marines(f"{_a}m_vs_{_e}m", _a, _e, _limit)
for (_s, _z), _limit in {(1, 3): 120, (1, 4): 130, (1, 5): 140, (2, 3): 120, (2, 4): 130, (2, 5): 150,
                         (3, 3): 140, (3, 4): 140, (3, 5): 150, (4, 3): 150, (4, 4): 150, (4, 5): 160,
                         (4, 6): 170}.items():
    _sz(f"{_s}s{_z}z", _s, _z, _limit)


def _canonical(name: str) -> str:
    return re.sub(r"[_\s]", "-", name.strip().lower())


def _did_you_mean(name: str, known) -> str:
    import difflib

    close = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def get_map(name: str) -> MapSpec:
    try:
        return MAPS[name]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown map {name!r}{_did_you_mean(name, MAPS)}; "
                               f"known maps: {', '.join(MAPS)}") from None


def task_set(name: str) -> TaskSet:
    """Task set by name; 'marine_hard' and 'marine-hard' both work."""
    key = _canonical(name)
    if key not in TASK_SETS:
        raise UnknownNameError(f"unknown task set {name!r}{_did_you_mean(key, TASK_SETS)}; "
                               f"known task sets: {', '.join(TASK_SETS)}")
    return TASK_SETS[key]


@dataclass(frozen=True)
class TaskSet:
    name: str
    source: tuple[str, ...]  # maps trained on
    unseen: tuple[str, ...]  # maps only evaluated zero-shot

    @property
    def maps(self) -> tuple[str, ...]:
        return self.source + self.unseen


TASK_SETS: dict[str, TaskSet] = {}


def register_task_set(ts: TaskSet) -> TaskSet:
    for m in ts.maps:
        get_map(m)  # fail early on a typo
    TASK_SETS[ts.name] = ts
    return ts


register_task_set(TaskSet("marine-easy", ("3m", "5m", "10m"), ("4m", "6m", "7m", "8m", "9m", "11m", "12m")))
register_task_set(TaskSet(
    "marine-hard", ("3m", "5m_vs_6m", "9m_vs_10m"),
    ("4m", "5m", "10m", "12m", "7m_vs_8m", "8m_vs_9m", "10m_vs_11m", "10m_vs_12m", "13m_vs_15m")))
register_task_set(TaskSet(
    "stalker-zealot", ("2s3z", "2s4z", "3s5z"),
    ("1s3z", "1s4z", "1s5z", "2s5z", "3s3z", "3s4z", "4s3z", "4s4z", "4s5z", "4s6z")))
