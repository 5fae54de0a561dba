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
from hygen.envs.sim_units import GEOMETRY, LOOPS_PER_STEP, UNITS

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
