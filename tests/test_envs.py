"""The built-in simulator: SMAC interface, layouts, rules, auto-reset, scripted policies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hygen.envs as he
from hygen.envs import CALIBRATED_GAME, LEGACY_GAME, InvalidActionError, MapSpec, SimEnv, get_map
from hygen.envs.scripted import focus_fire_actions, nearest_enemy_actions, random_actions
from hygen.envs.sim import ORDER_ENGAGED
from hygen.envs.sim_units import COOLDOWN_JITTER, UNITS

SHOT_3M = 6 * 20 / 365  # one marine shot on 3m


def run_episodes(env: SimEnv, policy, episodes: int | None = None) -> dict[str, torch.Tensor]:
    """One episode per env; returns won [E], lost [E] (every ally dead, an enemy alive), return [E],
    length [E]. Neither won nor lost: a draw (both sides dead) or the time limit."""
    E = env.num_envs
    env.reset()
    ret, won = torch.zeros(E), torch.zeros(E, dtype=torch.bool)
    lost = torch.zeros(E, dtype=torch.bool)
    length = torch.zeros(E, dtype=torch.long)
    ended = torch.zeros(E, dtype=torch.bool)
    for t in range(env.episode_limit):
        out = env.step(policy(env))
        live = ~ended
        ret += out.reward * live
        newly = out.terminated & live
        won |= out.info["battle_won"] & newly
        lost |= newly & (out.info["dead_allies"] == env.n_agents) & (out.info["dead_enemies"] < env.n_enemies)
        length[newly] = t + 1
        ended |= out.terminated
        if bool(ended.all()):
            break
    return {"won": won, "lost": lost, "return": ret, "length": length}


@pytest.mark.parametrize("name", ["3m", "5m_vs_6m", "3s5z", "13m_vs_15m", "1s3z"])
def test_shapes_and_env_info(name):
    env = he.make(name, num_envs=4, seed=0)
    spec = get_map(name)
    assert env.env_info == spec.env_info
    obs, state, avail = env.reset()
    n, A = spec.n_agents, spec.n_actions
    assert obs.shape == (4, n, spec.layout.obs_shape) and obs.dtype == torch.float32
    assert state.shape == (4, spec.layout.state_shape) and state.dtype == torch.float32
    assert avail.shape == (4, n, A) and avail.dtype == torch.bool
    out = env.step(random_actions(avail))
    assert out.reward.shape == (4,) and out.reward.dtype == torch.float32
    assert out.terminated.dtype == torch.bool and out.reset_mask.dtype == torch.bool
    assert set(out.info) == {"battle_won", "dead_allies", "dead_enemies", "episode_limit"}
    assert torch.equal(out.obs, env.get_obs()) and torch.equal(out.state, env.get_state())


def test_known_sizes():
    assert get_map("3m").env_info["obs_shape"] == 30 and get_map("3m").env_info["state_shape"] == 48
    assert he.make("3s5z").reset()[0].shape[-1] == 128
    assert he.make("3s5z").reset()[1].shape[-1] == 216


def test_unknown_backend_and_map():
    with pytest.raises(ValueError, match="backend"):
        he.make("3m", backend="nope")
    with pytest.raises(KeyError, match="known maps"):
        he.make("99m")


def test_initial_observation_matches_smac_3m():
    """t=0 on 3m: enemies out of sight (zeros), allies 0.69 apart, all moves available."""
    obs, state, avail = he.make("3m", num_envs=2, seed=3).reset()
    # agent 0's row recorded by SMAC on StarCraft II (real dataset, episode 0)
    real = torch.tensor([1, 1, 1, 1] + [0] * 15 + [1, 0.0765, 0, 0.0765, 1, 1, 0.1082, 0.0765, 0.0765, 1, 1])
    assert torch.allclose(obs[0, 0], real, atol=1e-4)
    assert torch.equal(avail[:, :, 0], torch.zeros(2, 3, dtype=torch.bool))  # no no-op for the living
    assert avail[:, :, 1:6].all() and not avail[:, :, 6:].any()  # nothing within 6 yet
    assert torch.all(state[:, 39:] == 0)  # no last actions at t=0


def test_avail_rules_and_dead_agents():
    env = he.make("3m", num_envs=1, seed=0)
    env.reset()
    n = env.n_agents
    # put agent 0 next to enemy 0 and kill agent 2 by hand
    env.pos[0, 0] = torch.tensor([16.0, 16.0])
    env.pos[0, n + 0] = torch.tensor([21.9, 16.0])  # 5.9 away: attack available (<= 6)
    env.pos[0, n + 1] = torch.tensor([16.0, 22.1])  # 6.1 away: not available, but visible (< 9)
    env.health[0, 2] = 0
    env._observe()
    obs, state, avail = env.get_obs(), env.get_state(), env.get_avail_actions()
    assert avail[0, 0, 6] and not avail[0, 0, 7]
    assert avail[0, 2].tolist() == [True] + [False] * 8  # dead: only no-op
    assert torch.all(obs[0, 2] == 0)  # dead agent sees nothing
    assert torch.all(state[0, 8:12] == 0)  # dead ally's state block is zeros
    e0 = obs[0, 0, 4:9]
    assert e0[0] == 1 and abs(float(e0[1]) - 5.9 / 9) < 1e-5 and abs(float(e0[2]) - 5.9 / 9) < 1e-5
    e1 = obs[0, 0, 9:14]
    assert e1[0] == 0 and abs(float(e1[1]) - 6.1 / 9) < 1e-5 and abs(float(e1[3]) - 6.1 / 9) < 1e-5
    # agent 0's ally block for agent 2 (dead) is zeros
    assert torch.all(obs[0, 0, 24:29] == 0)


def test_move_unavailable_at_map_edge():
    env = he.make("3m", num_envs=1)
    env.reset()
    env.pos[0, 0] = torch.tensor([16.0, 7.8])  # int(7.8 - 1) = 6 is not pathable (real 3m data)
    env.pos[0, 1] = torch.tensor([29.2, 16.0])  # int(29.2 + 1) = 30 is off the pathable area
    env._observe()
    av = env.get_avail_actions()[0]
    assert av[0, 2:6].tolist() == [True, False, True, True]
    assert av[1, 2:6].tolist() == [True, True, False, True]


def test_move_distance_per_step():
    env = he.make("3m", num_envs=1)
    env.reset()
    before = env.pos[0, 0].clone()
    env.step(torch.tensor([[3, 1, 1]]))  # agent 0 south
    moved = before - env.pos[0, 0]
    assert abs(float(moved[1]) - 3.15 / 22.4 * 8) < 1e-4 and abs(float(moved[0])) < 1e-4


def test_last_action_in_state():
    env = he.make("3m", num_envs=1)
    env.reset()
    out = env.step(torch.tensor([[2, 3, 4]]))
    last = out.state[0, 21:].view(3, 9)
    assert last.argmax(1).tolist() == [2, 3, 4] and float(last.sum()) == 3


def test_invalid_action_raises():
    env = he.make("3m", num_envs=2)
    env.reset()
    with pytest.raises(InvalidActionError, match="not available"):
        env.step(torch.tensor([[1, 1, 1], [0, 1, 1]]))  # no-op for a living agent
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.ones(2, 2, dtype=torch.long))
    with pytest.raises(InvalidActionError, match=r"in \[0, 9\)"):
        env.step(torch.tensor([[1, 1, 1], [1, 1, 9]]))  # 3m has 9 actions
    env.step(torch.ones(2, 3, dtype=torch.long))  # a failed check leaves the env usable


def test_invalid_actions_of_just_reset_envs_are_ignored():
    """An env that auto-resets on this call ignores its actions (they were chosen for the old episode)."""
    env = SimEnv(get_map("3m"), num_envs=2)
    env.reset()
    env._needs_reset[0] = True
    out = env.step(torch.tensor([[0, 0, 0], [1, 1, 1]]))  # no-op is unavailable to living agents
    assert out.reset_mask.tolist() == [True, False] and out.reward[0] == 0


def test_reward_quantised_and_perfect_win_returns_20():
    env = he.make("3m", num_envs=64, seed=1)
    env.reset()
    ret, ended = torch.zeros(64), torch.zeros(64, dtype=torch.bool)
    for _ in range(env.episode_limit):
        out = env.step(focus_fire_actions(env))
        r = out.reward[~ended] * 365 / 20  # SMAC units: damage + 10 per kill + 200 win
        # whole hit points: 6 per shot (a kill shot takes the 3 or 9 left), 10 per kill, 200 win
        assert torch.allclose(r, r.round(), atol=1e-3)
        ret += out.reward * ~ended
        ended |= out.terminated
        if bool(ended.all()):
            break
    won = run_episodes(he.make("3m", num_envs=64, seed=1), focus_fire_actions)["won"]
    # a win takes every enemy's 45 hp, 3 kills and the bonus: exactly max_reward, i.e. 20
    assert won.any()
    assert torch.allclose(ret[won], torch.full_like(ret[won], 20.0), atol=1e-3)


def test_auto_reset_semantics():
    env = he.make("3m", num_envs=8, seed=0)
    first_obs, first_state, _ = env.reset()
    first_obs, first_state = first_obs.clone(), first_state.clone()
    ended_once = torch.zeros(8, dtype=torch.bool)
    prev_term = torch.zeros(8, dtype=torch.bool)
    for _ in range(2 * env.episode_limit):
        out = env.step(random_actions(env.get_avail_actions()))
        assert torch.equal(out.reset_mask, prev_term)  # reset exactly the envs that ended last call
        r = out.reset_mask
        if r.any():
            assert torch.all(out.reward[r] == 0) and not out.terminated[r].any()
            # first observation of a new episode (allies always start the same way)
            assert torch.allclose(out.obs[r], first_obs[r])
            assert torch.all(out.state[r, 21:] == 0)
        ended_once |= out.terminated
        prev_term = out.terminated.clone()
    assert ended_once.all()


def test_timeout_counts_as_terminated():
    spec = get_map("3m")
    short = MapSpec("3m_short", spec.allies, spec.enemies, 3, spec.family)
    env = SimEnv(short, num_envs=2)
    env.reset()
    stop = torch.ones(2, 3, dtype=torch.long)
    for _ in range(2):
        assert not env.step(stop).terminated.any()
    out = env.step(stop)
    assert out.terminated.all() and out.info["episode_limit"].all() and not out.info["battle_won"].any()


def test_seed_determinism():
    def trace(seed):
        env = he.make("2s3z", num_envs=16, seed=seed)
        env.reset()
        g = torch.Generator().manual_seed(0)
        rs = [env.step(random_actions(env.get_avail_actions(), g)).reward for _ in range(40)]
        return torch.stack(rs), env.get_state()

    a, b, c = trace(0), trace(0), trace(1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_unit_type_one_hot_quirk_on_stalker_zealot_maps():
    env = he.make("1s3z", num_envs=1)
    _, state, _ = env.reset()
    lay = env.map.layout
    ally = state[0, : lay.state_enemy_offset].view(4, lay.ally_state)
    enemy = state[0, lay.state_enemy_offset: lay.state_last_action_offset].view(4, lay.enemy_state)
    # allies [stalker, zealot]; enemies [zealot, stalker]; agent 0 is the stalker
    assert ally[:, -2:].tolist() == [[1, 0], [0, 1], [0, 1], [0, 1]]
    assert enemy[:, -2:].tolist() == [[0, 1], [1, 0], [1, 0], [1, 0]]
    assert torch.all(ally[:, 4] == 1) and torch.all(enemy[:, 3] == 1)  # full shields


def test_shields_absorb_first_and_regenerate():
    env = he.make("1s3z", num_envs=1)
    env.reset()
    n = env.n_agents
    env.pos[0, n:] = torch.tensor([29.0, 24.0])  # enemies far away and out of the way
    env.order[0, n:] = 0
    env.shield[0, 0] = 10.0
    env.since_hit[0, 0] = 10 * 22.4  # quiet for 10 s: regenerating
    env.step(torch.ones(1, n, dtype=torch.long))
    assert abs(float(env.shield[0, 0]) - (10 + 2 / 22.4 * 8)) < 1e-3


def test_scripted_policies_win_rates():
    r3 = run_episodes(he.make("3m", num_envs=128, seed=0), focus_fire_actions)["won"].float().mean()
    r56 = run_episodes(he.make("5m_vs_6m", num_envs=128, seed=0), focus_fire_actions)["won"].float().mean()
    rnd = run_episodes(he.make("3m", num_envs=128, seed=0), lambda e: random_actions(e.get_avail_actions()))
    assert r3 >= 0.65, r3  # 0.73 in the calibrated game (legacy game 0.875; SC2's QMIX medium data: 0.54)
    assert r56 < r3
    assert rnd["won"].float().mean() <= 0.05
    # epsilon makes the heuristic beatable (dataset diversity)
    g = torch.Generator().manual_seed(0)
    noisy = run_episodes(he.make("3m", num_envs=128, seed=0), lambda e: focus_fire_actions(e, 0.5, g))["won"]
    assert noisy.float().mean() < r3


_SYMMETRY_GAMES = {"legacy": LEGACY_GAME, "legacy + collisions": {**LEGACY_GAME, "collisions": True},
                   "calibrated": CALIBRATED_GAME}


@pytest.mark.parametrize("game, name", [
    *((g, m) for g in _SYMMETRY_GAMES for m in ("3m", "5m", "2s3z")),
    *(pytest.param(g, "3s5z", marks=pytest.mark.slow) for g in _SYMMETRY_GAMES)])
def test_symmetric_maps_are_symmetric(game, name):
    """Both armies under the same built-in AI from mirrored formations win equally often.
    With collisions units pass on their right (SC2's 3m data), which a mirror turns into the
    left: the symmetric start is then the allies' formation turned 180 degrees (mirrored, the
    ally side won 2s3z 100 % and 3s5z 0 %; docs/simulator.md). The rest are draws: both sides'
    last units die in the same 4-loop chunk (calibrated 3m: 39-46 % at seeds 1-3, so the allies
    win only 27-32 %; docs/simulator.md, "Draws"). Measured at seeds 1-3 over all games and
    maps: ally minus enemy wins -0.13 to +0.16; at 256 battles the difference's standard error
    is about 0.06, and the bound is 3 of them."""
    kw = _SYMMETRY_GAMES[game]
    env = SimEnv(name, num_envs=256, seed=1, ally_ai=True, mirror_spawn="rotate" if kw["collisions"] else True,
                 validate_actions=False, **kw)
    res = run_episodes(env, lambda e: torch.zeros(e.num_envs, e.n_agents, dtype=torch.long))
    ally, enemy = float(res["won"].float().mean()), float(res["lost"].float().mean())
    assert abs(ally - enemy) <= 0.18, (ally, enemy)
    assert ally + enemy >= 0.5, (ally, enemy)  # most fights are decided (calibrated 3m: 0.54-0.61)


def test_rotated_spawn_is_the_point_reflection_of_the_allies():
    env = SimEnv("2s3z", num_envs=1, seed=0, mirror_spawn="rotate")
    env.reset()
    n, p = env.n_agents, env.pos[0]

    def rows(x):  # enemy ids are shuffled within a type: compare per type, as sorted point sets
        return x[(x[:, 0] * 1000 + x[:, 1]).argsort()]

    for t in set(env.map.ally_unit_types):
        a = torch.stack([p[i] for i in range(n) if env.map.ally_unit_types[i] == t])
        e = torch.stack([p[n + j] for j in range(env.n_enemies) if env.map.enemy_unit_types[j] == t])
        assert torch.allclose(rows(32.0 - a), rows(e)), (t, a, e)
    with pytest.raises(ValueError, match="mirror_spawn"):
        SimEnv("2s3z", mirror_spawn="flip")
    with pytest.warns(UserWarning, match="rotate"):  # a mirror is no symmetry of the chiral steering
        SimEnv("2s3z", mirror_spawn=True, collisions=True)


def test_nearest_enemy_policy_runs_on_every_family():
    for name in ["8m", "2s4z"]:
        res = run_episodes(he.make(name, num_envs=8, seed=0), nearest_enemy_actions)
        assert (res["length"] > 0).all()


def _lone_enemy_env(**kwargs) -> SimEnv:
    """3m with one enemy on its attack-move at (20, 16) and the others dead, allies as given."""
    env = he.make("3m", num_envs=1, seed=0, **kwargs)
    env.reset()
    n = env.n_agents
    env.health[0, n + 1:] = 0
    env.pos[0, n] = torch.tensor([20.0, 16.0])
    return env


def test_attack_move_walks_its_line_until_a_foe_is_in_weapon_range():
    """The real 3m enemies walk straight on while allies are within sight (9) but beyond
    weapon range; they do not turn towards them (docs/simulator.md). Without formation_move: a
    unit put elsewhere by hand is out of its spawn formation, which mechanic 10 would keep."""
    env = _lone_enemy_env(formation_move=False)
    n = env.n_agents
    env.pos[0, :n] = torch.tensor([[16.0, 10.0], [16.5, 10.0], [17.0, 10.0]])  # 6.7-7.2 away: visible, not in range
    env._observe()
    env.step(torch.ones(1, n, dtype=torch.long))  # allies stop
    step = env.pos[0, n] - torch.tensor([20.0, 16.0])
    assert abs(float(step[0]) + 3.15 / 22.4 * 8) < 0.05 and abs(float(step[1])) < 0.02, step  # straight west


def test_engaged_enemy_stands_when_its_foes_leave_sight():
    """Once engaged, an enemy with no foe within sight stands instead of walking on to its
    goal (the real 3m enemies stay put when the allies are far away)."""
    env = _lone_enemy_env()
    n = env.n_agents
    env.pos[0, :n] = torch.tensor([[14.6, 16.0], [14.6, 15.0], [14.6, 17.0]])  # ally 0 in weapon range
    env._observe()
    env.step(torch.ones(1, n, dtype=torch.long))
    assert int(env.order[0, n]) == ORDER_ENGAGED
    env.pos[0, :n] = torch.tensor([[3.0, 10.0], [3.0, 11.0], [3.0, 12.0]])  # far beyond sight
    before = env.pos[0, n].clone()
    env._observe()
    env.step(torch.ones(1, n, dtype=torch.long))
    assert torch.allclose(env.pos[0, n], before), (before, env.pos[0, n])


@pytest.mark.parametrize("lockout", [True, False])
def test_ai_units_fire_on_the_weapon_period_commanded_units_later(lockout):
    """Steady fire at standing range: the built-in AI's marines fire every 13.77 +- 1 loops
    rounded up to whole loops (8 / 14.27 = 0.561 shots per step; the real 3m enemies: 0.560).
    The SMAC-commanded allies fire later: with reissue_lockout (mechanic 11, the default) a shot
    due on a step's last loop, 1 in 8, waits one loop (8 / 14.395 = 0.556); in the legacy game
    a U(0, 1.7)-loop reaction delay before every shot makes them slower still."""
    E, n = 512, 3
    env = he.make("3m", num_envs=E, seed=0, reissue_lockout=lockout)
    env.reset()
    env.pos[:, :n] = torch.tensor([[14.0, 15.0], [14.0, 16.0], [14.0, 17.0]])
    env.pos[:, n:] = torch.tensor([[19.0, 15.0], [19.0, 16.0], [19.0, 17.0]])
    env.health[:] = 1e6  # nobody dies
    env._observe()
    shots, steps = torch.zeros(2), 0
    for t in range(40):
        cd0 = env.cooldown.clone()
        env.step(torch.tensor([6, 7, 8]).expand(E, n))
        fired = (env.cooldown > cd0).float()
        if t >= 5:
            shots += torch.stack([fired[:, :n].mean(), fired[:, n:].mean()])
            steps += 1
    ally, enemy = (shots / steps).tolist()
    assert abs(enemy - 8 / 14.27) < 0.015, enemy
    if lockout:
        assert abs(ally - 8 / (14.27 + 1 / 8)) < 0.008 and ally < enemy, (ally, enemy)
    else:
        assert 0.50 <= ally <= enemy - 0.02, (ally, enemy)


def test_attack_move_stops_where_a_foe_comes_into_range_not_a_chunk_later():
    """SC2 looks for targets every game loop: a walker stops at weapon range (5.75 between
    marine centres) even when that point lies inside a 4-loop chunk of the simulation."""
    env = _lone_enemy_env()
    n = env.n_agents
    env.health[0, 1:n] = 0
    env.pos[0, 0] = torch.tensor([12.0, 16.0])
    env.pos[0, n] = torch.tensor([19.3, 16.0])  # 1.55 beyond range: stops 0.425 into the next step
    env._observe()
    for _ in range(3):
        env.step(torch.tensor([[1, 0, 0]]))
    assert abs(float(env.pos[0, n, 0]) - 17.75) < 0.01, env.pos[0, n]


def test_built_in_ai_answers_an_attacker_within_weapon_range_first():
    """An engaged enemy switches from its nearest target to a foe in weapon range that attacks
    it (SC2 units retaliate; the real 3m enemies' fire spreads over the allies this way,
    docs/simulator.md mechanic 4) and keeps its target while nobody in range attacks it."""
    env = _lone_enemy_env()  # one enemy at (20, 16)
    n = env.n_agents
    env.pos[0, :n] = torch.tensor([[15.0, 16.0], [15.5, 13.0], [14.0, 20.0]])  # 5.0, 5.4, 7.2 away
    env.health[0, n] = 1e6  # survives the test
    env._observe()
    env.step(torch.tensor([[1, 1, 1]]))  # allies stop
    assert int(env.target[0, n]) == 0  # the nearest ally
    env.step(torch.tensor([[1, 1, 1]]))
    assert int(env.target[0, n]) == 0  # sticks to it
    env.step(torch.tensor([[1, 6, 1]]))  # ally 1 (5.4 away, in the enemy's range) attacks it
    assert int(env.target[0, n]) == 1


@pytest.mark.parametrize("sticky", [False, True])
def test_sticky_retaliation_keeps_the_attacker_it_fights(sticky):
    """An enemy fighting ally 0, which attacks it, is attacked by a nearer ally 1 as well. By
    default it turns to the nearest attacker (mechanic 4); with sticky_retaliation it keeps
    ally 0, an attacker too (SC2's auto-targeting prefers a target that threatens the unit;
    the real 3m enemies' damage falls on the ally SC2 hit in 0.86-0.87 of it this way, against
    0.81-0.82: docs/simulator.md, mechanic 8). An enemy whose target does not attack it still
    answers an attacker."""
    env = _lone_enemy_env(sticky_retaliation=sticky)
    n = env.n_agents
    env.pos[0, :n] = torch.tensor([[15.0, 16.0], [15.3, 14.5], [10.0, 20.0]])  # 5.0, 5.0, 10.8 away
    env.health[0, n] = 1e6  # survives the test
    env._observe()
    env.step(torch.tensor([[6, 1, 1]]))  # ally 0 attacks the enemy, which answers it
    assert int(env.target[0, n]) == 0
    env.step(torch.tensor([[6, 6, 1]]))  # ally 1, 4.92 away, attacks it too
    assert int(env.target[0, n]) == (0 if sticky else 1)
    env.step(torch.tensor([[1, 6, 1]]))  # ally 0 stops attacking: ally 1 is answered either way
    assert int(env.target[0, n]) == 1



@pytest.mark.parametrize("ready_at, fires_at", [(6.5, 7), (7.5, 9)])
def test_reissue_lockout_no_ally_shot_on_the_loop_smac_reissues_orders(ready_at, fires_at):
    """In the real 3m data an attacking marine whose weapon becomes ready at loop r of a step,
    target in range, fires within the step in 100 % of 26 269 cases with r < 7 and in 0 of
    5 720 with r >= 7: the step's last loop, where SMAC re-issues the order, cannot fire
    (mechanic 11). A shot due then comes at the next step's first loop (loop 9 counted from
    the first step's start). The cooldown left after the shot tells its loop."""
    env = _lone_enemy_env(reissue_lockout=True)
    n = env.n_agents
    env.pos[0, :n] = torch.tensor([[14.5, 16.0], [4.0, 10.0], [4.0, 22.0]])  # ally 0 is 5.5 away: in range
    env.health[0, 0] = env.health[0, n] = 1e6
    env._observe()
    env.cooldown[0, 0] = ready_at
    attack = torch.tensor([[6, 1, 1]])
    env.step(attack)
    if fires_at > 8:  # nothing in the first step: the weapon only cooled down, then the next step
        assert float(env.cooldown[0, 0]) == pytest.approx(ready_at - 8)
        env.step(attack)
    # just after a shot at loop k of its step the cooldown is period + U(-1, 1) - (8 - k)
    period, k = UNITS["marine"].cooldown, (fires_at - 1) % 8 + 1
    left = float(env.cooldown[0, 0])
    assert period + COOLDOWN_JITTER[0] - (8 - k) - 1e-4 <= left <= period + COOLDOWN_JITTER[1] - (8 - k) + 1e-4, left


