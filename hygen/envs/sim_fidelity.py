"""Calibration of the simulator against real SC2 episodes (ODIS HDF5 format).

The same statistics are computed from the real dataset and from episodes recorded in
the simulator, from SMAC's global state only (positions, health, weapon cooldowns), so
both sides are measured the same way. ``benchmarks/sim_fidelity.py`` prints the table;
``tests/test_sim_fidelity.py`` asserts the mechanical (policy-independent) rows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from hygen.envs.maps import MapSpec, get_map
from hygen.envs.sim import N_NO_ATTACK, SimEnv
from hygen.envs.sim_units import GEOMETRY, LOOPS_PER_STEP, SHOOT_RANGE, UNITS

# (name, pinned by the real data?, unit). Pinned rows are game mechanics the sim must
# match within 5 %; the others depend on the behaviour policy and are reported only.
ROWS = [
    ("start_ally_x", True, "norm"),
    ("start_ally_y", True, "norm"),
    ("start_enemy_x", True, "norm"),
    ("start_enemy_y", True, "norm"),
    ("start_ally_spacing", True, "map units"),
    ("ally_move_per_step", True, "map units"),
    ("enemy_move_per_step", True, "map units"),
    ("enemy_engage_distance", True, "map units"),
    ("ally_shots_per_step", True, "shots"),
    ("ally_cooldown_max", True, "loops"),
    ("damage_per_ally_shot", True, "hp"),
    ("damage_per_enemy_shot", True, "hp"),
    ("reward_per_shot", True, "reward"),
    ("enemy_time_to_kill", False, "steps"),
    ("episode_length", False, "steps"),
    ("win_rate", False, ""),
    ("return", False, ""),
]


def load_real(path: str | Path, max_episodes: int | None = None) -> dict[str, np.ndarray]:
    """state [B,T,S], actions [B,T,n], reward [B,T], filled [B,T] from an ODIS HDF5 file.

    Reads with h5py directly (small, private): ``hygen.buffers.offline`` is the general reader.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"real dataset not found: {path}")
    sl = slice(None) if max_episodes is None else slice(0, max_episodes)
    with h5py.File(path, "r") as f:
        for key in ("state", "actions", "reward", "filled"):
            if key not in f:
                raise KeyError(f"{path}: missing dataset key {key!r} (ODIS format expected)")
        return {
            "state": f["state"][sl].astype(np.float32),
            "actions": f["actions"][sl][..., 0].astype(np.int64),
            "reward": f["reward"][sl][..., 0].astype(np.float32),
            "filled": f["filled"][sl][..., 0].astype(np.int64),
        }


def record_sim(map_name: str, policy: Callable[[SimEnv], torch.Tensor], episodes: int = 512,
               seed: int = 0, **env_kwargs) -> dict[str, np.ndarray]:
    """Run one episode in each of ``episodes`` parallel envs and record them like ODIS does
    (row T holds the final state; ``filled`` covers the steps and the final row)."""
    env = SimEnv(map_name, num_envs=episodes, seed=seed, **env_kwargs)
    T = env.episode_limit + 1
    _, state, _ = env.reset()
    states, actions, rewards, filled = [state], [], [], []
    ended = torch.zeros(episodes, dtype=torch.bool)
    for _ in range(env.episode_limit):
        a = policy(env)
        out = env.step(a)
        live = ~ended
        actions.append(torch.where(live[:, None], a, 0))
        rewards.append(out.reward * live)
        filled.append(live)
        ended = ended | out.terminated
        env._needs_reset.zero_()  # one episode per env: an ended battle stays frozen, no reset draws
        states.append(torch.where(live[:, None], out.state, 0.0))
        if bool(ended.all()):
            break
    while len(states) < T:
        states.append(torch.zeros_like(state))
    while len(actions) < T:
        actions.append(torch.zeros_like(actions[0]))
        rewards.append(torch.zeros(episodes))
        filled.append(torch.zeros(episodes, dtype=torch.bool))
    filled_t = torch.stack(filled, 1).long()
    lengths = filled_t.sum(1)
    filled_t[torch.arange(episodes), lengths.clamp(max=T - 1)] = 1  # the final row
    return {
        "state": torch.stack(states, 1).numpy(),
        "actions": torch.stack(actions, 1).numpy(),
        "reward": torch.stack(rewards, 1).numpy(),
        "filled": filled_t.numpy(),
    }


