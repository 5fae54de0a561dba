"""Episode replays: animated GIF (or MP4 with ffmpeg) frames drawn from SMAC state vectors.

Works the same on recorded StarCraft II episodes (ODIS HDF5 files) and on the simulator's:
everything is read from the state vector (reference section 4): per ally [health, weapon
cooldown, x, y, shield?, type?], per enemy [health, x, y, shield?, type?], coordinates centred
and normalised by the playable size. A frame shows, at one step, every unit as a disc coloured
by side (allies blue, enemies red) and lettered by type (M marine, S stalker, Z zealot), a health
bar (and a shield bar) above it, a line from each ally to the enemy it attacks at that step (its
action 6 + j), the step, the return so far and, on the last frame, the outcome. Dead units
(health 0) are drawn as a faint cross where they fell (SMAC zeroes their position; the last
one seen is kept).

    batch = load_episodes("runs/hygen", "4m", episodes=2)          # newest checkpoint, greedy
    batch = load_episodes("../shared/data/smac/3m/medium/part_0.h5", "3m", episodes=2)
    write_animation(render_episodes(batch), "replay.gif")
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["EpisodeView", "episode_views", "load_episodes", "render_episodes", "write_animation"]

ALLY, ENEMY = (40, 110, 220), (215, 50, 45)
_LETTER = {"marine": "M", "stalker": "S", "zealot": "Z", "marauder": "D", "medivac": "V"}
SIZE, HEADER, MARGIN = 480, 44, 30


@dataclass
class EpisodeView:
    """One episode decoded from its state vectors: arrays over steps t = 0..L (L+1 frames)."""

    map_name: str
    ally_xy: np.ndarray      # [T, n, 2]
    ally_health: np.ndarray  # [T, n] fraction of max
    ally_shield: np.ndarray | None
    enemy_xy: np.ndarray     # [T, m, 2]
    enemy_health: np.ndarray
    enemy_shield: np.ndarray | None
    targets: np.ndarray      # [T, n] enemy index each ally attacks at step t, -1 if none
    rewards: np.ndarray      # [T] reward of step t (0 on the final row)
    outcome: str             # "won", "lost" or "timeout"
    ally_types: tuple[str, ...]
    enemy_types: tuple[str, ...]

    @property
    def steps(self) -> int:
        return len(self.rewards) - 1


def episode_views(batch) -> list[EpisodeView]:
    """Decode every episode of an :class:`~hygen.buffers.EpisodeBatch` (padding dropped)."""
    from hygen.envs import get_map

    spec = get_map(batch.map_name)
    lay = spec.layout
    n, m, sb = spec.n_agents, spec.n_enemies, lay.shield_bits
    lengths = batch.episode_lengths.tolist()
    won = batch.battle_won.tolist()
    out = []
    for b, L in enumerate(lengths):
        s = batch.state[b, :L + 1].float().cpu().numpy()
        allies = s[:, :lay.state_enemy_offset].reshape(L + 1, n, lay.ally_state)
        enemies = s[:, lay.state_enemy_offset:lay.state_last_action_offset].reshape(L + 1, m, lay.enemy_state)
        act = batch.actions[b, :L + 1, :, 0].long().cpu().numpy()
        targets = np.where(act >= 6, act - 6, -1)
        targets[L] = -1  # the final row's action is never executed
        rewards = batch.reward[b, :L + 1, 0].float().cpu().numpy().copy()
        rewards[L] = 0.0
        ally_alive, enemy_alive = allies[-1, :, 0] > 0, enemies[-1, :, 0] > 0
        _hold_dead_positions(allies[:, :, 2:4], allies[:, :, 0])
        _hold_dead_positions(enemies[:, :, 1:3], enemies[:, :, 0])
        outcome = ("won" if won[b] or not enemy_alive.any() else "lost" if not ally_alive.any()
                   else "timeout")
        out.append(EpisodeView(
            map_name=batch.map_name, ally_xy=allies[:, :, 2:4], ally_health=allies[:, :, 0],
            ally_shield=allies[:, :, 4] if sb else None, enemy_xy=enemies[:, :, 1:3],
            enemy_health=enemies[:, :, 0], enemy_shield=enemies[:, :, 3] if sb else None,
            targets=targets, rewards=rewards, outcome=outcome,
            ally_types=spec.ally_unit_types, enemy_types=spec.enemy_unit_types))
    return out


def _hold_dead_positions(xy: np.ndarray, health: np.ndarray) -> None:
    """SMAC zeroes a dead unit's position: keep it where it fell (in place, over steps)."""
    for t in range(1, len(xy)):
        dead = health[t] <= 0
        xy[t, dead] = xy[t - 1, dead]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def _view_box(views: list[EpisodeView]) -> tuple[float, float, float]:
    """Centre (x, y) and half-width of a square that holds every unit of every frame."""
    pts = []
    for v in views:
        for xy in (v.ally_xy, v.enemy_xy):
            pts.append(xy[np.abs(xy).sum(-1) > 0])  # (0, 0): dead from the start, never seen
    p = np.concatenate([q for q in pts if len(q)] or [np.zeros((1, 2))])
    lo, hi = p.min(0), p.max(0)
    half = max(float((hi - lo).max()) / 2, 0.05) * 1.15
    return float((lo[0] + hi[0]) / 2), float((lo[1] + hi[1]) / 2), half


