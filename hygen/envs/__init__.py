"""Environments: the built-in batched SMAC-compatible simulator (default) and the SC2 adapter."""

from __future__ import annotations

import gin
import torch

from hygen.envs.maps import MAPS, TASK_SETS, MapSpec, TaskSet, UnknownNameError, get_map, task_set
from hygen.envs.sc2 import SC2Env, SC2NotAvailableError, check_sc2  # imports SMAC only to build an env
from hygen.envs.sim import (
    CALIBRATED_GAME,
    LEGACY_GAME,
    MECHANICS,
    VARIED_GAME,
    InvalidActionError,
    SimEnv,
    StepOutput,
)

BACKENDS = ("sim", "sc2")

# Backends as gin-registered classes: `environment.backend = @SC2Env` (or @SimEnv, the default).
# The registered names wrap the classes without changing them (gin.external_configurable); make()
# builds through the wrappers, so bindings such as `SimEnv.collisions = True` apply whether or not
# the backend is bound.
_CONFIGURABLE = {SimEnv: gin.external_configurable(SimEnv, "SimEnv"),
                 SC2Env: gin.external_configurable(SC2Env, "SC2Env")}


@gin.configurable("environment")
def bound_backend(backend=None):
    """The environment backend every runner builds (train, evaluate, collect, render):
    bind ``environment.backend = @SC2Env`` for real StarCraft II; unbound, the built-in simulator."""
    return backend


def _backend_class(backend):
    if backend is None or backend == "sim":
        return _CONFIGURABLE[SimEnv]
    if backend == "sc2":
        return _CONFIGURABLE[SC2Env]
    if isinstance(backend, type):
        return _CONFIGURABLE.get(backend, backend)
    raise ValueError(f"unknown env backend {backend!r}; expected one of {BACKENDS}, or a class such as "
                     "SimEnv / SC2Env (gin: environment.backend = @SC2Env)")


def make(map_name: str, num_envs: int = 1, seed: int = 0, device: str | torch.device = "cpu",
         backend=None, **kwargs):
    """A batched SMAC-compatible environment.

    ``backend``: "sim" or :class:`SimEnv`, the built-in simulator; "sc2" or :class:`SC2Env`,
    ``num_envs`` real ``smac`` StarCraft2Env instances (needs SMAC and StarCraft II installed);
    None (default): the gin binding ``environment.backend``, else the simulator.
    Extra keyword arguments go to the backend's constructor.
    """
    cls = _backend_class(bound_backend() if backend is None else backend)
    return cls(map_name, num_envs=num_envs, seed=seed, device=device, **kwargs)


def bound_game(map_name: str = "3m") -> dict:
    """The game the bound backend plays on ``map_name``: ``{"backend": "sc2"}`` for real
    StarCraft II, else ``{"backend": "sim", <mechanic>: on/off, ...}`` (``SimEnv.game``, gin
    bindings such as ``--gin_file envs/legacy`` included; the same on every map). Data collected
    in one game and trained on in another is a different experiment; ``hygen collect`` and every
    run record it."""
    if issubclass(_backend_class(bound_backend()), SC2Env):
        return {"backend": "sc2"}
    return {"backend": "sim", **make(map_name, num_envs=1, backend="sim").game}


def game_differences(a: dict, b: dict) -> list[str]:
    """Where two recorded games (``bound_game``) differ, as ``"key: a / b"``; a mechanic a
    record does not name was off (records made before it existed)."""
    keys = sorted(set(a) | set(b))
    return [f"{k}: {a.get(k, False)} / {b.get(k, False)}" for k in keys if a.get(k, False) != b.get(k, False)]


def recorded_game(record: dict) -> dict:
    """The game a ``collect.json`` or a run's ``meta.json`` records (``bound_game``). Records
    made before the key existed were made in the legacy game, every mechanic off (the
    simulator's default then)."""
    return record.get("game", {"backend": "sim"})


def bind_recorded_game(record: dict) -> list[str]:
    """Bind (gin) the simulator's mechanics to the game ``record`` names, so a run is replayed
    or evaluated in the game it was made in; returns how that differs from the game bound
    before (``game_differences``, record / before), [] when nothing changed. Real SC2 runs and
    an SC2 backend are left alone."""
    made_in, now = recorded_game(record), bound_game()
    if now["backend"] != "sim" or made_in.get("backend", "sim") != "sim":
        return []
    diff = game_differences(made_in, now)
    if diff:
        gin.parse_config([f"SimEnv.{k} = {bool(made_in.get(k, False))}" for k in MECHANICS])
    return diff


def check_backend(maps) -> None:
    """Fail now, with what to install, when the bound backend cannot run ``maps`` (SC2 missing),
    rather than at the first evaluation."""
    if issubclass(_backend_class(bound_backend()), SC2Env):
        for m in maps:
            check_sc2(m)


__all__ = [
    "BACKENDS",
    "CALIBRATED_GAME",
    "LEGACY_GAME",
    "MAPS",
    "MECHANICS",
    "TASK_SETS",
    "VARIED_GAME",
    "InvalidActionError",
    "MapSpec",
    "SC2Env",
    "SC2NotAvailableError",
    "SimEnv",
    "StepOutput",
    "TaskSet",
    "UnknownNameError",
    "bind_recorded_game",
    "bound_backend",
    "bound_game",
    "check_backend",
    "game_differences",
    "get_map",
    "make",
    "recorded_game",
    "task_set",
]
