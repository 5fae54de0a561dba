"""hygen render: watch episodes, from a trained run or from recorded ODIS HDF5 data."""

from __future__ import annotations

HELP = "replay episodes as an animated GIF (MP4 with ffmpeg) from a run directory or ODIS HDF5 data"
DESCRIPTION = """\
Draw episodes step by step: units by side (blue allies, red enemies) and type (M marine,
S stalker, Z zealot), health and shield bars, a line from each ally to the enemy it attacks,
the step, the return so far and the outcome. SOURCE is a run directory (its newest
checkpoint plays --episodes greedy episodes on --map, any map the method can act on) or an
ODIS HDF5 file or folder (recorded episodes, e.g. the real StarCraft II ones). Positions and
health come from the state vectors, so recordings and the simulator look alike.

examples:
  hygen render runs/hygen --map 4m --episodes 2 --out replay.gif
  hygen render ../shared/data/smac/3m/medium/part_0.h5 --episodes 3 --out sc2_3m.gif
  hygen render data/smac/3m/expert --map 3m --start 10 --out sim_3m.mp4 --fps 6
"""


def add_arguments(parser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="run directory, or ODIS .h5 file or folder")
    parser.add_argument("--map", default=None,
                        help="map to play (run directory; default its first source map) or the recording's map "
                             "(default: from the path or the shapes)")
    parser.add_argument("--episodes", type=int, default=1, help="episodes to draw (default 1)")
    parser.add_argument("--start", type=int, default=0, help="HDF5: index of the first episode (default 0)")
    parser.add_argument("--out", required=True, metavar="FILE", help=".gif (Pillow) or .mp4 (needs ffmpeg)")
    parser.add_argument("--fps", type=float, default=4.0, help="frames (steps) per second (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="run directory: seed of the replayed episodes")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N for the policy (default cpu)")


def run(args) -> int:
    from hygen.render import episode_views, load_episodes, render_episodes, write_animation

    if args.episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {args.episodes}")
    if not args.out.lower().endswith((".gif", ".mp4")):
        raise ValueError(f"--out {args.out}: expected a .gif or .mp4 file name")
    batch = load_episodes(args.source, args.map, episodes=args.episodes, start=args.start, device=args.device,
                          seed=args.seed)
    views = episode_views(batch)
    frames = render_episodes(views)
    path = write_animation(frames, args.out, fps=args.fps)
    for k, v in enumerate(views):
        print(f"episode {k + 1}: {v.map_name}, {v.steps} steps, {v.outcome}, return {v.rewards.sum():.2f}")
    print(f"wrote {path} ({len(frames)} frames)")
    return 0
