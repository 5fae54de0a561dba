"""The simulator against the real SC2 3m dataset: the mechanically pinned numbers agree, and
whole recorded episodes replay (open loop and one step at a time) as far as docs/simulator.md says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hygen.envs import LEGACY_GAME, get_map
from hygen.envs.scripted import focus_fire_actions
from hygen.envs.sim_fidelity import (
    WHY_UNAVAILABLE,
    compare,
    fidelity_stats,
    load_real,
    record_sim,
    replay_open_loop,
    teacher_forced,
    unavailable_floor,
)


@pytest.fixture(scope="module")
def real_data():
    from conftest import REAL_3M

    if not REAL_3M.is_file():
        pytest.skip(f"real StarCraft II dataset not found at {REAL_3M} "
                    "(set HYGEN_SHARED_DATA to the folder holding smac/3m/medium/part_0.h5)")
    return load_real(REAL_3M)


@pytest.fixture(scope="module")
def table(real_data):
    real = fidelity_stats(real_data, "3m")
    g = torch.Generator().manual_seed(0)
    sim = fidelity_stats(record_sim("3m", lambda env: focus_fire_actions(env, 0.3, g), episodes=2048, seed=0), "3m")
    return {row["stat"]: row for row in compare(real, sim)}


@pytest.mark.parametrize("stat", [
    "start_ally_x", "start_ally_y", "start_enemy_x", "start_enemy_y", "start_ally_spacing",
    "ally_move_per_step", "enemy_move_per_step", "damage_per_ally_shot", "damage_per_enemy_shot",
    "reward_per_shot",
])
def test_exactly_checkable_numbers(table, stat):
    row = table[stat]
    assert row["rel_err"] <= 0.01, row


@pytest.mark.parametrize("stat", ["enemy_engage_distance", "ally_shots_per_step", "ally_cooldown_max"])
def test_calibrated_numbers_within_5_percent(table, stat):
    row = table[stat]
    assert row["rel_err"] <= 0.05, row


def test_reward_per_shot_is_smac_scaled(table):
    assert abs(table["reward_per_shot"]["real"] - 6 * 20 / 365) < 1e-4
    assert abs(table["reward_per_shot"]["sim"] - 6 * 20 / 365) < 1e-4


def legacy_with(**on) -> dict:
    """The legacy game (every mechanic off) with some mechanics on: how each was calibrated."""
    return {**LEGACY_GAME, **on}


# `replay` and `one_step` play the legacy game: the baseline each mechanic below is contrasted
# with, one at a time; `replay_calibrated` and `one_step_calibrated` the default game.
@pytest.fixture(scope="module")
def replay(real_data):
    return replay_open_loop(real_data, "3m", steps=21, **LEGACY_GAME)


@pytest.fixture(scope="module")
def one_step(real_data):
    return teacher_forced(real_data, "3m", **LEGACY_GAME)


@pytest.fixture(scope="module")
def one_step_calibrated(real_data):
    return teacher_forced(real_data, "3m")


def test_calibrated_game_meets_issue_14s_teacher_forced_targets(one_step_calibrated):
    """The default (calibrated) game, teacher-forced: the damage dealt by each side within 5 %
    of SC2's (+2.4 / +2.2 %), the ally SC2 hit is the one that loses health in at least 80 % of
    the enemies' damage (0.864), and the allies fire in SC2's steps (0.991)."""
    tf = one_step_calibrated
    for side in ("enemy", "ally"):
        assert abs(tf[f"{side}_damage_sim"] - tf[f"{side}_damage_real"]) <= 0.05 * tf[f"{side}_damage_real"], side
    assert tf["ally_same_unit"] >= 0.85 and tf["ally_shot_agree"] >= 0.985, tf


def test_teacher_forced_damage_within_5_percent(one_step):
    """Set to each recorded state and stepped once with the recorded actions, the sim deals
    the damage SC2 dealt, on both sides (issue 14 target)."""
    for side in ("enemy", "ally"):  # health taken by the enemies (dealt by allies), by the allies
        real, sim = one_step[f"{side}_damage_real"], one_step[f"{side}_damage_sim"]
        assert abs(sim - real) <= 0.05 * real, (side, real, sim)


def test_teacher_forced_enemy_target_choice(one_step):
    """The built-in AI's damage falls on the ally SC2 hit in at least 80 % of it (issue 14's
    target; 0.82 with retaliation, 0.73 with nearest-first alone), its fire spreads over the
    allies like SC2's (multi-hit steps all on one ally: SC2 0.22, sim 0.30, nearest-first 0.57)
    and the allies die at SC2's rate (0.169 per step; nearest-first 0.206)."""
    assert one_step["ally_same_unit"] >= 0.80, one_step["ally_same_unit"]
    assert one_step["enemy_same_unit"] >= 0.99  # the allies' targets are the recorded orders
    assert one_step["enemy_focus_sim"] <= 0.35, one_step["enemy_focus_sim"]
    assert abs(one_step["deaths_sim"] - one_step["deaths_real"]) <= 0.05 * one_step["deaths_real"]


