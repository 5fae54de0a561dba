"""OfflineDataset: the real 3m file, ODIS layout and selection, writing, and bad input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from hygen.buffers import (
    DatasetError,
    OfflineDataset,
    dataset_files,
    infer_map_name,
    read_episodes,
    write_episodes,
)
from hygen.buffers.synthetic import random_episodes


def marked(n: int, first_id: int, map_name: str = "3m") -> object:
    b = random_episodes(map_name, n, lengths=[4 + i % 9 for i in range(n)], seed=first_id)
    b.reward[:, 0, 0] = torch.arange(first_id, first_id + n, dtype=torch.float32)
    return b


def ids(batch) -> list[int]:
    return sorted(int(x) for x in batch.reward[:, 0, 0])


# ----- the real dataset ------------------------------------------------------------------------
def test_real_3m_statistics(real_3m_path):
    ds = OfflineDataset(real_3m_path)  # map inferred from .../3m/medium/...
    s = ds.stats()
    assert ds.map_name == "3m" and s["episodes"] == 2000 and s["dropped"] == 0
    assert s["win_rate"] == pytest.approx(0.5415, abs=1e-4)  # reference: ~54 %
    assert s["return_mean"] == pytest.approx(14.004, abs=0.01)  # reference: ~14.0
    assert s["return_max"] == pytest.approx(20.0, abs=1e-3)
    # reference "about 26" counts filled rows; environment steps are one fewer
    assert s["length_mean"] == pytest.approx(25.225)
    assert float(ds.n_rows.double().mean()) == pytest.approx(26.225)
    assert s["length_max"] == 60  # some episodes time out at the 3m limit


def test_real_3m_packed_samples_match_file(real_3m_path):
    ds = OfflineDataset(real_3m_path)
    full = read_episodes(real_3m_path, start=1990)
    got = ds.episodes(torch.arange(1990, 2000))
    ref = full.trim()
    assert got.obs.shape == ref.obs.shape and got.n_offline == 10
    assert (got.obs - ref.obs).abs().max() < 3e-4  # float16 storage
    assert (got.state - ref.state).abs().max() < 3e-4
    for k in ("actions", "avail_actions", "reward", "terminated", "filled"):
        assert torch.equal(getattr(got, k), getattr(ref, k)), k
    assert torch.equal(got.mask, ref.mask)


def test_float32_storage_is_exact(real_3m_path):
    ds = OfflineDataset(real_3m_path, max_episodes=50, float_dtype=torch.float32)
    ref = read_episodes(real_3m_path, start=1950).trim()
    got = ds.episodes(torch.arange(50))
    assert torch.equal(got.obs, ref.obs[:, : got.max_seq_length])


def test_sample_shapes_and_seed(real_3m_path):
    ds = OfflineDataset(real_3m_path, max_episodes=300)
    a = ds.sample(32, torch.Generator().manual_seed(0))
    b = ds.sample(32, torch.Generator().manual_seed(0))
    assert torch.equal(a.obs, b.obs) and a.n_offline == 32
    assert a.max_seq_length == int(a.filled.sum((1, 2)).max())  # trimmed
    assert a.obs.dtype == torch.float32 and a.actions.dtype == torch.int64


def test_samples_carry_their_dataset_index():
    ds = OfflineDataset.from_batch(marked(20, 0))
    s = ds.sample(8, torch.Generator().manual_seed(3))
    assert s.reward[:, 0, 0].long().tolist() == s.episode_ids.tolist()  # marked: the id is the index


# ----- writing and the ODIS layout ------------------------------------------------------------
def test_write_roundtrip_in_odis_dtypes(tmp_path):
    b = random_episodes("3m", 12, seed=4)
    path = write_episodes(tmp_path / "3m" / "expert" / "part_0.h5", b)
    with h5py.File(path) as f:
        assert {k: str(f[k].dtype) for k in f} == {
            "obs": "float32", "state": "float32", "actions": "int64", "actions_onehot": "float32",
            "avail_actions": "int32", "reward": "float32", "terminated": "uint8", "filled": "int64"}
        assert f["obs"].shape == (12, 61, 3, 30) and f["obs"].compression == "gzip"
    back = read_episodes(path)
    for k in ("obs", "state", "actions", "avail_actions", "reward", "terminated", "filled"):
        assert torch.equal(getattr(back, k), getattr(b._pad_time(61), k)), k
    assert infer_map_name(path) == "3m"


def test_odis_layout_last_n_per_file_and_medium_expert(tmp_path):
    root = tmp_path / "data"
    write_episodes(root / "3m" / "medium" / "part_0.h5", marked(10, 0))
    write_episodes(root / "3m" / "medium" / "part_1.h5", marked(10, 100))
    write_episodes(root / "3m" / "expert" / "run_a" / "part_0.h5", marked(10, 200))
    write_episodes(root / "3m" / "expert" / "run_b" / "part_0.h5", marked(10, 300))
    # ODIS: max episodes split evenly over the files, the last ones of each file
    ds = OfflineDataset.load(root, "3m", "medium", max_episodes=8)
    assert ids(ds.episodes(torch.arange(len(ds)))) == [6, 7, 8, 9, 106, 107, 108, 109]
    # no .h5 directly under expert/: ODIS takes the last run directory
    assert [p.parent.name for p in dataset_files(root, "3m", "expert")] == ["run_b"]
    assert len(dataset_files(root, "3m", "expert", run="all")) == 2
    me = OfflineDataset.load(root, "3m", "medium-expert", max_episodes=6)
    assert ids(me.episodes(torch.arange(len(me)))) == [8, 9, 108, 109, 308, 309]
    everything = OfflineDataset.load(root, "3m", "medium_expert", max_episodes=None)
    assert len(everything) == 30
    rnd = OfflineDataset.load(root, "3m", "medium", max_episodes=8, selection="random", seed=1)
    assert len(rnd) == 8
    with pytest.raises(DatasetError, match="medium-replay"):
        dataset_files(root, "3m", "medium-replay")
    with pytest.raises(DatasetError, match="unknown dataset quality"):
        dataset_files(root, "3m", "good")


def test_infer_map_from_shapes(tmp_path):
    path = write_episodes(tmp_path / "somewhere" / "x.h5", random_episodes("5m_vs_6m", 2))
    assert infer_map_name(path) == "5m_vs_6m"
    assert OfflineDataset(path).map_name == "5m_vs_6m"


# ----- bad input: one clear DatasetError naming file, key and expectation ---------------------
def rewrite(path, **changes) -> None:
    """Copy of a valid file with some keys replaced (None deletes the key)."""
    with h5py.File(path, "a") as f:
        for key, value in changes.items():
            del f[key]
            if value is not None:
                f.create_dataset(key, data=value)


@pytest.fixture
def good_file(tmp_path):
    return write_episodes(tmp_path / "3m" / "medium" / "part_0.h5", random_episodes("3m", 6, seed=5))


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        OfflineDataset(tmp_path / "nope.h5", "3m")


def test_missing_key(good_file):
    rewrite(good_file, reward=None)
    with pytest.raises(DatasetError, match=r"part_0\.h5: missing key 'reward'"):
        OfflineDataset(good_file)


def test_shape_not_fitting_map(good_file):
    with h5py.File(good_file) as f:
        obs = f["obs"][:]
    rewrite(good_file, obs=obs[..., :29])
    with pytest.raises(DatasetError, match=r"key 'obs' has shape \(6, 61, 3, 29\), expected \(6, 61, 3, 30\)"):
        OfflineDataset(good_file)
    # the right shapes but the wrong map named
    with pytest.raises(DatasetError, match="for map '5m'"):
        OfflineDataset(good_file.parent, "5m")


def test_wrong_dtype(good_file):
    with h5py.File(good_file) as f:
        actions = f["actions"][:]
    rewrite(good_file, actions=actions.astype(np.float32))
    with pytest.raises(DatasetError, match="key 'actions' has dtype float32, expected signed int or unsigned int"):
        OfflineDataset(good_file)


def test_nan_values_are_refused_at_load(good_file):
    with h5py.File(good_file) as f:
        state = f["state"][:]
    state[4, 2, 7] = np.nan
    rewrite(good_file, state=state)
    with pytest.raises(DatasetError, match=r"part_0\.h5: key 'state' holds NaN/inf in 1 episode\(s\), e\.g\. \[4\]"):
        OfflineDataset(good_file)


def test_truncated_file(good_file):
    data = good_file.read_bytes()
    good_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="part_0.h5: not a readable HDF5 file"):
        OfflineDataset(good_file)


def test_corrupt_chunks(tmp_path):
    path = write_episodes(tmp_path / "3m" / "medium" / "part_0.h5", random_episodes("3m", 64, seed=6))
    with h5py.File(path) as f:
        offset = f["obs"].id.get_chunk_info(0).byte_offset
    raw = bytearray(path.read_bytes())
    raw[offset + 100: offset + 4000] = b"\x00" * 3900  # destroy the gzip stream of one chunk
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="cannot read key 'obs'"):
        OfflineDataset(path)


def test_not_hdf5_at_all(tmp_path):
    path = tmp_path / "3m" / "medium" / "part_0.h5"
    path.parent.mkdir(parents=True)
    path.write_text("episode,reward\n1,2\n")
    with pytest.raises(DatasetError, match="not a readable HDF5 file"):
        OfflineDataset(path)


def test_empty_dataset(tmp_path):
    b = random_episodes("3m", 2)[:0]
    path = tmp_path / "3m" / "medium" / "part_0.h5"
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as f:
        for k in ("obs", "state", "actions", "avail_actions", "reward", "terminated", "filled"):
            f.create_dataset(k, data=getattr(b._pad_time(61), k).numpy().astype(
                np.int64 if k in ("actions", "filled") else np.float32 if k in ("obs", "state", "reward")
                else np.uint8))
    with pytest.raises(DatasetError, match="empty dataset"):
        OfflineDataset(path)


def test_empty_directory(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(DatasetError, match="holds no .h5 files"):
        OfflineDataset(tmp_path / "d", "3m")


def test_filled_with_gaps_and_out_of_range_actions(good_file):
    with h5py.File(good_file) as f:
        filled, actions = f["filled"][:], f["actions"][:]
    filled[0, 1] = 0
    rewrite(good_file, filled=filled)
    with pytest.raises(DatasetError, match="key 'filled' of episode 0 has gaps"):
        OfflineDataset(good_file)
    filled[0, 1] = 1
    actions[2, 0, 0, 0] = 9
    rewrite(good_file, filled=filled, actions=actions)
    with pytest.raises(DatasetError, match=r"key 'actions' holds values outside \[0, 9\)"):
        OfflineDataset(good_file)
