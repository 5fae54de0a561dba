"""Entity decomposition: hand-checked tokens on crafted 3m / 3s5z inputs and on the real 3m data."""

from __future__ import annotations

import h5py
import pytest
import torch

from hygen.buffers import EpisodeBatch
from hygen.entities import (
    OBS_TOKEN_DIM,
    STATE_TOKEN_DIM,
    EntityShapeError,
    actions_onehot,
    n_obs_tokens,
    obs_entities,
    state_entities,
)
from hygen.envs.maps import MAPS, get_map

MARINE, STALKER, ZEALOT = [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]
NONE3 = [0.0, 0, 0]


def _obs_row(own_kind, flag, dist_dx_dy, health, shield, utype, move=(0, 0, 0, 0), last=(0,) * 7, attacked=0.0):
    return [*own_kind, flag, *dist_dx_dy, health, shield, *utype, *move, *last, attacked]


def test_crafted_3m_observation_tokens():
    obs = torch.zeros(3, 30)  # agent 0's observation is row 0; rows 1, 2 are dead (zeros)
    obs[0] = torch.tensor([1, 0, 1, 0,                    # move N, S, E, W
                           1, .5, .3, -.4, .8,            # enemy 0
                           0, 0, 0, 0, 0,                 # enemy 1: out of sight / dead
                           0, .9, .6, .6, .2,             # enemy 2: visible, not attackable
                           1, .2, .1, .1, 1.,             # ally (agent 1)
                           0, 0, 0, 0, 0,                 # ally (agent 2): not visible
                           .7])                           # own health
    last = torch.zeros(3, 9)
    last[0, 6 + 2] = 1  # agent 0 attacked enemy 2 last step
    tok = obs_entities(obs, "3m", last)
    assert tok.shape == (3, 1 + 3 + 2, OBS_TOKEN_DIM)
    own, ally, enemy = [1, 0, 0], [0, 1, 0], [0, 0, 1]
    expected = torch.tensor([
        _obs_row(own, 1, (0, 0, 0), .7, 0, MARINE, move=(1, 0, 1, 0), last=(0, 0, 0, 0, 0, 0, 1)),
        _obs_row(enemy, 1, (.5, .3, -.4), .8, 0, MARINE),
        _obs_row(enemy, 0, (0, 0, 0), 0, 0, NONE3),
        _obs_row(enemy, 0, (.9, .6, .6), .2, 0, MARINE, attacked=1.0),
        _obs_row(ally, 1, (.2, .1, .1), 1., 0, MARINE),
        _obs_row(ally, 0, (0, 0, 0), 0, 0, NONE3),
    ])
    torch.testing.assert_close(tok[0], expected)
    # a dead agent sees nothing: only the kind bits remain
    assert tok[1, :, 3:].abs().sum() == 0 and tok[1, 0, 0] == 1


def test_crafted_3s5z_observation_tokens_map_types_into_vocab():
    lay = get_map("3s5z").layout
    assert (lay.enemy_feat, lay.ally_feat, lay.own_feat, lay.obs_shape) == (8, 8, 4, 128)
    obs = torch.zeros(8, 128)
    e0 = 4  # enemy block; enemy one-hot order is [zealot, stalker]
    obs[0, e0:e0 + 8] = torch.tensor([1, .4, .2, .3, .5, .25, 0, 1])            # enemy 0: a stalker
    obs[0, e0 + 24:e0 + 32] = torch.tensor([0, .7, -.5, .1, 1, 1, 1, 0])        # enemy 3: a zealot
    a0 = 4 + 64  # ally block; ally one-hot order is [stalker, zealot]
    obs[0, a0:a0 + 8] = torch.tensor([1, .3, .1, -.2, .9, .6, 1, 0])            # agent 1: a stalker
    obs[0, a0 + 16:a0 + 24] = torch.tensor([1, .2, 0, .2, .4, 0, 0, 1])         # agent 3: a zealot
    obs[0, 124:128] = torch.tensor([.6, .3, 1, 0])                              # own: stalker
    obs[0, 0:4] = torch.tensor([0, 1, 1, 1])
    tok = obs_entities(obs, "3s5z")
    assert tok.shape == (8, 1 + 8 + 7, OBS_TOKEN_DIM)
    own, ally, enemy = [1, 0, 0], [0, 1, 0], [0, 0, 1]
    t = tok[0]
    torch.testing.assert_close(t[0], torch.tensor(_obs_row(own, 1, (0, 0, 0), .6, .3, STALKER, move=(0, 1, 1, 1))))
    torch.testing.assert_close(t[1], torch.tensor(_obs_row(enemy, 1, (.4, .2, .3), .5, .25, STALKER)))
    torch.testing.assert_close(t[1 + 3], torch.tensor(_obs_row(enemy, 0, (.7, -.5, .1), 1, 1, ZEALOT)))
    torch.testing.assert_close(t[9], torch.tensor(_obs_row(ally, 1, (.3, .1, -.2), .9, .6, STALKER)))
    torch.testing.assert_close(t[9 + 2], torch.tensor(_obs_row(ally, 1, (.2, 0, .2), .4, 0, ZEALOT)))
    assert t[[2, 3, 5, 6, 7, 8, 10, 12, 13, 14, 15], 3:].abs().sum() == 0  # absent units: zeros


