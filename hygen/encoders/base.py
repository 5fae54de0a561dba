"""Interfaces of HyGen's networks. Implementations are gin-configurable nn.Modules.

Shape vocabulary (PyMARL): B batch, T time, n agents, K skills, A actions, H hidden.
Every method takes the map name, because the entity decomposition (``hygen.entities``)
needs the map's layout; the networks themselves are map-agnostic.

The classes are named by their inputs; a learner names each network by its role, and the
gin parameter and the attribute share that name (``HyGenLearner.q_network`` is bound in
gin and read as ``learner.q_network``):

- ``TrajectoryEncoder``: ``HyGenLearner.global_encoder``, q(z | s, a, i).
- ``ObservationEncoder``: ``HyGenLearner.q_network``, skill values Q_i(tau_i, z) and q_hat(z | tau_i);
  ``HiSSDLearner.v_network`` with one output, V_i(tau_i).
- ``ActionDecoder``: ``HyGenLearner.action_decoder``, p(a_i | tau_i, z); with one skill its logits
  read as action values, ``ActionValueLearner.q_network`` (UPDeT) and ``HiSSDLearner.q_network``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn


class TrajectoryEncoder(nn.Module, ABC):
    """Global skill encoder q(z_i | s, a, i) (paper eq. 1-2). Uses global information:
    training only, never at execution."""

    num_skills: int

    @abstractmethod
    def forward(self, state: Tensor, actions_onehot: Tensor, map_name: str, valid: Tensor | None = None) -> Tensor:
        """state [B, T, S], joint action one-hot [B, T, n, A] -> skill logits [B, T, n, K].

        ``valid`` [B, T] bool marks real (non-padding) rows; others may be skipped (output 0)."""


class ObservationEncoder(nn.Module, ABC):
    """Individual value network over agent i's local trajectory tau_i.

    Gives skill values Q_i(tau_i, z) for every skill (eq. 4) and the local skill
    distribution q_hat(z | tau_i) used by the consistency loss (eq. 5).
    """

    num_skills: int
    hidden_dim: int

    @abstractmethod
    def forward(self, obs: Tensor, last_actions_onehot: Tensor, map_name: str,
                hidden: Tensor | None = None, valid: Tensor | None = None,
                tokens: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """obs [B, T, n, obs], last actions [B, T, n, A], hidden [B, n, H] or None, valid [B, T],
        tokens: ``obs_entities(obs, map_name, last_actions_onehot)`` when already computed, or
        packed on the valid rows (``obs_entities(pack_rows(obs, valid), ...)``, [N_valid, n, E, F]) ->
        (q_values [B, T, n, K], local skill logits [B, T, n, K], last hidden [B, n, H])."""


class ActionDecoder(nn.Module, ABC):
    """Skill-conditioned low-level policy p(a_i | tau_i, z_i), local information only."""

    num_skills: int
    hidden_dim: int

    @abstractmethod
    def forward(self, obs: Tensor, last_actions_onehot: Tensor, map_name: str,
                hidden: Tensor | None = None, valid: Tensor | None = None,
                tokens: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """obs [B, T, n, obs], last actions [B, T, n, A], hidden [B, n, H] or None, valid [B, T],
        tokens: ``obs_entities(obs, map_name, last_actions_onehot)`` when already computed, or
        packed on the valid rows ([N_valid, n, E, F]) ->
        (action logits for every skill [B, T, n, K, A], unmasked; last hidden [B, n, H])."""

    def logits_at(self, obs: Tensor, last_actions_onehot: Tensor, map_name: str, skills: Tensor,
                  hidden: Tensor | None = None, valid: Tensor | None = None,
                  tokens: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Logits at one skill per agent: skills [B, T, n] long -> ([B, T, n, A], last hidden).

        Same values as ``forward`` gathered at ``skills``; implementations may skip the others."""
        logits, h_last = self(obs, last_actions_onehot, map_name, hidden, valid, tokens)
        idx = skills[..., None, None].expand(*skills.shape, 1, logits.shape[-1])
        return logits.gather(-2, idx).squeeze(-2), h_last
