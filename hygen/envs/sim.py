"""Built-in batched SMAC-compatible combat simulator.

All unit state lives in ``[E, U]`` tensors (E environments, U = allies + enemies, allies
first), so one ``step`` advances every environment with a fixed number of tensor ops and
no per-unit or per-environment Python loop. Observation, state, action and reward follow
SMAC (``smac/env/starcraft2/starcraft2.py``) exactly; the game mechanics are a small
model of SC2 calibrated against real SC2 data (``docs/simulator.md``).

Interface (the same for the SC2 adapter)::

    env = SimEnv("3m", num_envs=E, seed=0)
    obs, state, avail = env.reset()        # [E,n,obs] f32, [E,S] f32, [E,n,A] bool
    out = env.step(actions)                # actions [E,n] long -> StepOutput
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from hygen.envs import sim_kernels
from hygen.envs.maps import MapSpec, get_map
from hygen.envs.sim_units import (
    ACQUIRE_RANGE,
    COOLDOWN_JITTER,
    FIRE_DELAY_MAX,
    GEOMETRY,
    LOOPS_PER_STEP,
    MOVE_AMOUNT,
    SHIELD_REGEN_DELAY_LOOPS,
    SHIELD_REGEN_PER_LOOP,
    SHOOT_RANGE,
    SIGHT_RANGE,
    UNITS,
)

# SMAC action ids
NOOP, STOP, NORTH, SOUTH, EAST, WEST = range(6)
N_NO_ATTACK = 6

# Order kinds a unit can be executing during the 8 game loops of a step. The built-in AI's
# units start on attack-move and switch to "engaged" at their first target (docs/simulator.md).
ORDER_STOP, ORDER_MOVE, ORDER_ATTACK, ORDER_ATTACK_MOVE, ORDER_ENGAGED = range(5)

# The switchable mechanics: which are on is the game a SimEnv plays (SimEnv.game).
MECHANICS = ("collisions", "sticky_retaliation", "collision_variation", "formation_move", "reissue_lockout",
             "ordered_fire")
# The calibrated game, SimEnv's default since session 12: the mechanics that bring whole fights
# closer to the real 3m recordings (docs/simulator.md). configs/envs/calibrated.gin binds the same.
CALIBRATED_GAME = {"collisions": True, "sticky_retaliation": True, "formation_move": True, "reissue_lockout": True}
# The game before issue 14's mechanics (the default until session 11; configs/envs/legacy.gin):
# what the datasets and sweeps made before then were played in.
LEGACY_GAME = {k: False for k in CALIBRATED_GAME}
# The calibrated game with SC2's run-to-run variation (mechanic 9) and loop-ordered fire
# (mechanic 12); configs/envs/varied.gin. Issue 15's Table 2 is played in it (docs/experiments.md).
VARIED_GAME = {**CALIBRATED_GAME, "collision_variation": True, "ordered_fire": True}

# SMAC reward defaults (reward_only_positive=True, reward_scale_rate=20)
REWARD_DEATH = 10.0
REWARD_WIN = 200.0
REWARD_SCALE_RATE = 20.0

_BIG = 1e9  # "no such pair" distance penalty
SEPARATION = 0.9  # units are pushed apart below this fraction of their radii sum
# Collisions: a unit in the way less than this far (map units) off one's line counts as exactly
# head-on, passed on the right. Float32 rounding of coordinates near 30 is ~2e-6, so exact ties
# (symmetric formations, units on one line) stay ties; the real 3m data's smallest offsets that
# behave as "away from the other's side" are 0.01 (docs/simulator.md, mechanic 5).
HEAD_ON_TOL = 1e-3
# Mechanic 9 (collision_variation): SC2 resolves the same encounter differently from run to run.
# The 3m data's agent 1 ends the identical step 0 at x +0.19 / +0.32 / +0.49 (5 / 50 / 95 %);
# scaling its wait by U(0.6, 1.4) gives +0.22 / +0.31 / +0.50. SC2's units going round a stopped
# one take the side away from their neighbours in 66-71 % of the big sidesteps at steps 6-7.
WAIT_JITTER = 0.4
FREE_SIDE_KEPT = 0.7
# A unit blocked by one that does not walk into it steps to the side away from the other units
# of its side within this many radii sums (about what a sidestep of one chunk can run into; the
# 3m data's enemies fit the same for 2 and for all units of the side, the allies' step 0 only
# for a neighbourhood: docs/simulator.md, mechanic 7)
CROWD_RANGE = 2.0


class InvalidActionError(ValueError):
    """An action that is not available to the agent (see ``avail_actions``)."""


@dataclass
class StepOutput:
    """What ``step`` returns. For environments that ended on this call, obs/state/avail
    are the FINAL ones; the next call auto-resets them (``reset_mask``)."""

    obs: torch.Tensor  # [E, n, obs] f32
    state: torch.Tensor  # [E, S] f32
    avail_actions: torch.Tensor  # [E, n, A] bool
    reward: torch.Tensor  # [E] f32
    terminated: torch.Tensor  # [E] bool
    info: dict[str, torch.Tensor]  # battle_won, dead_allies, dead_enemies, episode_limit: [E]
    reset_mask: torch.Tensor  # [E] bool: auto-reset at the start of this call (actions ignored)


def _spiral_offsets(k: int) -> list[tuple[int, int]]:
    """First k cells of a square grid, nearest the centre first; ties start south and turn
    counter-clockwise. For three units this gives SC2's 3m placement (0,0), (0,-1), (1,0)."""
    r = math.ceil(math.sqrt(k)) + 1
    cells = [(i, j) for i in range(-r, r + 1) for j in range(-r, r + 1)]
    cells.sort(key=lambda c: (c[0] ** 2 + c[1] ** 2, (math.atan2(c[1], c[0]) + math.pi / 2) % (2 * math.pi)))
    return cells[:k]