def render_episodes(batch_or_views, title: str = "") -> list:
    """One PIL image per step of every episode (sum over episodes of L + 1 frames)."""
    views = batch_or_views if isinstance(batch_or_views, list) else episode_views(batch_or_views)
    box = _view_box(views)
    frames = []
    for k, v in enumerate(views):
        ret = np.cumsum(np.concatenate([[0.0], v.rewards[:-1]]))  # return before step t's reward
        for t in range(v.steps + 1):
            frames.append(_frame(v, t, box, f"{title or v.map_name}  episode {k + 1}/{len(views)}", ret[t]))
    return frames


def _frame(v: EpisodeView, t: int, box, title: str, ret: float):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (SIZE, SIZE + HEADER), "white")
    d = ImageDraw.Draw(img)
    big, small = _font(15), _font(11)
    cx, cy, half = box
    scale = (SIZE - 2 * MARGIN) / (2 * half)

    def px(xy):  # state coordinates -> pixels (y up in the game, down in the image)
        return (MARGIN + (xy[0] - cx + half) * scale, HEADER + MARGIN + (cy + half - xy[1]) * scale)

    d.rectangle([0, HEADER, SIZE - 1, SIZE + HEADER - 1], outline=(200, 200, 200))
    for i, j in enumerate(v.targets[t]):  # attack lines under the units
        if j >= 0 and v.ally_health[t, i] > 0:
            d.line([px(v.ally_xy[t, i]), px(v.enemy_xy[t, j])], fill=(90, 150, 255), width=2)
    r = 10
    for side, xy, hp, sh, types, color in (
            ("ally", v.ally_xy[t], v.ally_health[t], None if v.ally_shield is None else v.ally_shield[t],
             v.ally_types, ALLY),
            ("enemy", v.enemy_xy[t], v.enemy_health[t], None if v.enemy_shield is None else v.enemy_shield[t],
             v.enemy_types, ENEMY)):
        for u in range(len(hp)):
            x, y = px(xy[u])
            if hp[u] <= 0:  # a faint cross where it fell
                faint = tuple(int(c + (255 - c) * 0.6) for c in color)
                d.line([x - 6, y - 6, x + 6, y + 6], fill=faint, width=3)
                d.line([x - 6, y + 6, x + 6, y - 6], fill=faint, width=3)
                continue
            d.ellipse([x - r, y - r, x + r, y + r], fill=color, outline="black")
            d.text((x, y), _LETTER.get(types[u], types[u][:1].upper()), fill="white", anchor="mm", font=small)
            _bar(d, x, y - r - 5, float(hp[u]), (40, 170, 60))
            if sh is not None:
                _bar(d, x, y - r - 9, float(sh[u]), (60, 190, 230))
    end = t == v.steps
    status = f"step {t}/{v.steps}   return {ret:.2f}"
    if end:
        status += f"   {v.outcome.upper()}"
    d.text((8, 4), title, fill="black", font=big)
    d.text((8, 24), status, fill=(0, 120, 0) if end and v.outcome == "won" else (170, 0, 0) if end else "black",
           font=big)
    alive = (f"allies {int((v.ally_health[t] > 0).sum())}/{v.ally_health.shape[1]}   "
             f"enemies {int((v.enemy_health[t] > 0).sum())}/{v.enemy_health.shape[1]}")
    d.text((SIZE - 8, 24), alive, fill="black", anchor="ra", font=big)
    d.text((8, SIZE + HEADER - 18), "blue: allies (agents)   red: enemies   line: attack   bars: health, shield",
           fill=(110, 110, 110), font=small)
    return img


