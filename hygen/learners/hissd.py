"""HiSSD (Liu et al., ICLR 2025): hierarchical common / task-specific skills from offline multi-task data.

A compact HiSSD built from hygen's machinery (entity tokens, entity-attention + GRU trunks,
the attention mixer, the generic Trainer). One offline phase ("hissd"); every update takes
one batch per source map (tasks = the batch keys) and makes ONE optimizer step on the sum::

    c_i = f_c(tau_i)            common skill: agent i's local history -> R^D
    e_i = norm(f_e(tau_i))      task-specific skill: agent i's local history -> unit sphere
    pi(a_i | tau_i, c_i, e_i)   planner/policy: the action decoder conditioned on both skills

    L_fwd  = || g(S_t[k], o_i,t[k], c_i) - (S_{t+1}[k] - S_t[k]) ||^2          forward model over state entities k
    L_nce  = SupCon-InfoNCE over e from all source maps (same task = positive, other = negative)
    L_Q    = (r + gamma * (1 - d) * V_tot(s') - Q_tot(s, a))^2                  IQL eq. (6), mixed
    L_V    = |tau - 1(u < 0)| u^2,  u = Q_tot^-(s, a) - V_tot(s), tau = 0.9    IQL eq. (5), expectile
    A      = Q_tot^-(s, a) - V_tot(s);  w = min(exp(10 * A), 100)              advantage weights
    L_pi   = -w * log pi(a_i | tau_i, c_i, e_i)                                  IQL eq. (7), AWR

    L = L_Q + L_V + fwd_weight * L_fwd + contrastive_weight * L_nce + L_pi

Q_tot = Mix_Q(Q_i(tau_i, a_i); s), V_tot = Mix_V(V_i(tau_i); s) with two ``AttentionMixer`` s;
Q_i comes from an ``AttentionActionDecoder`` with one skill (attack values from enemy tokens,
so the action space grows with the enemy count), V_i from an ``AttentionObservationEncoder``
with one output. S_t[k] are ``state_entities`` tokens, o_i,t[k] agent i's observation token of
the same entity. Execution is decentralised: acting runs f_c, f_e and the decoder on local
observations only; values, mixers and the forward model are training-only. On an unseen map
the task skill comes from the agent's own history, so it transfers zero-shot.

Simplifications relative to the real HiSSD (paper and public code):
- One offline phase with all losses summed; the public code alternates VAE/value/planner
  backward passes within a step (and optionally pre-trains).
- The common skill is a deterministic embedding of the agent's history shaped by forward
  prediction of the next *state* entities (as change from the current state, with the
  current state and the agent's view of each entity as inputs); HiSSD's planner predicts
  the next *observation* entities and its skill module can be vector-quantised.
- The task skill is the same kind of embedding trained with a supervised-contrastive
  InfoNCE between the tasks present in one update; HiSSD's MoCo-style momentum encoder and
  negatives from the previous task's batch are left out. With a single source map there
  are no negatives and the term is 0.
- Values follow IQL's three losses (separate Q and V, expectile on Q^- - V, per-step team
  advantage). The public code trains a single mixed V with an expectile-weighted TD error
  and weights the planner loss by one batch-averaged TD error.
- Advantage-weighted behaviour cloning trains the decoder (and, through it, both skill
  encoders); HiSSD weights its planner's prediction loss and trains the decoder by plain BC.
- Skills condition the decoder additively (projected into its context vector) instead of
  as extra transformer tokens; the networks are hygen's trunks, not HiSSD's.
- Target networks: IQL's Polyak averaging (``target_update_rate`` 0.005, synced every step by
  hissd.gin). The public code copies them every 80 t_env; with hard copies every 17 steps the
  tau = 0.9 values drifted upward on the real 3m data (mean Q_tot 27 after 240 steps, while
  returns are at most 20), so the weights swung between 0 and 100 for the whole batch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence

import gin
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hygen.encoders import AttentionActionDecoder, AttentionObservationEncoder, masked_log_softmax
from hygen.encoders.attention import EntityGRUTrunk, pack_rows, unpack_rows
from hygen.entities import OBS_TOKEN_DIM, STATE_TOKEN_DIM, obs_entities, state_entities
from hygen.envs.maps import get_map
from hygen.learners.base import LearnerBase, LearnerConfigError, build_component
from hygen.learners.exploration import epsilon_greedy
from hygen.losses import alive_agents, masked_mean, td_loss
from hygen.mixers.attention import AttentionMixer, ValueMixer

PHASES = ("hissd",)


HiSSDConfigError = LearnerConfigError  # the name earlier releases raised


# ----- loss terms ------------------------------------------------------------------------------
def expectile_loss(diff: Tensor, mask: Tensor, tau: float = 0.9) -> Tensor:
    """IQL eq. (5): mean of |tau - 1(u < 0)| * u^2 over mask, u = target - prediction.

    With tau = 0.9 under-estimates (u > 0) weigh 0.9 and over-estimates 0.1, so the
    prediction tends to the upper expectile of the target (a soft max over the data's actions).
    """
    weight = torch.where(diff < 0, 1.0 - tau, tau)
    return masked_mean(weight * diff ** 2, mask)


def advantage_weights(advantage: Tensor, temperature: float = 10.0, max_weight: float = 100.0) -> Tensor:
    """min(exp(temperature * A), max_weight) (HiSSD: 10, 100); the exponent is capped first, so no inf."""
    return torch.exp((temperature * advantage).clamp(max=math.log(max_weight) + 1.0)).clamp(max=max_weight)


def info_nce_loss(embeddings: Tensor, labels: Tensor, temperature: float = 0.1) -> Tensor:
    """Supervised-contrastive InfoNCE: anchors pulled to same-label samples, pushed from the rest.

    embeddings [P, D] (normalised here), labels [P] long. For anchor a with positives P(a):
    -1/|P(a)| sum_{p in P(a)} log( exp(z_a.z_p / T) / sum_{k != a} exp(z_a.z_k / T) ),
    averaged over anchors that have a positive and a negative; 0 when none does.
    """
    z = F.normalize(embeddings, dim=-1)
    sim = z @ z.t() / temperature
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    log_prob = sim - torch.logsumexp(sim.masked_fill(eye, float("-inf")), dim=-1, keepdim=True)
    same = (labels[:, None] == labels[None, :]) & ~eye
    n_pos = same.sum(-1)
    usable = (n_pos > 0) & (n_pos < len(z) - 1)  # at least one positive and one negative
    if not usable.any():
        return embeddings.new_zeros(())
    per_anchor = -(log_prob * same).sum(-1) / n_pos.clamp_min(1)
    return per_anchor[usable].mean()


# ----- networks --------------------------------------------------------------------------------
@gin.configurable
class SkillEncoder(nn.Module):
    """Agent i's local history tau_i -> a skill embedding [B, T, n, skill_dim].

    Entity attention over (o_t, a_{t-1}) tokens + GRU (``EntityGRUTrunk``), then a linear
    head: local information only, so it runs at execution time on any map.
    """

    def __init__(self, skill_dim: int = 16, emb_dim: int = 64, n_heads: int = 4, hidden_dim: int = 64):
        super().__init__()
        self.skill_dim, self.hidden_dim = skill_dim, hidden_dim
        self.trunk = EntityGRUTrunk(OBS_TOKEN_DIM, emb_dim, n_heads, hidden_dim)
        self.head = nn.Linear(hidden_dim, skill_dim)

    def forward(self, obs: Tensor, last_actions_onehot: Tensor, map_name: str, hidden: Tensor | None = None,
                valid: Tensor | None = None, tokens: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """obs [B, T, n, obs], last actions [B, T, n, A] (or precomputed ``tokens``, full or packed on
        ``valid``) -> (skills [B, T, n, skill_dim], last hidden [B, n, H])."""
        if tokens is None:
            tokens = obs_entities(pack_rows(obs, valid), map_name, pack_rows(last_actions_onehot, valid))
        _, h_seq, h_last = self.trunk(tokens, hidden, valid, shape=obs.shape[:2])
        return self.head(h_seq), h_last


@gin.configurable
class SkillConditionedDecoder(AttentionActionDecoder):
    """pi(a_i | tau_i, z_i) for a continuous skill vector z_i = [c_i, e_i].

    ``AttentionActionDecoder``'s trunk and action head (attack-j logits from enemy j's
    token); its skill-index embedding is replaced by a linear map of z_i added to the
    context vector. ``forward`` takes the skill vectors [B, T, n, skill_dim], not indices.
    """

    def __init__(self, skill_dim: int = 32, emb_dim: int = 64, n_heads: int = 4, hidden_dim: int = 64):
        super().__init__(num_skills=1, emb_dim=emb_dim, n_heads=n_heads, hidden_dim=hidden_dim)
        del self.skill_emb  # skills are vectors here
        self.skill_dim = skill_dim
        self.skill_proj = nn.Linear(skill_dim, hidden_dim)

    def forward(self, obs: Tensor, last_actions_onehot: Tensor, map_name: str, skills: Tensor,
                hidden: Tensor | None = None, valid: Tensor | None = None,
                tokens: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """-> (action logits [B, T, n, A], unmasked; last hidden [B, n, H])."""
        if skills.shape[-1] != self.skill_dim:
            raise ValueError(f"SkillConditionedDecoder: skills have width {skills.shape[-1]}, "
                             f"expected skill_dim={self.skill_dim}")
        B, T = obs.shape[:2]
        m = get_map(map_name).n_enemies
        if tokens is None:
            tokens = obs_entities(pack_rows(obs, valid), map_name, pack_rows(last_actions_onehot, valid))
        elif tokens.dim() == 5:
            tokens = pack_rows(tokens, valid)
        own, h_seq, h_last = self.trunk(tokens, hidden, valid, shape=(B, T))
        ctx = self.ctx(torch.cat([pack_rows(h_seq, valid), own], -1)) + self.skill_proj(pack_rows(skills, valid))
        logits = self._head(torch.relu(ctx).unsqueeze(-2), tokens[..., 1:1 + m, :]).squeeze(-2)
        return unpack_rows(logits, valid, B, T), h_last

    def logits_at(self, *args, **kwargs):
        raise TypeError("SkillConditionedDecoder takes skill vectors: call it with skills [B, T, n, skill_dim]")


def _entity_view_index(n_agents: int, n_enemies: int) -> Tensor:
    """[n, n + m] long: for agent i and state entity k (allies, then enemies), the index of
    agent i's observation token of that entity ([own, enemies, other allies], hygen.entities)."""
    idx = torch.empty(n_agents, n_agents + n_enemies, dtype=torch.long)
    for i in range(n_agents):
        for k in range(n_agents):
            idx[i, k] = 0 if k == i else 1 + n_enemies + (k if k < i else k - 1)
        idx[i, n_agents:] = 1 + torch.arange(n_enemies)
    return idx


