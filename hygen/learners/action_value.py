"""Offline multi-task Q-learning over primitive actions: UPDeT-m and UPDeT-l (ODIS's baselines).

The individual value network is HyGen's entity-transformer action decoder with one skill,
its per-action outputs read as Q-values: Q_i(tau_i, a) for the 6 basic actions and one
attack value per enemy token, so one network acts on any map. A mixer gives Q_tot
(UPDeT-m: ``AttentionMixer``; UPDeT-l: ``VDNMixer``). Per source map's (offline) batch:

    y        = r + gamma * (1 - terminated) * Mix^-(max_{a' available} Q_i^-(tau', a'))   (eq. 4 style)
    L_TD     = (Mix(Q_i(tau, a_data)) - y)^2,  masked mean over steps
    L_CQL    = logsumexp_{a available} Q_i(tau, a) - Q_i(tau, a_data),  mean over alive agents
    L        = L_TD + eta * L_CQL                       (eta fixed: CQLLoss.mode = 'fixed')

the conservative term being any ``hygen.losses.ConservativeLoss`` applied to actions
instead of skills (``ODISGapLoss`` gives ODIS's code's Mix(greedy) - Mix(data) term).
Each ``update`` is ONE Adam step on the sum over maps, as ``HyGenLearner.update``.
Acting: greedy over available actions (epsilon-greedy only if ever trained online).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import gin
import torch
import torch.nn.functional as F
from torch import Tensor

from hygen.encoders import ActionDecoder, AttentionActionDecoder
from hygen.encoders.attention import pack_rows
from hygen.entities import obs_entities
from hygen.envs.maps import get_map
from hygen.learners.base import LearnerBase, LearnerConfigError, build_component, offline_share
from hygen.learners.exploration import epsilon_greedy
from hygen.losses import ConservativeLoss, CQLLoss, alive_agents, masked_mean, td_loss
from hygen.mixers.attention import AttentionMixer
from hygen.mixers.base import ValueMixer

# Finite stand-in for -inf on unavailable actions: the conservative term's logsumexp and
# max ignore them, and rows with no available action (padding) stay finite (no 0 * inf).
UNAVAILABLE = -1e4
OWNER = "ActionValueLearner"  # the gin name in error messages


def action_values(q_network: ActionDecoder, obs: Tensor, last_actions_onehot: Tensor, map_name: str,
                  hidden: Tensor | None = None, valid: Tensor | None = None,
                  tokens: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Q_i(tau_i, a) [B, T, n, A] (unmasked) and the last hidden state: the one-skill decoder's logits."""
    skill0 = torch.zeros(obs.shape[:3], dtype=torch.long, device=obs.device)
    return q_network.logits_at(obs, last_actions_onehot, map_name, skill0, hidden, valid, tokens)