@pytest.mark.parametrize("ordered_fire", [False, True])
def test_ordered_fire_a_unit_killed_earlier_in_the_chunk_does_not_fire(ordered_fire):
    """Mechanic 12. Ally 0 (5 hp, its shot due at loop 3) and the enemy (shot due at loop 1)
    fire in the same 4-loop chunk; the enemy's 6-damage shot kills the ally at loop 1. With
    the chunk's shots landing together the dead ally's shot still lands (6 of the enemy's 45
    hp); resolved loop by loop, as SC2 does, it never fires."""
    env = _lone_enemy_env(ordered_fire=ordered_fire)
    n = env.n_agents
    env.pos[0, :n] = torch.tensor([[14.5, 16.0], [4.0, 10.0], [4.0, 22.0]])  # 5.5 apart: in range
    env.health[0, 1:n] = 0
    env.health[0, 0] = 5.0
    env._observe()
    env.cooldown[0, 0], env.delay[0, 0] = 2.5, 0.0
    env.cooldown[0, n], env.delay[0, n] = 0.5, 0.0
    out = env.step(torch.tensor([[6, 0, 0]]))  # ally 0 attacks the enemy
    assert float(env.health[0, 0]) == 0 and bool(out.terminated[0]) and not bool(out.info["battle_won"][0])
    assert float(env.health[0, n]) == (45.0 if ordered_fire else 39.0)


