"""Small helpers shared by the learner tests (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import torch


def params(module) -> list[torch.Tensor]:
    """A snapshot of a module's parameters."""
    return [p.detach().clone() for p in module.parameters()]


def changed(before, module) -> bool:
    """Whether any parameter of ``module`` differs from the snapshot ``before``."""
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def scripted_play(map_name: str, num_envs: int, script: str):
    """(env, controller, state, ally start positions) for stepping a scripted policy by hand."""
    import hygen.envs as he
    from hygen.collect import HeuristicController

    env = he.make(map_name, num_envs=num_envs, seed=0)
    env.reset()
    ctl = HeuristicController(0.0, script)
    ctl.bind_env(env)
    start = env.unit_positions()[:, :env.n_agents].clone()
    return env, ctl, ctl.initial_state(map_name, num_envs), start
