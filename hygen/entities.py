"""Entity decomposition of SMAC observations and states (UPDeT/ODIS "task decomposer").

The ONE place that turns a map-specific flat observation or state into a set of
fixed-width entity tokens, so one network reads every map (paper section 4.1:
"(s, a) in different tasks is transferred into a group of entities with same entity
length"). Offsets come from ``get_map(name).layout``; nothing here hard-codes a map.

Shared vocabulary: every token has the same width on every map. A map's unit-type
one-hot (allies [stalker, zealot] but enemies [zealot, stalker] on stalker-zealot
maps -- SMAC's quirk, kept in recorded data) is mapped into ``UNIT_VOCAB``; on
single-type (marine) maps, where SMAC writes no one-hot, the marine bit is set for
units that are present (visible / alive), matching stalker-zealot maps where absent
units have an all-zero one-hot. Shields go to a fixed column (0 on marine maps).

Observation tokens of agent i, in this order: [own, enemy 0..m-1, other allies 0..n-2]
(so the enemy j token sits at index ``1 + j``; the action decoder reads attack-j
logits from it). Columns (``OBS_TOKEN_DIM`` = 24):

    0-2   kind one-hot (own, ally, enemy)
    3     flag: own alive / ally visible / enemy attackable
    4-6   dist, dx, dy (relative, /sight range; 0 for own)
    7-8   health, shield (fractions of max)
    9-11  unit type in UNIT_VOCAB
    12-15 move availability N, S, E, W (own)
    16-22 own last action, compact: no-op, stop, N, S, E, W, attack-any (own)
    23    "I attacked this enemy last step" (enemy)

State tokens: [ally 0..n-1, enemy 0..m-1]. Ally tokens carry an action (by default
the last action recorded in the state; the global skill encoder passes the current
joint action a_t instead). Columns (``STATE_TOKEN_DIM`` = 20):

    0-1   kind one-hot (ally, enemy)
    2-3   health, shield
    4     weapon cooldown (ally)
    5-6   x, y (centred, normalised)
    7-9   unit type in UNIT_VOCAB
    10-16 action, compact: no-op, stop, N, S, E, W, attack-any (ally)
    17-18 position of the attacked enemy relative to the ally (ally, when attacking)
    19    fraction of allies attacking this enemy (enemy)

Shapes follow PyMARL: any leading dims (e.g. [batch, time]) are kept.
"""

from __future__ import annotations

from functools import cache

import torch
from torch import Tensor

from hygen.envs.maps import UNIT_VOCAB, Layout, get_map

OBS_TOKEN_DIM = 24
STATE_TOKEN_DIM = 20
N_BASIC_ACTIONS = 6  # no-op, stop, move N/S/E/W; attack j is action 6 + j
_COMPACT_ACTIONS = N_BASIC_ACTIONS + 1  # basic actions + "attacked someone"


class EntityShapeError(ValueError):
    """An observation/state/action tensor whose width does not match the map's layout."""


@cache
def _type_matrix(types: tuple[str, ...]) -> Tensor:
    """[len(types), len(UNIT_VOCAB)] matrix mapping a map's one-hot columns into UNIT_VOCAB."""
    mat = torch.zeros(len(types), len(UNIT_VOCAB))
    for col, t in enumerate(types):
        mat[col, UNIT_VOCAB.index(t)] = 1.0
    return mat


def _vocab_types(onehot: Tensor | None, present: Tensor, types: tuple[str, ...]) -> Tensor:
    """Map-specific one-hot [..., k, len(types)] -> [..., k, 3]. Single-type maps have no one-hot."""
    if onehot is None:  # one unit type on the map (SMAC writes no bits): set it where present
        vocab = torch.zeros(*present.shape, len(UNIT_VOCAB), dtype=present.dtype, device=present.device)
        vocab[..., UNIT_VOCAB.index(types[0])] = present
        return vocab
    return onehot @ _type_matrix(types).to(onehot)