@pytest.mark.parametrize("ordered_fire", [False, True])
def test_ordered_fire_no_shot_at_a_target_killed_earlier_in_the_chunk(ordered_fire):
    """Mechanic 12. Allies 0 and 1 attack the enemy (5 hp); ally 0's shot at loop 1 kills it,
    ally 1's is due at loop 3. Shots landing together spend ally 1's shot on the dead (its
    cooldown restarts); loop by loop it does not fire and its weapon stays ready (SC2: an
    attack order ends when its target dies)."""
    env = _lone_enemy_env(ordered_fire=ordered_fire)
    n = env.n_agents
    env.pos[0, :n] = torch.tensor([[14.5, 16.0], [14.5, 16.6], [4.0, 22.0]])  # allies 0, 1 in range
    env.health[0, n] = 5.0
    env._observe()
    env.cooldown[0, :2], env.delay[0, :2] = torch.tensor([0.5, 2.5]), 0.0
    out = env.step(torch.tensor([[6, 6, 1]]))
    assert bool(out.info["battle_won"][0])
    spent = float(env.cooldown[0, 1]) > 0  # after a shot: period + jitter - (8 - 3) loops > 0
    assert spent == (not ordered_fire), float(env.cooldown[0, 1])


def test_ordered_fire_removes_most_draws_of_a_symmetric_fight():
    """Calibrated 3m, both sides on the AI from a rotated start, 512 battles at seed 1: 41.8 %
    draws (both last units dead in one step) with the chunk's shots together, 14.8 % loop by
    loop (the rest: shots in the same loop). SC2's 2000 real 3m episodes hold none."""
    draws = {}
    for ordered in (False, True):
        env = SimEnv("3m", num_envs=256, seed=1, ally_ai=True, mirror_spawn="rotate", validate_actions=False,
                     **{**CALIBRATED_GAME, "ordered_fire": ordered})
        res = run_episodes(env, lambda e: torch.zeros(e.num_envs, e.n_agents, dtype=torch.long))
        draws[ordered] = 1 - float((res["won"] | res["lost"]).float().mean())
    assert draws[False] > 0.3 and draws[True] < 0.2, draws


