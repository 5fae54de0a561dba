"""hygen collect: make offline datasets (expert, medium, medium-replay, medium-expert) in ODIS format."""

from __future__ import annotations

from hygen.cli import add_threads_argument

HELP = "collect offline datasets (ODIS format) with QMIX or a scripted policy; resumes"
DESCRIPTION = """\
Collect the four dataset qualities of the paper (expert, medium, medium-replay,
medium-expert) for each map into <data-root>/<map>/<quality>/part_0.h5, plus
<data-root>/manifest.json and manifest.md (episodes, win rate, mean return per map
and quality, like the paper's Table 5). Re-running skips the parts already written
(and resumes QMIX training from <data-root>/_runs/<map>/qmix).

policies:
  qmix       train QMIX to expert level, keep the snapshot whose win rate is closest to
             half the expert's as the medium policy (slow: minutes to hours per map)
  heuristic  the best scripted policy on the map (focus fire, nearest enemy or flank) = expert;
             it with random actions = medium (fast: about a minute per map)

examples:
  hygen collect --map 3m --policy heuristic --data-root data
  hygen collect --task-set marine-hard --policy qmix --data-root data --qmix-steps 20000
"""


def add_arguments(parser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--map", action="append", default=None, metavar="MAP",
                       help="map to collect (repeatable), e.g. 3m")
    which.add_argument("--task-set", default=None, metavar="NAME",
                       help="collect every source map of a task set, e.g. marine-hard")
    parser.add_argument("--data-root", default="data", help="output root (default: data)")
    parser.add_argument("--policy", choices=("qmix", "heuristic"), default="qmix",
                        help="behaviour policy (default: qmix)")
    parser.add_argument("--episodes", type=int, default=2000,
                        help="episodes per quality for expert and medium (default: 2000)")
    parser.add_argument("--qmix-steps", type=int, default=20_000,
                        help="QMIX training updates (one online episode each; default: 20000)")
    parser.add_argument("--qmix-eval-every", type=int, default=50,
                        help="updates between QMIX snapshots/evaluations (default: 50; fine enough to "
                             "find a snapshot at half the expert's win rate)")
    parser.add_argument("--qmix-checkpoint-every", type=int, default=250,
                        help="updates between QMIX checkpoints (replay buffer included: large on big maps; "
                             "a kill loses at most this many updates; default 250)")
    parser.add_argument("--qmix-stop-win-rate", type=float, default=0.95,
                        help="stop QMIX training once a test win rate reaches this (default 0.95; "
                             "0 = always train --qmix-steps updates)")
    parser.add_argument("--qmix-episodes-per-update", type=int, default=None,
                        help="online episodes collected per QMIX update (default: the gin binding "
                             "Trainer.episodes_per_step, 1 = PyMARL's episode runner)")
    parser.add_argument("--gin_file", action="append", default=[], metavar="FILE",
                        help="gin config for the QMIX learner and trainer, e.g. qmix_tuned, or for the game, "
                             "e.g. envs/legacy (repeatable; both policies play in the game it binds); "
                             "the flags above override its Trainer bindings")
    parser.add_argument("--gin_param", action="append", default=[], metavar="BINDING",
                        help="gin binding, e.g. 'QMIXLearner.td_lambda = 0.6' (repeatable)")
    parser.add_argument("--buffer-size", type=int, default=5000,
                        help="QMIX replay buffer, episodes = size of medium-replay (default: 5000)")
    parser.add_argument("--num-envs", type=int, default=32, help="parallel environments when collecting")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    add_threads_argument(parser)


def run(args) -> int:
    from hygen.collect import collect_map, write_manifest
    from hygen.envs import get_map, task_set
    from hygen.utils import resolve_device, seed_everything

    maps = list(task_set(args.task_set).source) if args.task_set else list(args.map)
    for m in maps:
        get_map(m)  # unknown names fail before any work
    if args.episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {args.episodes}")
    if not 0.0 <= args.qmix_stop_win_rate <= 1.0:
        raise ValueError(f"--qmix-stop-win-rate must be in [0, 1], got {args.qmix_stop_win_rate}")
    if args.qmix_episodes_per_update is not None and args.qmix_episodes_per_update <= 0:
        raise ValueError(f"--qmix-episodes-per-update must be positive, got {args.qmix_episodes_per_update}")
    if args.gin_file or args.gin_param:
        from hygen.config import parse_config

        parse_config(args.gin_file, args.gin_param)  # strict: a typo names the file or binding
    if args.qmix_checkpoint_every <= 0 or args.qmix_eval_every <= 0:
        raise ValueError("--qmix-eval-every and --qmix-checkpoint-every must be positive")
    trainer_kwargs = {"stop_win_rate": args.qmix_stop_win_rate or None,
                      "checkpoint_every": args.qmix_checkpoint_every}
    if args.qmix_episodes_per_update is not None:
        trainer_kwargs["episodes_per_step"] = args.qmix_episodes_per_update
    if args.threads is not None:  # over a bound Trainer.num_threads (cli.main set it already)
        trainer_kwargs["num_threads"] = args.threads
    device = resolve_device(args.device)
    seed_everything(args.seed)
    for m in maps:
        entry = collect_map(m, args.data_root, policy=args.policy, episodes=args.episodes, seed=args.seed,
                            device=device, num_envs=args.num_envs, qmix_steps=args.qmix_steps,
                            qmix_eval_every=args.qmix_eval_every, buffer_size=args.buffer_size,
                            trainer_kwargs=trainer_kwargs,
                            config={"gin_files": list(args.gin_file), "gin_params": list(args.gin_param)})
        jpath, mpath = write_manifest(args.data_root, {m: entry})
    print(mpath.read_text())
    print(f"manifest: {jpath}")
    return 0
