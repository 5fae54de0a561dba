"""What the action decoder is conditioned on besides the skill: nothing (every method but
BC-r), or BC-r's return-to-go (Decision Transformer). Bind one as
``HyGenLearner.return_conditioning``; the decoder needs the matching input
(``AttentionActionDecoder.return_conditioned``), which the learner checks."""

from __future__ import annotations

import gin
import torch
from torch import Tensor

from hygen.encoders.decoder import returns_to_go

__all__ = ["NoReturnConditioning", "ReturnConditioning", "ReturnToGo"]


class ReturnConditioning:
    """No extra decoder input (the base): nothing at training, nothing in the acting state."""

    active = False

    def training_input(self, reward: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Decoder keywords for a training batch (reward, mask [B, T, 1])."""
        return {}

    def initial_state(self, num_envs: int, device) -> dict[str, Tensor]:
        """Entries added to the controller's state of fresh episodes."""
        return {}

    def acting_input(self, agent_state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Decoder keywords for one acting step."""
        return {}

    def after_reward(self, agent_state: dict[str, Tensor], reward: Tensor) -> dict[str, Tensor]:
        """The controller's state after the team received ``reward`` [E]."""
        return agent_state

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@gin.configurable
class NoReturnConditioning(ReturnConditioning):
    """The decoder reads the skill only."""


@gin.configurable
class ReturnToGo(ReturnConditioning):
    """BC-r: training reads R_t = sum_{t' >= t} r_t' of the batch; acting starts each episode
    at ``target_return`` (SMAC's maximum scaled return, 20, on every map) and subtracts each
    reward received, as Decision Transformer does."""

    active = True

    def __init__(self, target_return: float = 20.0):
        self.target_return = float(target_return)

    def training_input(self, reward, mask):
        return {"rtg": returns_to_go(reward, mask)}

    def initial_state(self, num_envs, device):
        return {"return_to_go": torch.full((num_envs, 1), self.target_return, device=device)}

    def acting_input(self, agent_state):
        return {"rtg": agent_state["return_to_go"][:, None]}

    def after_reward(self, agent_state, reward):
        rtg = agent_state["return_to_go"] - reward.to(agent_state["return_to_go"]).view(-1, 1)
        return {**agent_state, "return_to_go": rtg}

    def __repr__(self) -> str:
        return f"ReturnToGo(target_return={self.target_return})"