def test_crafted_3s5z_state_tokens():
    lay = get_map("3s5z").layout
    assert (lay.ally_state, lay.enemy_state, lay.state_shape) == (7, 6, 216)
    s = torch.zeros(216)
    s[0:7] = torch.tensor([.9, .5, -.2, .1, .4, 1, 0])          # ally 0: stalker [health, cd, x, y, shield, s, z]
    s[35:42] = torch.tensor([1, 0, -.1, 0, 1, 0, 1])            # ally 5: zealot
    s[56:62] = torch.tensor([.8, .2, .05, .7, 0, 1])            # enemy 0: stalker [health, x, y, shield, z, s]
    s[98:104] = torch.tensor([.3, .25, -.05, 0, 1, 0])          # enemy 7: zealot
    la = 104
    s[la + 0 * 14 + 13] = 1                                     # ally 0 attacks enemy 7
    s[la + 5 * 14 + 2] = 1                                      # ally 5 moves north
    tok = state_entities(s, "3s5z")
    assert tok.shape == (16, STATE_TOKEN_DIM)
    ally, enemy = [1, 0], [0, 1]
    z7, z2 = [0.0] * 7, [0.0, 0.0]
    torch.testing.assert_close(tok[0], torch.tensor(
        [*ally, .9, .4, .5, -.2, .1, *STALKER, 0, 0, 0, 0, 0, 0, 1, .45, -.15, 0]))
    torch.testing.assert_close(tok[5], torch.tensor([*ally, 1, 1, 0, -.1, 0, *ZEALOT, 0, 0, 1, 0, 0, 0, 0, *z2, 0]))
    torch.testing.assert_close(tok[8], torch.tensor([*enemy, .8, .7, 0, .2, .05, *STALKER, *z7, *z2, 0]))
    torch.testing.assert_close(tok[15], torch.tensor([*enemy, .3, 0, 0, .25, -.05, *ZEALOT, *z7, *z2, 1 / 8]))
    assert tok[1, 2:].abs().sum() == 0  # a dead ally
    # passing the joint action explicitly overrides the state's last actions
    a = torch.zeros(8, 14)
    a[:, 1] = 1  # everyone stops
    tok2 = state_entities(s, "3s5z", a)
    assert torch.all(tok2[:8, 11] == 1) and tok2[:8, 16].sum() == 0 and tok2[8:, 19].sum() == 0


@pytest.mark.parametrize("name", ["3m", "5m_vs_6m", "13m_vs_15m", "3s5z", "1s3z", "4s6z"])
def test_shapes_and_widths_on_many_maps(name):
    spec = get_map(name)
    info = spec.env_info
    obs = torch.rand(2, 5, spec.n_agents, info["obs_shape"])
    state = torch.rand(2, 5, info["state_shape"])
    last = actions_onehot(torch.randint(0, spec.n_actions, (2, 5, spec.n_agents, 1)), spec.n_actions)
    o = obs_entities(obs, name, last)
    s = state_entities(state, name, last)
    assert o.shape == (2, 5, spec.n_agents, n_obs_tokens(name), OBS_TOKEN_DIM)
    assert s.shape == (2, 5, spec.n_agents + spec.n_enemies, STATE_TOKEN_DIM)
    assert torch.isfinite(o).all() and torch.isfinite(s).all()