@gin.configurable
class EntityForwardModel(nn.Module):
    """g(S_t[k], o_i,t[k], c_i) -> predicted S_{t+1}[k] - S_t[k] for every state entity k.

    Training-only (it reads the global state): it makes agent i's common skill c_i carry
    what the team will do next and how the entities will change. One hidden layer; the
    three inputs are projected separately and summed (= a linear layer on their concat).
    """

    def __init__(self, skill_dim: int = 16, hidden_dim: int = 64):
        super().__init__()
        self.state_in = nn.Linear(STATE_TOKEN_DIM, hidden_dim)
        self.obs_in = nn.Linear(OBS_TOKEN_DIM, hidden_dim, bias=False)
        self.skill_in = nn.Linear(skill_dim, hidden_dim, bias=False)
        self.out = nn.Linear(hidden_dim, STATE_TOKEN_DIM)

    def forward(self, state_tokens: Tensor, agent_views: Tensor, skills: Tensor) -> Tensor:
        """state_tokens [N, K, Fs], agent_views [N, n, K, Fo], skills [N, n, D] -> [N, n, K, Fs]."""
        h = self.state_in(state_tokens)[:, None] + self.obs_in(agent_views) + self.skill_in(skills)[:, :, None]
        return self.out(torch.relu(h))


