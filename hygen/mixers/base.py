"""The ValueMixer interface: Q_tot from the agents' values and the state."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from torch import Tensor, nn


class ValueMixer(nn.Module, ABC):
    """Map-agnostic mixer: Q_tot = f(Q_1..Q_n; s) with dQ_tot/dQ_i >= 0 (IGM).

    Split in two so the state-conditioned part runs once when several sets of agent
    values are mixed on the same states (TD term and the conservative term of eq. 6).
    """

    @abstractmethod
    def condition(self, state: Tensor, map_name: str, valid: Tensor | None = None) -> Any:
        """state [B, T, S] (valid [B, T] bool: rows that matter) -> what ``mix`` needs."""

    @abstractmethod
    def mix(self, agent_qs: Tensor, cond: Any) -> Tensor:
        """agent_qs [B, T, n] -> Q_tot [B, T, 1]."""

    def forward(self, agent_qs: Tensor, state: Tensor, map_name: str, valid: Tensor | None = None) -> Tensor:
        """agent_qs [B, T, n], state [B, T, S] -> Q_tot [B, T, 1]."""
        return self.mix(agent_qs, self.condition(state, map_name, valid))
