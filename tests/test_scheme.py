"""The episode scheme is the one definition every episode container follows."""

from __future__ import annotations

import h5py
import pytest
import torch

from hygen.buffers import EpisodeBatch, EpisodeBatchError, ReplayBuffer, random_episodes, write_episodes
from hygen.buffers.scheme import EPISODE_SCHEME, STEP_FIELDS, allocate, field_shape
from hygen.envs import get_map
from hygen.runner import Runner, epsilon_greedy


class RandomSkillController:
    """Uniform random actions and a random skill per agent (so the skills field is written)."""

    def initial_state(self, map_name, num_envs):
        return {"skill": torch.full((num_envs, get_map(map_name).n_agents), -1)}

    def act(self, map_name, obs, avail, agent_state, epsilon, generator):
        skill = torch.randint(0, 3, avail.shape[:2], generator=generator)
        return epsilon_greedy(torch.zeros(avail.shape), avail, 1.0, generator), {"skill": skill}


def test_scheme_matches_the_real_odis_file(real_3m_path):
    """Shapes and dtypes of ODIS's keys on the real SC2 file, field by field."""
    spec = get_map("3m")
    with h5py.File(real_3m_path, "r") as f:
        B, T = f["obs"].shape[:2]
        for k in STEP_FIELDS:
            assert f[k].shape == field_shape(k, spec, B, T), k
            assert f[k].dtype == EPISODE_SCHEME[k].odis, k


def test_hand_checked_shapes_for_3s5z():
    # 3s5z: 8 agents, 8 enemies, 14 actions, obs 128, state 216 (reference sec. 4)
    spec = get_map("3s5z")
    assert field_shape("obs", spec, 2, 151) == (2, 151, 8, 128)
    assert field_shape("state", spec, 2, 151) == (2, 151, 216)
    assert field_shape("avail_actions", spec, 2, 151) == (2, 151, 8, 14)
    assert field_shape("skills", spec, 2, 151) == (2, 151, 8, 1)


def test_allocate_fills_padding_and_picks_dtypes():
    spec = get_map("3m")
    store = allocate(spec, 2, 5, "storage")
    batch = allocate(spec, 2, 5, "batch")
    assert set(store) == set(EPISODE_SCHEME)
    assert store["terminated"].dtype == torch.bool and batch["terminated"].dtype == torch.float32
    assert store["actions"].dtype == torch.uint8 and batch["actions"].dtype == torch.int64
    assert bool((store["skills"] == -1).all()) and bool((store["obs"] == 0).all())
    assert allocate(spec, 1, 2, float_dtype=torch.float16)["obs"].dtype == torch.float16
    with pytest.raises(ValueError, match="'storage' or 'batch'"):
        allocate(spec, 1, 2, "odis")


def test_containers_store_what_the_scheme_says():
    replay = ReplayBuffer("3m", capacity=4)
    runner = Runner("3m", num_envs=2)
    for k, f in EPISODE_SCHEME.items():
        assert replay._data[k].dtype == f.storage, k
        assert runner.buf[k].dtype == f.storage, k
    episodes, _ = runner.collect(RandomSkillController(), n_episodes=2)  # written through storage dtypes
    assert episodes.skills is not None and int(episodes.skills.max()) >= 1
    known = (episodes.skills[:, :-1, :, 0] >= 0)  # skills recorded exactly on the step rows
    assert bool((known == (episodes.mask > 0).expand_as(known)).all())
    batch = random_episodes("3m", 3, seed=1)
    replay.insert(batch)
    back = replay.sample(3, torch.Generator().manual_seed(0))
    for k in STEP_FIELDS:
        assert getattr(back, k).dtype == EPISODE_SCHEME[k].batch, k


def test_episode_batch_checks_shapes_against_the_map():
    b = EpisodeBatch.zeros("3m", 2)
    with pytest.raises(EpisodeBatchError, match=r"EpisodeBatch.state: expected shape \[2, 61, 48\] for map '3m'"):
        EpisodeBatch(**{k: getattr(b, k) for k in STEP_FIELDS if k != "state"},
                     state=torch.zeros(2, 61, 50), map_name="3m")


def test_odis_writer_uses_the_scheme_dtypes(tmp_path):
    path = write_episodes(tmp_path / "part_0.h5", random_episodes("3m", 3, seed=0))
    with h5py.File(path, "r") as f:
        for k in STEP_FIELDS:
            assert f[k].dtype == EPISODE_SCHEME[k].odis, k
        assert "skills" not in f  # not an ODIS key
