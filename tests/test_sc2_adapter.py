"""The SC2 backend: a clear install message without SC2; the batched API with it."""

from __future__ import annotations

import pytest
import torch

import hygen.envs as he
from hygen.envs.sc2 import SC2NotAvailableError, check_sc2


def _sc2_missing_reason() -> str | None:
    try:
        check_sc2("3m")
    except SC2NotAvailableError as e:
        return str(e)
    return None


MISSING = _sc2_missing_reason()


@pytest.mark.skipif(MISSING is None, reason="SMAC and StarCraft II are installed")
def test_missing_sc2_error_says_what_to_install():
    with pytest.raises(SC2NotAvailableError) as e:
        he.make("3m", num_envs=1, backend="sc2")
    msg = str(e.value)
    assert "pip install git+https://github.com/oxwhirl/smac.git" in msg
    assert "SC2PATH" in msg and "ODIS" in msg


@pytest.mark.skipif(MISSING is not None, reason=f"SC2 backend unavailable: {MISSING}")
def test_sc2_backend_batched_interface():
    env = he.make("3m", num_envs=2, backend="sc2", seed=0)
    try:
        obs, state, avail = env.reset()
        assert obs.shape == (2, 3, 30) and state.shape == (2, 48) and avail.shape == (2, 3, 9)
        g = torch.Generator().manual_seed(0)
        for _ in range(5):
            a = torch.multinomial(env.get_avail_actions().flatten(0, 1).float(), 1, generator=g).view(2, 3)
            out = env.step(a)
            assert out.reward.shape == (2,) and set(out.info) >= {"battle_won", "episode_limit"}
    finally:
        env.close()
