"""Episode data: the EpisodeBatch, online replay, offline ODIS datasets and hybrid samplers."""

from hygen.buffers.episode import EpisodeBatch, EpisodeBatchError, win_bonus
from hygen.buffers.offline import (
    ODIS_KEYS,
    QUALITIES,
    DatasetError,
    OfflineDataset,
    dataset_files,
    expand_paths,
    infer_map_name,
    read_episodes,
    validate_file,
    write_episodes,
)
from hygen.buffers.replay import ReplayBuffer, ReplayBufferError
from hygen.buffers.samplers import (
    FixedRatio,
    HybridSampler,
    LinearDecayRatio,
    OfflineOnly,
    OnlineOnly,
    PerformanceRatio,
    SamplerError,
)
from hygen.buffers.synthetic import random_episodes

__all__ = [
    "ODIS_KEYS", "QUALITIES", "DatasetError", "EpisodeBatch", "EpisodeBatchError", "FixedRatio",
    "HybridSampler", "LinearDecayRatio", "OfflineDataset", "OfflineOnly", "OnlineOnly", "PerformanceRatio",
    "ReplayBuffer", "ReplayBufferError", "SamplerError", "dataset_files", "expand_paths", "infer_map_name", "random_episodes", "read_episodes",
    "validate_file", "win_bonus", "write_episodes",
]