class SimEnv:
    """Batched SMAC-compatible environment on the built-in simulator.

    Args:
        map_name: a map from ``hygen.envs.maps``.
        num_envs: batch size E.
        seed: makes the whole batch deterministic.
        device: torch device of every tensor.
        substeps: game-loop chunks simulated per SMAC step (8 loops / substeps each).
        validate_actions: raise ``InvalidActionError`` on unavailable actions.
        ally_ai: drive the allies with the enemies' built-in AI (attack-move towards the
            enemy start) and ignore the actions; for symmetry checks of the mechanics.
        mirror_spawn: place the enemies at the mirror image (``True`` or ``"mirror"``: x
            reflected about the map centre) or at the point reflection (``"rotate"``: the
            allies' formation turned 180 degrees about the map centre) of the allies'
            formation, for symmetry checks (SC2 places both sides with the same offsets and
            gives the enemies one loop's head start, which is what the default reproduces).
            With ``collisions`` only ``"rotate"`` is a symmetry of the game: units pass on
            their right, and a mirror turns that into passing on the left
            (docs/simulator.md, "Symmetry").
        collisions: units steer around each other instead of walking through (SC2's hard
            bodies) and the unit created first waits when two of a side meet head-on: closer
            to SC2 over whole trajectories (docs/simulator.md, mechanics 5-7). On the CPU with
            numba compiled kernels run it at about 0.92 of the legacy game's speed (the tensor
            code: 0.64). On by default (the calibrated game); off in the legacy game.
        collision_variation: with ``collisions``, resolve the same encounter differently from
            run to run, as SC2 does (docs/simulator.md, mechanic 9): each step, each unit's wait
            (mechanic 6) is scaled by a factor from U(1 - WAIT_JITTER, 1 + WAIT_JITTER), and a
            unit going round a stopped one takes the free side (mechanic 7) with probability
            FREE_SIDE_KEPT, else the other. Off (default): one outcome per encounter.
        sticky_retaliation: a built-in AI unit that fights one of its attackers keeps it
            instead of turning to the nearest attacker (docs/simulator.md, mechanic 8). On by
            default; off in the legacy game.
        formation_move: an attack-move of a whole side (the enemies', SMAC's map trigger)
            keeps the side's formation: each unit heads for the goal plus its offset from the
            side's centroid, so the group walks in parallel as SC2 moves a group ordered beyond
            its own extent (docs/simulator.md, mechanic 10). On by default; off (the legacy
            game): every unit heads for the goal itself and the group narrows on the way.
        reissue_lockout: a unit commanded through SMAC's actions cannot fire on the step's
            last game loop, where SMAC re-issues its order; a shot due then waits for the next
            step's first loop. Replaces the U(0, FIRE_DELAY_MAX)-loop reaction delay before
            every shot (docs/simulator.md, mechanic 11). On by default; off (the legacy game):
            the delay.
        ordered_fire: resolve a chunk's shots loop by loop, so a unit killed at one loop fires
            no shot due later in the chunk, and no shot goes to a target killed earlier in it
            (the weapon stays ready; SC2 resolves every game loop). Off (default): the chunk's
            shots land together: overkill spends cooldowns, and two last units can kill each
            other, a draw SC2's 3m data never show (docs/simulator.md, "Draws"; mechanic 12).

    Unit state (views into two packed buffers, updated in place; tests may poke them):
    ``pos`` [E,U,2], ``health``, ``shield``, ``cooldown``, ``delay``, ``since_hit`` [E,U] f32,
    ``order``, ``target`` [E,U] long (a unit without a target points at itself).
    """

    def __init__(self, map_name: str | MapSpec, num_envs: int = 1, seed: int = 0,
                 device: str | torch.device = "cpu", substeps: int = 2, validate_actions: bool = True,
                 ally_ai: bool = False, mirror_spawn: bool | str = False, collisions: bool = True,
                 sticky_retaliation: bool = True, collision_variation: bool = False,
                 formation_move: bool = True, reissue_lockout: bool = True, ordered_fire: bool = False):
        self.map: MapSpec = get_map(map_name) if isinstance(map_name, str) else map_name
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if LOOPS_PER_STEP % substeps:
            raise ValueError(f"substeps must divide {LOOPS_PER_STEP}, got {substeps}")
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.substeps = substeps
        self.dt = LOOPS_PER_STEP / substeps
        self.validate_actions = validate_actions
        self.ally_ai = ally_ai
        if mirror_spawn not in (False, True, "mirror", "rotate"):
            raise ValueError(f"mirror_spawn must be False, True, 'mirror' or 'rotate', got {mirror_spawn!r}")
        self.mirror_spawn = "mirror" if mirror_spawn is True else mirror_spawn
        if self.mirror_spawn == "mirror" and collisions:
            warnings.warn("mirror_spawn='mirror' with collisions=True is not a symmetric start (units pass on "
                          "their right, a mirror makes that the left); use mirror_spawn='rotate'", stacklevel=2)
        self.collisions = collisions
        self.sticky_retaliation = sticky_retaliation
        self.formation_move = formation_move
        self.reissue_lockout = reissue_lockout
        self.ordered_fire = ordered_fire
        if collision_variation and not collisions:
            raise ValueError("collision_variation varies how collisions resolve; it needs collisions=True")
        self.collision_variation = collision_variation
        # compiled push and steering on the CPU (numba), else the tensor code below
        self._kernels = collisions and self.device.type == "cpu" and sim_kernels.available()
        self.env_info = self.map.env_info
        self.n_agents, self.n_enemies = self.map.n_agents, self.map.n_enemies
        self.n_actions = self.map.n_actions
        self.n_units = self.n_agents + self.n_enemies
        self.episode_limit = self.map.episode_limit
        self.geometry = GEOMETRY[self.map.family]
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(seed)
        self._build_constants()
        self._build_spawns()
        self._build_obs_index()
        self._alloc()
        self._needs_reset = torch.ones(num_envs, dtype=torch.bool, device=self.device)
        self._obs = self._state = self._avail = None

    @property
    def game(self) -> dict[str, bool]:
        """Which switchable mechanics are on (``MECHANICS``): what data made here must be
        played with (``hygen collect`` records it; the Trainer checks it)."""
        return {k: bool(getattr(self, k)) for k in MECHANICS}

    # ------------------------------------------------------------------ constants
    def _build_constants(self) -> None:
        """Per-map constant tensors, so a step only does the data-dependent work."""
        dev, n, U = self.device, self.n_agents, self.n_units
        types = list(self.map.ally_unit_types) + list(self.map.enemy_unit_types)
        stats = [UNITS[t] for t in types]

        def col(attr: str) -> torch.Tensor:
            return torch.tensor([float(getattr(s, attr)) for s in stats], device=dev)

        self.hp_max, self.sh_max, self.armor = col("health"), col("shield"), col("armor")
        self.hits, self.radius, self.max_cd = col("hits"), col("radius"), col("max_cooldown")
        damage, bonus, armored = col("damage"), col("bonus_armored"), col("armored")
        self.has_shields = bool((self.sh_max > 0).any())
        self.has_armor = bool((self.armor > 0).any())
        self.sh_max_safe = self.sh_max.clamp(min=1.0)
        self.is_enemy = torch.arange(U, device=dev) >= n
        self.unit_ids = torch.arange(U, device=dev)
        hostile = self.is_enemy[:, None] != self.is_enemy[None, :]
        rsum = self.radius[:, None] + self.radius[None, :]
        # [i, j] matrices: i in weapon range of j iff dist <= reach (SC2 measures edge to edge);
        # a big distance penalty for non-hostile pairs (and i == j) so one min finds the nearest foe
        self.reach = rsum + col("weapon_range")[:, None]
        self.reach_t = self.reach.T.contiguous()  # [j, i]: j within i's weapon range iff dist <= reach_t
        self.not_foe = torch.where(hostile, 0.0, _BIG)
        # attack-move acquires foes within weapon range, but at least ACQUIRE_RANGE (melee units)
        self.acquire_extra = (ACQUIRE_RANGE - col("weapon_range")).clamp(min=0.0)
        # SC2 lets units overlap a little (3m spawns marines 0.69 apart, radii sum 0.75)
        self.sep = (SEPARATION * rsum).fill_diagonal_(0.0)
        self.sep2 = self.sep * self.sep
        self.neg_sep2 = -self.sep2
        self._ids_f = torch.arange(U, dtype=torch.float32, device=dev)
        self._half, self._one = torch.tensor(0.5, device=dev), torch.tensor(1.0, device=dev)
        self._neg_head_on_tol = torch.tensor(-HEAD_ON_TOL, device=dev)
        self._head_on_tol = torch.tensor(HEAD_ON_TOL, device=dev)
        # [i, j]: how near another unit of i's side must stand to count for the side i steps to
        # when blocked (mechanic 7); -1 for foes and i itself (never near)
        friend = (self.is_enemy[:, None] == self.is_enemy[None, :]).fill_diagonal_(False)
        self._crowd_range = torch.where(friend, CROWD_RANGE * rsum, -1.0)
        # 0-dim tensors for the hot comparisons: a Python number costs a scalar-to-tensor copy per op
        self._zero, self._big = torch.tensor(0.0, device=dev), torch.tensor(_BIG, device=dev)
        self._sight, self._dt = torch.tensor(SIGHT_RANGE, device=dev), torch.tensor(self.dt, device=dev)
        self._inv_sight = 1 / self._sight
        # damage of one attack of i on j: hits x (damage + armored bonus)
        self.attack_dmg = self.hits[:, None] * (damage[:, None] + bonus[:, None] * armored[None, :])
        self.dmg_depends_on_target = bool((self.attack_dmg != self.attack_dmg[:, :1]).any())
        # per-substep constants: the longest stride, and "period + jitter_lo - dt" for the cooldown
        dt = self.dt
        self.speed = col("speed")
        self.max_stride = self.speed * dt
        self.cd_base = col("cooldown") + COOLDOWN_JITTER[0] - dt
        # reaction delay before a shot: only units commanded through SMAC's actions have one
        commanded = ~self.is_enemy & (not self.ally_ai)
        self.delay_max = FIRE_DELAY_MAX * commanded.float() * (not self.reissue_lockout)
        # the last loop of a step at which a unit can fire: commanded units lose the re-issue loop
        self._last_fire_loop = dt - commanded.float() * self.reissue_lockout
        g = self.geometry
        if any(v != int(v) for v in g.pathable):
            raise ValueError(f"pathable box must have integer edges, got {g.pathable}")
        lo = torch.tensor(g.pathable[:2], device=dev)[:, None]  # [2, 1] (x, y)
        hi = torch.tensor(g.pathable[2:], device=dev)[:, None]
        self.path_lo, self.path_hi = lo[..., None], hi[..., None]  # [2, 1, 1]
        self.xy_lo, self.xy_hi = lo + self.radius, hi - self.radius  # [2, U]: unit centres stay inside
        px0, py0, px1, py1 = g.playable
        self.center = torch.tensor([g.map_size[0] / 2, g.map_size[1] / 2], device=dev)[:, None]
        self.play_wh = torch.tensor([px1 - px0, py1 - py0], device=dev)[:, None]
        # move offsets of actions 2..5 (north +y, south -y, east +x, west -x), as [xy, 1, 4]
        self.move_dirs = torch.tensor([[0.0, 0, 1, -1], [1, -1, 0, 0]], device=dev)[:, None, :]
        # SMAC actions -> ally orders: order, move-goal offset, target unit (own id = none)
        A = self.n_actions
        act = torch.arange(A, device=dev)
        self.action_order = torch.where(act >= N_NO_ATTACK, ORDER_ATTACK,
                                        torch.where(act >= NORTH, ORDER_MOVE, ORDER_STOP))
        self.action_offset = torch.zeros(2, A, device=dev)
        self.action_offset[:, NORTH:N_NO_ATTACK] = MOVE_AMOUNT * self.move_dirs[:, 0]
        ally_ids = torch.arange(n, device=dev)[:, None]
        self.action_target = torch.where(act >= N_NO_ATTACK, act - N_NO_ATTACK + n, ally_ids)  # [n, A]
        self.action_target_flat = self.action_target.flatten()
        self._agent_row = torch.arange(n, device=dev) * A  # row offsets into action_target_flat
        # last-action one-hot; row A (no last action yet) is zeros
        self.last_action_onehot = torch.cat([torch.eye(A, device=dev), torch.zeros(1, A, device=dev)])
        # reward normaliser (SMAC): 10 per kill + 200 win + all enemy health and shields
        m = self.n_enemies
        self.max_reward = m * REWARD_DEATH + REWARD_WIN + float((self.hp_max[n:] + self.sh_max[n:]).sum())
        self.reward_scale = REWARD_SCALE_RATE / self.max_reward

    def _build_spawns(self) -> None:
        g, n = self.geometry, self.n_agents
        r_max = float(self.radius.max())
        spacing = 2 * r_max * g.spawn_spacing

        def side(kinds: tuple[str, ...], centre: tuple[float, float]) -> torch.Tensor:
            offs = _spiral_offsets(len(kinds))
            return torch.tensor([[centre[0] + spacing * dx, centre[1] + spacing * dy] for dx, dy in offs])

        ally = side(self.map.ally_unit_types, g.ally_spawn)
        # SMAC sorts agents by (unit type, x, y); keep type groups, sort inside each group
        groups: dict[str, list[int]] = {}
        for i, t in enumerate(self.map.ally_unit_types):
            groups.setdefault(t, []).append(i)
        spiral_rank = list(range(n))  # agent id -> its place in the spawn spiral (creation order)
        for ids in groups.values():
            pts = sorted((tuple(ally[i].tolist()), i) for i in ids)
            for i, (p, k) in zip(ids, pts):
                spiral_rank[i] = k
            for i, (p, k) in zip(ids, pts):
                ally[i] = torch.tensor(p)
        self._ally_spiral_rank = torch.tensor(spiral_rank, device=self.device)
        enemy = side(self.map.enemy_unit_types, g.enemy_spawn)
        # By t=0 SC2 has already run one game loop of the enemies' attack-move order.
        enemy[:, 0] -= self.speed[n:].cpu()
        if self.mirror_spawn:
            if self.map.ally_unit_types != self.map.enemy_unit_types:
                raise ValueError(f"mirror_spawn needs a symmetric map, {self.map.name!r} is not")
            enemy = ally.clone()
            enemy[:, 0] = g.map_size[0] - ally[:, 0]
            if self.mirror_spawn == "rotate":  # keeps handedness: SC2 steers both sides alike
                enemy[:, 1] = g.map_size[1] - ally[:, 1]
        dev = self.device
        spawn = torch.cat([ally, enemy]).to(dev).T  # [2, U]
        # enemy ids are not sorted in SMAC: shuffle them within each unit type (sort key offset)
        etypes = self.map.enemy_unit_types
        self.enemy_group = torch.tensor([2.0 * sorted(set(etypes)).index(t) for t in etypes], device=dev)
        # the packed float state of a fresh episode, [F_STATE, U]
        goal = torch.where(self.is_enemy, torch.tensor(g.ally_spawn, device=dev)[:, None],
                           torch.tensor(g.enemy_spawn, device=dev)[:, None])  # attack-move goals
        if self.formation_move:  # each unit keeps its offset from its side's centroid (mechanic 10)
            offset = torch.cat([ally - ally.mean(0), enemy - enemy.mean(0)]).to(dev).T
            goal = goal + offset
        zeros = torch.zeros(self.n_units, device=dev)
        # creation order within a side: SC2 creates a side's units one by one at the spawn spiral
        # (centre first); in a head-on encounter of two units of a side the one created first
        # waits (collisions only, docs/simulator.md mechanic 6). Travels with the unit through
        # the per-episode enemy id shuffle; mirrored (rotated) spawns mirror (rotate) it.
        created = torch.arange(self.n_units, dtype=torch.float32, device=dev)
        created[:n] = created[:n][self._ally_spiral_rank]
        if self.mirror_spawn:
            created[n:] = created[:n] + n
        self.fresh_f = torch.stack([self.hp_max, self.sh_max, zeros, zeros, zeros, *spawn, *goal, zeros, zeros,
                                    created, zeros, zeros])
        # enemies attack-move towards the allies' start (SMAC's map triggers); no targets yet
        order0 = torch.where(self.is_enemy | self.ally_ai, ORDER_ATTACK_MOVE, ORDER_STOP)
        self.fresh_l = torch.stack([order0, self.unit_ids, self.unit_ids])

    def _build_obs_index(self) -> None:
        """Flat indices that assemble SMAC's obs and state from the feature banks in one gather.

        obs bank per env: ``pair [F, n, U]`` (agent i's view of unit j) then ``can_move [n, 4]``;
        state bank per env: ``units [Fs, U]`` then ``last-action one-hot [n, A]``.
        """
        lay, n, m, U, A = self.map.layout, self.n_agents, self.n_enemies, self.n_units, self.n_actions
        F = lay.enemy_feat  # == lay.ally_feat: flag, dist, dx, dy, health, shield?, types?

        def pair(f: int, i: int, j: int) -> int:
            return (f * n + i) * U + j

        move0 = F * n * U
        obs_idx = []
        for i in range(n):
            row = [move0 + 4 * i + k for k in range(4)]
            row += [pair(f, i, n + j) for j in range(m) for f in range(F)]
            row += [pair(f, i, j) for j in range(n) if j != i for f in range(F)]
            row += [pair(f, i, i) for f in range(4, F)]  # own health, shield?, types?
            assert len(row) == lay.obs_shape
            obs_idx += row
        self.obs_index = torch.tensor(obs_idx, device=self.device)
        # units bank rows: health, cooldown, x, y, shield?, types...
        rows_ally = [0, 1, 2, 3] + list(range(4, 4 + lay.shield_bits + lay.unit_type_bits))
        rows_enemy = [0, 2, 3] + rows_ally[4:]
        n_rows = len(rows_ally)
        st = [r * U + i for i in range(n) for r in rows_ally]
        st += [r * U + n + j for j in range(m) for r in rows_enemy]
        st += [n_rows * U + k for k in range(n * A)]
        assert len(st) == lay.state_shape
        self.state_index = torch.tensor(st, device=self.device)
        # unit-type one-hot per unit (SMAC orders it per side, see maps._TYPE_ORDER)
        onehot = torch.zeros(lay.unit_type_bits, U, device=self.device)
        if lay.unit_type_bits:
            for u, t in enumerate(self.map.ally_unit_types):
                onehot[lay.ally_types.index(t), u] = 1.0
            for j, t in enumerate(self.map.enemy_unit_types):
                onehot[lay.enemy_types.index(t), n + j] = 1.0
        self.type_onehot = onehot  # [T, U]
        # what an agent sees of unit j: enemies flag "attack available" (<= 6), allies "visible" (< 9)
        six_plus = torch.nextafter(torch.tensor(SHOOT_RANGE), torch.tensor(_BIG)).item()
        self.flag_range = torch.where(self.is_enemy, six_plus, SIGHT_RANGE)

    def _alloc(self) -> None:
        E, U, n, dev = self.num_envs, self.n_units, self.n_agents, self.device
        # packed per-unit state, so a reset is one masked copy: [E, F_STATE, U] f32 and [E, 3, U] long
        self._f = torch.zeros(E, len(self.fresh_f), U, device=dev)
        self._l = torch.zeros(E, len(self.fresh_l), U, dtype=torch.long, device=dev)
        f = self._f
        self.health, self.shield, self.cooldown, self.delay, self.since_hit = f.unbind(1)[:5]
        # cooldown: game loops until the weapon is ready (< 0: ready); delay: reaction delay
        # before the next shot; since_hit: game loops since last damage (shield regeneration)
        self._xy, self._goal = f[:, 5:7], f[:, 7:9]  # [E, 2, U], x and y rows
        self._moved = f[:, 9:11]  # [E, 2, U]: each unit's move in the last chunk (collisions only)
        self._moved_col = self._moved.unsqueeze(3).unbind(1)  # x, y as [E, U, 1] views (pairwise rows)
        self._created = f[:, 11]  # [E, U]: creation order (collisions only)
        self._wait_axis = f[:, 12:14]  # [E, 2, U]: heading when a wait began (collisions only)
        self.pos = self._xy.transpose(1, 2)  # [E, U, 2] view
        self.order, self.target = self._l.unbind(1)[:2]
        self._wait_for = self._l[:, 2]  # [E, U]: the unit this one waits for to pass, own id: none (collisions)
        # steering's per-unit rows, so "the same of the unit in the way" is one gather (collisions):
        # x, y (chunk start), heading x, y, stride, creation order, the unit in the way (as float),
        # 0.9 x radius (half a separation distance) and side; the last two are constants
        self._pack = torch.zeros(E, 9, U, device=dev)
        self._pack[:, 7] = SEPARATION * self.radius
        self._pack[:, 8] = self.is_enemy.float()
        pk = self._pack  # named views (built once: slicing costs about a microsecond a time)
        self._pk_xy, self._pk_u, self._pk_5 = pk[:, :2], pk[:, 2:4], pk[:, :5]
        self._pk_rows = pk.unbind(1)
        self._moved_xy = self._moved.unbind(1)
        # mechanic 9: this step's scale of each unit's wait and its free side's sign (+1 kept, -1
        # the other side), drawn at the step's start, so a run resumed between steps draws the
        # same from the saved generator; all ones: one outcome per encounter
        self._wait_scale = torch.ones(E, U, device=dev)
        self._side_sign = torch.ones(E, U, device=dev)
        if self._kernels:  # the compiled kernels' arguments but stride and live: numpy views, built once
            self._push_kernel, self._steer_kernel = sim_kernels.compiled()
            self._kernel_push_args = (self._xy.numpy(), self._pk_xy.numpy(), self._moved.numpy(), self.sep.numpy(),
                                      self.sep2.numpy())
            self._kernel_steer_args = (
                self._pk_xy.numpy(), self._xy.numpy(), self._pk_u.numpy(), self._created.numpy(), self.sep.numpy(),
                self.sep2.numpy(),
                self._crowd_range.numpy(), self._pack[0, 7].numpy(), self._pack[0, 8].numpy(), self.max_stride.numpy(),
                np.float32(HEAD_ON_TOL), self._wait_for.numpy(), self._wait_axis.numpy(), self._wait_scale.numpy(),
                self._side_sign.numpy(), self._moved.numpy(),
                np.empty(U, dtype=np.int64), *np.empty((5, U), dtype=np.float32))  # the last six: scratch
        self._last = torch.full((E, n), self.n_actions, dtype=torch.long, device=dev)  # A = none
        # obs bank (see _build_obs_index): pair features [F, n, U] then can_move [n, 4]
        F = self.map.layout.enemy_feat
        flat = torch.zeros(E, F * n * U + 4 * n, device=dev)
        pair = flat[:, : F * n * U].view(E, F, n, U)
        self._obs_bank = {"all": flat, "flag": pair[:, 0], "dist": pair[:, 1], "rel": pair[:, 2:4],
                          "units": pair[:, 4:], "move": flat[:, F * n * U:].view(E, n, 4)}
        self.t = torch.zeros(E, dtype=torch.long, device=dev)

    # ------------------------------------------------------------------ reset
    def _reset_envs(self, mask: torch.Tensor) -> None:
        """Re-initialise the environments where ``mask`` [E] is True (no host sync)."""
        E, n = self.num_envs, self.n_agents
        keys = torch.rand(E, self.n_enemies, generator=self._gen, device=self.device) + self.enemy_group
        perm = torch.cat([self.unit_ids[:n].expand(E, n), keys.argsort(dim=1) + n], dim=1)  # slot -> spawn
        fresh = self.fresh_f.expand(E, -1, -1).gather(2, perm[:, None].expand(-1, len(self.fresh_f), -1))
        torch.where(mask[:, None, None], fresh, self._f, out=self._f)
        torch.where(mask[:, None, None], self.fresh_l, self._l, out=self._l)
        self._last.masked_fill_(mask[:, None], self.n_actions)
        self.t.masked_fill_(mask, 0)
        self._needs_reset = self._needs_reset & ~mask

    def reset(self, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reset all environments (or those in ``mask`` [E] bool); returns the full
        (obs [E,n,obs], state [E,S], avail [E,n,A])."""
        if mask is None:
            mask = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        self._reset_envs(mask.to(self.device, torch.bool))
        self._observe()
        return self._obs, self._state, self._avail

    # ------------------------------------------------------------------ step
    def step(self, actions: torch.Tensor) -> StepOutput:
        """Advance every environment by one SMAC step (8 game loops)."""
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        E, n, dev = self.num_envs, self.n_agents, self.device
        actions = torch.as_tensor(actions, device=dev).long()
        if actions.shape != (E, n):
            raise ValueError(f"actions must have shape [num_envs={E}, n_agents={n}], got {tuple(actions.shape)}")
        reset_mask = self._needs_reset
        any_reset = bool(reset_mask.any())
        if any_reset:
            self._reset_envs(reset_mask)
        running = ~reset_mask
        if self.validate_actions:
            self._check_actions(actions, reset_mask)
        if any_reset:  # just-reset envs ignore their actions (a no-op is what a fresh episode holds)
            actions = actions * running[:, None]
        if not self.ally_ai:  # the built-in AI keeps its attack-move orders
            self._apply_actions(actions)
        self._last.copy_(actions).masked_fill_(reset_mask[:, None], self.n_actions)  # A: none yet

        enemy_hp_before = (self.health + self.shield)[:, n:]
        enemy_alive_before = (self.health[:, n:] > 0).sum(1)
        run_col = running[:, None]
        if self.collisions:  # a wait for a unit to pass ends with the step (mechanic 6)
            self._wait_for.copy_(self.unit_ids)
        if self.collision_variation:  # waits and detours vary from run to run (mechanic 9)
            draw = torch.rand(2, *self._wait_scale.shape, generator=self._gen, device=self.device)
            self._wait_scale.copy_(1 - WAIT_JITTER + 2 * WAIT_JITTER * draw[0])
            torch.where(draw[1] < FREE_SIDE_KEPT, self._one, -self._one, out=self._side_sign)
        for k in range(self.substeps):
            self._substep(run_col, last=k == self.substeps - 1)

        # --- reward (SMAC reward_battle, reward_only_positive=True) -----------------
        # A dead unit has no health and no shield left, so "health + shield lost" already
        # counts a kill's last health like SMAC does; frozen (just reset) envs lose nothing.
        alive = self.health > 0
        n_ally, n_enemy = alive[:, :n].sum(1), alive[:, n:].sum(1)
        delta_enemy = (enemy_hp_before - (self.health + self.shield)[:, n:]).sum(1)
        kills = enemy_alive_before - n_enemy
        reward = (delta_enemy + REWARD_DEATH * kills).abs()

        # --- termination ----------------------------------------------------------
        self.t += running
        won = (n_enemy == 0) & (n_ally > 0) & running
        battle_over = ((n_ally == 0) | (n_enemy == 0)) & running
        timeout = (self.t >= self.episode_limit) & ~battle_over & running
        terminated = battle_over | timeout
        reward = (reward + REWARD_WIN * won) * (self.reward_scale * running)
        self._needs_reset = terminated

        self._observe(alive)
        info = {
            "battle_won": won,
            "dead_allies": n - n_ally,
            "dead_enemies": self.n_enemies - n_enemy,
            "episode_limit": timeout,
        }
        return StepOutput(self._obs, self._state, self._avail, reward, terminated, info, reset_mask)

    def _check_actions(self, actions: torch.Tensor, exempt: torch.Tensor) -> None:
        """One gather: every action of a running env must be available (``exempt`` [E]: just reset)."""
        clipped = actions.clamp(0, self.n_actions - 1)
        ok = self._avail.gather(2, clipped[..., None]).squeeze(-1) & (clipped == actions)
        if bool((ok | exempt[:, None]).all()):
            return
        e, i = (~ok & ~exempt[:, None]).nonzero()[0].tolist()
        a = int(actions[e, i])
        if not 0 <= a < self.n_actions:
            raise InvalidActionError(f"actions must be in [0, {self.n_actions}) for map {self.map.name!r}, "
                                     f"got {a} (env {e}, agent {i})")
        allowed = self._avail[e, i].nonzero().flatten().tolist()
        raise InvalidActionError(
            f"env {e}, agent {i}: action {a} is not available "
            f"(available: {allowed}); pass only actions with avail_actions True")

    def _apply_actions(self, actions: torch.Tensor) -> None:
        """Turn SMAC actions [E, n] into unit orders for the allies (enemies keep theirs)."""
        n = self.n_agents
        self.order[:, :n] = self.action_order[actions]
        # move orders target a point MOVE_AMOUNT away; other orders ignore the goal
        self._goal[:, :, :n] = self._xy[:, :, :n] + self.action_offset[:, actions].transpose(0, 1)
        self.target[:, :n] = self.action_target_flat[actions + self._agent_row]

    def _substep(self, run_col: torch.Tensor, last: bool = False) -> None:
        """Simulate ``dt`` game loops: separation, targeting, movement, attacks, regen.

        Pairwise tensors are [E, i, j] (unit i looking at unit j) and symmetric where they
        can be, so reductions run over dim 1 (the fast direction on CPU).
        """
        E, U, dt = self.num_envs, self.n_units, self.dt
        xy = self._xy  # [E, 2, U], updated in place
        live = (self.health > self._zero) & run_col  # [E, U]; ended/just-reset envs stay frozen
        dead_pen = torch.where(live, self._zero, self._big)
        rel = xy[:, :, None, :] - xy[:, :, :, None]  # [E, 2, i, j]: from i to j
        dist = torch.hypot(rel[:, 0], rel[:, 1])  # [E, i, j]
        d_live = dist + dead_pen[:, None, :] + dead_pen[:, :, None]  # >= BIG unless both alive

        if self._kernels:  # the same push, compiled (it also copies the chunk start to _pk_xy)
            k = self._kernel_push_args
            self._push_kernel(*k[:3], live.numpy(), *k[3:])
        elif self.collisions:
            self._pk_xy.copy_(xy)  # the steering's positions: the chunk start, like rel
            # overlapping living units are pushed apart; the one that walked into the other in
            # the last chunk takes the push (in proportion to how far each moved towards the
            # other, half each when neither did): in the real data a unit walking straight is
            # not shoved aside by one that steps into its way (docs/simulator.md, mechanic 5)
            # (towards_ij = how far i moved towards j; the 1 / distance of both shares cancels)
            rx, ry = rel.unbind(1)
            towards = torch.addcmul(rx * self._moved_col[0], ry, self._moved_col[1]).clamp_(min=0).add_(1e-6)
            share = towards.div_(towards + towards.transpose(1, 2))
            push = share.mul_(torch.sub(self.sep, d_live).clamp_(min=0)).div_(dist.clamp(min=1e-3))
            xy.sub_((rel * push.unsqueeze(1)).sum(3))
        else:
            # soft separation: overlapping living units push each other apart (half each).
            # w and rel are (anti)symmetric, so sum_j w_ij rel_ij = -sum_j (w rel)_ji.
            w = (self.sep - d_live).clamp_(min=0).div_(dist.clamp(min=1e-3))
            xy.add_((w[:, None] * rel).sum(2), alpha=0.5)

        # --- targets (distances from before the push, as SC2 decides on the last frame) --------
        foe_d = d_live + self.not_foe  # distance to each living foe, >= BIG otherwise
        gap = foe_d - self.reach  # <= 0: j within i's weapon range
        nearest_d, nearest = foe_d.min(dim=1)  # foe_d is symmetric: nearest foe of each unit
        tgt, order, ids = self.target, self.order, self.unit_ids
        tgt_gap, near_gap = gap.gather(2, torch.stack([tgt, nearest], 2)).unbind(2)
        is_am, is_move = order == ORDER_ATTACK_MOVE, order == ORDER_MOVE
        is_ai = order >= ORDER_ATTACK_MOVE  # attack-move or engaged
        # built-in AI. Attack-move walks its line and takes the nearest foe once it is within
        # weapon range (SC2: the front enemies of the real data walk straight until they stop
        # at weapon range). Engaged: stay on the target while it is in range, else take the
        # nearest foe within sight, else stand (the real enemies do not walk on after a fight).
        # Both answer an attacker first: a foe within weapon range whose order targets the unit,
        # the closest edge to edge (SC2 units retaliate; the real data's enemy fire spreads over
        # the allies the way this predicts, docs/simulator.md mechanic 4).
        # [E, j, i]: how far j is beyond i's weapon range if j attacks i (its order's target)
        att_gap, att = torch.where(tgt[:, :, None] == ids, foe_d - self.reach_t, self._big).min(1)
        has_att = att_gap <= self._zero
        engaged_tgt = torch.where(tgt_gap <= self._zero, tgt, torch.where(nearest_d <= self._sight, nearest, ids))
        am_tgt = torch.where(is_am, torch.where(near_gap <= self.acquire_extra, nearest, ids), engaged_tgt)
        if self.sticky_retaliation:  # ... unless its current target is itself an attacker in range
            has_att &= (tgt.gather(1, tgt) != ids) | (tgt_gap > self._zero)
        am_tgt = torch.where(has_att, att, am_tgt)
        # attack order on a living target: that target; a stop order or an attack order on a
        # dead target: idle, fire at the nearest foe in range; a move order never fires
        idle_tgt = torch.where(near_gap <= self._zero, nearest, ids)
        attacking = (order == ORDER_ATTACK) & live.gather(1, tgt)
        cur = torch.where(is_ai, am_tgt, torch.where(attacking, tgt, torch.where(is_move, ids, idle_tgt)))
        torch.where(is_ai, am_tgt, tgt, out=tgt)
        cur_gap = gap.gather(2, cur[..., None]).squeeze(-1)
        cur_in_range = cur_gap <= self._zero  # false for "no target" (own id) and dead units

        # --- movement -------------------------------------------------------------------
        has_cur = (cur != ids) & live
        order.masked_fill_(is_am & has_cur, ORDER_ENGAGED)  # an attack-move found its first target
        chase = has_cur & ~cur_in_range
        moving = chase | (~has_cur & live & (is_move | is_am))
        cur_xy = xy.gather(2, cur[:, None, :].expand(-1, 2, -1))
        vec = torch.where(chase[:, None], cur_xy, self._goal) - xy
        length = torch.hypot(vec[:, 0], vec[:, 1]).clamp_(min=1e-6)
        # a chasing unit stops as soon as its weapon reaches the target; an attack-move walker
        # where its line first brings its nearest foe (taken as standing) within acquisition
        # range: SC2 looks for targets every game loop, a whole chunk would overshoot by up to dt
        # (the line through i along vec enters the circle of radius R = d - near_gap + acquire_extra
        # around the nearest foe, d away, after along - sqrt(R^2 - d^2 + along^2); NaN if it misses
        # or the foe is behind (along clamped to 0 while i is outside the circle), which fmin skips)
        near_rel = rel.gather(3, nearest[:, None, :, None].expand(-1, 2, -1, 1)).squeeze(-1)  # [E, 2, i]
        along = (near_rel * vec).sum(1).div_(length).clamp_(min=0)
        r_minus_d = self.acquire_extra - near_gap
        h2 = torch.addcmul(along * along, r_minus_d, torch.add(r_minus_d, nearest_d, alpha=2.0))
        enter = torch.where(is_am, along - h2.sqrt_(), self._big)
        remaining = torch.where(chase, cur_gap + 1e-3, torch.fmin(length, enter + 1e-3))
        stride = torch.minimum(self.max_stride, remaining).clamp_(min=0) * moving
        if self._kernels:  # the same steering, compiled (it also moves xy)
            k = self._kernel_steer_args
            self._steer_kernel(*k[:2], vec.numpy(), length.numpy(), k[2], stride.numpy(), live.numpy(), *k[3:])
        elif self.collisions:  # steer around units in the way
            torch.div(vec, length.unsqueeze(1), out=self._pk_u)  # the unit heading, where _steer reads it
            self._steer(rel, stride, d_live)
            xy.add_(self._moved)
        else:
            xy.addcmul_(vec, (stride / length)[:, None])
        xy.clamp_(self.xy_lo, self.xy_hi)

        # --- attacks ----------------------------------------------------------------------
        # A weapon fires at the first whole game loop tau in (0, dt] at which its cooldown plus
        # the per-shot reaction delay has run out, if the target is in range at substep start;
        # with reissue_lockout a commanded unit's last chance is the loop before the step ends.
        tau = torch.ceil(self.cooldown + self.delay).clamp_(min=1.0)
        fire = cur_in_range & (tau <= (self._last_fire_loop if last else self._dt))
        dmg = self.attack_dmg[ids, cur] if self.dmg_depends_on_target else self.attack_dmg[:, 0]
        if self.ordered_fire:  # loop by loop: the dead fire no more, nor at the dead (mechanic 12)
            raw = torch.zeros(E, U, device=self.device)
            for loop in range(1, int(dt) + 1):
                due = tau == loop
                # killed at an earlier loop of this chunk, or its target was: no shot, the weapon stays ready
                fire &= ~(due & ((self.health <= 0) | (self.health.gather(1, cur) <= 0)))
                raw += self._take_hits(cur, dmg, fire & due)
        else:  # the chunk's shots land together
            raw = self._take_hits(cur, dmg, fire)
        noise = torch.rand(2, E, U, generator=self._gen, device=self.device)
        # after a shot at loop tau: cooldown = period + U(jitter) - (dt - tau) loops at substep end.
        # Counting down dead or frozen units too changes nothing (a cooldown <= 0 means "ready").
        fired_cd = torch.add(tau + self.cd_base, noise[0], alpha=COOLDOWN_JITTER[1] - COOLDOWN_JITTER[0])
        torch.where(fire, fired_cd, self.cooldown - dt, out=self.cooldown)
        # the reaction delay is what SMAC's re-issued commands cost: the built-in AI's units
        # fire on their weapon period rounded up to whole loops (docs/simulator.md)
        torch.where(fire, noise[1].mul_(self.delay_max), self.delay, out=self.delay)

        # --- shields regenerate after a quiet spell ---------------------------------------
        if self.has_shields:
            # (frozen envs count on too: only damaged units regenerate, damage resets the clock)
            self.since_hit.add_(dt).masked_fill_(raw > 0, 0.0)
            regen = (self.since_hit >= SHIELD_REGEN_DELAY_LOOPS) & live
            regen_f = regen * (SHIELD_REGEN_PER_LOOP * dt)
            torch.minimum(self.shield + regen_f, self.sh_max, out=self.shield)

    def _take_hits(self, cur: torch.Tensor, dmg: torch.Tensor, fire: torch.Tensor) -> torch.Tensor:
        """Units with ``fire`` [E, U] hit their target ``cur`` for ``dmg``: shields first, then
        armor per hit on health. Returns the raw damage each unit took [E, U]."""
        E, U = self.num_envs, self.n_units
        raw = torch.zeros(E, U, device=self.device).scatter_add_(1, cur, dmg * fire)
        if self.has_shields or self.has_armor:
            nhits = torch.zeros(E, U, device=self.device).scatter_add_(1, cur, self.hits * fire)
            to_shield = torch.minimum(self.shield, raw)
            rest = raw - to_shield
            # armor applies per hit that reaches health (shields have none); SC2 deals >= 0.5 a hit
            hits_on_health = nhits * rest / raw.clamp(min=1e-6)
            to_health = torch.maximum(rest - self.armor * hits_on_health, 0.5 * hits_on_health)
            self.shield.sub_(to_shield)
        else:  # marines: no shields, no armor
            to_health = raw
        self.health.sub_(to_health).clamp_(min=0)
        return raw

    def _steer(self, rel: torch.Tensor, stride: torch.Tensor, d_live: torch.Tensor) -> None:
        """Write this chunk's displacement into ``_moved`` [E, 2, U] for units walking ``stride``
        [E, U] along their unit heading (``_pk_u`` [E, 2, U]): straight on unless another living unit
        (``d_live`` [E, U, U]: distances, >= BIG where a unit is dead) is in the way.

        SC2 units do not walk through each other. A unit whose path, relative to the other
        unit's own motion this chunk, comes within the separation distance of it steps sideways
        by what it takes to pass, away from the side the other stands on (to its right when
        exactly head-on), half of it each when both walk into each other, and spends the rest
        of its stride going forward. Evidence: the real 3m data (docs/simulator.md, mechanic 5).
        A unit blocked by one that is not walking into it (a unit in front that has stopped)
        goes round on the side away from the rest of its side, at its full speed, while its
        forward walk keeps the stride it planned (mechanic 7).
        """
        u = self._pk_u
        v = u * stride.unsqueeze(1)  # planned displacement
        vx, vy = v.unbind(1)
        # i's motion relative to j, w = v_i - v_j, by component ([E, i, j] each)
        wx, wy = vx.unsqueeze(2) - vx.unsqueeze(1), vy.unsqueeze(2) - vy.unsqueeze(1)
        rx, ry = rel.unbind(1)
        # the relative path x_i + tau w meets the separation circle around j at the smallest tau
        # solving |rel - tau w| = sep: tau = (p - sqrt(disc)) / w^2 with p = rel.w and
        # disc = sep^2 w^2 - (w x rel)^2 = p^2 - (d^2 - sep^2) w^2 (as |rel|^2 |w|^2 = p^2 + (w x rel)^2).
        # A dead unit's BIG distance makes disc < 0; p <= 0: not approaching (no NaN: sqrt and
        # fmin of NaN are 10x slower on CPU). p, w^2, d (so tau) are symmetric in i, j:
        # reductions run over dim 1.
        p = torch.addcmul(rx * wx, ry, wy)
        w2 = torch.addcmul(wx * wx, wy, wy)
        disc = torch.addcmul(p * p, torch.addcmul(self.neg_sep2, d_live, d_live), w2, value=-1.0)
        # misses (disc <= 0, or p <= 0 incl. units not moving relative to each other) get a huge
        # penalty by arithmetic: bool masks on [E, U, U] cost several times more on CPU
        miss = torch.clamp(disc, max=0).sub_(torch.rsub(p, 1e-12).clamp_(min=0))  # < 0: no collision
        tau = p.sub_(disc.clamp_(min=1e-30).sqrt_()).div_(w2.clamp_(min=1e-12)).add_(miss, alpha=-1e30)
        first, jb = tau.min(1)  # the first unit in the way (if it is touched this chunk: first < 1)
        blocked = first < 1.0
        pk, (_, _, ux, uy, _, _, _, sep_half, side_i) = self._pack, self._pk_rows
        pk[:, 4].copy_(stride)
        pk[:, 5].copy_(self._created)
        pk[:, 6].copy_(jb)
        b = pk.gather(2, jb.unsqueeze(1).expand(-1, pk.shape[1], -1))  # [E, K, U]: the same of the unit in the way
        bx, by, bux, buy, b_stride, b_created, b_jb, b_sep_half, b_side = b.unbind(1)
        lat_b = torch.addcmul(ux * (by - pk[:, 1]), uy, bx - pk[:, 0], value=-1.0)  # > 0: it stands on i's left
        mutual = (b_jb == self._ids_f) & (b_stride > self._zero)
        # The side to pass on (> 0: left, along (-u_y, u_x)). Walking into each other: away from
        # the other, on the right when head-on within HEAD_ON_TOL (mechanic 5: an exact tie must not
        # fall by float rounding). Otherwise away from the other living units of i's side within
        # CROWD_RANGE (mechanic 7): crowd_i = sum_j near_ij (u_i x rel_ij), > 0: they stand on i's left.
        away = torch.where(lat_b < self._neg_head_on_tol, self._one, -self._one)
        rx, ry = rel.unbind(1)
        lat_all = torch.addcmul(ux.unsqueeze(2) * ry, uy.unsqueeze(2), rx, value=-1.0)  # > 0: j on i's left
        crowd = lat_all.mul_(d_live < self._crowd_range).sum(2)  # d_live >= BIG for the dead
        free = torch.where(crowd > self._head_on_tol, -self._one, torch.where(crowd < self._neg_head_on_tol, self._one, away))
        sign = torch.where(mutual, away, free * self._side_sign)
        # how far to step aside: sep_ij - |lat| away from the other, sep_ij + |lat| past its side;
        # half of it each when both walk into each other
        reach_side = torch.where(sign == away, -lat_b.abs(), lat_b.abs())
        need = torch.add(b_sep_half, sep_half).add_(reach_side).mul_(torch.where(mutual, self._half, self._one))
        # i walks at its full speed: the sidestep is not bounded by the stride it planned to
        # stop at (where it would acquire or reach its target), the forward walk is
        budget = self.max_stride * (stride > self._zero)
        lateral = torch.minimum(need, budget).mul_(blocked)
        forward = torch.addcmul(budget * budget, lateral, lateral, value=-1.0).clamp_(min=0).sqrt_()
        forward = torch.minimum(forward, stride)
        # Two units of one side walking into each other both step aside, and the one created
        # first waits until the other has come abreast (the real data: docs/simulator.md,
        # mechanic 6): i remembers whom it waits for (until the end of the step) and, each chunk,
        # stands for the part of it that j, walking at its planned pace, needs to cover its lead
        # along i's heading.
        head_on = torch.addcmul(ux * bux, uy, buy) < self._zero
        starts = mutual & blocked & head_on & (b_side == side_i) & (self._created < b_created)
        fresh = starts & (self._wait_for == self.unit_ids)  # a wait begins: remember i's heading now
        axis = torch.where(fresh.unsqueeze(1), u, self._wait_axis, out=self._wait_axis)
        wf = torch.where(starts, jb, self._wait_for, out=self._wait_for)  # own id: waits for none
        w = self._pk_5.gather(2, wf.unsqueeze(1).expand(-1, 5, -1))  # the unit waited for (i itself: none)
        uu_w = (axis * w[:, 2:4]).sum(1)  # < 0: j walks against i's heading
        lead = (axis * (w[:, :2] - self._pk_xy)).sum(1).mul_(uu_w < self._zero).clamp_(min=0).mul_(self._wait_scale)
        closing = w[:, 4].mul(uu_w).clamp_(max=-1e-6)  # minus j's approach this chunk
        forward.mul_(lead.div_(closing).add_(1.0).clamp_(min=0))
        side = lateral * sign
        mx, my = self._moved_xy
        torch.addcmul(ux * forward, uy, side, value=-1.0, out=mx)
        torch.addcmul(uy * forward, ux, side, out=my)

    # ------------------------------------------------------------------ observations
    def _observe(self, alive: torch.Tensor | None = None) -> None:
        """SMAC's obs, state and avail_actions from the unit tensors (``alive`` [E, U] if known)."""
        alive = self.health > 0 if alive is None else alive
        E, n = self.num_envs, self.n_agents
        lay = self.map.layout
        xy = self._xy
        a_alive = alive[:, :n]
        hp = self.health / self.hp_max
        unit_cols = [hp[:, None]]  # per-unit features shown to agents: health, shield?, types?
        if lay.shield_bits:
            unit_cols.append((self.shield / self.sh_max_safe)[:, None])
        if lay.unit_type_bits:
            unit_cols.append(self.type_onehot.expand(E, -1, -1))

        # --- what agent i sees of unit j: [E, F, n, U] --------------------------------------
        rel = xy[:, :, None, :] - xy[:, :, :n, None]  # [E, 2, i, j]: from agent i to unit j
        dist = torch.hypot(rel[:, 0], rel[:, 1])  # [E, n, U]
        both = a_alive[:, :, None] & alive[:, None, :]
        visible = (dist < self._sight) & both  # SMAC: zeros beyond sight and for dead units
        flag = (dist < self.flag_range) & both  # enemies: attack available; allies: visible
        # written straight into the (internal, reused) obs bank; a dead agent sees zeros
        vis_scaled = torch.where(visible, self._inv_sight, self._zero)
        bank = self._obs_bank
        bank["flag"].copy_(flag)
        torch.mul(dist, vis_scaled, out=bank["dist"])
        torch.mul(rel, vis_scaled[:, None], out=bank["rel"])
        torch.mul(torch.cat(unit_cols, 1)[:, :, None, :], visible[:, None], out=bank["units"])

        # can_move: the cell int(pos + 1 * dir) must be pathable (SMAC uses move_amount / 2);
        # the box edges are integers, so comparing pos + dir itself is the same test
        probe = xy[:, :, :n, None] + self.move_dirs  # [E, 2, n, 4]
        can_move = ((probe >= self.path_lo) & (probe < self.path_hi)).all(1) & a_alive[..., None]
        bank["move"].copy_(can_move)
        obs = bank["all"].index_select(1, self.obs_index).view(E, n, lay.obs_shape)

        a = a_alive[..., None]
        avail = torch.cat([~a, a, can_move, flag[:, :, n:]], dim=-1)  # no-op only for the dead

        # --- state: [units (Fs rows x U) | last actions (n x A)] -----------------------------
        cd = self.cooldown.clamp(min=0) / self.max_cd
        xy_n = (xy - self.center) / self.play_wh
        units = torch.cat([hp[:, None], cd[:, None], xy_n, *unit_cols[1:]], 1) * alive[:, None]
        last = self.last_action_onehot[self._last]
        state = torch.cat([units.flatten(1), last.flatten(1)], 1).index_select(1, self.state_index)
        self._obs, self._state, self._avail = obs, state, avail

    # ------------------------------------------------------------------ accessors
    def get_obs(self) -> torch.Tensor:
        return self._obs

    def get_state(self) -> torch.Tensor:
        return self._state

    def get_avail_actions(self) -> torch.Tensor:
        return self._avail

    def unit_positions(self) -> torch.Tensor:
        """[E, U, 2] positions in map units (allies first); a live view, clone to keep it."""
        return self.pos

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        """Everything that changes while playing, so a resumed run continues the same episodes."""
        return {"f": self._f.clone(), "l": self._l.clone(), "last": self._last.clone(), "t": self.t.clone(),
                "needs_reset": self._needs_reset.clone(), "obs_bank": self._obs_bank["all"].clone(),
                "generator": self._gen.get_state(), "num_envs": self.num_envs, "map": self.map.name,
                "observed": None if self._obs is None else (self._obs, self._state, self._avail)}

    def load_state_dict(self, sd: dict) -> None:
        if (sd["map"], sd["num_envs"]) != (self.map.name, self.num_envs):
            raise ValueError(f"SimEnv state of {sd['map']} x {sd['num_envs']} envs does not fit "
                             f"{self.map.name} x {self.num_envs}")
        for mine, saved in ((self._f, sd["f"]), (self._l, sd["l"]), (self._last, sd["last"]), (self.t, sd["t"]),
                            (self._obs_bank["all"], sd["obs_bank"])):
            mine.copy_(saved)  # in place: the named views (health, pos, order, ...) stay bound
        self._needs_reset = sd["needs_reset"].to(self.device).clone()
        self._gen.set_state(sd["generator"].cpu())  # a checkpoint loaded onto a GPU moved it
        obs = sd["observed"]
        self._obs, self._state, self._avail = (None, None, None) if obs is None else (
            tuple(x.to(self.device).clone() for x in obs))

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"SimEnv({self.map.name!r}, num_envs={self.num_envs}, device={str(self.device)!r})"
