"""EpisodeBatch: PyMARL row convention, the learner mask, cat/index/trim, derived quantities."""

from __future__ import annotations

import pytest
import torch

from hygen.buffers import EpisodeBatch, EpisodeBatchError, read_episodes, win_bonus
from hygen.buffers.synthetic import random_episodes


def hand_batch() -> EpisodeBatch:
    """Two 3m episodes by hand: 2 steps (lost) and 4 steps (won), T+1 = 7 rows."""
    b = EpisodeBatch.zeros("3m", 2, 7)
    b.filled[0, :3] = 1  # rows 0,1 steps; row 2 final obs
    b.filled[1, :5] = 1
    b.terminated[0, 1] = 1
    b.terminated[1, 3] = 1
    b.reward[0, :2, 0] = torch.tensor([0.5, 1.0])
    b.reward[1, :4, 0] = torch.tensor([0.25, 0.25, 0.5, 0.5 + win_bonus("3m")])
    b.actions[1, :5] = 7
    return b


def test_mask_matches_pymarl_rule_by_hand():
    b = hand_batch()
    mask = b.mask
    assert mask.shape == (2, 6, 1) and mask.dtype == torch.float32
    assert mask[0, :, 0].tolist() == [1, 1, 0, 0, 0, 0]  # the final-obs row 2 is masked out
    assert mask[1, :, 0].tolist() == [1, 1, 1, 1, 0, 0]
    assert b.episode_lengths.tolist() == [2, 4]
    assert b.returns.tolist() == pytest.approx([1.5, 1.5 + win_bonus("3m")])
    assert b.battle_won.tolist() == [False, True]


def test_win_bonus_is_smac_scale():
    assert win_bonus("3m") == pytest.approx(200 * 20 / 365)  # 365 = 3*10 + 200 + 3*45
    assert win_bonus("3s5z") == pytest.approx(4000 / (80 + 200 + 3 * 160 + 5 * 150))


def test_trim_cuts_to_longest_filled_episode():
    b = hand_batch()
    t = b.trim()
    assert t.max_seq_length == 5 and t.obs.shape == (2, 5, 3, 30)
    assert torch.equal(t.mask, b.mask[:, :4])
    assert t.trim() is t  # idempotent


def test_actions_onehot_derived_and_zero_on_padding():
    b = hand_batch()
    oh = b.actions_onehot
    assert oh.shape == (2, 7, 3, 9)
    assert torch.equal(oh[1, :5, :, 7], torch.ones(5, 3))
    assert oh[1, 5:].sum() == 0 and oh[0, 3:].sum() == 0
    assert oh[0, :3, :, 0].sum() == 9  # action 0 on filled rows


def test_cat_pads_time_and_counts_offline():
    off = random_episodes("3m", 3, lengths=[10, 12, 5], seed=1)
    off.n_offline = 3
    on = random_episodes("3m", 2, lengths=[30, 4], seed=2)
    c = EpisodeBatch.cat([off.trim(), on.trim()])
    assert len(c) == 5 and c.n_offline == 3 and c.max_seq_length == 31
    assert c.episode_lengths.tolist() == [10, 12, 5, 30, 4]
    assert c.filled[:3, 13:].sum() == 0  # padding of the shorter part is empty
    assert torch.equal(c.obs[3:], on.trim().obs)
    with pytest.raises(EpisodeBatchError, match="offline episodes must come before"):
        EpisodeBatch.cat([on, off])
    with pytest.raises(EpisodeBatchError, match="different maps"):
        EpisodeBatch.cat([off, random_episodes("5m", 1)])


def test_indexing_keeps_batch_axis_and_offline_prefix():
    b = random_episodes("3m", 6, seed=3)
    b.n_offline = 4
    assert len(b[0]) == 1 and b[0].n_offline == 1
    assert b[-1].n_offline == 0 and torch.equal(b[-1].obs, b.obs[5:])
    assert b[2:5].n_offline == 2
    sel = b[torch.tensor([1, 3, 5])]
    assert sel.n_offline == 2 and torch.equal(sel.reward, b.reward[[1, 3, 5]])
    assert b[[True, False, True, False, False, True]].n_offline == 2
    with pytest.raises(EpisodeBatchError):
        b[torch.tensor([5, 0])]  # online before offline


