"""Unit and map-geometry constants of the built-in simulator.

Times are in SC2 game loops (22.4 loops per "faster" game second, 8 loops per SMAC
step), distances in SC2 map units. Values are public game facts (reference sec. 5),
then calibrated against the real 3m dataset (``benchmarks/sim_fidelity.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

LOOPS_PER_STEP = 8  # SMAC: step_mul = 8
LOOPS_PER_SECOND = 22.4  # "faster" game speed
SIGHT_RANGE = 9.0  # SMAC: every unit sees 9
SHOOT_RANGE = 6.0  # SMAC: attack action available within 6 (centre to centre), every unit type
MOVE_AMOUNT = 2.0  # SMAC: a move order targets a point 2 units away
# Attack-move acquires the nearest foe within max(weapon range, ACQUIRE_RANGE), edge to edge.
# The real 3m data fixes it for marines (= their weapon range 5: the front enemies walk straight
# on until an ally is in weapon range); SC2 gives melee units a scan range of their own, taken
# equal to the marine's here (no data for zealots).
ACQUIRE_RANGE = 5.0


@dataclass(frozen=True)
class UnitStats:
    health: float
    shield: float
    armor: float  # subtracted from every hit that reaches health
    damage: float  # per hit
    bonus_armored: float  # extra damage per hit against armored targets
    hits: int  # hits per attack (zealot: 2)
    weapon_range: float  # edge to edge, as SC2 measures it
    cooldown: float  # game loops between attacks (before the random delay)
    speed: float  # map units per game loop
    radius: float
    armored: bool
    max_cooldown: float  # SMAC's state normalisation of weapon_cooldown


# Cooldowns: SC2 weapon periods in normal-speed seconds x 16 loops/s
# (marine 0.8608 s, stalker 1.87 s, zealot 1.2 s). Speeds: faster-speed units/s / 22.4.
UNITS: dict[str, UnitStats] = {
    "marine": UnitStats(45, 0, 0, 6, 0, 1, 5.0, 0.8608 * 16, 3.15 / 22.4, 0.375, False, 15),
    "stalker": UnitStats(80, 80, 1, 13, 5, 1, 6.0, 1.87 * 16, 4.13 / 22.4, 0.625, True, 35),
    "zealot": UnitStats(100, 50, 1, 8, 0, 2, 0.1, 1.2 * 16, 3.15 / 22.4, 0.5, False, 22),
}

# Weapon timing, calibrated on the real 3m data (docs/simulator.md): after a shot the reported
# cooldown is the period plus a uniform jitter (the data's cooldown never exceeds 13.77 + 1
# loops), and once it has run out the unit fires after a further uniform reaction delay
# (turning, attack point, whole-loop timing). Steady fire in the data: 0.518 shots per step.
COOLDOWN_JITTER = (-1.0, 1.0)
FIRE_DELAY_MAX = 1.7

# Protoss shields regenerate 2 per faster-second after 10 faster-seconds without damage.
SHIELD_REGEN_PER_LOOP = 2.0 / LOOPS_PER_SECOND
SHIELD_REGEN_DELAY_LOOPS = 10.0 * LOOPS_PER_SECOND


@dataclass(frozen=True)
class Geometry:
    """Map geometry of one map family (all SMAC maps used here are 32 x 32)."""

    map_size: tuple[float, float] = (32.0, 32.0)
    playable: tuple[float, float, float, float] = (2.0, 2.0, 30.0, 30.0)  # x0, y0, x1, y1 (state normalisation)
    # Pathable box: cell (int x, int y) is walkable iff x0 <= x < x1 and y0 <= y < y1. The real
    # 3m data shows "move south" unavailable below y = 8 (cell 6) and "move east" beyond x = 29
    # (cell 30); the other two edges are taken symmetric.
    pathable: tuple[float, float, float, float] = (2.0, 7.0, 30.0, 25.0)
    ally_spawn: tuple[float, float] = (9.0, 16.0)
    enemy_spawn: tuple[float, float] = (23.0, 16.0)
    # Spawn grid spacing as a fraction of the unit diameter: 3m's marines stand 0.6885 apart.
    spawn_spacing: float = 0.6885 / 0.75


GEOMETRY: dict[str, Geometry] = {
    "marines": Geometry(),
    "stalkers_and_zealots": Geometry(),
}