def test_sticky_retaliation_hits_the_ally_sc2_hit(real_data, one_step):
    """Teacher-forced, enemies that keep an attacker they fight (mechanic 8) put their damage
    on the ally SC2 hit in 0.874 of it (0.821 without), spread their fire like SC2 (multi-hit
    steps all on one ally 0.218, SC2 0.223, 0.300 without) and keep the damage within 5 %."""
    tf = teacher_forced(real_data, "3m", **legacy_with(sticky_retaliation=True))
    assert tf["ally_same_unit"] >= 0.86 > one_step["ally_same_unit"]
    assert abs(tf["enemy_focus_sim"] - tf["enemy_focus_real"]) <= 0.02 < abs(one_step["enemy_focus_sim"] - tf["enemy_focus_real"])
    for side in ("enemy", "ally"):
        assert abs(tf[f"{side}_damage_sim"] - tf[f"{side}_damage_real"]) <= 0.05 * tf[f"{side}_damage_real"], side



def test_reissue_lockout_fires_when_sc2_fired(real_data, one_step):
    """Teacher-forced, an ally that cannot fire on the loop SMAC re-issues its order (mechanic
    11) fires in the same steps as in SC2 in 0.991 of the living-ally steps (0.970 with the
    U(0, 1.7)-loop reaction delay), and the damage the enemies take lands in the step and on the
    unit SC2 had it land in 0.997 of it (0.977)."""
    tf = teacher_forced(real_data, "3m", **legacy_with(reissue_lockout=True))
    assert tf["ally_shot_agree"] >= 0.985 > one_step["ally_shot_agree"] + 0.01
    assert tf["enemy_overlap"] >= 0.99 > one_step["enemy_overlap"] + 0.01
    assert abs(tf["ally_shots_sim"] - tf["ally_shots_real"]) <= 0.03 * tf["ally_shots_real"]


def test_replay_tracks_sc2_until_the_fight(replay):
    """Open loop: nothing is unavailable before contact, the enemies keep SC2's attack-move
    line (mean y) until the fight settles, and enemy health tracks until step 8 (after that the
    allies' step-0 collision, modelled only with collisions=True, compounds)."""
    r, s = replay["real"], replay["sim"]
    assert np.nanmax(s["unavail_attack"][:7]) < 0.01 and np.nanmax(s["unavail_move"][:12]) < 0.01
    assert np.abs(s["enemy_y"][:11] - r["enemy_y"][:11]).max() < 0.05
    assert np.abs(s["enemy_health"][:9] - r["enemy_health"][:9]).max() < 0.05
    assert np.abs(s["ally_health"][:21] - r["ally_health"][:21]).max() < 0.1


def test_replay_says_why_attacks_are_unavailable(replay):
    """The reasons partition the unavailable recorded attacks, and in the legacy game, until the first
    unit dies in the sim (step 9), every one of them is out of range, by a median of 0.2-0.5
    beyond SMAC's 6 (positions that drifted, not deaths, decide the gap)."""
    s = replay["sim"]
    parts = sum(np.nan_to_num(s[f"unavail_attack_{w}"]) for w in WHY_UNAVAILABLE)
    np.testing.assert_allclose(parts, np.nan_to_num(s["unavail_attack"]), atol=1e-9)
    assert np.array_equal(s["unavail_attack_out_of_range"][7:10], s["unavail_attack"][7:10])
    assert 0.4 < s["unavail_attack"][7] and 0.2 <= s["excess_range"][7:10].min() <= s["excess_range"][7:10].max() <= 0.5
    assert s["unavail_attack_attacker_dead"][10:13].max() > 0.05  # then allies die earlier than in SC2


def test_sc2_repeats_itself_only_so_far(real_data):
    """Episodes with the same recorded actions end up in different places in SC2: even the
    medoid of each such group, as a deterministic simulator's one outcome, would put 25 % of
    the recorded attacks at step 6, 6 % at step 7 and 4 % at step 8 out of range, above issue
    14's 3 % target; from step 9 on the floor is under 0.3 %."""
    floor = unavailable_floor(real_data, "3m", steps=13)
    assert 0.2 < floor[6] < 0.3 and 0.05 < floor[7] < 0.07 and 0.03 < floor[8] < 0.045
    assert np.nanmax(floor[9:13]) < 0.003 and np.isnan(floor[:6]).all()  # no attack before step 6