def _build(factory, what: str, **kwargs) -> nn.Module:
    return build_component(factory, what, "HiSSDLearner", **kwargs)


# ----- acting ----------------------------------------------------------------------------------
class HiSSDController:
    """Decentralised execution: c_i, e_i from agent i's history, then the decoder's greedy
    available action (epsilon-greedy over actions when exploring). One pass for all envs."""

    def __init__(self, learner: HiSSDLearner):
        self.learner = learner

    def initial_state(self, map_name: str, num_envs: int) -> dict[str, Tensor]:
        spec, learner = get_map(map_name), self.learner
        n, dev = spec.n_agents, learner.device
        return {"common_hidden": torch.zeros(num_envs, n, learner.common_encoder.hidden_dim, device=dev),
                "task_hidden": torch.zeros(num_envs, n, learner.task_encoder.hidden_dim, device=dev),
                "dec_hidden": torch.zeros(num_envs, n, learner.decoder.hidden_dim, device=dev),
                "last_action": torch.zeros(num_envs, n, spec.n_actions, device=dev)}

    @torch.no_grad()
    def act(self, map_name: str, obs: Tensor, avail: Tensor, agent_state: dict[str, Tensor], epsilon: float,
            generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        learner = self.learner
        obs, avail = obs.to(learner.device, torch.float32)[:, None], avail.to(learner.device).bool()
        last = agent_state["last_action"][:, None]
        tokens = obs_entities(obs, map_name, last)  # [E, 1, n, E_tok, F], shared by the three networks
        c, c_h = learner.common_encoder(obs, last, map_name, agent_state["common_hidden"], tokens=tokens)
        e, e_h = learner.task_encoder(obs, last, map_name, agent_state["task_hidden"], tokens=tokens)
        logits, d_h = learner.decoder(obs, last, map_name, learner.skills(c, e), agent_state["dec_hidden"], tokens=tokens)
        actions = epsilon_greedy(logits[:, 0], avail, epsilon, generator)
        return actions, {"common_hidden": c_h, "task_hidden": e_h, "dec_hidden": d_h,
                         "last_action": F.one_hot(actions, avail.shape[-1]).float()}


# ----- the learner -----------------------------------------------------------------------------
@gin.configurable
class HiSSDLearner(LearnerBase):
    """The HiSSD learner (Learner contract of ``hygen.trainer``); see the module docstring.

    Args:
        maps: source map names (batches are keyed by them; acting works on any map).
        device: torch device.
        skill_dim: D, width of the common and of the task-specific skill (decoder reads 2D).
        common_encoder / task_encoder: ``SkillEncoder`` (class, built with ``skill_dim``, or instance).
        decoder: ``SkillConditionedDecoder`` (built with ``skill_dim = 2D``).
        forward_model: ``EntityForwardModel`` (built with ``skill_dim = D``).
        q_network: per-agent Q_i(tau_i, .) over actions, an ``ActionDecoder`` with one skill.
        v_network: per-agent V_i(tau_i), an ``ObservationEncoder`` with one output.
        mixer: ``ValueMixer`` class, built twice (Q_tot and V_tot).
        expectile: tau of L_V (0.9). awr_temperature, max_weight: A -> min(exp(10 A), 100).
        fwd_weight, contrastive_weight, contrastive_temperature: weights of L_fwd, L_nce; InfoNCE T.
        contrastive_samples: (step, agent) entries drawn per map for L_nce.
        gamma, lr, grad_norm_clip: 0.99, 5e-4 (Adam), 10.
    """

    def __init__(self, maps: str | Sequence[str] = (), device: str | torch.device = "cpu", skill_dim: int = 16,
                 common_encoder: Callable[..., nn.Module] = SkillEncoder,
                 task_encoder: Callable[..., nn.Module] = SkillEncoder,
                 decoder: Callable[..., nn.Module] = SkillConditionedDecoder,
                 forward_model: Callable[..., nn.Module] = EntityForwardModel,
                 q_network: Callable[..., nn.Module] = AttentionActionDecoder,
                 v_network: Callable[..., nn.Module] = AttentionObservationEncoder,
                 mixer: Callable[..., ValueMixer] = AttentionMixer,
                 expectile: float = 0.9, awr_temperature: float = 10.0, max_weight: float = 100.0,
                 fwd_weight: float = 1.0, contrastive_weight: float = 0.05, contrastive_temperature: float = 0.1,
                 contrastive_samples: int = 64, target_update_rate: float = 0.005, gamma: float = 0.99, lr: float = 5e-4,
                 grad_norm_clip: float = 10.0):
        self.maps = [maps] if isinstance(maps, str) else list(maps)
        for m in self.maps:
            get_map(m)  # unknown names fail here, listing the known ones
        if skill_dim < 1:
            raise HiSSDConfigError(f"HiSSDLearner.skill_dim must be >= 1, got {skill_dim}")
        if not 0.0 < expectile < 1.0:
            raise HiSSDConfigError(f"HiSSDLearner.expectile must be in (0, 1), got {expectile}")
        if not 0.0 < target_update_rate <= 1.0:
            raise HiSSDConfigError(f"HiSSDLearner.target_update_rate must be in (0, 1], got {target_update_rate}")
        if max_weight <= 0 or contrastive_temperature <= 0 or contrastive_samples < 2:
            raise HiSSDConfigError("HiSSDLearner: max_weight and contrastive_temperature must be > 0 and "
                                   f"contrastive_samples >= 2, got {max_weight}, {contrastive_temperature}, "
                                   f"{contrastive_samples}")
        self.device = torch.device(device)
        self.skill_dim = skill_dim
        dev = self.device
        self.common_encoder = _build(common_encoder, "common_encoder", skill_dim=skill_dim).to(dev)
        self.task_encoder = _build(task_encoder, "task_encoder", skill_dim=skill_dim).to(dev)
        self.decoder = _build(decoder, "decoder", skill_dim=2 * skill_dim).to(dev)
        self.forward_model = _build(forward_model, "forward_model", skill_dim=skill_dim).to(dev)
        self.q_network = _build(q_network, "q_network", num_skills=1).to(dev)
        self.v_network = _build(v_network, "v_network", num_skills=1).to(dev)
        self.q_mixer = _build(mixer, "mixer").to(dev)
        self.v_mixer = _build(mixer, "mixer").to(dev)
        if self.task_encoder is self.common_encoder:  # one instance bound to both: two networks
            self.task_encoder = copy.deepcopy(self.common_encoder)
        if self.v_mixer is self.q_mixer:
            self.v_mixer = copy.deepcopy(self.q_mixer)
        for name, mod, want in (("common_encoder", self.common_encoder, skill_dim),
                                ("task_encoder", self.task_encoder, skill_dim),
                                ("decoder", self.decoder, 2 * skill_dim)):
            if getattr(mod, "skill_dim", None) != want:
                raise HiSSDConfigError(f"HiSSDLearner.{name} has skill_dim {getattr(mod, 'skill_dim', None)}, "
                                       f"expected {want} (HiSSDLearner.skill_dim = {skill_dim})")
        for name, mod in (("q_network", self.q_network), ("v_network", self.v_network)):
            if mod.num_skills != 1:
                raise HiSSDConfigError(f"HiSSDLearner.{name} must have one output per action/agent "
                                       f"(num_skills=1), got {mod.num_skills}")
        self.target_q_network = copy.deepcopy(self.q_network).requires_grad_(False)
        self.target_q_mixer = copy.deepcopy(self.q_mixer).requires_grad_(False)
        self.expectile, self.awr_temperature, self.max_weight = expectile, awr_temperature, max_weight
        self.fwd_weight, self.contrastive_weight = fwd_weight, contrastive_weight
        self.contrastive_temperature, self.contrastive_samples = contrastive_temperature, contrastive_samples
        self.gamma, self.grad_norm_clip, self.target_update_rate = gamma, grad_norm_clip, target_update_rate
        self.params = [p for name in self._TRAINED for p in getattr(self, name).parameters()]
        self.optimizer = torch.optim.Adam(self.params, lr=lr)
        self._controller = HiSSDController(self)

    _TRAINED = ("common_encoder", "task_encoder", "decoder", "forward_model", "q_network", "v_network", "q_mixer",
                "v_mixer")
    # checkpoints written before the attributes took the gin parameters' names
    _RENAMED_MODULES = (("q_net", "q_network"), ("v_net", "v_network"), ("target_q_net", "target_q_network"))
    _MODULES = _TRAINED + ("target_q_network", "target_q_mixer")
    # theta^- <- rate * theta + (1 - rate) * theta^- (IQL: rate 0.005 every step; 1.0 = hard copy)
    _TARGETS = (("target_q_network", "q_network"), ("target_q_mixer", "q_mixer"))

    def skills(self, common: Tensor, task: Tensor) -> Tensor:
        """The decoder's skill vector [c_i, e_i / |e_i|] (the task skill lives on the unit sphere)."""
        return torch.cat([common, F.normalize(task, dim=-1)], -1)

    # ----- Learner contract -------------------------------------------------------------
    def controller(self) -> HiSSDController:
        return self._controller

    def update(self, batches: Mapping[str, object], step: int, phase: str) -> dict[str, float]:
        """One optimizer step on the sum over maps of the per-map losses, plus L_nce across maps."""
        if phase not in PHASES:
            raise ValueError(f"HiSSDLearner.update: unknown objective {phase!r}; expected one of {PHASES} "
                             "(configs/runs/offline.gin with OBJECTIVE = 'hissd', as configs/methods/hissd.gin binds it)")
        if not batches:
            raise ValueError("HiSSDLearner.update: got no batches")
        return self.summed_map_step(batches, self._map_loss, extra_loss=self._contrastive_loss)

    def _contrastive_loss(self, task_skills: list[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """contrastive_weight * L_nce over the task skills drawn on every map (label: the map)."""
        labels = torch.cat([torch.full((len(e),), i, device=self.device) for i, e in enumerate(task_skills)])
        l_nce = info_nce_loss(torch.cat(task_skills), labels, self.contrastive_temperature)
        return self.contrastive_weight * l_nce, {"nce_loss": l_nce.detach()}

    def _checkpoint_fingerprint(self) -> dict:
        return {"skill_dim": self.skill_dim}

    @torch.no_grad()
    def value_estimates(self, b) -> Tensor:
        """Q_tot(s_t, a_data) [B, T, 1] of a batch (hygen.diagnostics: does it track the return?)."""
        b = b.trim().to(self.device)
        rows = b.filled[..., 0] > 0
        q_all = self.q_network(b.obs, b.last_actions_onehot, b.map_name, valid=rows)[0][:, :-1, :, 0]
        q_taken = q_all.gather(-1, b.actions[:, :-1]).squeeze(-1)
        return self.q_mixer(q_taken, b.state[:, :-1], b.map_name, b.mask[..., 0] > 0)

    # ----- losses ----------------------------------------------------------------------
    def _map_loss(self, b) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """L_Q + L_V + fwd_weight * L_fwd + L_pi on one map's batch, and the task skills drawn for L_nce."""
        m = b.map_name
        mask = b.mask  # [B, T, 1]
        last = b.last_actions_onehot  # [B, T+1, n, A]
        actions, avail = b.actions[:, :-1, :, 0], b.avail_actions[:, :-1]
        agent_mask = alive_agents(avail, mask)  # [B, T, n]
        reward, terminated = b.reward[:, :-1], b.terminated[:, :-1]
        steps = mask[..., 0] > 0  # [B, T] transitions
        rows = b.filled[..., 0] > 0  # [B, T+1] rows with data (steps + the final observation)

        # entity tokens of the rows with data, shared by every local network
        tokens = obs_entities(pack_rows(b.obs, rows), m, pack_rows(last, rows))  # [N_rows, n, E, F]
        common, _ = self.common_encoder(b.obs, last, m, valid=rows, tokens=tokens)  # [B, T+1, n, D]
        task, _ = self.task_encoder(b.obs, last, m, valid=rows, tokens=tokens)
        logits, _ = self.decoder(b.obs, last, m, self.skills(common, task), valid=rows, tokens=tokens)

        # ---- IQL-style mixed values (eqs. 5, 6 of IQL)
        q_all = self.q_network(b.obs, last, m, valid=rows, tokens=tokens)[0][:, :-1, :, 0]  # [B, T, n, A]
        q_taken = q_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # Q_i(tau_i, a_i)
        q_tot = self.q_mixer(q_taken, b.state[:, :-1], m, steps)  # [B, T, 1]
        v_tot = self.v_mixer(self.v_network(b.obs, last, m, valid=rows, tokens=tokens)[0][..., 0],
                             b.state, m, rows)  # V_tot(s_t) for t = 0..T, [B, T+1, 1]
        l_q, _ = td_loss(q_tot, v_tot[:, 1:], reward, terminated, mask, self.gamma)  # V_tot(s') detached inside
        with torch.no_grad():
            target_q = self.target_q_network(b.obs, last, m, valid=rows, tokens=tokens)[0][:, :-1, :, 0]
            target_q_tot = self.target_q_mixer(target_q.gather(-1, actions.unsqueeze(-1)).squeeze(-1),
                                               b.state[:, :-1], m, steps)
        u = target_q_tot - v_tot[:, :-1]  # Q^- - V
        l_v = expectile_loss(u, mask, self.expectile)

        # ---- planner / policy: advantage-weighted behaviour cloning (IQL eq. 7, HiSSD's weights)
        advantage = u.detach()
        weights = advantage_weights(advantage, self.awr_temperature, self.max_weight)  # [B, T, 1]
        logp = masked_log_softmax(logits[:, :-1], avail).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        l_pi = masked_mean(-weights * logp, agent_mask)

        # ---- common skill: forward prediction of the next state's entities
        l_fwd = self._forward_loss(b, tokens, common, steps, rows, agent_mask)

        # ---- task skill: (step, agent) entries for the cross-task InfoNCE
        flat = agent_mask.flatten() > 0
        k = min(self.contrastive_samples, int(flat.sum()))
        pick = torch.multinomial(flat.float(), k, replacement=False) if k > 0 else flat.nonzero()[:0, 0]
        e_sample = task[:, :-1].reshape(-1, task.shape[-1])[pick]

        loss = l_q + l_v + self.fwd_weight * l_fwd + l_pi
        with torch.no_grad():
            pred = logits[:, :-1].masked_fill(~avail, float("-inf")).argmax(-1)
            stats = {"loss": loss.detach(), "q_loss": l_q.detach(), "v_loss": l_v.detach(), "fwd_loss": l_fwd.detach(),
                     "policy_loss": l_pi.detach(), "nll": masked_mean(-logp, agent_mask),
                     "action_acc": masked_mean((pred == actions).float(), agent_mask),
                     "q_tot_mean": masked_mean(q_tot, mask), "v_tot_mean": masked_mean(v_tot[:, :-1], mask),
                     "advantage_mean": masked_mean(advantage, mask),
                     "weight_mean": masked_mean(weights, mask),
                     "weight_clamped": masked_mean((weights >= self.max_weight * (1 - 1e-6)).float(), mask)}
        return loss, stats, e_sample

    def _forward_loss(self, b, tokens: Tensor, common: Tensor, steps: Tensor, rows: Tensor,
                      agent_mask: Tensor) -> Tensor:
        """MSE of the predicted change of every state entity, S_{t+1} - S_t, on alive agents' steps."""
        m, n = b.map_name, b.n_agents
        s_tok = state_entities(b.state, m)  # [B, T+1, n + k_e, Fs] (ally tokens carry the last action)
        cur, change = s_tok[:, :-1][steps], (s_tok[:, 1:] - s_tok[:, :-1])[steps]  # [N, K, Fs]
        step_rows = torch.cat([steps, torch.zeros_like(steps[:, :1])], 1)  # steps among the T+1 rows
        step_tokens = tokens[pack_rows(step_rows, rows)]  # [N, n, E, Fo]
        idx = _entity_view_index(n, get_map(m).n_enemies).to(tokens.device)  # [n, K]
        views = step_tokens.gather(2, idx[None, :, :, None].expand(len(step_tokens), -1, -1, tokens.shape[-1]))
        pred = self.forward_model(cur, views, common[:, :-1][steps])  # [N, n, K, Fs]
        err = ((pred - change[:, None]) ** 2).mean((-1, -2))  # [N, n]
        return masked_mean(err, agent_mask[steps])
