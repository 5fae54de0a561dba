"""Which skill z a stored sample carries in eq. 4, the conservative term and refinement.
Bind one as ``HyGenLearner.skill_labels``."""

from __future__ import annotations

import gin
import torch
from torch import Tensor

__all__ = ["ExecutedSkills", "RelabelledSkills", "SkillLabels"]


class SkillLabels:
    """relabelled [B, T, n] (argmax of the frozen global encoder on (s_t, a_t)), executed
    [B, T, n] or None (what the agent chose, -1 where not recorded) -> z [B, T, n]."""

    def __call__(self, relabelled: Tensor, executed: Tensor | None) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@gin.configurable
class RelabelledSkills(SkillLabels):
    """Every sample, offline or online, is labelled by the global encoder (the public code):
    a skill is valued as "the kind of action taken"."""

    def __call__(self, relabelled, executed):
        return relabelled


@gin.configurable
class ExecutedSkills(SkillLabels):
    """Online samples carry the skill the agent executed (the runner records it), offline ones
    the relabelled skill: a skill is valued as what the decoder does when it is chosen, the
    return the greedy policy gets (e.g. "attack" chosen out of range moves, and relabelling
    would credit the move skill with it)."""

    def __call__(self, relabelled, executed):
        return relabelled if executed is None else torch.where(executed >= 0, executed, relabelled)