def test_shape_errors_name_the_field():
    b = hand_batch()
    with pytest.raises(EpisodeBatchError, match="state"):
        EpisodeBatch(obs=b.obs, state=b.state[:, :3], actions=b.actions, avail_actions=b.avail_actions,
                     reward=b.reward, terminated=b.terminated, filled=b.filled, map_name="3m")
    with pytest.raises(EpisodeBatchError, match="actions"):
        EpisodeBatch(obs=b.obs, state=b.state, actions=b.actions[..., :2, :], avail_actions=b.avail_actions,
                     reward=b.reward, terminated=b.terminated, filled=b.filled, map_name="3m")


def test_to_device_and_dtypes():
    b = random_episodes("3m", 2).to("cpu")
    assert b.device.type == "cpu"
    assert b.avail_actions.dtype == torch.bool and b.actions.dtype == torch.int64
    assert b.terminated.dtype == torch.float32 and b.filled.dtype == torch.float32


def test_real_file_conventions(real_3m_path):
    b = read_episodes(real_3m_path)
    filled_rows = b.filled.sum((1, 2))
    # the mask covers exactly the steps: filled rows minus the final-observation row
    assert torch.equal(b.mask.sum((1, 2)), filled_rows - 1)
    rows = torch.arange(len(b))
    assert (b.terminated[rows, filled_rows.long() - 2, 0] == 1).all()
    assert b.terminated.sum() == len(b)
    # derived one-hot equals the one ODIS stored
    import h5py

    with h5py.File(real_3m_path) as f:
        stored = torch.from_numpy(f["actions_onehot"][:200])
    assert torch.equal(b[:200].actions_onehot, stored)
    # win = win bonus on the last step; on this file it coincides with "return == 20"
    won = b.battle_won
    assert won.float().mean().item() == pytest.approx(0.5415)
    assert torch.equal(won, b.returns > 19.99)


def test_executed_skills_follow_cat_index_trim_and_shape_check():
    off = random_episodes("3m", 2, lengths=[6, 4], seed=1)
    off.n_offline = 2
    on = random_episodes("3m", 2, lengths=[9, 3], seed=2)
    on.skills = torch.randint(0, 4, on.actions.shape)
    c = EpisodeBatch.cat([off.trim(), on.trim()])
    assert c.skills.shape == c.actions.shape and c.skills.dtype == torch.int64
    assert (c.skills[:2] == -1).all()  # offline episodes: unknown
    assert torch.equal(c.skills[2:], on.skills[:, :c.max_seq_length])
    assert torch.equal(c[torch.tensor([3])].skills, c.skills[3:])
    assert c.trim().skills.shape[1] == c.trim().max_seq_length
    assert EpisodeBatch.cat([off, off]).skills is None
    with pytest.raises(EpisodeBatchError, match="skills"):
        EpisodeBatch(obs=on.obs, state=on.state, actions=on.actions, avail_actions=on.avail_actions,
                     reward=on.reward, terminated=on.terminated, filled=on.filled, map_name="3m",
                     skills=on.skills[:, :, :2])


def test_episode_ids_follow_cat_index_and_to():
    off = random_episodes("3m", 2, lengths=[6, 4], seed=1)
    off.n_offline, off.episode_ids = 2, torch.tensor([7, 3])
    on = random_episodes("3m", 3, lengths=[9, 3, 5], seed=2)
    c = EpisodeBatch.cat([off, on])
    assert c.episode_ids.tolist() == [7, 3, -1, -1, -1]  # parts without ids: unknown
    assert c[torch.tensor([1, 4])].episode_ids.tolist() == [3, -1] and c.to("cpu").episode_ids is not None
    assert EpisodeBatch.cat([on, on]).episode_ids is None
    with pytest.raises(EpisodeBatchError, match="episode_ids: expected 3 entries"):
        EpisodeBatch(obs=on.obs, state=on.state, actions=on.actions, avail_actions=on.avail_actions,
                     reward=on.reward, terminated=on.terminated, filled=on.filled, map_name="3m",
                     episode_ids=torch.arange(2))
