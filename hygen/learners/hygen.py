"""HyGen (arXiv 2408.13567): offline skill discovery, then hybrid high-level policy learning.

Phase "skill_discovery" (section 4.1, eq. 2), offline batches of every source map:

    L_VAE = -E_q(z_i|s,a,i)[log p(a_i | tau_i, z_i)] + beta * KL(q(.|s,a,i) || U)

Phase "policy" (section 4.2, eqs. 4-6), hybrid batches (R_h offline, 1 - R_h online):

    z_data  = argmax_z q(z | s_t, a_t, i)                       frozen global encoder
    L_TD    = (r + gamma * Mix^-(max_z' Q_i^-(tau', z')) - Mix(Q_i(tau, z_data)))^2     (eq. 4)
    L_c     = KL(q_hat(. | tau_i) || q(. | s, a, i))                                   (eq. 5)
    L_total = L_TD + alpha * L_c + eta * R_h * L_CQL  (+ decoder refinement)           (eq. 6)

Each choice the paper leaves open is a gin-registered class bound on ``HyGenLearner``:
``conservative`` (L_CQL: ``CQLLoss``, ``MixedCQLLoss``, ``ODISGapLoss``, ``NoConservativeLoss``),
``consistency`` (L_c: ``KLConsistency``, the public code's ``ArgmaxConsistency``),
``skill_labels`` (z_data of online samples: ``RelabelledSkills``, ``ExecutedSkills``),
``refinement`` (``CloneWonEpisodes``, ``CloneByReturn``, ``CloneAllEpisodes``, ``NoRefinement``)
and ``exploration`` (``hygen.learners.exploration``).

Decoder refinement (the paper keeps training the decoder in phase 2, the public code does
not): weighted behaviour cloning, -w_ep * log p(a_i | tau_i, z_data) (hygen.losses.refinement).
The skill labels stay those of the frozen global encoder, so the decoder stays consistent
with the skills the value network is trained on, while the weighting moves it toward what
won -- and as R_h decays the batch is mostly online, so it adapts to the states the current
high-level policy visits.

Each ``update`` is ONE Adam step whose gradient is the sum over maps of the per-map losses.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence

import gin
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hygen.buffers.cache import EpisodeCache
from hygen.encoders import (
    ActionDecoder,
    AttentionActionDecoder,
    AttentionObservationEncoder,
    AttentionTrajectoryEncoder,
    ObservationEncoder,
    TrajectoryEncoder,
)
from hygen.encoders.attention import pack_rows
from hygen.entities import obs_entities
from hygen.envs.maps import get_map
from hygen.learners.base import (
    DeprecatedBindingWarning,
    LearnerBase,
    LearnerConfigError,
    build_component,
    offline_share,
)
from hygen.learners.conditioning import NoReturnConditioning, ReturnConditioning
from hygen.learners.exploration import EpsilonSkills, SkillExploration
from hygen.learners.skill_labels import RelabelledSkills, SkillLabels
from hygen.losses import (
    CloneWonEpisodes,
    ConservativeLoss,
    ConsistencyLoss,
    DecoderRefinement,
    KLConsistency,
    MixedCQLLoss,
    alive_agents,
    masked_mean,
    td_loss,
    vae_loss,
    weighted_nll_at,
)
from hygen.mixers.attention import AttentionMixer
from hygen.mixers.base import ValueMixer

PHASES = ("skill_discovery", "policy")
# Bindings that were strings before the variants became classes: each names what replaces it.
REPLACED_BINDINGS = {
    "explore_actions": "HyGenLearner.exploration = @EpsilonSkills() ('greedy'), @EpsilonSkillsSampledActions() "
                       "('sample') or @EpsilonSkillsEpsilonSampledActions() ('epsilon'); the public code's rule "
                       "is @EpsilonActions()",
    "refine_weighting": "HyGenLearner.refinement = @CloneWonEpisodes() ('won'), @CloneByReturn() ('return') or "
                        "@CloneAllEpisodes() ('uniform')",
    "refine_decoder": "HyGenLearner.refinement = @NoRefinement() (False)",
    "refine_weight": "the refinement rule's weight, e.g. CloneWonEpisodes.weight",
    "refine_samples": "the refinement rule's offline_only, e.g. CloneWonEpisodes.offline_only = True ('offline')",
    "cql_samples": "the conservative term's offline_only, e.g. CQLLoss.offline_only = True ('offline')",
    "online_skills": "HyGenLearner.skill_labels = @RelabelledSkills() ('relabelled') or @ExecutedSkills() "
                     "('executed')",
}


# Network parameters renamed so that gin parameter and attribute say the same thing (issue 17):
# the old names still work for one release, with a DeprecatedBindingWarning.
RENAMED_BINDINGS = {"trajectory_encoder": "global_encoder", "observation_encoder": "q_network"}
_NETWORK_DEFAULTS = {"global_encoder": AttentionTrajectoryEncoder, "q_network": AttentionObservationEncoder}

HyGenConfigError = LearnerConfigError  # the name earlier releases raised


def _renamed_networks(replaced: dict, **new) -> tuple:
    """Move old-name network bindings (popped from ``replaced``) to their new names, warning;
    binding both names to different networks is an error."""
    for old, name in RENAMED_BINDINGS.items():
        if old not in replaced:
            continue
        value = replaced.pop(old)
        if new[name] is not _NETWORK_DEFAULTS[name] and new[name] is not value:
            raise HyGenConfigError(f"HyGenLearner.{old} and HyGenLearner.{name} are both bound; {old} is the old "
                                   f"name of {name}: bind only HyGenLearner.{name}")
        warnings.warn(f"HyGenLearner.{old} is deprecated and will be removed in the next release; "
                      f"bind HyGenLearner.{name} instead", DeprecatedBindingWarning, stacklevel=3)
        new[name] = value
    return tuple(new.values())


def _build(factory, what: str, kind: type = nn.Module, **kwargs):
    return build_component(factory, what, "HyGenLearner", (kind,), **kwargs)


class HyGenController:
    """Decentralised execution: argmax_z Q_i(tau_i, z), then the decoder's greedy available
    action for that skill; while exploring (epsilon > 0) the learner's ``exploration`` rule
    changes skills and actions. One forward pass for all environments and agents.

    ``fixed_skill = k`` makes every agent play skill k at every step instead (a diagnostic:
    what each skill does alone, ``hygen evaluate --skills`` and ``hygen.diagnostics``); a
    tensor [E] forces skill k in environment e (-1: the learned policy there); None is the
    learned policy.
    """

    def __init__(self, learner: HyGenLearner):
        self.learner = learner
        self.fixed_skill: int | Tensor | None = None

    def initial_state(self, map_name: str, num_envs: int) -> dict[str, Tensor]:
        spec, learner = get_map(map_name), self.learner
        n, dev = spec.n_agents, learner.device
        return {"q_hidden": torch.zeros(num_envs, n, learner.q_network.hidden_dim, device=dev),
                "dec_hidden": torch.zeros(num_envs, n, learner.action_decoder.hidden_dim, device=dev),
                "last_action": torch.zeros(num_envs, n, spec.n_actions, device=dev),
                "skill": torch.zeros(num_envs, n, dtype=torch.long, device=dev),
                **learner.return_conditioning.initial_state(num_envs, dev)}

    @torch.no_grad()
    def act(self, map_name: str, obs: Tensor, avail: Tensor, agent_state: dict[str, Tensor], epsilon: float,
            generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        learner = self.learner
        obs, avail = obs.to(learner.device, torch.float32), avail.to(learner.device).bool()
        last = agent_state["last_action"]
        # the entity tokens of (o_t, a_{t-1}) [E, n, E_tok, F], built once for both networks (what
        # each would build from the same inputs: same values, one obs_entities call per step less)
        tokens = obs_entities(obs, map_name, last)
        qs, _, q_h = learner.q_network(obs[:, None], last[:, None], map_name, agent_state["q_hidden"],
                                       tokens=tokens)
        skills = qs[:, 0].argmax(-1)  # [E, n]
        if self.fixed_skill is not None:  # an int, or [E] per environment with -1 for the learned policy
            fixed = torch.as_tensor(self.fixed_skill, device=learner.device).view(-1, 1).expand_as(skills)
            skills = torch.where(fixed >= 0, fixed, skills)
        elif epsilon > 0.0:
            skills = learner.exploration.skills(skills, learner.num_skills, epsilon, generator)
        rtg = learner.return_conditioning.acting_input(agent_state)  # BC-r: the return-to-go
        logits, dec_h = learner.action_decoder.logits_at(obs[:, None], last[:, None], map_name, skills[:, None],
                                             agent_state["dec_hidden"], tokens=tokens, **rtg)
        logits = logits[:, 0].masked_fill(~avail, float("-inf"))
        actions = learner.exploration.actions(logits, avail, epsilon, generator) if epsilon > 0.0 else logits.argmax(-1)
        return actions, {**agent_state, "q_hidden": q_h, "dec_hidden": dec_h, "skill": skills,
                         "last_action": F.one_hot(actions, avail.shape[-1]).float()}

    def observe_reward(self, agent_state: dict[str, Tensor], reward: Tensor) -> dict[str, Tensor]:
        """Called by the runner after each env step: a return-conditioned decoder (BC-r) is
        given R_{t+1} = R_t - r_t, as in Decision Transformer. reward [E]."""
        return self.learner.return_conditioning.after_reward(agent_state, reward)


@gin.configurable
class HyGenLearner(LearnerBase):
    """The HyGen learner (Learner contract of ``hygen.trainer``).

    Args:
        maps: source map names (batches are keyed by them; acting works on any map).
        device: torch device.
        num_skills: |Z| (paper: 4 = number of attention heads of the global encoder).
        global_encoder: q(z | s, a, i), the global skill encoder of eq. 1-2 (a ``TrajectoryEncoder``).
        q_network: the individual skill-value network, Q_i(tau_i, z) for every skill and the
            local skill logits q_hat(z | tau_i) (an ``ObservationEncoder``).
        action_decoder: the skill-conditioned policy p(a_i | tau_i, z) (an ``ActionDecoder``).
        mixer: Q_tot = Mix(Q_i; s) (a ``ValueMixer``; a target copy is kept).
            All four: classes (built with ``num_skills``) or instances; defaults are the
            attention versions. Each name is the learner's attribute too (``learner.q_network``).
        conservative: ``ConservativeLoss`` (class or instance): L_CQL of eq. 6 and its weight
            (``CQLLoss``: per agent, the paper's; ``MixedCQLLoss``: on Q_tot over sampled joint
            skills; ``ODISGapLoss``; ``NoConservativeLoss``).
        consistency: ``ConsistencyLoss``: L_c of eq. 5 (``KLConsistency``, the paper's;
            ``ArgmaxConsistency``, the public code's cross-entropy against the global argmax).
        skill_labels: ``SkillLabels``: z_data of online samples (``RelabelledSkills``, the
            public code's; ``ExecutedSkills``).
        refinement: ``DecoderRefinement``: phase-2 decoder refinement (``CloneWonEpisodes``,
            ``CloneByReturn``, ``CloneAllEpisodes``; ``NoRefinement`` freezes the decoder).
        exploration: ``SkillExploration``: how online episodes explore
            (``hygen.learners.exploration``); evaluation is always greedy.
        return_conditioning: ``NoReturnConditioning`` or BC-r's ``ReturnToGo``
            (``hygen.learners.conditioning``; the decoder must be built with the matching input).
        alpha: consistency weight (eq. 6, 5.0); beta: KL-to-uniform weight (eq. 2, 0.001).
        gamma, lr, grad_norm_clip: 0.99, 5e-4 (Adam), 10.
        double_q: next skills chosen by the live network, valued by the target one
            (eq. 4 as printed uses the target max: False).
        td_lambda: 0 is eq. 4's one-step target; > 0 the TD(lambda) return over each
            episode (not in the paper; propagates reward faster in short protocols).
        frozen_skill_cache: episodes per map and store (offline, online) whose phase-2
            q(z | s, a, i) is kept, so the frozen global encoder runs once per stored
            episode rather than once per sample; 0 recomputes it every time. Make it at
            least the replay buffer size (Trainer.buffer_size).

    The string bindings these classes replaced (``explore_actions``, ``refine_weighting``, ...)
    fail with a message naming the class to bind instead (``REPLACED_BINDINGS``). The old
    network names ``trajectory_encoder`` and ``observation_encoder`` still work for one release
    with a ``DeprecatedBindingWarning`` naming the new one (``RENAMED_BINDINGS``).
    """

    def __init__(self, maps: str | Sequence[str] = (), device: str | torch.device = "cpu", num_skills: int = 4,
                 global_encoder: Callable[..., TrajectoryEncoder] = AttentionTrajectoryEncoder,
                 q_network: Callable[..., ObservationEncoder] = AttentionObservationEncoder,
                 action_decoder: Callable[..., ActionDecoder] = AttentionActionDecoder,
                 mixer: Callable[..., ValueMixer] = AttentionMixer,
                 conservative: Callable[..., ConservativeLoss] | ConservativeLoss = MixedCQLLoss,
                 consistency: Callable[..., ConsistencyLoss] | ConsistencyLoss = KLConsistency,
                 skill_labels: Callable[..., SkillLabels] | SkillLabels = RelabelledSkills,
                 refinement: Callable[..., DecoderRefinement] | DecoderRefinement = CloneWonEpisodes,
                 exploration: Callable[..., SkillExploration] | SkillExploration = EpsilonSkills,
                 return_conditioning: Callable[..., ReturnConditioning] | ReturnConditioning = NoReturnConditioning,
                 alpha: float = 5.0, beta: float = 1e-3, gamma: float = 0.99, lr: float = 5e-4,
                 grad_norm_clip: float = 10.0, double_q: bool = False, td_lambda: float = 0.0,
                 frozen_skill_cache: int = 2000, **replaced):
        # **replaced only catches the old bindings: renamed networks (a warning, for one release)
        # and the string variants (an error naming the class to bind)
        global_encoder, q_network = _renamed_networks(replaced, global_encoder=global_encoder, q_network=q_network)
        for name, value in replaced.items():
            hint = REPLACED_BINDINGS.get(name)
            raise HyGenConfigError(f"HyGenLearner.{name} = {value!r} is no longer a binding; use {hint}" if hint
                                   else f"HyGenLearner got an unknown argument {name!r}")
        self.maps = [maps] if isinstance(maps, str) else list(maps)
        for m in self.maps:
            get_map(m)  # unknown names fail here, listing the known ones
        if num_skills < 1:
            raise HyGenConfigError(f"HyGenLearner.num_skills must be >= 1, got {num_skills}")
        if not 0.0 <= td_lambda <= 1.0:
            raise HyGenConfigError(f"HyGenLearner.td_lambda must be in [0, 1], got {td_lambda}")
        self.td_lambda = td_lambda
        if frozen_skill_cache < 0:
            raise HyGenConfigError(f"HyGenLearner.frozen_skill_cache must be >= 0, got {frozen_skill_cache}")
        self.frozen_skill_cache = int(frozen_skill_cache)
        self._skill_caches: dict[tuple[str, bool], EpisodeCache] = {}  # (map, online) -> q(z|s,a,i)
        self.device = torch.device(device)
        self.num_skills = num_skills
        self.global_encoder = _build(global_encoder, "global_encoder", num_skills=num_skills).to(self.device)
        self.q_network = _build(q_network, "q_network", num_skills=num_skills).to(self.device)
        self.action_decoder = _build(action_decoder, "action_decoder", num_skills=num_skills).to(self.device)
        self.mixer = _build(mixer, "mixer").to(self.device)
        for name, mod in (("global_encoder", self.global_encoder), ("q_network", self.q_network),
                          ("action_decoder", self.action_decoder)):
            if mod.num_skills != num_skills:
                raise HyGenConfigError(f"HyGenLearner.{name} has {mod.num_skills} skills, "
                                       f"HyGenLearner.num_skills is {num_skills}")
        self.conservative = _build(conservative, "conservative", ConservativeLoss)
        self.consistency = _build(consistency, "consistency", ConsistencyLoss)
        self.skill_labels = _build(skill_labels, "skill_labels", SkillLabels)
        self.refinement = _build(refinement, "refinement", DecoderRefinement)
        self.exploration = _build(exploration, "exploration", SkillExploration)
        self.return_conditioning = _build(return_conditioning, "return_conditioning", ReturnConditioning)
        if self.return_conditioning.active != bool(getattr(self.action_decoder, "return_conditioned", False)):
            raise HyGenConfigError(
                f"HyGenLearner.return_conditioning is {self.return_conditioning!r} but the action decoder's "
                f"return_conditioned is {getattr(self.action_decoder, 'return_conditioned', False)}: bind both "
                "(configs/methods/bc_r.gin: @ReturnToGo() and AttentionActionDecoder.return_conditioned = True) or neither")
        self.target_q_network = copy.deepcopy(self.q_network).requires_grad_(False)
        self.target_mixer = copy.deepcopy(self.mixer).requires_grad_(False)
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.grad_norm_clip, self.double_q = grad_norm_clip, double_q
        # One Adam over everything; in each phase only the trained modules receive gradients.
        self.params = [p for mod in (self.global_encoder, self.q_network, self.action_decoder, self.mixer)
                       for p in mod.parameters()]
        self.lr = lr
        self.optimizer = torch.optim.Adam(self.params, lr=lr)
        self._controller = HyGenController(self)

    # ----- Learner contract -------------------------------------------------------------
    def controller(self) -> HyGenController:
        return self._controller

    def update(self, batches: Mapping[str, object], step: int, phase: str,
               ratio: float | None = None) -> dict[str, float]:
        """One optimizer step on the sum over maps of the phase's loss.

        ``ratio``: the hybrid ratio R_h of eq. 3; default: the batches' offline share
        (sum of ``n_offline`` / number of episodes), which is what the sampler drew.
        """
        if phase not in PHASES:
            raise ValueError(f"HyGenLearner.update: unknown objective {phase!r}; expected one of {PHASES} (Phase.objective)")
        if not batches:
            raise ValueError("HyGenLearner.update: got no batches")
        if phase == "skill_discovery":
            self._skill_caches.clear()  # the global encoder is being trained: nothing cached holds
        if ratio is None:
            ratio = offline_share(batches)
        loss_fn = self._skill_discovery_loss if phase == "skill_discovery" else (
            lambda b: self._policy_loss(b, ratio))
        stats = self.summed_map_step(batches, loss_fn)
        if phase == "policy":
            stats["ratio"] = float(ratio)
        return stats

    _MODULES = ("global_encoder", "q_network", "action_decoder", "mixer", "target_q_network", "target_mixer")
    # checkpoints written before the networks were named after their gin parameters
    _RENAMED_MODULES = (("q_net", "q_network"), ("target_q_net", "target_q_network"), ("decoder", "action_decoder"))
    _TARGETS = (("target_q_network", "q_network"), ("target_mixer", "mixer"))

    def _checkpoint_fingerprint(self) -> dict:
        return {"num_skills": self.num_skills}

    def load_state_dict(self, sd: dict) -> None:
        super().load_state_dict(sd)
        self._skill_caches.clear()
        for group in self.optimizer.param_groups:  # Adam's moments resume; the bound lr wins over the stored one
            group["lr"] = self.lr

    # ----- losses ----------------------------------------------------------------------
    def _skill_discovery_loss(self, b) -> tuple[Tensor, dict[str, Tensor]]:
        """Eq. 2 on one map's (offline) batch."""
        mask = b.mask  # [B, T, 1]
        onehot = b.actions_onehot  # [B, T+1, n, A]
        actions, avail = b.actions[:, :-1, :, 0], b.avail_actions[:, :-1]
        agent_mask = alive_agents(avail, mask)  # [B, T, n]
        steps = mask[..., 0] > 0  # [B, T] real steps; padding skips the attention
        skill_logits = self.global_encoder(b.state[:, :-1], onehot[:, :-1], b.map_name, steps)  # [B, T, n, K]
        rtg = self.return_conditioning.training_input(b.reward[:, :-1], mask)  # BC-r: the return-to-go
        dec_logits, _ = self.action_decoder(b.obs[:, :-1], b.last_actions_onehot[:, :-1], b.map_name,
                                     valid=steps, **rtg)
        loss, stats = vae_loss(dec_logits, skill_logits, actions, avail, agent_mask, self.beta)
        with torch.no_grad():
            skills = skill_logits.argmax(-1)
            at_skill = dec_logits.gather(-2, skills[..., None, None].expand(*skills.shape, 1, dec_logits.shape[-1]))
            pred = at_skill.squeeze(-2).masked_fill(~avail, float("-inf")).argmax(-1)
            stats["action_acc"] = masked_mean((pred == actions).float(), agent_mask)
            share = torch.bincount(skills[agent_mask > 0].flatten(), minlength=self.num_skills).float()
            share = share / share.sum().clamp_min(1.0)
            stats["skills_used"] = (share > 0.05).sum().float()  # skills chosen for > 5 % of samples
            stats["skill_entropy"] = -(share * share.clamp_min(1e-12).log()).sum()
        stats["loss"] = loss.detach()
        return loss, stats

    def _policy_loss(self, b, ratio: float) -> tuple[Tensor, dict[str, Tensor]]:
        """Eq. 6 (+ refinement) on one map's hybrid batch: the terms in the paper's order."""
        m, mask = b.map_name, b.mask
        last = b.last_actions_onehot
        actions, avail = b.actions[:, :-1, :, 0], b.avail_actions[:, :-1]
        agent_mask = alive_agents(avail, mask)
        steps = mask[..., 0] > 0  # [B, T] transitions
        rows = b.filled[..., 0] > 0  # [B, T+1] rows with data (steps + the final observation)

        with torch.no_grad():  # the frozen global encoder: q(z | s, a, i) and the data skill z_data
            global_logits = self._frozen_skill_logits(b, b.actions_onehot, steps)
            z_data = self._data_skills(b, global_logits.argmax(-1))  # [B, T, n]
        # entity tokens of the rows with data only, [N_rows, n, E, F], shared by the three local networks
        tokens = obs_entities(pack_rows(b.obs, rows), m, pack_rows(last, rows))
        qs, local_logits, _ = self.q_network(b.obs, last, m, valid=rows, tokens=tokens)  # [B, T+1, n, K]

        # eq. 4: L_TD = (r + gamma Mix^-(max_z' Q_i^-(tau', z')) - Mix(Q_i(tau, z_data)))^2
        cond = self.mixer.condition(b.state[:, :-1], m, steps)
        chosen = qs[:, :-1].gather(-1, z_data.unsqueeze(-1)).squeeze(-1)  # Q_i(tau_i, z_data)
        q_tot = self.mixer.mix(chosen, cond)
        target_next = self._target_next_q_tot(b, qs, last, tokens, rows)
        l_td, td = td_loss(q_tot, target_next, b.reward[:, :-1], b.terminated[:, :-1], mask, self.gamma,
                           self.td_lambda)
        # eq. 5: L_c, the local skill predictor toward the frozen global encoder
        l_c = self.consistency(local_logits[:, :-1], global_logits, agent_mask)
        # eq. 6: L_CQL, weighted eta * R_h (or as the conservative term's mode says)
        offline = (torch.arange(len(b), device=mask.device) < b.n_offline)[:, None, None].to(mask.dtype)
        keep = offline if self.conservative.offline_only else torch.ones_like(offline)
        l_cql = self.conservative(qs[:, :-1], z_data, lambda q: self.mixer.mix(q, cond), mask * keep,
                                  agent_mask * keep)
        cql_coef = self.conservative.coefficient(ratio)
        loss = l_td + self.alpha * l_c + cql_coef * l_cql  # eq. 6

        stats = {"td_loss": l_td.detach(), "consistency_loss": l_c.detach(), "cql_loss": l_cql.detach(),
                 "cql_coef": torch.tensor(cql_coef),
                 "td_error_abs": td.abs().sum() / mask.sum().clamp_min(1.0),
                 "q_taken_mean": masked_mean(chosen.detach(), agent_mask),
                 "q_tot_mean": masked_mean(q_tot.detach(), mask),
                 "local_skill_agreement": masked_mean(
                     (local_logits[:, :-1].argmax(-1) == global_logits.argmax(-1)).float(), agent_mask)}
        if self.refinement.trains_decoder:  # decoder refinement: weighted -log p(a_i | tau_i, z_data)
            # the decoder runs on the same rows as the value networks (its GRU is causal, so rows
            # :-1 are exactly the T-step pass) and only at the data skill (the one the loss reads)
            at_rows = torch.cat([z_data, z_data[:, -1:]], 1)  # skill of the final row: unused
            dec_logits, _ = self.action_decoder.logits_at(b.obs, last, m, at_rows, valid=rows, tokens=tokens)
            l_ref = weighted_nll_at(dec_logits[:, :-1], actions, avail, self.refinement.sample_weights(b, agent_mask))
            loss = loss + self.refinement.weight * l_ref
            stats["refine_nll"] = l_ref.detach()
        stats["loss"] = loss.detach()
        return loss, stats

    @torch.no_grad()
    def _target_next_q_tot(self, b, qs: Tensor, last: Tensor, tokens: Tensor, rows: Tensor) -> Tensor:
        """Mix^-(max_z' Q_i^-(tau_{t+1}, z')) [B, T, 1]: per-agent argmax over next skills (of the
        live network with ``double_q``), valued by the target networks."""
        target_qs, _, _ = self.target_q_network(b.obs, last, b.map_name, valid=rows, tokens=tokens)
        next_q = target_qs[:, 1:]
        choose = qs[:, 1:] if self.double_q else next_q
        next_max = next_q.gather(-1, choose.argmax(-1, keepdim=True)).squeeze(-1)
        return self.target_mixer(next_max, b.state[:, 1:], b.map_name, rows[:, 1:])

    def _data_skills(self, b, relabelled: Tensor) -> Tensor:
        """z_data [B, T, n] of eq. 4, L_CQL and refinement, by the ``skill_labels`` rule."""
        return self.skill_labels(relabelled, None if b.skills is None else b.skills[:, :-1, :, 0])

    # ----- diagnostics (hygen.diagnostics) ----------------------------------------------
    @torch.no_grad()
    def relabelled_skills(self, b) -> Tensor:
        """argmax_z q(z | s_t, a_t, i) of the global encoder, [B, T, n]."""
        b = b.trim().to(self.device)
        return self.global_encoder(b.state[:, :-1], b.actions_onehot[:, :-1], b.map_name, b.mask[..., 0] > 0).argmax(-1)

    @torch.no_grad()
    def value_estimates(self, b) -> Tensor:
        """Q_tot(s_t, z_data) [B, T, 1]: the value eq. 4 trains, at the batch's data skills."""
        b = b.trim().to(self.device)
        steps, rows = b.mask[..., 0] > 0, b.filled[..., 0] > 0
        skills = self._data_skills(b, self.relabelled_skills(b))
        qs, _, _ = self.q_network(b.obs, b.last_actions_onehot, b.map_name, valid=rows)
        chosen = qs[:, :-1].gather(-1, skills.unsqueeze(-1)).squeeze(-1)
        return self.mixer(chosen, b.state[:, :-1], b.map_name, steps)

    def _frozen_skill_logits(self, b, onehot: Tensor, steps: Tensor) -> Tensor:
        """q(z | s_t, a_t, i) logits [B, T, n, K] of the frozen global encoder, from the cache
        for the stored episodes already encoded, computed (and cached) for the others."""
        ids = b.episode_ids
        if not self.frozen_skill_cache or ids is None:
            return self.global_encoder(b.state[:, :-1], onehot[:, :-1], b.map_name, steps)
        B, T = steps.shape
        online = torch.arange(B, device=ids.device) >= b.n_offline  # offline episodes come first
        caches = {src: self._skill_caches.setdefault(
            (b.map_name, src), EpisodeCache(self.frozen_skill_cache, get_map(b.map_name).episode_limit))
            for src in (False, True)}  # offline ids and replay ids are separate namespaces
        hit = torch.zeros(B, dtype=torch.bool, device=ids.device)
        for src, cache in caches.items():
            hit[online == src] = cache.contains(ids[online == src])
        out = torch.empty(B, T, b.n_agents, self.num_skills, device=steps.device)
        miss = (~hit).nonzero(as_tuple=True)[0]
        if len(miss):
            out[miss] = self.global_encoder(b.state[miss, :-1], onehot[miss, :-1], b.map_name, steps[miss])
            for src, cache in caches.items():
                part = miss[online[miss] == src]
                cache.put(ids[part], out[part])
        for src, cache in caches.items():
            part = (hit & (online == src)).nonzero(as_tuple=True)[0]
            if len(part):
                out[part] = cache.get(ids[part], T)
        return out
