"""The simulator against the real SC2 3m dataset: the mechanically pinned numbers agree."""

from __future__ import annotations

import pytest
import torch

from hygen.envs.scripted import focus_fire_actions
from hygen.envs.sim_fidelity import compare, fidelity_stats, load_real, record_sim


@pytest.fixture(scope="module")
def table(request):
    from conftest import REAL_3M

    if not REAL_3M.is_file():
        pytest.skip(f"real StarCraft II dataset not found at {REAL_3M} "
                    "(set HYGEN_SHARED_DATA to the folder holding smac/3m/medium/part_0.h5)")
    real = fidelity_stats(load_real(REAL_3M), "3m")
    g = torch.Generator().manual_seed(0)
    sim = fidelity_stats(record_sim("3m", lambda env: focus_fire_actions(env, 0.3, g), episodes=512, seed=0), "3m")
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