class ActionValueController:
    """Decentralised execution: each agent's greedy available action under Q_i (one forward pass)."""

    def __init__(self, learner: ActionValueLearner):
        self.learner = learner

    def initial_state(self, map_name: str, num_envs: int) -> dict[str, Tensor]:
        spec, learner = get_map(map_name), self.learner
        return {"hidden": torch.zeros(num_envs, spec.n_agents, learner.q_network.hidden_dim, device=learner.device),
                "last_action": torch.zeros(num_envs, spec.n_agents, spec.n_actions, device=learner.device)}

    @torch.no_grad()
    def act(self, map_name: str, obs: Tensor, avail: Tensor, agent_state: dict[str, Tensor], epsilon: float,
            generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        learner = self.learner
        obs, avail = obs.to(learner.device, torch.float32), avail.to(learner.device).bool()
        q, h = action_values(learner.q_network, obs[:, None], agent_state["last_action"][:, None], map_name,
                             agent_state["hidden"])
        actions = epsilon_greedy(q[:, 0], avail, epsilon, generator)
        return actions, {"hidden": h, "last_action": F.one_hot(actions, avail.shape[-1]).float()}


@gin.configurable
class ActionValueLearner(LearnerBase):
    """UPDeT-m / UPDeT-l learner (Learner contract of ``hygen.trainer``).

    Args:
        maps: source map names (acting works on any map).
        device: torch device.
        q_network: an ``ActionDecoder`` class or factory, built with ``num_skills=1``; its
            logits are the action values (default: ``AttentionActionDecoder``).
        mixer: ``ValueMixer`` class or instance: ``AttentionMixer`` (UPDeT-m), ``VDNMixer`` (UPDeT-l).
        conservative: ``ConservativeLoss`` over actions (class or instance); its weight and
            mode give eta ('fixed' in the configs; 'dynamic' scales by the batch's offline share).
        gamma, lr, grad_norm_clip: 0.99, 5e-4 (Adam), 10.
        double_q: next actions chosen by the live network, valued by the target one
            (False: eq. 4's max over the target network, as HyGen).
    """

    _MODULES = ("q_network", "mixer", "target_q_network", "target_mixer")
    _TARGETS = (("target_q_network", "q_network"), ("target_mixer", "mixer"))
    # checkpoints written before the attribute took the gin parameter's name
    _RENAMED_MODULES = (("q_net", "q_network"), ("target_q_net", "target_q_network"))
    _CHECKPOINT_HINT = " (ActionValueLearner.mixer: UPDeT-m uses AttentionMixer, UPDeT-l VDNMixer)"

    def __init__(self, maps: str | Sequence[str] = (), device: str | torch.device = "cpu",
                 q_network: Callable[..., ActionDecoder] = AttentionActionDecoder,
                 mixer: Callable[..., ValueMixer] | ValueMixer = AttentionMixer,
                 conservative: Callable[..., ConservativeLoss] | ConservativeLoss = CQLLoss,
                 gamma: float = 0.99, lr: float = 5e-4, grad_norm_clip: float = 10.0, double_q: bool = False):
        self.maps = [maps] if isinstance(maps, str) else list(maps)
        for m in self.maps:
            get_map(m)  # unknown names fail here, listing the known ones
        self.device = torch.device(device)
        self.q_network = build_component(q_network, "q_network", OWNER, num_skills=1).to(self.device)
        if getattr(self.q_network, "num_skills", 1) != 1 or getattr(self.q_network, "return_conditioned", False):
            raise LearnerConfigError(f"{OWNER}.q_network must be a one-skill decoder without return conditioning, got "
                             f"{type(self.q_network).__name__} with num_skills={self.q_network.num_skills}, "
                             f"return_conditioned={getattr(self.q_network, 'return_conditioned', False)}")
        self.mixer = build_component(mixer, "mixer", OWNER).to(self.device)
        self.conservative = build_component(conservative, "conservative", OWNER, (ConservativeLoss,))
        self.target_q_network = copy.deepcopy(self.q_network).requires_grad_(False)
        self.target_mixer = copy.deepcopy(self.mixer).requires_grad_(False)
        self.gamma, self.grad_norm_clip, self.double_q = gamma, grad_norm_clip, double_q
        self.params = list(self.q_network.parameters()) + list(self.mixer.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=lr)
        self._controller = ActionValueController(self)

    # ----- Learner contract -------------------------------------------------------------
    def controller(self) -> ActionValueController:
        return self._controller

    def update(self, batches: Mapping[str, object], step: int, phase: str,
               ratio: float | None = None) -> dict[str, float]:
        """One optimizer step on the sum over maps of L_TD + eta * L_CQL (any phase name).

        ``ratio``: the offline share R_h for a 'dynamic' conservative weight; default: the
        batches' share of offline episodes (1 in the offline configs).
        """
        if ratio is None:
            ratio = offline_share(batches)
        return self.summed_map_step(batches, lambda b: self._loss(b, ratio))

    def _checkpoint_fingerprint(self) -> dict:
        return {"mixer_type": type(self.mixer).__name__}

    @torch.no_grad()
    def value_estimates(self, b) -> Tensor:
        """Q_tot(s_t, a_data) [B, T, 1] of a batch (hygen.diagnostics: does it track the return?)."""
        b = b.trim().to(self.device)
        rows = b.filled[..., 0] > 0
        qs, _ = action_values(self.q_network, b.obs, b.last_actions_onehot, b.map_name, valid=rows)
        chosen = qs[:, :-1].gather(-1, b.actions[:, :-1]).squeeze(-1)
        return self.mixer(chosen, b.state[:, :-1], b.map_name, b.mask[..., 0] > 0)

    # ----- loss --------------------------------------------------------------------------
    def _loss(self, b, ratio: float) -> tuple[Tensor, dict[str, Tensor]]:
        """L_TD + eta * L_CQL on one map's batch (module docstring)."""
        m = b.map_name
        mask = b.mask  # [B, T, 1]
        last = b.last_actions_onehot  # [B, T+1, n, A]
        actions, avail = b.actions[:, :-1, :, 0], b.avail_actions  # [B, T, n], [B, T+1, n, A]
        agent_mask = alive_agents(avail[:, :-1], mask)  # [B, T, n]
        steps = mask[..., 0] > 0  # [B, T] transitions
        rows = b.filled[..., 0] > 0  # [B, T+1] rows with data (steps + the final observation)

        # entity tokens of the rows with data, shared by the live and the target network
        tokens = obs_entities(pack_rows(b.obs, rows), m, pack_rows(last, rows))
        qs, _ = action_values(self.q_network, b.obs, last, m, valid=rows, tokens=tokens)  # [B, T+1, n, A]
        with torch.no_grad():  # target: per-agent max over the AVAILABLE next actions, target networks
            target_qs, _ = action_values(self.target_q_network, b.obs, last, m, valid=rows, tokens=tokens)
            next_avail = avail[:, 1:]
            choose = (qs if self.double_q else target_qs)[:, 1:].masked_fill(~next_avail, UNAVAILABLE)
            next_max = target_qs[:, 1:].gather(-1, choose.argmax(-1, keepdim=True)).squeeze(-1)  # [B, T, n]
            next_max = next_max * next_avail.any(-1)  # padding rows (nothing available): 0, never used
            target_next = self.target_mixer(next_max, b.state[:, 1:], m, rows[:, 1:])  # [B, T, 1]

        cond = self.mixer.condition(b.state[:, :-1], m, steps)
        chosen = qs[:, :-1].gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # Q_i(tau_i, a_data)
        q_tot = self.mixer.mix(chosen, cond)
        l_td, td = td_loss(q_tot, target_next, b.reward[:, :-1], b.terminated[:, :-1], mask, self.gamma)
        q_avail = qs[:, :-1].masked_fill(~avail[:, :-1], UNAVAILABLE)  # the conservative term sees available actions
        l_cql = self.conservative(q_avail, actions, lambda q: self.mixer.mix(q, cond), mask, agent_mask)
        cql_coef = self.conservative.coefficient(ratio)
        loss = l_td + cql_coef * l_cql

        with torch.no_grad():
            greedy = q_avail.argmax(-1)
        stats = {"loss": loss.detach(), "td_loss": l_td.detach(), "cql_loss": l_cql.detach(),
                 "cql_coef": torch.tensor(cql_coef),
                 "td_error_abs": td.abs().sum() / mask.sum().clamp_min(1.0),
                 "q_taken_mean": masked_mean(chosen.detach(), agent_mask),
                 "q_tot_mean": masked_mean(q_tot.detach(), mask),
                 "action_acc": masked_mean((greedy == actions).float(), agent_mask)}  # greedy = data action
        return loss, stats