@pytest.fixture(params=["kernels", "tensors"])
def collision_code(request, monkeypatch):
    """Run a collisions test on the compiled kernels (numba, the CPU default) and on the tensor
    code (GPUs, no numba): both must reproduce each mechanic."""
    if request.param == "kernels":
        pytest.importorskip("numba")
    monkeypatch.setenv("HYGEN_SIM_KERNELS", "1" if request.param == "kernels" else "0")
    return request.param


def _collision_step(positions, actions, collisions=True):
    """3m allies at ``positions`` (enemies far away) take one step with ``actions``; returns their moves."""
    env = SimEnv("3m", num_envs=1, seed=0, collisions=collisions)
    env.reset()
    env.pos[0, :3] = torch.tensor(positions)
    env._observe()
    before = env.pos[0, :3].clone()
    env.step(torch.tensor([actions]))
    return env.pos[0, :3] - before


def test_collisions_head_on_units_pass_each_other_on_their_right(collision_code):
    """Every real 3m episode starts with (east, east, west): allies 1 and 2, 0.69 apart on one
    line, walk into each other. In SC2 both sidestep to their right and pass (agent 2 ends
    (-0.97, +0.29) from its start), agent 0 walks on untouched (+1.124, -0.003); without
    collisions they walk through each other (docs/simulator.md, mechanic 5)."""
    start = [[9.0, 15.312], [9.0, 16.0], [9.688, 16.0]]
    d = _collision_step(start, [4, 4, 5])
    assert torch.allclose(d[0], torch.tensor([1.125, 0.0]), atol=1e-3), d[0]  # not shoved aside
    assert 0.15 <= float(d[2, 1]) <= 0.4 and -1.1 <= float(d[2, 0]) <= -0.9, d[2]  # right of west = north
    assert float(d[1, 1]) < 0 and float(d[1, 0]) < 1.0, d[1]  # right of east = south, slowed down
    plain = _collision_step(start, [4, 4, 5], collisions=False)
    assert abs(float(plain[1, 1])) < 1e-6 and float(plain[1, 0]) > 1.2  # walks through


