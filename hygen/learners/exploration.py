"""How a skill controller explores while collecting online episodes (epsilon > 0).

A rule picks each agent's skill from the greedy one and its action from the decoder's
logits for that skill. Evaluation always acts greedily (epsilon 0: argmax skill, argmax
action), whatever the rule. Bind one as ``HyGenLearner.exploration = @Rule()``.

| rule | skill | action |
|---|---|---|
| ``EpsilonSkills`` | uniform with prob. epsilon, else argmax_z Q_i | the decoder's argmax |
| ``EpsilonSkillsSampledActions`` | as above | drawn from p(a \\| tau, z) |
| ``EpsilonSkillsEpsilonSampledActions`` | as above | drawn with prob. epsilon, else the argmax |
| ``EpsilonActions`` | argmax_z Q_i | uniform available action with prob. epsilon, else the argmax |

``EpsilonActions`` is the public HyGen code's (its controller is ODIS's, epsilon-greedy over
primitive actions); refinement can only improve a skill with actions the decoder did not
already take, which the sampled rules provide.
"""

from __future__ import annotations

import gin
import torch
from torch import Tensor

__all__ = [
    "EpsilonActions",
    "EpsilonSkills",
    "EpsilonSkillsEpsilonSampledActions",
    "EpsilonSkillsSampledActions",
    "SkillExploration",
    "epsilon_greedy",
]


def epsilon_greedy(q: Tensor, avail: Tensor, epsilon: float, generator: torch.Generator | None = None) -> Tensor:
    """Greedy over available actions, uniformly random available action with prob. epsilon.

    q: [..., A] values; avail: [..., A] bool. Returns [...] long.
    """
    avail = avail.bool()
    greedy = q.masked_fill(~avail, float("-inf")).argmax(-1)
    if epsilon <= 0.0:
        return greedy
    flat = avail.reshape(-1, avail.shape[-1]).float()
    random = torch.multinomial(flat, 1, generator=generator).view(greedy.shape)
    explore = torch.rand(greedy.shape, device=q.device, generator=generator) < epsilon
    return torch.where(explore, random, greedy)


class SkillExploration:
    """Base: greedy skills and greedy actions (what every rule does at epsilon 0)."""

    def skills(self, greedy: Tensor, num_skills: int, epsilon: float, generator: torch.Generator | None) -> Tensor:
        """greedy [E, n] argmax skills -> the skills to execute [E, n]."""
        return greedy

    def actions(self, logits: Tensor, avail: Tensor, epsilon: float, generator: torch.Generator | None) -> Tensor:
        """logits [E, n, A] (-inf on unavailable actions), avail [E, n, A] bool -> actions [E, n]."""
        return logits.argmax(-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _with_prob(epsilon: float, shape, device, generator) -> Tensor:
    return torch.rand(shape, device=device, generator=generator) < epsilon


@gin.configurable
class EpsilonSkills(SkillExploration):
    """A uniformly random skill with probability epsilon per agent and step; the decoder's argmax action."""

    def skills(self, greedy, num_skills, epsilon, generator):
        random = torch.randint(num_skills, greedy.shape, device=greedy.device, generator=generator)
        return torch.where(_with_prob(epsilon, greedy.shape, greedy.device, generator), random, greedy)


def _sample(logits: Tensor, generator) -> Tensor:
    return torch.multinomial(logits.softmax(-1).flatten(0, 1), 1, generator=generator).view(logits.shape[:-1])


@gin.configurable
class EpsilonSkillsSampledActions(EpsilonSkills):
    """``EpsilonSkills``' skills; actions drawn from the decoder's p(a | tau, z)."""

    def actions(self, logits, avail, epsilon, generator):
        return _sample(logits, generator)


@gin.configurable
class EpsilonSkillsEpsilonSampledActions(EpsilonSkills):
    """``EpsilonSkills``' skills; each agent's action drawn from p(a | tau, z) with
    probability epsilon, else the decoder's argmax (the test policy)."""

    def actions(self, logits, avail, epsilon, generator):
        sampled = _sample(logits, generator)
        return torch.where(_with_prob(epsilon, sampled.shape, sampled.device, generator), sampled, logits.argmax(-1))


@gin.configurable
class EpsilonActions(SkillExploration):
    """The public code's rule: the greedy skill, and epsilon-greedy over primitive actions
    (a uniformly random available action with probability epsilon, else the decoder's argmax)."""

    def actions(self, logits, avail, epsilon, generator):
        greedy = logits.argmax(-1)
        random = torch.multinomial(avail.flatten(0, 1).float(), 1, generator=generator).view(greedy.shape)
        return torch.where(_with_prob(epsilon, greedy.shape, greedy.device, generator), random, greedy)
