"""What every learner shares: building gin components, checkpoints, target networks and the
summed multi-map optimizer step.

A learner subclasses :class:`LearnerBase` and declares

- ``_MODULES``: the nn.Modules a checkpoint holds (targets included), by attribute name;
- ``_TARGETS``: (target, online) attribute pairs that :meth:`update_targets` syncs, a hard
  copy when ``target_update_rate`` is 1 and Polyak averaging
  ``theta^- <- rate * theta + (1 - rate) * theta^-`` below it;
- ``_RENAMED_MODULES``: old attribute name -> new one, so that checkpoints written before a
  network was renamed still load;
- :meth:`_checkpoint_fingerprint`: values a checkpoint must agree with (skill count, mixer
  class, ...), so that one written by another model is refused with a clear message;

and sets ``params``, ``optimizer``, ``grad_norm_clip`` and ``device`` in its constructor.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

__all__ = ["CheckpointError", "DeprecatedBindingWarning", "LearnerBase", "LearnerConfigError", "build_component", "check_state_dict",
           "offline_share"]


class LearnerConfigError(ValueError):
    """A learner binding with a value it cannot use; the message names the binding."""


class DeprecatedBindingWarning(FutureWarning):
    """A gin binding under an old name that still works for one release; the message names the
    new one. A FutureWarning, so that Python shows it by default (a DeprecationWarning raised
    inside a library is hidden unless the user enables it)."""


class CheckpointError(RuntimeError, ValueError):
    """A checkpoint that cannot be used: unreadable, or written by another model."""


def build_component(factory, what: str, owner: str, kinds: tuple[type, ...] = (nn.Module,), **kwargs):
    """Gin passes a class (``@X``) or an instance (``@X()``): build the former with ``kwargs``,
    and check the result is one of ``kinds`` (the error names ``owner.what``)."""
    # a class or a function builds; an instance (``@X()``, or a module passed in Python) is used as it is
    builds = isinstance(factory, type) or inspect.isfunction(factory) or isinstance(factory, functools.partial)
    obj = factory(**kwargs) if builds else factory
    if not isinstance(obj, kinds):
        want = " or ".join(k.__name__ for k in kinds)
        raise LearnerConfigError(f"{owner}.{what}: expected a {want} (class or instance), got {factory!r}")
    return obj


def offline_share(batches: Mapping[str, object]) -> float:
    """R_h actually drawn: offline episodes / all episodes over the maps' batches."""
    return sum(b.n_offline for b in batches.values()) / max(sum(len(b) for b in batches.values()), 1)


def check_state_dict(expected: dict[str, Tensor], loaded: dict[str, Tensor], source: str) -> None:
    """Raise CheckpointError naming the keys and shapes when ``loaded`` is from another model."""
    missing = sorted(set(expected) - set(loaded))
    unexpected = sorted(set(loaded) - set(expected))
    shapes = [f"{k}: checkpoint {tuple(loaded[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in loaded and hasattr(v, "shape")
              and tuple(loaded[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        lines = [f"{source}: checkpoint does not fit this model"]
        if missing:
            lines.append(f"  missing keys: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            lines.append(f"  unexpected keys: {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''}")
        lines += [f"  shape mismatch {s}" for s in shapes[:8]]
        raise CheckpointError("\n".join(lines))


class LearnerBase:
    _MODULES: tuple[str, ...] = ()
    _TARGETS: tuple[tuple[str, str], ...] = ()
    target_update_rate: float = 1.0  # 1: hard copy (QMIX, HyGen); < 1: Polyak (IQL in HiSSD)
    multi_task: bool = True  # False: trains on one source map (QMIX)
    _CHECKPOINT_HINT: str = ""  # appended to a fingerprint mismatch
    _RENAMED_MODULES: tuple[tuple[str, str], ...] = ()  # (old module key, new): older checkpoints load

    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    grad_norm_clip: float
    device: torch.device

    # ----- checkpoints ---------------------------------------------------------------------
    def _checkpoint_fingerprint(self) -> dict:
        """Values stored with the weights that a loading learner must share."""
        return {}

    def state_dict(self) -> dict:
        sd = {name: getattr(self, name).state_dict() for name in self._MODULES}
        sd.update(self._checkpoint_fingerprint(), optimizer=self.optimizer.state_dict())
        return sd

    def load_state_dict(self, sd: dict) -> None:
        owner = type(self).__name__
        renamed = {old: new for old, new in self._RENAMED_MODULES if old in sd and new not in sd}
        sd = {renamed.get(k, k): v for k, v in sd.items()}  # an older checkpoint's module names
        for key, mine in self._checkpoint_fingerprint().items():
            if key in sd and sd[key] != mine:
                raise CheckpointError(f"{owner} checkpoint has {key}={sd[key]!r}, this learner {mine!r}"
                                      f"{self._CHECKPOINT_HINT}")
        for name in self._MODULES:
            if name not in sd:
                raise CheckpointError(f"{owner} checkpoint lacks {name!r}; it has {sorted(sd)}")
            module = getattr(self, name)
            check_state_dict(module.state_dict(), sd[name], f"{owner}.{name}")
            module.load_state_dict(sd[name])
        self.optimizer.load_state_dict(sd["optimizer"])

    # ----- targets -------------------------------------------------------------------------
    @torch.no_grad()
    def update_targets(self) -> None:
        for target_name, online_name in self._TARGETS:
            target, online = getattr(self, target_name), getattr(self, online_name)
            if self.target_update_rate >= 1.0:
                target.load_state_dict(online.state_dict())
                continue
            for t, o in zip(target.state_dict().values(), online.state_dict().values()):
                t.lerp_(o, self.target_update_rate) if t.is_floating_point() else t.copy_(o)

    # ----- one optimizer step over all source maps -----------------------------------------
    def summed_map_step(self, batches: Mapping[str, object], loss_fn: Callable,
                        extra_loss: Callable | None = None) -> dict[str, float]:
        """ONE optimizer step whose gradient is the sum over source maps of ``loss_fn(batch)``
        (multi-task training as in the paper: one batch per map, gradients summed).

        ``loss_fn(batch) -> (loss, stats)``, or ``(loss, stats, aux)`` with ``extra_loss``:
        then ``extra_loss([aux of every map]) -> (loss, stats)`` adds a term across maps (HiSSD's
        contrastive loss) and all maps' graphs are kept for one backward pass. Returns the stats
        averaged over maps, per map (``<map>/<name>``) and the gradient norm before clipping.
        """
        owner = type(self).__name__
        if not batches:
            raise ValueError(f"{owner}.update: got no batches")
        self.optimizer.zero_grad(set_to_none=True)
        stats: dict[str, float] = {}
        total, auxes = 0.0, []
        for map_name, batch in batches.items():
            if batch.map_name != map_name:
                raise ValueError(f"{owner}.update: batch keyed {map_name!r} holds map {batch.map_name!r}")
            loss, s, *aux = loss_fn(batch.trim().to(self.device))
            if extra_loss is None:
                loss.backward()  # gradients accumulate; each map's graph is freed at once
            else:
                total, auxes = total + loss, auxes + aux
            for k, v in s.items():
                stats[k] = stats.get(k, 0.0) + float(v) / len(batches)
                stats[f"{map_name}/{k}"] = float(v)
        if extra_loss is not None:
            loss, s = extra_loss(auxes)
            (total + loss).backward()
            stats.update({k: float(v) for k, v in s.items()})
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_norm_clip)
        self.optimizer.step()
        stats["grad_norm"] = float(grad_norm)
        return stats
