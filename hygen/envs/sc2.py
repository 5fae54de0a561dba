"""SMAC adapter: ``num_envs`` real StarCraft2Env instances behind the simulator's batched API.

Needs the SMAC package (``pip install git+https://github.com/oxwhirl/smac.git``, never the
unrelated PyPI "smac"), StarCraft II from Blizzard with ``SC2PATH`` pointing at it, and the
map files in ``$SC2PATH/Maps/SMAC_Maps``. SMAC ships 3m, 8m, 5m_vs_6m, 2s3z, 3s5z, ...; the
other maps of the task sets (4m, 6m, 7m_vs_8m, 1s3z, 4s6z, ...) are ODIS's extra maps, in the
ODIS repository (github.com/LAMDA-RL/ODIS, its ``*.SC2Map`` files under the SMAC maps folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from hygen.envs.maps import MapSpec, get_map
from hygen.envs.sim import InvalidActionError, StepOutput

INSTALL_HELP = (
    "the 'sc2' backend needs: (1) SMAC: pip install git+https://github.com/oxwhirl/smac.git "
    "(not the PyPI package named 'smac'); (2) StarCraft II from Blizzard (Linux build: "
    "github.com/Blizzard/s2client-proto#downloads) with SC2PATH set to its folder; (3) the map file "
    "in $SC2PATH/Maps/SMAC_Maps/ - SMAC's maps come with SMAC (github.com/oxwhirl/smac/releases), "
    "ODIS's extra maps (4m, 6m, 7m_vs_8m, 1s3z, 4s6z, ...) from the ODIS repository "
    "(github.com/LAMDA-RL/ODIS). Or use backend='sim', the built-in simulator."
)


class SC2NotAvailableError(RuntimeError):
    """SMAC, StarCraft II or a map file is missing; the message says what to install."""


def sc2_path() -> Path:
    return Path(os.environ.get("SC2PATH", Path.home() / "StarCraftII"))


def check_sc2(map_name: str | None = None) -> None:
    """Raise :class:`SC2NotAvailableError` unless SMAC, SC2 (and the map file) are installed."""
    try:
        import smac.env  # noqa: F401
    except ImportError as e:
        raise SC2NotAvailableError(f"cannot import smac ({e}); {INSTALL_HELP}") from None
    root = sc2_path()
    if not root.is_dir():
        raise SC2NotAvailableError(f"StarCraft II not found at {root} (SC2PATH); {INSTALL_HELP}")
    if map_name is not None:
        f = root / "Maps" / "SMAC_Maps" / f"{map_name}.SC2Map"
        if not f.is_file():
            raise SC2NotAvailableError(f"map file {f} not found; {INSTALL_HELP}")


def _register_with_smac(spec: MapSpec) -> None:
    """Add hygen's maps (e.g. ODIS's extra ones) to SMAC's registry if it lacks them."""
    from smac.env.starcraft2.maps import smac_maps

    reg = smac_maps.map_param_registry
    if spec.name in reg:
        return
    marines = spec.family == "marines"
    reg[spec.name] = {
        "n_agents": spec.n_agents, "n_enemies": spec.n_enemies, "limit": spec.episode_limit,
        "a_race": "T" if marines else "P", "b_race": "T" if marines else "P",
        "unit_type_bits": spec.layout.unit_type_bits, "map_type": spec.family,
    }


class SC2Env:
    """Batched interface over ``num_envs`` SMAC StarCraft2Env instances (same API as SimEnv)."""

    def __init__(self, map_name: str, num_envs: int = 1, seed: int = 0, device: str | torch.device = "cpu",
                 validate_actions: bool = True, **smac_kwargs):
        check_sc2(map_name)
        from smac.env import StarCraft2Env

        self.map: MapSpec = get_map(map_name)
        _register_with_smac(self.map)
        self.num_envs, self.device = num_envs, torch.device(device)
        self.validate_actions = validate_actions
        self.n_agents, self.n_enemies = self.map.n_agents, self.map.n_enemies
        self.envs = [StarCraft2Env(map_name=map_name, seed=seed + i, **smac_kwargs) for i in range(num_envs)]
        self.env_info = {k: self.envs[0].get_env_info()[k] for k in self.map.env_info}
        if self.env_info != self.map.env_info:
            raise ValueError(f"SMAC's env_info for {map_name!r} {self.env_info} differs from hygen's "
                             f"{self.map.env_info}; check the map file")
        self.episode_limit = self.map.episode_limit
        self._needs_reset = torch.ones(num_envs, dtype=torch.bool)
        self._obs = self._state = self._avail = None

    def _gather(self) -> None:
        f = {"dtype": torch.float32, "device": self.device}
        self._obs = torch.stack([torch.as_tensor(e.get_obs(), **f) for e in self.envs])
        self._state = torch.stack([torch.as_tensor(e.get_state(), **f) for e in self.envs])
        self._avail = torch.stack([torch.as_tensor(e.get_avail_actions(), device=self.device).bool()
                                   for e in self.envs])

    def reset(self, mask: torch.Tensor | None = None):
        for i, e in enumerate(self.envs):
            if mask is None or bool(mask[i]):
                e.reset()
                self._needs_reset[i] = False
        self._gather()
        return self._obs, self._state, self._avail

    def step(self, actions: torch.Tensor) -> StepOutput:
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        actions = torch.as_tensor(actions).long().cpu()
        E, n = self.num_envs, self.n_agents
        if actions.shape != (E, n):
            raise ValueError(f"actions must have shape [num_envs={E}, n_agents={n}], got {tuple(actions.shape)}")
        reset_mask = self._needs_reset.clone()
        avail = self._avail.cpu()
        reward, term = torch.zeros(E), torch.zeros(E, dtype=torch.bool)
        won, lim = torch.zeros(E, dtype=torch.bool), torch.zeros(E, dtype=torch.bool)
        dead_a, dead_e = torch.zeros(E, dtype=torch.long), torch.zeros(E, dtype=torch.long)
        for i, e in enumerate(self.envs):
            if reset_mask[i]:
                e.reset()
                continue
            if self.validate_actions and not bool(avail[i].gather(1, actions[i][:, None]).all()):
                raise InvalidActionError(f"env {i}: actions {actions[i].tolist()} include unavailable ones")
            r, t, info = e.step(actions[i].tolist())
            reward[i], term[i] = r, t
            won[i] = bool(info.get("battle_won", False))
            dead_a[i], dead_e[i] = info.get("dead_allies", 0), info.get("dead_enemies", 0)
            lim[i] = t and not won[i] and dead_a[i] < n and dead_e[i] < self.n_enemies
        self._needs_reset = term.clone()
        self._gather()
        dev = self.device
        info = {"battle_won": won.to(dev), "dead_allies": dead_a.to(dev), "dead_enemies": dead_e.to(dev),
                "episode_limit": lim.to(dev)}
        return StepOutput(self._obs, self._state, self._avail, reward.to(dev), term.to(dev), info,
                          reset_mask.to(dev))

    def get_obs(self) -> torch.Tensor:
        return self._obs

    def get_state(self) -> torch.Tensor:
        return self._state

    def get_avail_actions(self) -> torch.Tensor:
        return self._avail

    def close(self) -> None:
        for e in self.envs:
            e.close()