def _bar(d, x: float, y: float, frac: float, color) -> None:
    w = 20
    d.rectangle([x - w / 2, y - 2, x + w / 2, y + 1], fill=(225, 225, 225))
    if frac > 0:
        d.rectangle([x - w / 2, y - 2, x - w / 2 + w * min(frac, 1.0), y + 1], fill=color)


def write_animation(frames: list, path: str | Path, fps: float = 4.0, hold_last: float = 1.5) -> Path:
    """``.gif`` (Pillow) or ``.mp4`` (ffmpeg on PATH). Each episode's last frame is not held
    separately; ``hold_last`` seconds hold the final frame of the file."""
    path = Path(path)
    if not frames:
        raise ValueError("no frames to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        durations = [int(1000 / fps)] * len(frames)
        durations[-1] += int(1000 * hold_last)
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0, optimize=False)
        return path
    if path.suffix.lower() == ".mp4":
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise RuntimeError(f"{path}: MP4 needs ffmpeg on PATH (not found); write a .gif instead")
        w, h = frames[0].size
        cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
               "-r", str(fps), "-i", "-", "-pix_fmt", "yuv420p", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", str(path)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
        for f in frames:
            proc.stdin.write(np.asarray(f.convert("RGB")).tobytes())
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed writing {path}")
        return path
    raise ValueError(f"{path}: unknown animation format {path.suffix!r}; expected .gif or .mp4")


def load_episodes(source: str | Path, map_name: str | None, episodes: int = 1, start: int = 0,
                  device: str = "cpu", seed: int = 0):
    """K episodes as an EpisodeBatch from a run directory (its newest checkpoint, played greedily
    on ``map_name``, which may be any map the method can act on) or from an ODIS HDF5 file or
    folder (recorded episodes ``start..start+K-1`` of the first file)."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or directory")
    if source.is_dir() and (source / "config.gin").is_file():
        return _rollout(source, map_name, episodes, device, seed)
    from hygen.buffers.offline import expand_paths, read_episodes

    files = expand_paths([source])
    if not files:
        raise FileNotFoundError(f"{source}: neither a run directory (config.gin) nor HDF5 episodes (.h5)")
    batch = read_episodes(files[0], map_name, start=start, stop=start + episodes)
    if len(batch.episode_lengths) == 0:
        raise ValueError(f"{files[0]}: no episodes from index {start}")
    return batch


def _rollout(run_dir: Path, map_name: str | None, episodes: int, device: str, seed: int):
    import torch

    from hygen import config
    from hygen.envs import bind_recorded_game
    from hygen.rundir import RunDir
    from hygen.runner import Runner
    from hygen.trainer import Trainer

    config.reset()
    config.parse_config([run_dir / "config.gin"], ["Trainer.data_root = None"], unused_macros_ok=True)
    rd = RunDir(run_dir)
    if not rd.checkpoints():
        raise FileNotFoundError(f"{run_dir}: no checkpoint to replay (checkpoints/ is empty)")
    bind_recorded_game(rd.read_meta())  # replayed in the game it was made in
    trainer = Trainer(run_dir=rd, seed=int(rd.read_meta().get("seed", 0)), device=device)
    trainer.restore()
    map_name = map_name or trainer.source_maps[0]
    runner = Runner(map_name, num_envs=episodes, seed=seed, device=trainer.device)
    with torch.no_grad():
        batch, _ = runner.collect(trainer.learner.controller(), n_episodes=episodes, epsilon=0.0)
    return batch
