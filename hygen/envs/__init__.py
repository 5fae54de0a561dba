"""Environments: the built-in batched SMAC-compatible simulator (default) and the SC2 adapter."""

from hygen.envs.maps import MAPS, TASK_SETS, MapSpec, TaskSet, UnknownNameError, get_map, task_set

__all__ = ["MAPS", "TASK_SETS", "MapSpec", "TaskSet", "UnknownNameError", "get_map", "task_set"]