def test_collisions_sidestep_away_from_the_side_the_other_unit_stands_on(collision_code):
    """Head-on but ally 2 standing 0.1 south of ally 1's line: each steps away from the other's
    side (ally 1 north, ally 2 south), as in the 47 real episodes where the spawn is so offset."""
    d = _collision_step([[9.0, 14.0], [9.0, 16.0], [9.688, 15.9]], [4, 4, 5])
    assert float(d[1, 1]) > 0.1 and float(d[2, 1]) < -0.1, d


def test_collisions_followers_and_bystanders(collision_code):
    """Units walking the same way one behind the other are not deflected; a unit walking into a
    standing one goes around it and the standing one is not pushed away."""
    d = _collision_step([[9.0, 12.0], [9.0, 16.0], [9.7, 16.0]], [4, 4, 4])
    assert torch.allclose(d[1:], torch.tensor([[1.125, 0.0], [1.125, 0.0]]), atol=1e-4), d
    env = SimEnv("3m", num_envs=1, seed=0, collisions=True)
    env.reset()
    env.pos[0, :3] = torch.tensor([[9.0, 12.0], [9.0, 16.0], [10.0, 16.05]])
    env._observe()
    for _ in range(2):
        env.step(torch.tensor([[1, 4, 1]]))  # ally 1 walks east into the standing ally 2
    assert float((env.pos[0, 2] - torch.tensor([10.0, 16.05])).norm()) < 0.05, env.pos[0, 2]
    assert float(env.pos[0, 1, 0]) > 10.5 and float(env.pos[0, 1, 1]) < 16.0, env.pos[0, 1]  # passed on its right


