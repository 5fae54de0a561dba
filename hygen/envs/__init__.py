"""Environments: the built-in batched SMAC-compatible simulator (default) and the SC2 adapter."""

from __future__ import annotations

import torch

from hygen.envs.maps import MAPS, TASK_SETS, MapSpec, TaskSet, UnknownNameError, get_map, task_set
from hygen.envs.sim import InvalidActionError, SimEnv, StepOutput

BACKENDS = ("sim", "sc2")


def make(map_name: str, num_envs: int = 1, seed: int = 0, device: str | torch.device = "cpu",
         backend: str = "sim", **kwargs):
    """A batched SMAC-compatible environment.

    ``backend="sim"`` (default) is the built-in simulator (:class:`SimEnv`);
    ``backend="sc2"`` wraps ``num_envs`` real ``smac`` StarCraft2Env instances
    (:class:`hygen.envs.sc2.SC2Env`; needs SMAC and StarCraft II installed).
    Extra keyword arguments go to the backend's constructor.
    """
    if backend == "sim":
        return SimEnv(map_name, num_envs=num_envs, seed=seed, device=device, **kwargs)
    if backend == "sc2":
        from hygen.envs.sc2 import SC2Env

        return SC2Env(map_name, num_envs=num_envs, seed=seed, device=device, **kwargs)
    raise ValueError(f"unknown env backend {backend!r}; expected one of {BACKENDS}")


__all__ = [
    "BACKENDS",
    "MAPS",
    "TASK_SETS",
    "InvalidActionError",
    "MapSpec",
    "SimEnv",
    "StepOutput",
    "TaskSet",
    "UnknownNameError",
    "get_map",
    "make",
    "task_set",
]