def fidelity_stats(d: dict[str, np.ndarray], spec: MapSpec | str) -> dict[str, float]:
    """The calibration statistics of one set of episodes (real or simulated)."""
    spec = get_map(spec) if isinstance(spec, str) else spec
    lay, n, m = spec.layout, spec.n_agents, spec.n_enemies
    g = GEOMETRY[spec.family]
    wh = np.array([g.playable[2] - g.playable[0], g.playable[3] - g.playable[1]], dtype=np.float32)
    st, act, rew, fil = d["state"], d["actions"], d["reward"], d["filled"].astype(bool)
    B, T = st.shape[:2]
    ally = st[..., : lay.state_enemy_offset].reshape(B, T, n, lay.ally_state)
    enemy = st[..., lay.state_enemy_offset: lay.state_last_action_offset].reshape(B, T, m, lay.enemy_state)
    a_hp, e_hp = ally[..., 0], enemy[..., 0]
    a_alive, e_alive = (a_hp > 0) & fil[..., None], (e_hp > 0) & fil[..., None]
    a_xy, e_xy = ally[..., 2:4] * wh, enemy[..., 1:3] * wh
    a_cd = ally[..., 1] * np.array([UNITS[t].max_cooldown for t in spec.ally_unit_types])
    hp_max_a = np.array([UNITS[t].health for t in spec.ally_unit_types])
    hp_max_e = np.array([UNITS[t].health for t in spec.enemy_unit_types])
    out: dict[str, float] = {}

    out["start_ally_x"] = float(ally[:, 0, :, 2].mean())
    out["start_ally_y"] = float(ally[:, 0, :, 3].mean())
    out["start_enemy_x"] = float(enemy[:, 0, :, 1].mean())
    out["start_enemy_y"] = float(enemy[:, 0, :, 2].mean())
    p0 = a_xy[:, 0]
    pd = np.linalg.norm(p0[:, :, None] - p0[:, None], axis=-1)
    out["start_ally_spacing"] = float(pd[:, ~np.eye(n, dtype=bool)].min(-1).mean())

    # distance moved per step, steady state: same move action on this and the previous step
    step_a = np.linalg.norm(np.diff(a_xy, axis=1), axis=-1)  # [B, T-1, n]
    is_move = (act >= 2) & (act <= 5)
    same = is_move[:, 1:-1] & (act[:, 1:-1] == act[:, :-2]) & a_alive[:, 1:-1] & a_alive[:, 2:]
    out["ally_move_per_step"] = float(np.median(step_a[:, 1:][same])) if same.any() else float("nan")

    # enemies far from every ally walk (attack-move); when they stop, they stand at weapon range
    de = np.linalg.norm(e_xy[:, :, :, None] - a_xy[:, :, None], axis=-1)
    de = np.where(a_alive[:, :, None], de, np.inf).min(-1)  # [B, T, m] nearest living ally
    step_e = np.linalg.norm(np.diff(e_xy, axis=1), axis=-1)
    far = e_alive[:, :-1] & e_alive[:, 1:] & (de[:, :-1] > 10)
    out["enemy_move_per_step"] = float(np.median(step_e[far])) if far.any() else float("nan")
    # an enemy that walked and then stood still, while every ally stood still too
    allies_still = (np.where(a_alive[:, 1:], step_a, 0.0) < 0.05).all(-1)[..., None]  # [B, T-1, 1]
    stop = (e_alive[:, 1:-1] & e_alive[:, 2:] & (step_e[:, 1:] < 0.05) & (step_e[:, :-1] > 0.5)
            & allies_still[:, 1:] & allies_still[:, :-1])
    out["enemy_engage_distance"] = float(np.median(de[:, 1:-1][stop])) if stop.any() else float("nan")

    # weapon: a shot between t and t+1 resets the cooldown upwards
    shot = a_cd[:, 1:] > np.maximum(a_cd[:, :-1] - LOOPS_PER_STEP, 0) + 0.05  # [B, T-1, n]
    tgt = (act - N_NO_ATTACK).clip(0, m - 1)
    is_att = act >= N_NO_ATTACK
    tgt_xy = np.take_along_axis(e_xy, tgt[..., None].repeat(2, -1), axis=2)  # [B, T, n, 2]
    tgt_alive_next = np.take_along_axis(e_alive[:, 1:], tgt[:, :-1], axis=2)
    dist_t = np.linalg.norm(tgt_xy - a_xy, axis=-1)
    steady = (is_att[:, 1:-1] & (act[:, 1:-1] == act[:, :-2]) & (dist_t[:, 1:-1] < 5.0)
              & a_alive[:, 1:-1] & a_alive[:, 2:] & tgt_alive_next[:, 1:])
    out["ally_shots_per_step"] = float(shot[:, 1:][steady].mean()) if steady.any() else float("nan")
    cds = a_cd[a_alive]
    out["ally_cooldown_max"] = float(np.percentile(cds[cds > 0], 99.5)) if (cds > 0).any() else float("nan")

    drop_e = (e_hp[:, :-1] - e_hp[:, 1:]) * hp_max_e
    drop_e = drop_e[e_alive[:, :-1] & e_alive[:, 1:] & (drop_e > 0.01)]
    out["damage_per_ally_shot"] = float(np.min(drop_e)) if drop_e.size else float("nan")
    drop_a = (a_hp[:, :-1] - a_hp[:, 1:]) * hp_max_a
    drop_a = drop_a[a_alive[:, :-1] & a_alive[:, 1:] & (drop_a > 0.01)]
    out["damage_per_enemy_shot"] = float(np.min(drop_a)) if drop_a.size else float("nan")
    pos = rew[fil & (rew > 1e-6)]
    out["reward_per_shot"] = float(pos.min()) if pos.size else float("nan")

    # time to kill an enemy: steps from its first damage to its death
    full = e_hp[:, :1] >= 1.0 - 1e-6
    damaged = (e_hp < 1.0 - 1e-6) & fil[..., None]
    first = np.where(damaged.any(1), damaged.argmax(1), -1)
    died = (~e_alive) & fil[..., None] & damaged
    death = np.where(died.any(1), died.argmax(1), -1)
    ok = (first >= 0) & (death >= 0) & full[:, 0]
    out["enemy_time_to_kill"] = float((death - first + 1)[ok].mean()) if ok.any() else float("nan")

    lengths = fil.sum(1) - 1
    out["episode_length"] = float(lengths.mean())
    last = np.clip(lengths, 0, T - 1)
    won = (~e_alive[np.arange(B), last]).all(-1) & a_alive[np.arange(B), last].any(-1)
    out["win_rate"] = float(won.mean())
    out["return"] = float((rew * fil).sum(1).mean())
    return out


