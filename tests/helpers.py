"""Small helpers shared by the learner tests (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import torch


def params(module) -> list[torch.Tensor]:
    """A snapshot of a module's parameters."""
    return [p.detach().clone() for p in module.parameters()]


def changed(before, module) -> bool:
    """Whether any parameter of ``module`` differs from the snapshot ``before``."""
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))