def test_collisions_near_exact_head_on_passes_on_the_right_whatever_the_rounding(collision_code):
    """Offsets far below the data's smallest (0.01) count as exactly head-on, so which side a
    unit passes on does not hang on float rounding (it swung 2s3z's focus-fire win rate between
    6 % and 87 % across equivalent formulas before; docs/simulator.md)."""
    exact = _collision_step([[9.0, 12.0], [9.0, 16.0], [9.688, 16.0]], [1, 4, 5])
    for dy in (1e-5, -1e-5):
        d = _collision_step([[9.0, 12.0], [9.0, 16.0], [9.688, 16.0 + dy]], [1, 4, 5])
        assert torch.allclose(d[1:], exact[1:], atol=1e-3), (dy, d, exact)
    assert float(exact[1, 1]) < 0 < float(exact[2, 1])  # east steps south, west steps north


def test_collisions_dead_units_are_not_in_the_way(collision_code):
    """A dead unit's body does not block: a unit walking through where it lies keeps its line
    (the steering folds deaths into the pair distances; docs/simulator.md, mechanic 5)."""
    env = SimEnv("3m", num_envs=1, seed=0, collisions=True)
    env.reset()
    env.pos[0, :3] = torch.tensor([[9.0, 12.0], [9.0, 16.0], [9.6, 16.0]])
    env.health[0, 2] = 0.0
    env._observe()
    env.step(torch.tensor([[1, 4, 0]]))  # ally 1 walks east over dead ally 2
    assert torch.allclose(env.pos[0, 1], torch.tensor([10.125, 16.0]), atol=1e-4), env.pos[0, 1]
    alive = _collision_step([[9.0, 12.0], [9.0, 16.0], [9.6, 16.0]], [1, 4, 1])  # alive, it is walked around
    assert abs(float(alive[1, 1])) > 0.1, alive[1]