def _split_unit_feats(block: Tensor, lay: Layout, first: int, types: tuple[str, ...],
                      present: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """From per-unit features, return (health [...,1], shield [...,1], vocab type [...,3]).

    ``first`` is the column of health; shield (if any) follows, then the type one-hot.
    """
    health = block[..., first:first + 1]
    if lay.shield_bits:
        shield = block[..., first + 1:first + 2]
    else:
        shield = torch.zeros_like(health)
    t0 = first + 1 + lay.shield_bits
    onehot = block[..., t0:t0 + lay.unit_type_bits] if lay.unit_type_bits else None
    return health, shield, _vocab_types(onehot, present, types)


def _check_width(x: Tensor, expected: int, what: str, map_name: str) -> None:
    if x.shape[-1] != expected:
        raise EntityShapeError(
            f"{what} for map {map_name!r} has width {x.shape[-1]}, expected {expected} "
            f"(shape {tuple(x.shape)}); is the map name right?")


def _compact(actions_onehot: Tensor) -> Tensor:
    """[..., A] one-hot -> [..., 7]: the 6 basic actions plus 'attacked any enemy'."""
    return torch.cat([actions_onehot[..., :N_BASIC_ACTIONS],
                      actions_onehot[..., N_BASIC_ACTIONS:].sum(-1, keepdim=True)], dim=-1)


def n_obs_tokens(map_name: str) -> int:
    spec = get_map(map_name)
    return 1 + spec.n_enemies + spec.n_agents - 1


# Small inputs (acting: a few environments, one step) build the tokens as one gather from
# [obs | last action | derived columns] instead of ~25 slice writes: every token cell is a copy
# of one source column, so both forms give the same bits (tests/test_hygen_speed_equivalence.py).
# On large inputs (training batches) the gather is slower than the slice writes
# (at 1.4e5 output elements they cost the same, measured for 9m_vs_10m x 32 environments).
_GATHER_MAX_ELEMENTS = 65536


@cache
def _obs_token_index(lay: Layout) -> Tensor | None:
    """For each cell of the [E_tok, OBS_TOKEN_DIM] tokens of one agent, flattened, its column in
    [obs (D) | last action (A) | 0, 1, own alive, enemy present (m), attacked any] (see
    ``_obs_entities_gather``); None if two unit-type columns of a side map to one vocabulary
    entry (the one-hot's matmul would add them; the slice path keeps that)."""
    n, m, D, A = lay.n_agents, lay.n_enemies, lay.obs_shape, lay.n_actions
    zero, one, alive, present, attacked = D + A, D + A + 1, D + A + 2, D + A + 3, D + A + 3 + m
    idx = [[zero] * OBS_TOKEN_DIM for _ in range(1 + m + n - 1)]

    def unit(row: list[int], first: int, types: tuple[str, ...], present_col: int) -> bool:
        row[7] = first  # health, then shield, then the type one-hot (as _split_unit_feats reads them)
        if lay.shield_bits:
            row[8] = first + 1
        if not lay.unit_type_bits:  # one unit type: its bit is "present"
            row[9 + UNIT_VOCAB.index(types[0])] = present_col
            return True
        for c, t in enumerate(types):
            row[9 + UNIT_VOCAB.index(t)] = first + 1 + lay.shield_bits + c
        return len(set(types)) == len(types)

    own = idx[0]
    own[0], own[3], own[22] = one, alive, attacked
    ok = unit(own, lay.obs_own_offset, lay.ally_types, alive)
    own[12:16] = range(lay.n_move_feats)
    own[16:22] = range(D, D + N_BASIC_ACTIONS)
    for j in range(m):
        row, base = idx[1 + j], lay.obs_enemy_offset + j * lay.enemy_feat
        row[2], row[23] = one, D + N_BASIC_ACTIONS + j
        row[3:7] = range(base, base + 4)
        ok &= unit(row, base + 4, lay.enemy_types, present + j)
    for j in range(n - 1):
        row, base = idx[1 + m + j], lay.obs_ally_offset + j * lay.ally_feat
        row[1] = one
        row[3:7] = range(base, base + 4)
        ok &= unit(row, base + 4, lay.ally_types, base)  # an ally's "present" is its visible flag
    return torch.tensor(idx).flatten() if ok else None


@cache
def _obs_token_index_on(lay: Layout, device: torch.device) -> Tensor | None:
    """``_obs_token_index`` kept on ``device`` (no host-to-device copy per call on a GPU)."""
    index = _obs_token_index(lay)
    return None if index is None else index.to(device)


def _obs_entities_gather(obs: Tensor, lay: Layout, last: Tensor, index: Tensor) -> Tensor:
    """``obs_entities`` as one gather; the derived columns are computed as the slice path does."""
    lead, m = obs.shape[:-1], lay.n_enemies
    own_alive = obs[..., lay.obs_own_offset:lay.obs_own_offset + 1] > 0
    en = obs[..., lay.obs_enemy_offset:lay.obs_ally_offset].reshape(*lead, m, lay.enemy_feat)
    en_present = en.abs().sum(-1) > 0
    src = torch.cat([obs, last, obs.new_tensor([0.0, 1.0]).expand(*lead, 2), own_alive.to(obs.dtype),
                     en_present.to(obs.dtype), last[..., N_BASIC_ACTIONS:].sum(-1, keepdim=True)], -1)
    return src.index_select(-1, index).view(*lead, 1 + m + lay.n_agents - 1, OBS_TOKEN_DIM)


def obs_entities(obs: Tensor, map_name: str, last_actions_onehot: Tensor | None = None) -> Tensor:
    """Observation entity tokens.

    Args:
        obs: [..., n_agents, obs_dim] as SMAC writes it.
        map_name: registered map name.
        last_actions_onehot: [..., n_agents, n_actions] each agent's previous action
            (all zeros at t=0 or when unknown). ``None`` means zeros.
    Returns:
        [..., n_agents, 1 + n_enemies + n_agents - 1, OBS_TOKEN_DIM]
    """
    spec = get_map(map_name)
    lay = spec.layout
    n, m = lay.n_agents, lay.n_enemies
    _check_width(obs, lay.obs_shape, "observation", map_name)
    if obs.shape[-2] != n:
        raise EntityShapeError(f"observation for map {map_name!r} has {obs.shape[-2]} agents, expected {n}")
    lead = obs.shape[:-1]  # [..., n]
    if last_actions_onehot is None:
        last_actions_onehot = obs.new_zeros(*lead, lay.n_actions)
    _check_width(last_actions_onehot, lay.n_actions, "last-action one-hot", map_name)
    last_actions_onehot = last_actions_onehot.to(obs.dtype)
    index = _obs_token_index_on(lay, obs.device)
    if index is not None and lead.numel() * index.numel() <= _GATHER_MAX_ELEMENTS:
        return _obs_entities_gather(obs, lay, last_actions_onehot, index)
    # one output buffer, filled by slices (one pass over memory; this runs on [B, T, n, E, F])
    tok = obs.new_zeros(*lead, 1 + m + n - 1, OBS_TOKEN_DIM)
    own_t, en_t, al_t = tok[..., 0, :], tok[..., 1:1 + m, :], tok[..., 1 + m:, :]

    # own token: [kind, alive, -, -, -, health, shield, type, move, last action compact, -]
    own = obs[..., lay.obs_own_offset:]
    own_alive = (own[..., 0] > 0).to(obs.dtype)
    h, sh, ty = _split_unit_feats(own, lay, 0, lay.ally_types, own_alive)
    own_t[..., 0] = 1.0
    own_t[..., 3] = own_alive
    own_t[..., 7:8], own_t[..., 8:9], own_t[..., 9:12] = h, sh, ty
    own_t[..., 12:16] = obs[..., :lay.n_move_feats]
    own_t[..., 16:22] = last_actions_onehot[..., :N_BASIC_ACTIONS]
    own_t[..., 22] = last_actions_onehot[..., N_BASIC_ACTIONS:].sum(-1)

    # enemy tokens: [attackable, dist, dx, dy, health, shield?, type?] (+ "I attacked it")
    en = obs[..., lay.obs_enemy_offset:lay.obs_ally_offset].reshape(*lead, m, lay.enemy_feat)
    en_present = (en.abs().sum(-1) > 0).to(obs.dtype)
    h, sh, ty = _split_unit_feats(en, lay, 4, lay.enemy_types, en_present)
    en_t[..., 2] = 1.0
    en_t[..., 3:7] = en[..., 0:4]
    en_t[..., 7:8], en_t[..., 8:9], en_t[..., 9:12] = h, sh, ty
    en_t[..., 23] = last_actions_onehot[..., N_BASIC_ACTIONS:]

    # other-ally tokens: [visible, dist, dx, dy, health, shield?, type?]
    al = obs[..., lay.obs_ally_offset:lay.obs_own_offset].reshape(*lead, n - 1, lay.ally_feat)
    h, sh, ty = _split_unit_feats(al, lay, 4, lay.ally_types, al[..., 0])
    al_t[..., 1] = 1.0
    al_t[..., 3:7] = al[..., 0:4]
    al_t[..., 7:8], al_t[..., 8:9], al_t[..., 9:12] = h, sh, ty
    return tok


def state_entities(state: Tensor, map_name: str, actions_onehot: Tensor | None = None) -> Tensor:
    """State entity tokens.

    Args:
        state: [..., state_dim] as SMAC writes it (ends with every agent's last action).
        map_name: registered map name.
        actions_onehot: [..., n_agents, n_actions] the joint action to attach to the ally
            tokens; ``None`` uses the last actions recorded in the state.
    Returns:
        [..., n_agents + n_enemies, STATE_TOKEN_DIM]
    """
    spec = get_map(map_name)
    lay = spec.layout
    n, m = lay.n_agents, lay.n_enemies
    _check_width(state, lay.state_shape, "state", map_name)
    lead = state.shape[:-1]
    zeros = state.new_zeros

    al = state[..., :lay.state_enemy_offset].reshape(*lead, n, lay.ally_state)
    en = state[..., lay.state_enemy_offset:lay.state_last_action_offset].reshape(*lead, m, lay.enemy_state)
    if actions_onehot is None:
        actions_onehot = state[..., lay.state_last_action_offset:].reshape(*lead, n, lay.n_actions)
    else:
        _check_width(actions_onehot, lay.n_actions, "action one-hot", map_name)
        actions_onehot = actions_onehot.to(state.dtype)

    # allies: [health, cooldown, x, y, shield?, type?] -- health, then shield after x, y
    al_alive = (al[..., 0] > 0).to(state.dtype)
    al_shield = al[..., 4:5] if lay.shield_bits else zeros(*lead, n, 1)
    t0 = 4 + lay.shield_bits
    al_t = _vocab_types(al[..., t0:t0 + lay.unit_type_bits] if lay.unit_type_bits else None,
                        al_alive, lay.ally_types)
    # enemies: [health, x, y, shield?, type?]
    en_alive = (en[..., 0] > 0).to(state.dtype)
    en_shield = en[..., 3:4] if lay.shield_bits else zeros(*lead, m, 1)
    t0 = 3 + lay.shield_bits
    en_t = _vocab_types(en[..., t0:t0 + lay.unit_type_bits] if lay.unit_type_bits else None,
                        en_alive, lay.enemy_types)

    attack = actions_onehot[..., N_BASIC_ACTIONS:]  # [..., n, m]
    al_xy, en_xy = al[..., 2:4], en[..., 1:3]
    # relative position of the attacked enemy: sum_j attack_ij * (xy_j - xy_i)
    target_rel = attack @ en_xy - attack.sum(-1, keepdim=True) * al_xy
    focus = attack.sum(-2).unsqueeze(-1) / n  # [..., m, 1] fraction of allies attacking enemy j

    al_tok = torch.cat([
        _kind((*lead, n), 0, 2, state), al[..., 0:1], al_shield, al[..., 1:2], al_xy, al_t,
        _compact(actions_onehot), target_rel, zeros(*lead, n, 1)], dim=-1)
    en_tok = torch.cat([
        _kind((*lead, m), 1, 2, state), en[..., 0:1], en_shield, zeros(*lead, m, 1), en_xy, en_t,
        zeros(*lead, m, _COMPACT_ACTIONS + 2), focus], dim=-1)
    return torch.cat([al_tok, en_tok], dim=-2)


def _kind(lead: tuple[int, ...], idx: int, size: int, like: Tensor) -> Tensor:
    k = like.new_zeros(*lead, size)
    k[..., idx] = 1.0
    return k


def actions_onehot(actions: Tensor, n_actions: int) -> Tensor:
    """[..., n, 1] (or [..., n]) long actions -> [..., n, n_actions] float one-hot."""
    if actions.shape[-1] == 1:
        actions = actions.squeeze(-1)
    return torch.nn.functional.one_hot(actions.long().clamp_min(0), n_actions).float()