def test_every_registered_map_decomposes():
    for name, spec in MAPS.items():
        info = spec.env_info
        assert obs_entities(torch.zeros(spec.n_agents, info["obs_shape"]), name).shape[-1] == OBS_TOKEN_DIM
        assert state_entities(torch.zeros(info["state_shape"]), name).shape[-1] == STATE_TOKEN_DIM


def test_wrong_width_names_map_and_expectation():
    with pytest.raises(EntityShapeError, match=r"'3m'.*expected 30"):
        obs_entities(torch.zeros(3, 31), "3m")
    with pytest.raises(EntityShapeError, match=r"state for map '3s5z'.*expected 216"):
        state_entities(torch.zeros(48), "3s5z")
    with pytest.raises(KeyError, match="unknown map"):
        obs_entities(torch.zeros(3, 30), "3mm")


def test_real_3m_data_tokens(real_3m_path):
    with h5py.File(real_3m_path) as f:
        obs = torch.tensor(f["obs"][:64])
        state = torch.tensor(f["state"][:64])
        actions = torch.tensor(f["actions"][:64])
        filled = torch.tensor(f["filled"][:64]).float()
        avail = torch.tensor(f["avail_actions"][:64]) > 0
        reward = torch.tensor(f["reward"][:64])
        terminated = torch.tensor(f["terminated"][:64]).float()
    last = EpisodeBatch(obs=obs, state=state, actions=actions, avail_actions=avail, reward=reward,
                        terminated=terminated, filled=filled, map_name="3m").last_actions_onehot
    # row t holds a_{t-1}, zeros at row 0 and after the episode's last filled row
    assert bool((last[:, 0] == 0).all())
    rows = filled[:, :-1, 0] > 0
    torch.testing.assert_close(last[:, 1:].argmax(-1, keepdim=True)[rows], actions[:, :-1][rows])
    assert bool((last[:, 1:][~rows] == 0).all())
    tok = obs_entities(obs, "3m", last)  # [B, T, 3, 6, 24]
    # every feature lands where the layout says
    torch.testing.assert_close(tok[..., 0, 7], obs[..., 29])  # own health
    torch.testing.assert_close(tok[..., 0, 12:16], obs[..., 0:4])  # move bits
    torch.testing.assert_close(tok[..., 1:4, 3:8], obs[..., 4:19].reshape(*obs.shape[:3], 3, 5))
    torch.testing.assert_close(tok[..., 4:6, 3:8], obs[..., 19:29].reshape(*obs.shape[:3], 2, 5))
    # marine bit = unit present; nothing in stalker/zealot/shield columns
    present = (obs[..., 4:19].reshape(*obs.shape[:3], 3, 5).abs().sum(-1) > 0).float()
    torch.testing.assert_close(tok[..., 1:4, 9], present)
    assert tok[..., [8, 10, 11]].abs().sum() == 0
    # own compact last action agrees with the enemy "attacked" flags
    torch.testing.assert_close(tok[..., 0, 22], tok[..., 1:4, 23].sum(-1))
    # the state's recorded last actions are the data's a_{t-1} on every filled row t >= 1
    s_tok = state_entities(state, "3m")
    rows = filled[:, 1:, 0] > 0
    rec = s_tok[:, 1:, :3, 10:17][rows]
    ours = torch.cat([last[:, 1:, :, :6], last[:, 1:, :, 6:].sum(-1, keepdim=True)], -1)[rows]
    torch.testing.assert_close(rec, ours)
    # t=0: allies at x = -0.25, enemies at x = +0.25 (reference section 6)
    x0 = s_tok[:, 0, :, 5]
    assert torch.allclose(x0[:, :3], torch.full_like(x0[:, :3], -0.25), atol=0.03)
    assert torch.allclose(x0[:, 3:], torch.full_like(x0[:, 3:], 0.25), atol=0.03)