@pytest.mark.parametrize("name", ["3s5z", "10m_vs_11m"])
def test_collisions_keep_crowds_finite_and_inside_the_map(name, collision_code):
    """Steering in crowds (zealot balls, ten marines) never produces NaN or leaves the map."""
    env = SimEnv(name, num_envs=8, seed=0, collisions=True)
    env.reset()
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        env.step(random_actions(env.get_avail_actions(), g))
        assert torch.isfinite(env._f).all()
        assert ((env._xy >= env.xy_lo - 1e-5) & (env._xy <= env.xy_hi + 1e-5)).all()


def test_collisions_the_unit_created_first_waits_for_the_other_to_pass(collision_code):
    """Head-on, both sidestep, but only the unit created first (3m: the centre marine, ally 1)
    waits until the other has come abreast, then walks on: in SC2 ally 1 ends (+0.33, -0.37) and
    ally 2 (-0.97, +0.29) (docs/simulator.md, mechanic 6). Swapping the creation order swaps
    the roles, so the rule is the order, not the agent id or the heading."""
    start = [[9.0, 15.312], [9.0, 16.0], [9.688, 16.0]]
    d = _collision_step(start, [4, 4, 5])
    assert 0.1 <= float(d[1, 0]) <= 0.45 and -0.45 <= float(d[1, 1]) <= -0.25, d[1]  # waited, then walked on
    assert -1.1 <= float(d[2, 0]) <= -0.9, d[2]  # did not wait
    env = SimEnv("3m", num_envs=1, seed=0, collisions=True)
    env.reset()
    env._created[0, 1], env._created[0, 2] = 2.0, 0.0
    env.pos[0, :3] = torch.tensor(start)
    env._observe()
    env.step(torch.tensor([[4, 4, 5]]))
    d2 = env.pos[0, :3] - torch.tensor(start)
    assert float(d2[1, 0]) >= 0.9 and -0.45 <= float(d2[2, 0]) <= -0.1, d2  # now ally 2 waits


# Fixed-seed digests of each game: a long experiment depends on its game staying bit-identical,
# so any change to one must be deliberate (then re-record with the loop below and say so in
# docs/simulator.md). The legacy game's were recorded at commit a1940b5 (when it was the default,
# before the collision speed and symmetry work), the calibrated game's when it became the default
# (session 12), with the compiled collision kernels. Float bits depend on the torch build and the
# CPU's vector unit, so the check runs only where they match the recording (one thread:
# tests/conftest.py).
_GAME_DIGESTS = {
    "legacy": {"3m": "ca57f242d7b25c69", "3s5z": "d1c0ac2af30cf756", "2s3z": "9b6fbc41ad68343c",
               "5m_vs_6m": "6e0618276756c9d0", "13m_vs_15m": "94f46ef77f90de4e"},
    "calibrated": {"3m": "0421ffd33b5bbb77", "3s5z": "a0bfc17f97d7eb5b", "2s3z": "c81eeedab770efa6",
                   "5m_vs_6m": "d6e9e9f0233a1aa7", "13m_vs_15m": "c2f70a8d78c3a215"},
}
_GAMES = {"legacy": LEGACY_GAME, "calibrated": CALIBRATED_GAME}
_DIGEST_PLATFORM = ("2.13.0+cpu", "AVX512")