@pytest.mark.xfail(strict=True, reason="issue 14's replay targets are not reached by the legacy game: its allies "
                                       "pass through each other at step 0 and end 0.2 ahead; the calibrated game "
                                       "(the default) meets the ally health and distance targets "
                                       "(docs/simulator.md, 'Where issue 14's open-loop targets stand')")
def test_replay_targets_of_issue_14(replay):
    r, s = replay["real"], replay["sim"]
    for k in ("ally_health", "enemy_health"):
        assert np.abs(s[k][:21] - r[k][:21]).max() <= 0.05, k
    assert np.nanmax(s["unavail_attack"][:13]) < 0.03
    assert np.abs(s["nearest_distance"][6:11] - r["nearest_distance"][6:11]).max() <= 0.2


@pytest.fixture(scope="module")
def replay_calibrated(real_data):
    return replay_open_loop(real_data, "3m", steps=21)


def test_calibrated_game_meets_issue_14s_health_and_distance_targets(replay, replay_calibrated):
    """Open loop in the calibrated game (the default; mechanics 5-8, 10, 11): ally and enemy
    health within 0.05 of SC2 at every step up to 20 (0.027 / 0.023; the legacy game 0.085 /
    0.32), the nearest ally-enemy distance within 0.2 at steps 6-10 (0.081) and recorded
    attacks unavailable at steps 7-12 at most 0.064 (the legacy game 0.70)."""
    r, s, plain = replay["real"], replay_calibrated["sim"], replay["sim"]
    for k in ("ally_health", "enemy_health"):
        assert np.abs(s[k][:21] - r[k][:21]).max() <= 0.035, k  # issue 14: 0.05
    assert np.abs(plain["enemy_health"][:21] - r["enemy_health"][:21]).max() > 0.2
    assert np.abs(s["nearest_distance"][6:11] - r["nearest_distance"][6:11]).max() <= 0.1
    assert np.nanmax(s["unavail_attack"][7:13]) < 0.07


@pytest.mark.xfail(strict=True, reason="SC2's own floor for recorded attacks out of range is 25 / 6.1 / 3.7 % at "
                                       "steps 6-8 (test_sc2_repeats_itself_only_so_far); the calibrated "
                                       "game reaches 6.4 % (docs/simulator.md, 'Where issue 14's open-loop "
                                       "targets stand')")
def test_replay_unavailable_attack_target_of_issue_14_in_the_calibrated_game(replay_calibrated):
    assert np.nanmax(replay_calibrated["sim"]["unavail_attack"][:13]) < 0.03


def test_sc2_enemies_keep_their_formation_while_walking_in(real_data):
    """The real enemies' largest pairwise distance stays at its start (0.974) while they walk
    in (steps 0-6): SC2 moves the group in parallel. formation_move (mechanic 10) keeps it;
    without it every enemy heads for one point and the group narrows to 0.897 by step 6."""
    from hygen.envs import SimEnv
    from hygen.envs.sim_fidelity import _Units

    u = _Units(real_data["state"][:, :7], get_map("3m"))
    e = u.xy[..., 3:, :]
    real_spread = np.linalg.norm(e[..., :, None, :] - e[..., None, :, :], axis=-1).max((-1, -2)).mean(0)  # [7]
    assert np.abs(real_spread - real_spread[0]).max() < 2e-3

    def sim_spread(**kw):
        env = SimEnv("3m", num_envs=1, **kw)
        env.reset()
        out = []
        for _ in range(7):
            p = env.pos[0, 3:]
            out.append(float(torch.cdist(p, p).max()))
            env.step(torch.ones(1, 3, dtype=torch.long))  # allies stop at their start: no contact
        return np.array(out)

    assert np.abs(sim_spread(formation_move=True) - real_spread).max() < 3e-3
    assert sim_spread(formation_move=False)[6] < real_spread[6] - 0.05


