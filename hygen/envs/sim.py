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
from dataclasses import dataclass

import torch

from hygen.envs.maps import MapSpec, get_map
from hygen.envs.sim_units import (
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

# Order kinds a unit can be executing during the 8 game loops of a step.
ORDER_STOP, ORDER_MOVE, ORDER_ATTACK, ORDER_ATTACK_MOVE = range(4)

# SMAC reward defaults (reward_only_positive=True, reward_scale_rate=20)
REWARD_DEATH = 10.0
REWARD_WIN = 200.0
REWARD_SCALE_RATE = 20.0

_INF = 1e9
SEPARATION = 0.9  # units are pushed apart below this fraction of their radii sum


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
        mirror_spawn: place the enemies at the mirror image of the allies' formation (SC2
            places both sides with the same offsets and gives the enemies one loop's head
            start, which is what the default reproduces); for symmetry checks.
    """

    def __init__(self, map_name: str | MapSpec, num_envs: int = 1, seed: int = 0,
                 device: str | torch.device = "cpu", substeps: int = 2, validate_actions: bool = True,
                 ally_ai: bool = False, mirror_spawn: bool = False):
        self.map: MapSpec = get_map(map_name) if isinstance(map_name, str) else map_name
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if LOOPS_PER_STEP % substeps:
            raise ValueError(f"substeps must divide {LOOPS_PER_STEP}, got {substeps}")
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.substeps = substeps
        self.validate_actions = validate_actions
        self.ally_ai = ally_ai
        self.mirror_spawn = mirror_spawn
        self.env_info = self.map.env_info
        self.n_agents, self.n_enemies = self.map.n_agents, self.map.n_enemies
        self.n_actions = self.map.n_actions
        self.n_units = self.n_agents + self.n_enemies
        self.episode_limit = self.map.episode_limit
        self.geometry = GEOMETRY[self.map.family]
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(seed)
        self._build_constants()
        self._alloc()
        self._needs_reset = torch.ones(num_envs, dtype=torch.bool, device=self.device)
        self._obs = self._state = self._avail = None

    # ------------------------------------------------------------------ constants
    def _build_constants(self) -> None:
        dev, n, m = self.device, self.n_agents, self.n_enemies
        types = list(self.map.ally_unit_types) + list(self.map.enemy_unit_types)
        stats = [UNITS[t] for t in types]

        def col(attr: str) -> torch.Tensor:
            return torch.tensor([float(getattr(s, attr)) for s in stats], device=dev)

        self.hp_max, self.sh_max, self.armor = col("health"), col("shield"), col("armor")
        self.damage, self.bonus, self.hits = col("damage"), col("bonus_armored"), col("hits")
        self.wrange, self.period, self.speed = col("weapon_range"), col("cooldown"), col("speed")
        self.radius, self.armored, self.max_cd = col("radius"), col("armored"), col("max_cooldown")
        self.is_enemy = torch.arange(self.n_units, device=dev) >= n
        self.sh_max_safe = self.sh_max.clamp(min=1.0)
        # hostile[i, j]: i may attack j; edge-to-edge radii sum for range checks
        self.hostile = self.is_enemy[:, None] != self.is_enemy[None, :]
        self.rsum = self.radius[:, None] + self.radius[None, :]
        self.not_eye = 1.0 - torch.eye(self.n_units, device=dev)
        # SC2 lets units overlap a little (3m spawns marines 0.69 apart, radii sum 0.75)
        self.sep = SEPARATION * self.rsum
        lay = self.map.layout
        self.ally_onehot = torch.zeros(n, lay.unit_type_bits, device=dev)
        self.enemy_onehot = torch.zeros(m, lay.unit_type_bits, device=dev)
        if lay.unit_type_bits:
            for i, t in enumerate(self.map.ally_unit_types):
                self.ally_onehot[i, lay.ally_types.index(t)] = 1.0
            for j, t in enumerate(self.map.enemy_unit_types):
                self.enemy_onehot[j, lay.enemy_types.index(t)] = 1.0
        # reward normaliser (SMAC): 10 per kill + 200 win + all enemy health and shields
        self.max_reward = m * REWARD_DEATH + REWARD_WIN + float((self.hp_max[n:] + self.sh_max[n:]).sum())
        self.reward_scale = REWARD_SCALE_RATE / self.max_reward
        # other-ally index of agent i: the n-1 agents != i, in id order (SMAC's al_ids)
        others = [[j for j in range(n) if j != i] for i in range(n)]
        self.others = torch.tensor(others, dtype=torch.long, device=dev).reshape(n, max(n - 1, 0))
        # move offsets of actions 2..5 (north +y, south -y, east +x, west -x)
        self.move_dirs = torch.tensor([[0, 1], [0, -1], [1, 0], [-1, 0]], dtype=torch.float32, device=dev)
        g = self.geometry
        self.path_lo = torch.tensor(g.pathable[:2], device=dev)
        self.path_hi = torch.tensor(g.pathable[2:], device=dev)
        px0, py0, px1, py1 = g.playable
        self.center = torch.tensor([g.map_size[0] / 2, g.map_size[1] / 2], device=dev)
        self.play_wh = torch.tensor([px1 - px0, py1 - py0], device=dev)
        self._build_spawns()

    def _build_spawns(self) -> None:
        g, n = self.geometry, self.n_agents
        r_max = float(self.radius.max())
        spacing = 2 * r_max * g.spawn_spacing

        def side(kinds: tuple[str, ...], centre: tuple[float, float]) -> torch.Tensor:
            offs = _spiral_offsets(len(kinds))
            return torch.tensor([[centre[0] + spacing * dx, centre[1] + spacing * dy] for dx, dy in offs])

        ally = side(self.map.ally_unit_types, g.ally_spawn)
        # SMAC sorts agents by (unit type, x, y); keep type groups, sort inside each group
        order = sorted(range(n), key=lambda i: (self.map.ally_unit_types[i], 0, 0))
        groups: dict[str, list[int]] = {}
        for i in order:
            groups.setdefault(self.map.ally_unit_types[i], []).append(i)
        for ids in groups.values():
            pts = sorted(tuple(ally[i].tolist()) for i in ids)
            for i, p in zip(ids, pts):
                ally[i] = torch.tensor(p)
        enemy = side(self.map.enemy_unit_types, g.enemy_spawn)
        # By t=0 SC2 has already run one game loop of the enemies' attack-move order.
        enemy[:, 0] -= self.speed[n:].cpu()
        if self.mirror_spawn:
            if self.map.ally_unit_types != self.map.enemy_unit_types:
                raise ValueError(f"mirror_spawn needs a symmetric map, {self.map.name!r} is not")
            enemy = ally.clone()
            enemy[:, 0] = g.map_size[0] - ally[:, 0]
        self.spawn = torch.cat([ally, enemy]).to(self.device)  # [U, 2]
        # enemy ids are not sorted in SMAC: shuffle them within each unit type
        etypes = self.map.enemy_unit_types
        self.enemy_group = torch.tensor([sorted(set(etypes)).index(t) for t in etypes],
                                        dtype=torch.float32, device=self.device)

    def _alloc(self) -> None:
        E, U, n, dev = self.num_envs, self.n_units, self.n_agents, self.device
        f32 = {"device": dev, "dtype": torch.float32}
        self.pos = torch.zeros(E, U, 2, **f32)
        self.health = torch.zeros(E, U, **f32)
        self.shield = torch.zeros(E, U, **f32)
        self.cooldown = torch.zeros(E, U, **f32)  # game loops until the weapon is ready (< 0: ready)
        self.delay = torch.zeros(E, U, **f32)  # reaction delay before the next shot (loops)
        self.since_hit = torch.zeros(E, U, **f32)  # game loops since last damage (shield regen)
        self.order = torch.zeros(E, U, dtype=torch.long, device=dev)
        self.goal = torch.zeros(E, U, 2, **f32)
        self.target = torch.full((E, U), -1, dtype=torch.long, device=dev)
        self.last_action = torch.zeros(E, n, dtype=torch.long, device=dev)
        self.has_last_action = torch.zeros(E, dtype=torch.bool, device=dev)
        self.t = torch.zeros(E, dtype=torch.long, device=dev)
        self.dead_before = torch.zeros(E, U, dtype=torch.bool, device=dev)
        self.unit_ids = torch.arange(U, device=dev)
        self.env_offset = (torch.arange(E, device=dev) * U)[:, None]

    # ------------------------------------------------------------------ reset
    def _reset_envs(self, mask: torch.Tensor) -> None:
        """Re-initialise the environments where ``mask`` [E] is True (no host sync)."""
        E, U, n, dev = self.num_envs, self.n_units, self.n_agents, self.device
        m = mask[:, None]
        keys = torch.rand(E, self.n_enemies, generator=self._gen, device=dev) + 2 * self.enemy_group
        perm = keys.argsort(dim=1) + n  # enemy slot -> spawn row
        spawn = self.spawn[None].expand(E, U, 2)
        espawn = spawn.gather(1, perm[..., None].expand(-1, -1, 2))
        new_pos = torch.cat([spawn[:, :n], espawn], dim=1)
        self.pos = torch.where(m[..., None], new_pos, self.pos)
        self.health = torch.where(m, self.hp_max, self.health)
        self.shield = torch.where(m, self.sh_max, self.shield)
        self.cooldown = torch.where(m, 0.0, self.cooldown)
        self.delay = torch.where(m, 0.0, self.delay)
        self.since_hit = torch.where(m, 0.0, self.since_hit)
        # enemies attack-move towards the allies' start (SMAC's map triggers)
        order0 = torch.where(self.is_enemy | self.ally_ai, ORDER_ATTACK_MOVE, ORDER_STOP)
        self.order = torch.where(m, order0, self.order)
        g = self.geometry
        goal0 = torch.where(self.is_enemy[:, None], torch.tensor(g.ally_spawn, device=dev),
                            torch.tensor(g.enemy_spawn, device=dev)).expand(E, U, 2)
        self.goal = torch.where(m[..., None], goal0, self.goal)
        self.target = torch.where(m, -1, self.target)
        self.last_action = torch.where(m, 0, self.last_action)
        self.has_last_action = self.has_last_action & ~mask
        self.t = torch.where(mask, 0, self.t)
        self.dead_before = self.dead_before & ~m
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
        reset_mask = self._needs_reset.clone()
        if bool(reset_mask.any()):
            self._reset_envs(reset_mask)
        running = ~reset_mask
        if self.validate_actions:
            self._check_actions(actions, running)
        actions = torch.where(running[:, None], actions, 0)
        self._apply_actions(actions, running)

        enemy_hp_before = (self.health + self.shield)[:, n:]
        dt = LOOPS_PER_STEP / self.substeps
        for _ in range(self.substeps):
            self._substep(dt, running)

        # --- reward (SMAC reward_battle, reward_only_positive=True) -----------------
        alive = self.health > 0
        newly_dead = ~alive & ~self.dead_before & running[:, None]
        enemy_hp_after = (self.health + self.shield)[:, n:]
        delta_enemy = torch.where(newly_dead[:, n:], enemy_hp_before,
                                  enemy_hp_before - enemy_hp_after) * (~self.dead_before[:, n:])
        kills = newly_dead[:, n:].sum(1)
        reward = (delta_enemy.sum(1) + REWARD_DEATH * kills).abs()
        self.dead_before = self.dead_before | ~alive

        # --- termination ----------------------------------------------------------
        n_ally = alive[:, :n].sum(1)
        n_enemy = alive[:, n:].sum(1)
        self.t = self.t + running.long()
        won = (n_ally > 0) & (n_enemy == 0) & running
        battle_over = ((n_ally == 0) | (n_enemy == 0)) & running
        timeout = (self.t >= self.episode_limit) & ~battle_over & running
        terminated = battle_over | timeout
        reward = (reward + REWARD_WIN * won) * self.reward_scale * running
        self._needs_reset = terminated.clone()

        self._observe()
        info = {
            "battle_won": won,
            "dead_allies": (~alive[:, :n]).sum(1),
            "dead_enemies": (~alive[:, n:]).sum(1),
            "episode_limit": timeout,
        }
        return StepOutput(self._obs, self._state, self._avail, reward.float(), terminated, info, reset_mask)

    def _check_actions(self, actions: torch.Tensor, running: torch.Tensor) -> None:
        if bool(((actions < 0) | (actions >= self.n_actions)).any()):
            raise InvalidActionError(f"actions must be in [0, {self.n_actions}) for map {self.map.name!r}")
        ok = self._avail.gather(2, actions[..., None]).squeeze(-1) | ~running[:, None]
        if not bool(ok.all()):
            e, i = (~ok).nonzero()[0].tolist()
            allowed = self._avail[e, i].nonzero().flatten().tolist()
            raise InvalidActionError(
                f"env {e}, agent {i}: action {int(actions[e, i])} is not available "
                f"(available: {allowed}); pass only actions with avail_actions True")

    def _apply_actions(self, actions: torch.Tensor, running: torch.Tensor) -> None:
        """Turn SMAC actions into unit orders for the allies (enemies keep theirs)."""
        n = self.n_agents
        if self.ally_ai:
            running = running & False  # the built-in AI keeps its attack-move orders
        is_move = (actions >= NORTH) & (actions <= WEST)
        is_attack = actions >= N_NO_ATTACK
        kind = torch.where(is_attack, ORDER_ATTACK, torch.where(is_move, ORDER_MOVE, ORDER_STOP))
        dirs = self.move_dirs[(actions - NORTH).clamp(0, 3)]
        goal = self.pos[:, :n] + MOVE_AMOUNT * dirs
        target = torch.where(is_attack, actions - N_NO_ATTACK + n, -1)
        r = running[:, None]
        self.order[:, :n] = torch.where(r, kind, self.order[:, :n])
        self.goal[:, :n] = torch.where(r[..., None], goal, self.goal[:, :n])
        self.target[:, :n] = torch.where(r, target, self.target[:, :n])
        self.last_action = torch.where(r, actions, self.last_action)
        self.has_last_action = self.has_last_action | running

    def _substep(self, dt: float, running: torch.Tensor) -> None:
        """Simulate ``dt`` game loops: separation, targeting, movement, attacks, regen."""
        U = self.n_units
        live = (self.health > 0) & running[:, None]  # [E, U]; ended/just-reset envs stay frozen
        rel = self.pos[:, None, :, :] - self.pos[:, :, None, :]  # [E, i, j, 2]: from i to j
        dist = torch.hypot(rel[..., 0], rel[..., 1])  # [E, U, U]
        pair = live[:, :, None] & live[:, None, :]

        # soft separation: overlapping living units push each other apart (half each)
        overlap = (self.sep - dist).clamp(min=0).masked_fill_(~pair, 0.0) * self.not_eye
        push = (overlap / dist.clamp(min=1e-3)).unsqueeze(-1).mul(rel).sum(2)
        self.pos = self.pos - 0.5 * push

        edge = dist - self.rsum  # edge-to-edge distance
        in_range_mat = (edge <= self.wrange[None, :, None]) & pair & self.hostile
        foe_d = torch.where(pair & self.hostile, dist, _INF)

        # --- targets ------------------------------------------------------------------
        tgt = self.target
        has = tgt >= 0
        tgt_c = tgt.clamp(min=0)
        tgt_alive = live.gather(1, tgt_c) & has
        tgt_in_range = in_range_mat.gather(2, tgt_c[..., None]).squeeze(-1) & tgt_alive
        nearest_d, nearest = foe_d.min(dim=2)
        nearest_in_range = in_range_mat.gather(2, nearest[..., None]).squeeze(-1)
        is_am = self.order == ORDER_ATTACK_MOVE
        # attack-move (enemy AI): stay on the engaged target while it is in range, else
        # take the nearest foe within sight, else walk on to the goal
        am_tgt = torch.where(tgt_in_range, tgt, torch.where(nearest_d <= SIGHT_RANGE, nearest, -1))
        # attack order on a dead target or a stop order: idle, fire at the nearest foe in range
        is_att = (self.order == ORDER_ATTACK) & tgt_alive
        idle = (self.order == ORDER_STOP) | ((self.order == ORDER_ATTACK) & ~tgt_alive)
        idle_tgt = torch.where(nearest_in_range, nearest, -1)
        cur = torch.where(is_am, am_tgt, torch.where(is_att, tgt, torch.where(idle, idle_tgt, -1)))
        self.target = torch.where(is_am, am_tgt, self.target)
        has_cur = (cur >= 0) & live
        cur_c = cur.clamp(min=0)
        cur_in_range = in_range_mat.gather(2, cur_c[..., None]).squeeze(-1) & has_cur

        # --- movement -------------------------------------------------------------------
        cur_pos = self.pos.gather(1, cur_c[..., None].expand(-1, -1, 2))
        chase = has_cur & ~cur_in_range
        walk = ~has_cur & ((self.order == ORDER_MOVE) | is_am)
        dest = torch.where(chase[..., None], cur_pos, self.goal)
        vec = dest - self.pos
        length = torch.hypot(vec[..., 0], vec[..., 1]).clamp(min=1e-6)
        cur_edge = edge.gather(2, cur_c[..., None]).squeeze(-1)
        # a chasing unit stops as soon as its weapon reaches the target
        remaining = torch.where(chase, cur_edge - self.wrange + 1e-3, length)
        stride = torch.minimum(self.speed * dt, remaining).clamp(min=0) * ((chase | walk) & live)
        self.pos = self.pos + vec * (stride / length)[..., None]
        r = self.radius[:, None]
        self.pos = torch.maximum(torch.minimum(self.pos, self.path_hi - r), self.path_lo + r)

        # --- attacks ----------------------------------------------------------------------
        # A weapon fires at the first whole game loop tau in (0, dt] at which its cooldown plus
        # the per-shot reaction delay has run out, if the target is in range at substep start.
        tau = torch.ceil(self.cooldown + self.delay).clamp(min=1.0)
        fire = cur_in_range & (tau <= dt)
        tgt_armored = self.armored[cur_c]
        dmg = self.hits * (self.damage + self.bonus * tgt_armored) * fire
        hits = self.hits * fire
        flat = (self.env_offset + cur_c).flatten()
        raw = torch.zeros(self.num_envs * U, device=self.device).index_add_(0, flat, dmg.flatten())
        nhits = torch.zeros(self.num_envs * U, device=self.device).index_add_(0, flat, hits.flatten())
        raw, nhits = raw.view_as(self.health), nhits.view_as(self.health)
        to_shield = torch.minimum(self.shield, raw)
        rest = raw - to_shield
        # armor applies per hit that reaches health (shields have no armor); SC2 deals >= 0.5 a hit
        hits_on_health = nhits * rest / raw.clamp(min=1e-6)
        to_health = torch.maximum(rest - self.armor * hits_on_health, 0.5 * hits_on_health)
        self.shield = self.shield - to_shield
        self.health = (self.health - to_health).clamp(min=0)
        noise = torch.rand(2, *self.cooldown.shape, generator=self._gen, device=self.device)
        jitter = COOLDOWN_JITTER[0] + (COOLDOWN_JITTER[1] - COOLDOWN_JITTER[0]) * noise[0]
        # after a shot at loop tau the cooldown has run dt - tau loops by the end of the substep
        self.cooldown = torch.where(fire, self.period + jitter - (dt - tau), self.cooldown - dt * live)
        self.delay = torch.where(fire, FIRE_DELAY_MAX * noise[1], self.delay)

        # --- shields regenerate after a quiet spell ---------------------------------------
        hit = raw > 0
        self.since_hit = torch.where(hit, 0.0, self.since_hit + dt * live)
        regen = (self.since_hit >= SHIELD_REGEN_DELAY_LOOPS) & live
        self.shield = torch.where(regen, (self.shield + SHIELD_REGEN_PER_LOOP * dt).minimum(self.sh_max),
                                  self.shield)

    # ------------------------------------------------------------------ observations
    def _observe(self) -> None:
        """Compute SMAC's obs, state and avail_actions from the unit tensors."""
        E, n, m, A = self.num_envs, self.n_agents, self.n_enemies, self.n_actions
        lay = self.map.layout
        alive = self.health > 0
        a_alive, e_alive = alive[:, :n], alive[:, n:]
        pos = self.pos
        hp = self.health / self.hp_max
        sh = self.shield / self.sh_max_safe
        apos = pos[:, :n]

        # --- avail actions ----------------------------------------------------------------
        # can_move: the cell int(pos + 1 * dir) must be pathable (SMAC uses move_amount / 2)
        probe = (apos[:, :, None, :] + self.move_dirs).floor()  # [E, n, 4, 2]
        ok = (probe >= self.path_lo) & (probe < self.path_hi)
        can_move = ok[..., 0] & ok[..., 1]
        rel_e = pos[:, None, n:, :] - apos[:, :, None, :]  # [E, n, m, 2]
        dist_e = torch.hypot(rel_e[..., 0], rel_e[..., 1])
        both_e = a_alive[:, :, None] & e_alive[:, None, :]
        can_attack = (dist_e <= SHOOT_RANGE) & both_e
        a = a_alive[..., None]
        avail = torch.cat([
            ~a,  # no-op only for the dead
            a,  # stop
            can_move & a,
            can_attack,
        ], dim=-1)

        # --- observation ------------------------------------------------------------------
        vis_e = (dist_e < SIGHT_RANGE) & both_e
        shield_cols = [sh[:, None, n:, None].expand(E, n, m, 1)] if lay.shield_bits else []
        type_cols = [self.enemy_onehot.expand(E, n, m, -1)] if lay.unit_type_bits else []
        enemy_feats = torch.cat([
            can_attack[..., None].float(),
            dist_e[..., None] / SIGHT_RANGE,
            rel_e / SIGHT_RANGE,
            hp[:, None, n:, None].expand(E, n, m, 1),
            *shield_cols, *type_cols,
        ], dim=-1) * vis_e[..., None]

        rel_a = apos[:, None, :, :] - apos[:, :, None, :]  # [E, n, n, 2]
        dist_a = torch.hypot(rel_a[..., 0], rel_a[..., 1])
        vis_a = (dist_a < SIGHT_RANGE) & a_alive[:, :, None] & a_alive[:, None, :]
        shield_cols = [sh[:, None, :n, None].expand(E, n, n, 1)] if lay.shield_bits else []
        type_cols = [self.ally_onehot.expand(E, n, n, -1)] if lay.unit_type_bits else []
        ally_all = torch.cat([
            vis_a[..., None].float(),
            dist_a[..., None] / SIGHT_RANGE,
            rel_a / SIGHT_RANGE,
            hp[:, None, :n, None].expand(E, n, n, 1),
            *shield_cols, *type_cols,
        ], dim=-1) * vis_a[..., None]
        idx = self.others[None, :, :, None].expand(E, n, n - 1, ally_all.shape[-1])
        ally_feats = ally_all.gather(2, idx)

        own_cols = [hp[:, :n, None]]
        if lay.shield_bits:
            own_cols.append(sh[:, :n, None])
        if lay.unit_type_bits:
            own_cols.append(self.ally_onehot.expand(E, n, -1))
        own = torch.cat(own_cols, dim=-1)

        obs = torch.cat([
            can_move.float(),
            enemy_feats.flatten(2),
            ally_feats.flatten(2),
            own,
        ], dim=-1) * a.float()  # a dead agent sees zeros

        # --- state --------------------------------------------------------------------------
        xy = (pos - self.center) / self.play_wh
        cd = self.cooldown[:, :n].clamp(min=0) / self.max_cd[:n]
        ally_cols = [hp[:, :n, None], cd[..., None], xy[:, :n]]
        if lay.shield_bits:
            ally_cols.append(sh[:, :n, None])
        if lay.unit_type_bits:
            ally_cols.append(self.ally_onehot.expand(E, n, -1))
        ally_state = torch.cat(ally_cols, dim=-1) * a_alive[..., None]
        enemy_cols = [hp[:, n:, None], xy[:, n:]]
        if lay.shield_bits:
            enemy_cols.append(sh[:, n:, None])
        if lay.unit_type_bits:
            enemy_cols.append(self.enemy_onehot.expand(E, m, -1))
        enemy_state = torch.cat(enemy_cols, dim=-1) * e_alive[..., None]
        last = torch.nn.functional.one_hot(self.last_action, A).float() * self.has_last_action[:, None, None]
        state = torch.cat([ally_state.flatten(1), enemy_state.flatten(1), last.flatten(1)], dim=-1)

        self._obs, self._state, self._avail = obs, state, avail

    # ------------------------------------------------------------------ accessors
    def get_obs(self) -> torch.Tensor:
        return self._obs

    def get_state(self) -> torch.Tensor:
        return self._state

    def get_avail_actions(self) -> torch.Tensor:
        return self._avail

    def unit_positions(self) -> torch.Tensor:
        """[E, U, 2] positions in map units (allies first); for tests and scripted policies."""
        return self.pos

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"SimEnv({self.map.name!r}, num_envs={self.num_envs}, device={str(self.device)!r})"
