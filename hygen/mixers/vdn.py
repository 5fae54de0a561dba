"""VDN: Q_tot = sum_i Q_i (Sunehag et al. 2018)."""

from __future__ import annotations

import gin
from torch import Tensor

from hygen.mixers.base import ValueMixer


@gin.configurable
class VDNMixer(ValueMixer):
    """Sum of agent values; parameter-free, trivially monotonic, any agent count."""

    def condition(self, state: Tensor, map_name: str, valid: Tensor | None = None) -> None:
        return None

    def mix(self, agent_qs: Tensor, cond: None) -> Tensor:
        return agent_qs.sum(-1, keepdim=True)