def compare(real: dict[str, float], sim: dict[str, float], tol: float = 0.05) -> list[dict]:
    """Rows of the calibration table: value per side, relative error, pass for pinned rows."""
    rows = []
    for name, pinned, unit in ROWS:
        r, s = real[name], sim[name]
        scale = max(abs(r), 1e-3 if "start" not in name else 0.01)
        err = abs(s - r) / scale
        rows.append({"stat": name, "unit": unit, "real": r, "sim": s, "rel_err": err, "pinned": pinned,
                     "ok": (err <= tol) if pinned else None})
    return rows


# ----------------------------------------------------------------------------- trajectories
# Action kinds of SMAC's action ids, for the "recorded action unavailable in the sim" shares.
KINDS = ("noop", "stop", "move", "attack")


def _action_kind(a: np.ndarray) -> np.ndarray:
    return np.where(a >= N_NO_ATTACK, 3, np.where(a >= 2, 2, a))


class _Units:
    """Health fractions, alive flags, map positions and ally cooldowns of recorded states."""

    def __init__(self, state: np.ndarray, spec: MapSpec):
        lay, n, m = spec.layout, spec.n_agents, spec.n_enemies
        g = GEOMETRY[spec.family]
        wh = np.array([g.playable[2] - g.playable[0], g.playable[3] - g.playable[1]], dtype=np.float32)
        centre = np.array(g.map_size, dtype=np.float32) / 2
        lead = state.shape[:-1]
        ally = state[..., : lay.state_enemy_offset].reshape(*lead, n, lay.ally_state)
        enemy = state[..., lay.state_enemy_offset: lay.state_last_action_offset].reshape(*lead, m, lay.enemy_state)
        self.hp = np.concatenate([ally[..., 0], enemy[..., 0]], -1)  # [..., U] fraction
        self.alive = self.hp > 0
        self.xy = np.concatenate([ally[..., 2:4], enemy[..., 1:3]], -2) * wh + centre  # [..., U, 2]
        self.cd = ally[..., 1] * np.array([UNITS[t].max_cooldown for t in spec.ally_unit_types])  # [..., n] loops