def test_instruments_reproduce_the_sims_own_episodes_exactly():
    """Episodes recorded in the sim itself replay exactly (no unavailable action, equal curves)
    and predict themselves one step at a time: the instruments add no error of their own."""
    g = torch.Generator().manual_seed(0)
    own = record_sim("3m", lambda env: focus_fire_actions(env, 0.3, g), episodes=64, seed=5)
    rep = replay_open_loop(own, "3m", steps=31, seed=5)
    for k in ("ally_health", "enemy_health", "ally_alive", "enemy_alive", "enemy_x", "ally_y"):
        np.testing.assert_allclose(rep["sim"][k], rep["real"][k], atol=1e-4, err_msg=k)
    for kind in ("move", "attack", "stop"):
        assert np.nan_to_num(rep["sim"][f"unavail_{kind}"]).max() == 0, kind
    assert np.isnan(rep["sim"]["excess_range"]).all()
    tf = teacher_forced(own, "3m", seed=5)
    for side in ("enemy", "ally"):
        assert abs(tf[f"{side}_damage_sim"] - tf[f"{side}_damage_real"]) < 1e-3, side
    assert tf["move_err_enemy"] < 1e-3 and tf["deaths_same"] == 1.0


@pytest.fixture(scope="module")
def replay_collisions(real_data):
    return replay_open_loop(real_data, "3m", steps=21, **legacy_with(collisions=True))


def test_collisions_replay_close_to_sc2(replay, replay_collisions):
    """With units steering around each other, the unit created first waiting for the other to
    pass and a unit blocked by a stopped one going round it at full speed on the free side
    (SimEnv(collisions=True), mechanics 5-7) the allies' step-0 collision no longer leaves them
    ahead: open loop, all three allies live to step 11 as in SC2 (2.19 without), the ally health
    stays within 0.05 of SC2's up to step 20 (issue 14's target; 0.045, 0.061 before mechanic 7,
    0.1 without collisions), the enemy health within 0.065 (0.32 without), the nearest
    ally-enemy distance within 0.2 at steps 6-10 (issue 14's target) and recorded attacks
    unavailable at steps 7-12 below 0.1 (0.074; 0.158 before mechanic 7, 0.43-0.69 without)."""
    r, c, plain = replay["real"], replay_collisions["sim"], replay["sim"]
    assert np.abs(c["ally_alive"][:12] - r["ally_alive"][:12]).max() <= 0.05
    assert np.abs(plain["ally_alive"][:12] - r["ally_alive"][:12]).max() > 0.5
    assert np.abs(c["enemy_health"][:21] - r["enemy_health"][:21]).max() <= 0.065
    assert np.abs(plain["enemy_health"][:21] - r["enemy_health"][:21]).max() > 0.2
    assert np.abs(c["nearest_distance"][6:11] - r["nearest_distance"][6:11]).max() <= 0.2
    assert np.nanmax(c["unavail_attack"][7:13]) < 0.1
    assert np.abs(c["ally_health"][:21] - r["ally_health"][:21]).max() <= 0.05


def test_collisions_replay_executing_the_recorded_orders(real_data):
    """Replacing a recorded attack that is out of range in the sim by stop compounds: the unit
    stands where SC2's walked into range. Carrying the order out instead (the unit walks into
    range, as SC2 does), with collisions the open loop meets issue 14's enemy health target
    (within 0.05 of SC2 up to step 20; 0.043, 0.061 with stops) and the attacks recorded out
    of range in the sim fall under 3 % at steps 8-12 (0.002-0.028; 0.046-0.074 with stops).
    Steps 6 and 7 stay above: SC2's own floor is 25 % and 6 % there."""
    rep = replay_open_loop(real_data, "3m", steps=21, execute_out_of_range=True, **legacy_with(collisions=True))
    r, c = rep["real"], rep["sim"]
    assert np.abs(c["enemy_health"][:21] - r["enemy_health"][:21]).max() <= 0.05
    assert np.nanmax(c["unavail_attack"][8:13]) < 0.03
    assert np.abs(c["ally_health"][:21] - r["ally_health"][:21]).max() <= 0.07
    assert np.abs(c["nearest_distance"][6:11] - r["nearest_distance"][6:11]).max() <= 0.2


def test_collisions_one_step_movement(real_data, one_step):
    """Teacher-forced, the allies' displacement under move orders is four times closer to SC2's
    with collisions (0.013 map units against 0.063) and the damage stays within 5 %."""
    tf = teacher_forced(real_data, "3m", **legacy_with(collisions=True))
    assert tf["move_err_move"] <= 0.02 < one_step["move_err_move"]
    # units that went round one of their side standing in front: the sim sends 0.866 of them
    # round the same side (0.828 before mechanic 7, 0.804 without collisions; 4 454 cases)
    assert tf["sidestep_count"] > 4000 and tf["sidestep_same_side"] >= 0.85 > one_step["sidestep_same_side"]
    for side in ("enemy", "ally"):
        assert abs(tf[f"{side}_damage_sim"] - tf[f"{side}_damage_real"]) <= 0.05 * tf[f"{side}_damage_real"], side
