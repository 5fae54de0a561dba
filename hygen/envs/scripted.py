"""Scripted policies that read only the env's batched tensors (state + avail actions).

They work on any backend with the SMAC interface (built-in simulator or SC2), because
they decode unit positions and health from SMAC's global state via ``MapSpec.layout``.
``hygen collect --policy heuristic`` uses the best of :func:`focus_fire_actions`,
:func:`nearest_enemy_actions`, :func:`flank_actions` and :func:`ambush_actions` on each map.
"""

from __future__ import annotations

import torch

from hygen.envs.sim import N_NO_ATTACK, NOOP, STOP

__all__ = ["ambush_actions", "decode_state", "flank_actions", "focus_fire_actions", "nearest_enemy_actions", "random_actions"]


def decode_state(env, state: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Unit positions (normalised, as in SMAC's state) and alive masks from the state.

    Returns ally_xy [E,n,2], enemy_xy [E,m,2], ally_alive [E,n], enemy_alive [E,m], enemy_health [E,m]
    (a fraction of the maximum).
    """
    lay = env.map.layout
    s = env.get_state() if state is None else state
    E, n, m = s.shape[0], lay.n_agents, lay.n_enemies
    ally = s[:, : lay.state_enemy_offset].view(E, n, lay.ally_state)
    enemy = s[:, lay.state_enemy_offset: lay.state_last_action_offset].view(E, m, lay.enemy_state)
    return {
        "ally_xy": ally[..., 2:4], "enemy_xy": enemy[..., 1:3],
        "ally_alive": ally[..., 0] > 0, "enemy_alive": enemy[..., 0] > 0, "enemy_health": enemy[..., 0],
    }


def _move_towards(avail: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """SMAC move action (2..5) along the dominant axis of ``delta`` [E,n,2]; stop if blocked."""
    dx, dy = delta[..., 0], delta[..., 1]
    horizontal = dx.abs() >= dy.abs()
    move = torch.where(horizontal, torch.where(dx > 0, 4, 5), torch.where(dy > 0, 2, 3))
    ok = avail.gather(2, move[..., None]).squeeze(-1)
    return torch.where(ok, move, STOP)


def _finish(env, avail: torch.Tensor, actions: torch.Tensor, epsilon: float,
            generator: torch.Generator | None) -> torch.Tensor:
    alive = ~avail[..., NOOP]
    actions = torch.where(alive, actions, NOOP)
    if epsilon > 0:
        rand = random_actions(avail, generator)
        explore = torch.rand(actions.shape, generator=generator, device=actions.device) < epsilon
        actions = torch.where(explore, rand, actions)
    return actions


def random_actions(avail: torch.Tensor, generator: torch.Generator | None = None) -> torch.LongTensor:
    """Uniformly random available actions, [E, n] (argmax of iid uniforms over the available set)."""
    noise = torch.rand(avail.shape, generator=generator, device=avail.device)
    return noise.masked_fill_(~avail, -1.0).argmax(dim=-1)  # in place: no bool->float product


def focus_fire_actions(env, epsilon: float = 0.0, generator: torch.Generator | None = None) -> torch.LongTensor:
    """Every agent attacks the same enemy: the living enemy nearest the team's centre.

    Agents that cannot reach it yet (attack unavailable, i.e. farther than 6) walk towards it;
    ``epsilon`` replaces that share of actions by random available ones. Returns [E, n].
    """
    avail = env.get_avail_actions()
    d = decode_state(env)
    w = d["ally_alive"].float()[..., None]
    centre = (d["ally_xy"] * w).sum(1) / w.sum(1).clamp(min=1)  # [E, 2]
    dist = (d["enemy_xy"] - centre[:, None]).norm(dim=-1).masked_fill(~d["enemy_alive"], float("inf"))
    target = dist.argmin(dim=1)  # [E]
    attack = (N_NO_ATTACK + target)[:, None].expand(-1, avail.shape[1])
    can = avail.gather(2, attack[..., None]).squeeze(-1)
    tgt_xy = d["enemy_xy"].gather(1, target[:, None, None].expand(-1, 1, 2))
    move = _move_towards(avail, tgt_xy - d["ally_xy"])
    return _finish(env, avail, torch.where(can, attack, move), epsilon, generator)


def nearest_enemy_actions(env, epsilon: float = 0.0, generator: torch.Generator | None = None) -> torch.LongTensor:
    """Each agent attacks its own nearest enemy (no coordination), like SC2's attack-move AI;
    agents with no enemy in range walk towards their nearest enemy. Returns [E, n]."""
    avail = env.get_avail_actions()
    d = decode_state(env)
    rel = d["enemy_xy"][:, None] - d["ally_xy"][:, :, None]  # [E, n, m, 2]
    dist = rel.norm(dim=-1).masked_fill(~d["enemy_alive"][:, None], float("inf"))
    nearest = dist.argmin(dim=2)  # [E, n]
    attack = N_NO_ATTACK + nearest
    can = avail.gather(2, attack[..., None]).squeeze(-1)
    delta = rel.gather(2, nearest[..., None, None].expand(-1, -1, 1, 2)).squeeze(2)
    move = _move_towards(avail, delta)
    return _finish(env, avail, torch.where(can, attack, move), epsilon, generator)


FLANK_WAIT_STEPS = 18  # long enough for the enemies' attack-move to reach the allies' start and stop


def flank_actions(env, steps: torch.Tensor, epsilon: float = 0.0, generator: torch.Generator | None = None,
                  wait: int = FLANK_WAIT_STEPS) -> torch.LongTensor:
    """Step aside, let the enemy walk past, then focus fire on the nearest of them.

    ``steps`` [E]: environment steps taken in each episode so far. For the first ``wait`` steps,
    while no enemy is within shooting range of any ally, every agent moves north, off the line
    the enemies attack-move along; they reach the allies' start and stand there. Then the team
    focus fires (:func:`focus_fire_actions`): it comes at the enemy group from one side, so its
    near edge engages first and the far edge (no ally within its weapon range) idles for a while.
    On marine-hard's 9m_vs_10m this wins where plain focus fire never does (docs/datasets.md).
    """
    avail = env.get_avail_actions()
    attack = focus_fire_actions(env, 0.0, generator)
    contact = avail[..., N_NO_ATTACK:].any(-1).any(-1)  # [E]: some ally can shoot some enemy
    waiting = (steps.to(avail.device) < wait) & ~contact
    north = torch.full_like(attack, 2)  # SMAC: 2 north, 3 south, 4 east, 5 west
    north = torch.where(avail[..., 2], north, STOP)
    return _finish(env, avail, torch.where(waiting[:, None], north, attack), epsilon, generator)


AMBUSH_SIDESTEP_STEPS = 8  # north until the map's edge: the enemies' line passes beyond their acquisition range
AMBUSH_WAIT_STEPS = 26  # until the enemies have walked to the allies' start and stand there in a clump


def ambush_actions(env, steps: torch.Tensor, epsilon: float = 0.0, generator: torch.Generator | None = None,
                   sidestep: int = AMBUSH_SIDESTEP_STEPS, wait: int = AMBUSH_WAIT_STEPS) -> torch.LongTensor:
    """Step out of the enemies' way, let them stop, then take them on a few at a time.

    Exploits two rules of the built-in AI (docs/simulator.md): a unit on attack-move only takes a
    target within its acquisition range (its weapon range), and nothing alerts its idle neighbours.
    ``steps`` [E]: steps taken so far in each episode. For ``sidestep`` steps (while no ally can
    shoot) every agent moves north, far enough that the enemies' attack-move line passes out of
    their acquisition range; the enemies walk on to the allies' start and stand there, still on
    attack-move. The team waits until step ``wait``, then walks at the enemy nearest its centre
    and holds position the moment any ally can shoot: only the enemies at the near edge of the
    clump come within reach and answer, the rest keep standing. Every ally that can shoot fires
    at the enemy most allies can reach (ties: the weakest); the others hold (walking in would
    bring the next enemies in range). When nobody can shoot, the team closes in again.
    On marine-hard's 5m_vs_6m this wins where focus fire and flanking never do (docs/datasets.md).
    """
    avail = env.get_avail_actions()
    d = decode_state(env)
    can = avail[..., N_NO_ATTACK:]  # [E, n, m]: ally i can shoot enemy j
    contact = can.any(-1)  # [E, n]
    any_contact = contact.any(-1)  # [E]
    reach = can.sum(1).float()  # [E, m]: how many allies can shoot each enemy
    score = (reach * 2.0 - d["enemy_health"]).masked_fill(reach == 0, -1.0)
    focus = N_NO_ATTACK + score.argmax(1)  # [E]; meaningful where any ally can shoot
    focus = focus[:, None].expand_as(contact)
    can_focus = avail.gather(2, focus[..., None]).squeeze(-1)
    weakest = N_NO_ATTACK + d["enemy_health"][:, None].expand_as(can).masked_fill(~can, 2.0).argmin(-1)
    hold = torch.full_like(focus, STOP)
    fight = torch.where(can_focus, focus, torch.where(contact, weakest, hold))
    steps = steps.to(avail.device)
    north = torch.where(avail[..., 2], torch.full_like(focus, 2), hold)
    approach = focus_fire_actions(env, 0.0, generator)  # walks at the enemy nearest the team's centre
    before = torch.where((steps < sidestep)[:, None], north, hold)
    act = torch.where(any_contact[:, None], fight, torch.where((steps < wait)[:, None], before, approach))
    return _finish(env, avail, act, epsilon, generator)