def _hold_final(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """x [B, T, ...] with every row after an episode's final row (index ``lengths``) replaced by it."""
    T = x.shape[1]
    idx = np.minimum(np.arange(T)[None], lengths[:, None])  # [B, T]
    return np.take_along_axis(x, idx.reshape(*idx.shape, *([1] * (x.ndim - 2))), axis=1)


def _per_step(units: _Units, running: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Per-step means of one side's recording: units [B, T, U] (final state held), running [B, T]."""
    hp, alive, xy = units.hp, units.alive, units.xy
    out = {"ally_health": hp[..., :n].mean((0, 2)), "enemy_health": hp[..., n:].mean((0, 2)),
           "ally_alive": alive[..., :n].sum(-1).mean(0), "enemy_alive": alive[..., n:].sum(-1).mean(0)}
    d = np.linalg.norm(xy[..., :n, None, :] - xy[..., None, n:, :], axis=-1)  # [B, T, n, m]
    both = alive[..., :n, None] & alive[..., None, n:]
    nearest = np.where(both, d, np.inf).min((-1, -2))
    ok = running & np.isfinite(nearest)

    def mean(x: np.ndarray, w: np.ndarray, axes) -> np.ndarray:  # NaN where nothing is left to average
        cnt = w.sum(axes)
        return np.where(cnt > 0, np.where(w, x, 0).sum(axes) / np.maximum(cnt, 1), np.nan)

    out["nearest_distance"] = mean(nearest, ok, 0)
    for side, sl in (("ally", slice(0, n)), ("enemy", slice(n, None))):
        w = alive[..., sl] & running[..., None]
        for k, name in enumerate("xy"):
            out[f"{side}_{name}"] = mean(xy[..., sl, k], w, (0, 2))
    return out


def unavailable_floor(real: dict[str, np.ndarray], spec: MapSpec | str = "3m", steps: int = 13) -> np.ndarray:
    """SC2's own floor for the open-loop "recorded attacks unavailable" share, per step [steps].

    Episodes with the same recorded actions up to step t are the same experiment in SC2, yet
    they end up in different positions (SC2 resolves collisions differently from run to run).
    A deterministic simulator can produce only one outcome per action history; the best single
    outcome is about the group's medoid (the episode nearest to the others in position). The
    share of the group's recorded attack orders whose target stands beyond SMAC's range in the
    medoid's positions is what even that simulator would count as unavailable. Histories seen
    once are skipped; NaN where no group has two episodes.
    """
    spec = get_map(spec) if isinstance(spec, str) else spec
    n = spec.n_agents
    fil = real["filled"].astype(bool)
    lengths = fil.sum(1) - 1
    u = _Units(_hold_final(real["state"], lengths), spec)
    act = real["actions"]
    out = np.full(steps, np.nan)
    for t in range(min(steps, act.shape[1])):
        groups: dict[bytes, list[int]] = {}
        for b in np.nonzero(lengths > t)[0]:
            groups.setdefault(act[b, :t].tobytes(), []).append(int(b))
        far = total = 0
        for g in (g for g in groups.values() if len(g) > 1):
            xy = u.xy[g, t]  # [k, U, 2]
            spread = np.linalg.norm((xy[:, None] - xy[None, :]).reshape(len(g), len(g), -1), axis=-1)
            med = xy[spread.sum(1).argmin()]
            a = act[g, t]  # [k, n]
            attack = (a >= N_NO_ATTACK) & u.alive[g, t, :n]
            target = n + np.clip(a - N_NO_ATTACK, 0, spec.n_enemies - 1)
            dist = np.linalg.norm(med[target] - med[None, :n], axis=-1)  # [k, n]
            total += int(attack.sum())
            far += int((attack & (dist > SHOOT_RANGE)).sum())
        if total:
            out[t] = far / total
    return out


def _match_enemies(env: SimEnv, real_xy0: np.ndarray) -> None:
    """Reorder the sim's fresh enemies so that enemy j stands where the data's enemy j started
    (SMAC's enemy ids are unordered; the start positions agree to 1e-4)."""
    n = env.n_agents
    sim_xy = env.pos[:, n:].clone()  # [E, m, 2]
    d = torch.cdist(torch.as_tensor(real_xy0, dtype=sim_xy.dtype), sim_xy)  # [E, m(real), m(sim)]
    f = env._f[:, :, n:].clone()  # [E, rows, m]: position, goal, creation order, ... travel together
    env._f[:, :, n:] = f.gather(2, d.argmin(-1)[:, None].expand(-1, f.shape[1], -1))


# Why a recorded attack order is unavailable in the sim (SMAC: the attacker lives, its target
# lives and stands within the shooting range, centre to centre).
WHY_UNAVAILABLE = ("attacker_dead", "target_dead", "out_of_range")


def _why_unavailable(env: SimEnv, actions: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, float]:
    """Counts of the unavailable recorded attacks ``bad`` [E, n] by ``WHY_UNAVAILABLE``, and
    the median distance beyond SMAC's shooting range of those out of range (NaN if none)."""
    n = env.n_agents
    alive = (env.health > 0).cpu().numpy()
    tgt = n + np.clip(actions - N_NO_ATTACK, 0, env.n_enemies - 1)  # unit index of the target
    xy = env.pos.cpu().numpy()
    dist = np.linalg.norm(np.take_along_axis(xy, tgt[..., None], 1) - xy[:, :n], axis=-1)
    dead_a = bad & ~alive[:, :n]
    dead_t = bad & alive[:, :n] & ~np.take_along_axis(alive, tgt, 1)
    far = bad & ~dead_a & ~dead_t
    excess = float(np.median(dist[far] - SHOOT_RANGE)) if far.any() else float("nan")
    return np.array([dead_a.sum(), dead_t.sum(), far.sum()]), excess


def replay_open_loop(real: dict[str, np.ndarray], spec: MapSpec | str = "3m", steps: int = 31,
                     seed: int = 0, execute_out_of_range: bool = False,
                     **env_kwargs) -> dict[str, dict[str, np.ndarray]]:
    """Replay every real episode's recorded actions open-loop in the sim (one env each).

    A recorded action the sim does not allow is replaced by stop (no-op for a unit dead in
    the sim) and counted (issue 14's protocol). With ``execute_out_of_range`` a recorded attack
    whose attacker and target both live in the sim is carried out even where the target
    stands beyond SMAC's range there: the unit walks into weapon range and fires, as SC2 does
    with an attack order. It is still counted as unavailable; the trajectory then follows the
    recorded orders instead of the substituted stops. Returns ``{"real": stats, "sim": stats}``, each a dict of [steps]
    arrays: mean health fraction and living units per side (an ended episode keeps its final
    state), nearest living ally-enemy distance and mean x, y (map units) of living units per
    side (episodes still running on that side), and ``unavail_<kind>``: the share of recorded
    actions of each kind (noop, stop, move, attack) unavailable in the sim (sim only), and
    why a recorded attack was: ``unavail_attack_<reason>`` for ``WHY_UNAVAILABLE`` (the
    attacker is dead in the sim, its target is, or the target stands beyond SMAC's shooting
    range), shares of all recorded attacks that sum to ``unavail_attack``; and
    ``excess_range``: the median distance beyond the range of those out of range.
    """
    spec = get_map(spec) if isinstance(spec, str) else spec
    n = spec.n_agents
    fil = real["filled"].astype(bool)
    B, T = fil.shape
    steps = min(steps, T)
    lengths = fil.sum(1) - 1  # index of the final row
    real_u = _Units(_hold_final(real["state"], lengths)[:, :steps], spec)
    act = real["actions"]
    env = SimEnv(spec, num_envs=B, seed=seed, validate_actions=False, **env_kwargs)
    env.reset()
    _match_enemies(env, real_u.xy[:, 0, n:])
    env._observe()
    states = [env.get_state().clone()]
    sim_running = np.ones((B, steps), dtype=bool)
    ended = torch.zeros(B, dtype=torch.bool)
    unavail = np.zeros((len(KINDS), steps))
    counted = np.zeros((len(KINDS), steps))
    why = np.zeros((len(WHY_UNAVAILABLE), steps))
    excess = np.full(steps, np.nan)
    attack0 = KINDS.index("attack")
    for t in range(steps - 1):
        avail = env.get_avail_actions()
        a = torch.as_tensor(act[:, t])
        ok = avail.gather(2, a[..., None]).squeeze(-1)
        live_a = avail[..., 1]  # stop is available iff the agent lives
        run_it = ok
        if execute_out_of_range:  # an attack order on a living target, however far
            alive = env.health > 0
            target_alive = alive[:, n:].gather(1, (a - N_NO_ATTACK).clamp(0, env.n_enemies - 1))
            run_it = ok | ((a >= N_NO_ATTACK) & alive[:, :n] & target_alive)
        a = torch.where(run_it, a, live_a.long())  # stop, or no-op for the dead
        both = torch.as_tensor(t < lengths) & ~ended  # a transition recorded on both sides
        kind = _action_kind(act[:, t])
        for k in range(len(KINDS)):
            sel = both.numpy()[:, None] & (kind == k)
            counted[k, t] = sel.sum()
            unavail[k, t] = (sel & ~ok.numpy()).sum()
        why[:, t], excess[t] = _why_unavailable(env, act[:, t], both.numpy()[:, None] & (kind == attack0) & ~ok.numpy())
        out = env.step(a)
        env.t.zero_()  # the data decides when episodes end; the sim only stops on its own battle end
        states.append(torch.where(ended[:, None], states[-1], out.state))
        sim_running[:, t + 1] = ~ended.numpy()  # the final row of an episode counts, as in the data
        ended |= out.terminated
        env._needs_reset.zero_()  # keep the ended battle frozen instead of auto-resetting
    sim_u = _Units(torch.stack(states, 1).numpy(), spec)
    real_running = np.arange(steps)[None] <= lengths[:, None]
    res_real = _per_step(real_u, real_running, n)
    res_sim = _per_step(sim_u, sim_running, n)
    with np.errstate(invalid="ignore"):
        for k, name in enumerate(KINDS):
            res_sim[f"unavail_{name}"] = np.where(counted[k] > 0, unavail[k] / np.maximum(counted[k], 1), np.nan)
            res_sim[f"count_{name}"] = counted[k]
        for r, name in enumerate(WHY_UNAVAILABLE):
            res_sim[f"unavail_attack_{name}"] = np.where(counted[attack0] > 0, why[r] / np.maximum(counted[attack0], 1), np.nan)
    res_sim["excess_range"] = excess
    return {"real": res_real, "sim": res_sim}


def _impose(env: SimEnv, u: _Units, t: int, spec: MapSpec) -> None:
    """Set the sim's observable unit state to the recorded s_t, keeping its own latent state.

    SMAC's state holds positions, health and the allies' weapon cooldowns (0 once ready). It
    lacks the enemies' cooldowns, every unit's reaction delay, the enemies' targets and how
    long an ally's weapon has been ready: those stay as the sim's own mechanics evolved them
    while being driven by the recorded states of the preceding steps (a filter), so they are
    inferred from the history rather than guessed per step.
    """
    n = spec.n_agents
    hp_max = env.hp_max.cpu().numpy()
    env.health.copy_(torch.as_tensor(u.hp[:, t] * hp_max, dtype=torch.float32))
    alive = torch.as_tensor(u.alive[:, t])
    xy = torch.as_tensor(u.xy[:, t], dtype=torch.float32)
    env.pos.copy_(torch.where(alive[..., None], xy, env.pos))
    cd = torch.as_tensor(u.cd[:, t], dtype=torch.float32)
    env.cooldown[:, :n] = torch.where(cd > 0, cd, env.cooldown[:, :n].clamp(max=0.0))


def _hp_loss(hp0: np.ndarray, hp1: np.ndarray, hp_max: np.ndarray) -> np.ndarray:
    return np.clip(hp0 - hp1, 0, None) * hp_max


def _sidestep_side(xyp: np.ndarray, xy0: np.ndarray, xy1r: np.ndarray, xy1s: np.ndarray,
                   alive: np.ndarray, n: int) -> tuple[float, int]:
    """Of the units (rows of [N, U, 2] positions at t-1, t and t+1 real / sim) that went round
    a unit of their own side in front of them (within 0.9, ahead along the way they walked in
    the previous step; a move of more than 0.3 across the line to it), the share the sim moved
    to the same side."""
    vr, vs, vp = xy1r - xy0, xy1s - xy0, xy0 - xyp  # [N, U, 2]
    rel = xy0[:, None, :, :] - xy0[:, :, None, :]  # [N, i, j, 2]: from i to j
    dist = np.linalg.norm(rel, axis=-1)
    side = np.arange(xy0.shape[1]) >= n
    friend = (side[:, None] == side[None, :]) & ~np.eye(len(side), dtype=bool)
    speed = np.linalg.norm(vp, axis=-1)
    ahead = (rel * vp[:, :, None, :]).sum(-1) > 0.7 * dist * speed[:, :, None]
    cand = friend & ahead & (dist < 0.9) & (dist > 0) & alive[:, :, None] & alive[:, None, :]
    cand &= dist == np.where(cand, dist, np.inf).min(-1, keepdims=True)  # the nearest such unit
    perp = np.stack([-rel[..., 1], rel[..., 0]], -1) / np.maximum(dist, 1e-9)[..., None]
    lat_r = (vr[:, :, None, :] * perp).sum(-1)
    lat_s = (vs[:, :, None, :] * perp).sum(-1)
    sel = cand & (np.abs(lat_r) > 0.3)
    if not sel.any():
        return float("nan"), 0
    return float((np.sign(lat_s[sel]) == np.sign(lat_r[sel])).mean()), int(sel.sum())


def teacher_forced(real: dict[str, np.ndarray], spec: MapSpec | str = "3m", seed: int = 0,
                   **env_kwargs) -> dict[str, float]:
    """One-step prediction: the sim is set to every recorded s_t (see ``_impose``), steps once
    with the recorded a_t, and its s_{t+1} is compared with the recorded one.

    Returns per-mechanic errors over all recorded transitions:
    ``*_damage_real/sim``: mean health taken per step from the enemies (dealt by allies) and
    from the allies; ``*_same_unit``: of the health lost on both sides of the comparison,
    the share that fell on the same unit (sum over units of min(real, sim) loss divided by
    the smaller total), i.e. target choice given that damage happens; ``*_overlap``: the
    same over the real loss only (timing and target); ``move_err_<kind>``: mean distance
    between the sim's and SC2's displacement of living allies by recorded order kind, and
    ``move_err_enemy``; ``deaths_real/sim`` per step and ``deaths_same``: share of real
    deaths the sim reproduces on the same unit; ``ally_shots_real/sim``: shots per living
    ally per step (from the cooldown reset), ``ally_shot_agree``: the share of living-ally
    steps in which the sim fires exactly when SC2 did; ``enemy_focus_real/sim``: of the steps in which
    the enemies land 2+ hits while every ally lives, the share with all hits on one ally;
    ``sidestep_same_side``: of the units that in SC2 went round a unit of their own side
    standing in front of them (within 0.9, stepping more than 0.3 across the line to it), the
    share the sim sends round the same side (``sidestep_count`` of them).
    """
    spec = get_map(spec) if isinstance(spec, str) else spec
    n = spec.n_agents
    fil = real["filled"].astype(bool)
    B, T = fil.shape
    lengths = fil.sum(1) - 1
    u = _Units(_hold_final(real["state"], lengths), spec)
    act = real["actions"]
    env = SimEnv(spec, num_envs=B, seed=seed, validate_actions=False, **env_kwargs)
    env.reset()
    _match_enemies(env, u.xy[:, 0, n:])
    hp_max = env.hp_max.cpu().numpy()
    sim_hp, sim_xy, sim_cd = [], [], []
    for t in range(T - 1):
        _impose(env, u, t, spec)
        env._observe()
        avail = env.get_avail_actions()
        a = torch.as_tensor(act[:, t])
        ok = avail.gather(2, a[..., None]).squeeze(-1)
        env.step(torch.where(ok, a, avail[..., 1].long()))
        env.t.zero_()
        env._needs_reset.zero_()
        sim_hp.append(env.health.numpy() / hp_max)
        sim_xy.append(env.pos.numpy().copy())
        sim_cd.append(env.cooldown[:, :n].clamp(min=0).numpy())
    valid = np.arange(T - 1)[None] < lengths[:, None]  # [B, T-1] recorded transitions
    hp0, hp1r, hp1s = u.hp[:, :-1][valid], u.hp[:, 1:][valid], np.stack(sim_hp, 1)[valid]
    xy0, xy1r, xy1s = u.xy[:, :-1][valid], u.xy[:, 1:][valid], np.stack(sim_xy, 1)[valid]
    a_t = act[:, :-1][valid]
    out: dict[str, float] = {"transitions": int(valid.sum())}
    for side, sl in (("enemy", slice(n, None)), ("ally", slice(0, n))):
        lr, ls = _hp_loss(hp0[:, sl], hp1r[:, sl], hp_max[sl]), _hp_loss(hp0[:, sl], hp1s[:, sl], hp_max[sl])
        tr, ts = lr.sum(1), ls.sum(1)
        out[f"{side}_damage_real"], out[f"{side}_damage_sim"] = float(tr.mean()), float(ts.mean())
        both = (tr > 0) & (ts > 0)
        m = np.minimum(lr, ls).sum(1)
        out[f"{side}_same_unit"] = float(m[both].sum() / np.minimum(tr, ts)[both].sum()) if both.any() else float("nan")
        out[f"{side}_overlap"] = float(m.sum() / max(tr.sum(), 1e-9))
        out[f"{side}_damage_steps_real"], out[f"{side}_damage_steps_sim"] = float((tr > 0).mean()), float((ts > 0).mean())
    # focus: of the steps in which the enemies land 2 or more hits while every ally lives, the
    # share with all of them on one ally (hits counted from the health lost per enemy shot)
    shot = UNITS[spec.enemy_unit_types[0]].damage
    all_alive = (hp0[:, :n] > 0).all(1)
    for tag, hp1 in (("real", hp1r), ("sim", hp1s)):
        hits = np.ceil(_hp_loss(hp0[:, :n], hp1[:, :n], hp_max[:n]) / shot - 1e-3)
        multi = all_alive & (hits.sum(1) >= 2)
        out[f"enemy_focus_{tag}"] = float((hits.max(1) == hits.sum(1))[multi].mean()) if multi.any() else float("nan")
    alive0 = hp0 > 0
    dr, ds = hp1r <= 0, hp1s <= 0
    out["deaths_real"] = float((alive0 & dr).sum(1).mean())
    out["deaths_sim"] = float((alive0 & ds).sum(1).mean())
    out["deaths_same"] = float((alive0 & dr & ds).sum() / max((alive0 & dr).sum(), 1))
    both_alive = alive0 & (hp1r > 0) & (hp1s > 0)
    err = np.linalg.norm(xy1s - xy1r, axis=-1)  # same start, so this is the displacement error
    kind = _action_kind(a_t)
    for k, name in enumerate(KINDS[1:], 1):
        sel = both_alive[:, :n] & (kind == k)
        out[f"move_err_{name}"] = float(err[:, :n][sel].mean()) if sel.any() else float("nan")
    out["move_err_enemy"] = float(err[:, n:][both_alive[:, n:]].mean())
    disp_r = np.linalg.norm(xy1r - xy0, axis=-1)[:, n:][both_alive[:, n:]]
    disp_s = np.linalg.norm(xy1s - xy0, axis=-1)[:, n:][both_alive[:, n:]]
    out["enemy_move_real"], out["enemy_move_sim"] = float(disp_r.mean()), float(disp_s.mean())
    xyp = np.concatenate([u.xy[:, :1], u.xy[:, :-2]], 1)[valid]  # s_{t-1} (s_0 at t = 0: no heading)
    out["sidestep_same_side"], out["sidestep_count"] = _sidestep_side(xyp, xy0, xy1r, xy1s, both_alive, n)
    cd0, cd1r, cd1s = u.cd[:, :-1][valid], u.cd[:, 1:][valid], np.stack(sim_cd, 1)[valid]
    live_a = alive0[:, :n] & (hp1r[:, :n] > 0)
    shot_r = cd1r > np.maximum(cd0 - LOOPS_PER_STEP, 0) + 0.05
    shot_s = cd1s > np.maximum(cd0 - LOOPS_PER_STEP, 0) + 0.05
    out["ally_shots_real"], out["ally_shots_sim"] = float(shot_r[live_a].mean()), float(shot_s[live_a].mean())
    out["ally_shot_agree"] = float((shot_r == shot_s)[live_a].mean())
    return out
