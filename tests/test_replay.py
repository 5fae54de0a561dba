"""ReplayBuffer: FIFO with wraparound, sampling, checkpoint round trip."""

from __future__ import annotations

import pytest
import torch

from hygen.buffers import EpisodeBatch, ReplayBuffer, ReplayBufferError
from hygen.buffers.synthetic import random_episodes


def marked(ids: list[int], lengths: list[int] | None = None) -> EpisodeBatch:
    """3m episodes whose first reward is their id, so we can tell which are stored."""
    n = len(ids)
    b = random_episodes("3m", n, lengths=lengths or [5 + i % 7 for i in ids], seed=ids[0])
    b.reward[:, 0, 0] = torch.tensor(ids, dtype=torch.float32)
    return b


def stored_ids(buf: ReplayBuffer) -> list[int]:
    sd = buf.state_dict()  # oldest first, filled rows packed end to end
    first_rows = sd["n_rows"].cumsum(0) - sd["n_rows"]
    return [int(x) for x in sd["data"]["reward"][first_rows, 0]]


def test_fifo_wraparound():
    buf = ReplayBuffer("3m", capacity=5)
    buf.insert(marked([0, 1, 2]))
    assert len(buf) == 3 and stored_ids(buf) == [0, 1, 2]
    buf.insert(marked([3, 4, 5, 6]))  # wraps: 0 and 1 are overwritten
    assert len(buf) == 5 and stored_ids(buf) == [2, 3, 4, 5, 6]
    buf.insert(marked([7, 8, 9, 10, 11, 12, 13]))  # more than capacity: the newest 5 survive
    assert stored_ids(buf) == [9, 10, 11, 12, 13]
    assert buf.episodes_inserted == 14


def test_short_episode_clears_leftover_rows():
    buf = ReplayBuffer("3m", capacity=1)
    buf.insert(marked([0], lengths=[50]))
    buf.insert(marked([1], lengths=[3]).trim())  # only 4 rows given
    ep = buf.episodes(torch.tensor([0]))
    assert ep.max_seq_length == 4 and ep.episode_lengths.tolist() == [3]
    assert buf._data["obs"][0, 4:].abs().sum() == 0 and buf._data["filled"][0, 4:].sum() == 0


def test_sample_roundtrips_episodes_exactly():
    src = marked(list(range(8)))
    buf = ReplayBuffer("3m", capacity=8)
    buf.insert(src)
    s = buf.sample(8, generator=torch.Generator().manual_seed(0))
    assert s.n_offline == 0 and len(s) == 8
    ids = s.reward[:, 0, 0].long()
    assert sorted(ids.tolist()) == list(range(8))  # without replacement
    ref = src[ids].trim()
    assert s.max_seq_length == ref.max_seq_length
    for k in ("obs", "state", "actions", "avail_actions", "reward", "terminated", "filled"):
        assert torch.equal(getattr(s, k), getattr(ref, k)), k
    assert torch.equal(s.battle_won, src.won[ids])


def test_sample_is_seeded_and_checks_size():
    buf = ReplayBuffer("3m", capacity=20)
    buf.insert(marked(list(range(20))))
    a = buf.sample(5, torch.Generator().manual_seed(1)).reward[:, 0, 0]
    b = buf.sample(5, torch.Generator().manual_seed(1)).reward[:, 0, 0]
    assert torch.equal(a, b)
    assert not buf.can_sample(21)
    with pytest.raises(ReplayBufferError, match="holds 20 episodes"):
        buf.sample(21)


def test_refuses_other_maps_and_long_episodes():
    buf = ReplayBuffer("3m", capacity=4, max_seq_length=10)
    with pytest.raises(ReplayBufferError, match="map '5m'"):
        buf.insert(random_episodes("5m", 1))
    with pytest.raises(ReplayBufferError, match="max_seq_length"):
        buf.insert(random_episodes("3m", 1, lengths=[20]))
    buf.insert(random_episodes("3m", 1, lengths=[9]))  # 10 rows fit
    assert len(buf) == 1


def test_checkpoint_roundtrip_resumes_fifo(tmp_path):
    buf = ReplayBuffer("3m", capacity=6)
    buf.insert(marked(list(range(9))))  # wrapped
    torch.save(buf.state_dict(), tmp_path / "replay.pt")
    resumed = ReplayBuffer("3m", capacity=6)
    resumed.load_state_dict(torch.load(tmp_path / "replay.pt"))
    assert len(resumed) == 6 and stored_ids(resumed) == stored_ids(buf) == [3, 4, 5, 6, 7, 8]
    for b in (buf, resumed):
        b.insert(marked([9, 10]))
    assert stored_ids(resumed) == stored_ids(buf) == [5, 6, 7, 8, 9, 10]
    smaller = ReplayBuffer("3m", capacity=3)
    smaller.load_state_dict(buf.state_dict())
    assert stored_ids(smaller) == [8, 9, 10]
    with pytest.raises(ReplayBufferError, match="map_name"):
        ReplayBuffer("5m", capacity=6).load_state_dict(buf.state_dict())


def test_float16_storage_option():
    src = marked([0, 1])
    buf = ReplayBuffer("3m", capacity=2, float_dtype=torch.float16)
    buf.insert(src)
    s = buf.episodes(torch.tensor([0, 1]))
    assert s.obs.dtype == torch.float32
    assert (s.obs - src.trim().obs).abs().max() < 1e-3
    assert buf.nbytes() < ReplayBuffer("3m", capacity=2).nbytes()


def test_executed_skills_are_stored_and_checkpointed():
    src = marked(list(range(4)))
    rows = src.filled[..., None].bool().expand_as(src.actions)  # as the runner records: -1 past the end
    src.skills = torch.where(rows, torch.randint(0, 4, src.actions.shape), -1)
    buf = ReplayBuffer("3m", capacity=6)
    buf.insert(src)
    buf.insert(marked([4, 5]))  # episodes without skills: -1
    s = buf.episodes(torch.arange(6))
    T1 = src.max_seq_length
    assert s.max_seq_length >= T1
    assert torch.equal(s.skills[:4, :T1], src.skills) and (s.skills[:4, T1:] == -1).all()
    assert (s.skills[4:] == -1).all()
    sd = buf.state_dict()
    other = ReplayBuffer("3m", capacity=6)
    other.load_state_dict(sd)
    assert torch.equal(other.episodes(torch.arange(6)).skills, s.skills)
    del sd["data"]["skills"]  # a checkpoint from before skills were stored loads as "unknown"
    other.load_state_dict(sd)
    assert (other.episodes(torch.arange(6)).skills == -1).all()


def test_samples_carry_the_insertion_number_of_each_episode(tmp_path):
    buf = ReplayBuffer("3m", capacity=5)
    buf.insert(marked([0, 1, 2]))
    buf.insert(marked([3, 4, 5, 6, 7, 8, 9, 10]))  # more than capacity: 6..10 survive
    s = buf.sample(5, torch.Generator().manual_seed(0))
    assert sorted(s.episode_ids.tolist()) == [6, 7, 8, 9, 10]
    assert s.reward[:, 0, 0].long().tolist() == s.episode_ids.tolist()  # the id is the episode's own
    again = ReplayBuffer("3m", capacity=5)
    again.load_state_dict(buf.state_dict())
    s = again.sample(5, torch.Generator().manual_seed(1))
    assert s.reward[:, 0, 0].long().tolist() == s.episode_ids.tolist()