def game_digest(name: str, game: dict) -> str:
    import hashlib

    env = he.make(name, num_envs=16, seed=3, **game)
    g = torch.Generator().manual_seed(5)
    h = hashlib.sha256()
    env.reset()
    for _ in range(80):  # several episodes per env: fights, deaths, auto-resets
        out = env.step(random_actions(env.get_avail_actions(), g))
        for x in (out.obs, out.state, out.avail_actions, out.reward, out.terminated, env._f, env._l):
            h.update(x.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("game, name", [(g, m) for g in _GAME_DIGESTS for m in sorted(_GAME_DIGESTS[g])])
def test_each_game_is_bit_identical_to_the_recorded_trajectories(game, name):
    platform = (torch.__version__, torch.backends.cpu.get_cpu_capability())
    if platform != _DIGEST_PLATFORM:
        pytest.skip(f"digests recorded with torch/CPU {_DIGEST_PLATFORM}, this is {platform}")
    if _GAMES[game]["collisions"]:
        pytest.importorskip("numba", reason="the calibrated game's digests were recorded with the compiled kernels")
    assert game_digest(name, _GAMES[game]) == _GAME_DIGESTS[game][name]


@pytest.mark.parametrize("name", ["3m", "3s5z", "13m_vs_15m"])
def test_collision_kernels_match_the_tensor_code(name):
    """The compiled collision kernels (hygen/envs/sim_kernels.py, numba) and the tensor code
    they replace on the CPU move every unit the same way. Both envs play the same random
    actions from the same state, resynchronised after every step so each step is compared
    from equal inputs; float rounding may tip an exact tie (tau = 1 to the last bit) the other
    way, a unit in thousands of unit-steps."""
    pytest.importorskip("numba")
    envs = [SimEnv(name, num_envs=32, seed=3, collisions=True, collision_variation=True, validate_actions=False)
            for _ in range(2)]
    envs[1]._kernels = False
    assert envs[0]._kernels, "numba is installed: the CPU env should use the kernels"
    for e in envs:
        e.reset()
    g = torch.Generator().manual_seed(0)
    close = total = 0
    for _ in range(60):
        avail = envs[0].get_avail_actions()
        a = torch.multinomial(avail.float().view(-1, avail.shape[-1]), 1, generator=g).view(avail.shape[:2])
        for e in envs:
            e.step(a)
        d = (envs[0].pos - envs[1].pos).norm(dim=-1)
        close += int((d < 1e-3).sum())
        total += d.numel()
        envs[1]._f.copy_(envs[0]._f)
        envs[1]._l.copy_(envs[0]._l)
    assert close >= 0.999 * total, (close, total)


def test_collision_kernels_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("HYGEN_SIM_KERNELS", "0")
    assert not SimEnv("3m", num_envs=2, collisions=True)._kernels
    monkeypatch.delenv("HYGEN_SIM_KERNELS")
    assert not SimEnv("3m", num_envs=2, collisions=False)._kernels  # a game without collisions never uses them


@pytest.mark.parametrize("collisions", [False, True])
def test_env_state_resumes_bit_exactly(collisions, collision_code):
    """A SimEnv restored from state_dict() continues the same episodes bit for bit, with
    collisions too (their moves, waits and headings live in the packed state, not in the
    kernels' scratch)."""
    g = torch.Generator().manual_seed(0)
    kw = {"num_envs": 16, "seed": 4, **{k: collisions for k in CALIBRATED_GAME},
          "collision_variation": collisions}
    env = SimEnv("3s5z", **kw)
    env.reset()

    def random_step():
        avail = env.get_avail_actions()
        a = torch.multinomial(avail.float().view(-1, avail.shape[-1]), 1, generator=g).view(avail.shape[:2])
        return a, env.step(a).state.clone()

    for _ in range(10):
        random_step()
    saved = env.state_dict()
    later = [random_step() for _ in range(20)]
    other = SimEnv("3s5z", **kw)
    other.reset()
    other.load_state_dict(saved)
    for a, want in later:
        assert torch.equal(other.step(a).state, want)


def test_collision_variation_spreads_the_step0_encounter_like_sc2(collision_code):
    """Every real 3m episode starts with (east, east, west): agents 1 and 2 meet head-on and
    agent 1, created first, waits (mechanic 6). SC2 ends its step 0 at x +0.19 / +0.32 / +0.49
    from its start (5th / 50th / 95th percentile of the 2000 real episodes), the fixed wait at
    +0.31 every time; collision_variation draws the wait so the spread matches (mechanic 9)."""
    def agent1_dx(**kw):
        env = SimEnv("3m", num_envs=2000, seed=0, collisions=True, validate_actions=False, **kw)
        env.reset()
        x0 = env.pos[:, 1, 0].clone()
        env.step(torch.tensor([4, 4, 5]).expand(2000, 3))
        return np.percentile((env.pos[:, 1, 0] - x0).numpy(), [5, 50, 95])

    fixed, drawn = agent1_dx(), agent1_dx(collision_variation=True)
    assert fixed[2] - fixed[0] < 1e-3
    assert np.allclose(drawn, [0.19, 0.32, 0.49], atol=0.04), drawn
    with pytest.raises(ValueError, match="collision_variation"):
        SimEnv("3m", collisions=False, collision_variation=True)  # what varies is how collisions resolve


@pytest.mark.parametrize("name", ["3m", "8m"])
def test_formation_move_keeps_the_attack_moving_group_in_formation(name):
    """In the 2000 real 3m episodes the enemies' largest pairwise distance stays 0.974 while they
    walk in (steps 0-6, to 1e-3): SC2 moves a group ordered beyond its own extent in parallel.
    With formation_move every walker keeps its spawn offset (mechanic 10); without it they all
    head for one point and the group narrows (0.974 -> 0.897 by step 6 on 3m)."""
    def spread(env):
        p = env.pos[0, env.n_agents:]
        return float(torch.cdist(p, p).max())

    stop = torch.ones(1, get_map(name).n_agents, dtype=torch.long)
    env, default = SimEnv(name, formation_move=True), SimEnv(name, formation_move=False)
    for e in (env, default):
        e.reset()
    start = spread(env)
    walked = env.pos[0, env.n_agents:].clone()
    for _ in range(5):  # the allies stand at their start, 9+ away: nobody is in range yet
        env.step(stop), default.step(stop)
    walked = env.pos[0, env.n_agents:] - walked
    assert abs(spread(env) - start) < 1e-4, (spread(env), start)
    assert float(walked[:, 0].max()) < -5.0  # all walked west ...
    assert torch.allclose(walked, walked[:1].expand_as(walked), atol=1e-4)  # ... in parallel
    assert spread(default) < start - 0.05
