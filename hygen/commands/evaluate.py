"""hygen evaluate: zero-shot win rates of trained runs, as a table like the paper's Table 1."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from hygen.cli import add_threads_argument
from hygen.report import curves_svg, results_curves, to_csv, to_markdown, to_text, win_rate_rows
from hygen.rundir import read_json

HELP = "re-run greedy evaluation of trained runs and print the zero-shot win-rate table"
DESCRIPTION = """\
Re-run the greedy evaluation (source and unseen maps) from each run's newest checkpoint
and print a table laid out like the paper's Table 1 (win rate in %). Runs with the same
label (method plus ablation configs, and any other setting in which they differ from each
other) are pooled as seeds: mean ± std.

examples:
  hygen evaluate runs/hygen-mh
  hygen evaluate runs/hygen-mh-seed* runs/no_online-seed* --markdown table.md --csv table.csv
  hygen evaluate runs/hygen-mh --from-results     # table from results.json, no re-run
  hygen evaluate runs/hygen-mh --skills           # also each skill alone: every agent forced to z = k
"""


def add_arguments(parser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories made by hygen train")
    parser.add_argument("--episodes", type=int, default=None,
                        help="greedy episodes per map (default: the run's Trainer.eval_episodes, 32)")
    parser.add_argument("--from-results", action="store_true",
                        help="use the final evaluation stored in results.json instead of re-running")
    parser.add_argument("--skills", action="store_true",
                        help="skill-based learners (HyGen, ODIS, ...): also evaluate with every agent forced to "
                             "each skill in turn, one column per skill next to the learned policy")
    parser.add_argument("--label", default=None, help="column label (default: method and ablations)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    parser.add_argument("--plot", metavar="FILE.svg",
                        help="also plot win rate over training (source/unseen means per run) as SVG")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    add_threads_argument(parser)


def _settings(run_dir: Path) -> tuple[list[str], list[str]]:
    """(gin files, gin params) a run was started with, from its meta.json."""
    meta = read_json(run_dir / "meta.json") if (run_dir / "meta.json").exists() else {}
    files = [str(f) for f in meta.get("gin_files", []) if Path(f).name != "config.gin"]
    return files, [str(p) for p in meta.get("gin_params", [])]


def run_labels(run_dirs: list[Path]) -> tuple[list[str], dict[str, str]]:
    """One column label per run, and a legend for the labels that need one.

    The label is the method plus its ablation configs (task set and data quality left out).
    Runs that share it but differ in anything else (a data quality, a ``--gin_param``) get a
    numbered label, "hygen (2)", explained in the legend; so only runs that differ in nothing
    but the seed are pooled."""
    settings = [_settings(d) for d in run_dirs]
    base = []
    for d, (files, _) in zip(run_dirs, settings):
        stems = [Path(f).stem for f in files if Path(f).parts[0] not in ("tasksets", "data")]
        base.append("+".join(stems) or d.name)
    labels, legend, variants = [], {}, defaultdict(list)
    for i, (files, params) in enumerate(settings):
        group = [settings[j] for j in range(len(run_dirs)) if base[j] == base[i]]
        common_files = set.intersection(*(set(f) for f, _ in group))
        common_params = set.intersection(*(set(p) for _, p in group))
        extra = ", ".join([f for f in files if f not in common_files]
                          + [p.replace(" ", "") for p in params if p not in common_params])
        if not extra:
            labels.append(base[i])
            continue
        if extra not in variants[base[i]]:
            variants[base[i]].append(extra)
        label = f"{base[i]} ({variants[base[i]].index(extra) + 1})"
        legend[label] = extra
        labels.append(label)
    return labels, legend


def _play_recorded_game(run_dir: Path, meta: dict) -> None:
    """Evaluate a run in the game it was made in, whatever SimEnv's default is now, and say so."""
    from hygen.envs import bind_recorded_game

    diff = bind_recorded_game(meta)
    if diff:
        print(f"{run_dir}: evaluated in the game it was made in ({', '.join(diff)}: run / default)",
              file=sys.stderr)


def evaluate_run(run_dir: Path, episodes: int | None, device: str, skills: bool = False,
                 threads: int | None = None) -> dict:
    """Rebuild the run's Trainer from its stored config, restore the newest checkpoint, evaluate.

    ``skills``: also evaluate each skill alone; adds ``skill_win_rate`` {k: {map: win rate}}.
    """
    import gin

    from hygen import config
    from hygen.rundir import RunDir
    from hygen.trainer import Trainer

    stored = run_dir / "config.gin"
    if not stored.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no config.gin); run hygen train first")
    config.reset()
    params = ["Trainer.data_root = None"]  # evaluation needs no offline data
    if episodes:
        params.append(f"Trainer.eval_episodes = {int(episodes)}")
    config.parse_config([stored], params, unused_macros_ok=True)  # DATA_ROOT fed data_root
    rd = RunDir(run_dir)
    meta = rd.read_meta()
    _play_recorded_game(run_dir, meta)
    if not rd.checkpoints():
        raise FileNotFoundError(f"{run_dir}: no checkpoint to evaluate (checkpoints/ is empty)")
    trainer = Trainer(run_dir=rd, seed=int(meta.get("seed", 0)), device=device,
                      **({} if threads is None else {"num_threads": threads}))
    trainer.restore()
    controller = trainer.learner.controller()
    if skills and not hasattr(controller, "fixed_skill"):  # before spending time on the evaluation
        raise ValueError(f"{run_dir}: --skills needs a skill-based learner; "
                         f"{type(trainer.learner).__name__} does not act through skills")
    res = trainer.evaluate()
    out = {"step": trainer.step, "source_maps": trainer.source_maps, "eval_maps": trainer.eval_maps,
           "win_rate": {m: r["win_rate"] for m, r in res.items()}}
    if skills:
        out["skill_win_rate"] = {}
        try:
            for k in range(trainer.learner.num_skills):
                controller.fixed_skill = k
                out["skill_win_rate"][k] = {m: r["win_rate"] for m, r in trainer.evaluate().items()}
        finally:
            controller.fixed_skill = None
    gin.clear_config()
    return out


def from_results(run_dir: Path) -> dict:
    path = run_dir / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results file; has this run evaluated yet?")
    res = read_json(path)
    if not res.get("final"):
        raise ValueError(f"{path}: holds no evaluation yet")
    return {"step": res["final"]["step"], "source_maps": res["source_maps"], "eval_maps": res["eval_maps"],
            "win_rate": res["final"]["win_rate"]}


def run(args) -> int:
    from hygen.utils import resolve_device

    device = resolve_device(args.device)
    columns: dict[str, list[dict]] = defaultdict(list)
    source, eval_maps = [], []
    if args.skills and args.from_results:
        raise ValueError("--skills re-runs the evaluation; it cannot be combined with --from-results")
    run_dirs = [Path(d) for d in args.run_dirs]
    for d in run_dirs:  # before any evaluation: a typo in the last path should not wait for the others
        if not d.exists():
            raise FileNotFoundError(f"{d}: no such directory")
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: not a directory; expected a run directory made by hygen train")
    auto_labels, legend = run_labels(run_dirs)
    if args.label:
        legend = {}
    for d, auto_label in zip(run_dirs, auto_labels):
        r = from_results(d) if args.from_results else evaluate_run(d, args.episodes, device, args.skills, args.threads)
        label = args.label or auto_label
        columns[label].append(r["win_rate"])
        for k, wr in r.get("skill_win_rate", {}).items():
            columns[f"{label}, z={k} only"].append(wr)
        source += [m for m in r["source_maps"] if m not in source]
        eval_maps += [m for m in r["eval_maps"] if m not in eval_maps]
        print(f"{d}: step {r['step']}")
    unseen = [m for m in eval_maps if m not in source]
    labels = list(columns)
    rows = win_rate_rows(columns, source, unseen)
    notes = [f"{label}: {what}" for label, what in legend.items() if label in labels]
    print(to_text(rows, labels, title="zero-shot win rate (%)"))
    print("".join(f"  {n}\n" for n in notes), end="")
    if args.markdown:
        Path(args.markdown).write_text(to_markdown(rows, labels) + "".join(f"\n- {n}" for n in notes)
                                       + ("\n" if notes else ""))
        print(f"wrote {args.markdown}")
    if args.csv:
        Path(args.csv).write_text(to_csv(rows, labels))
        print(f"wrote {args.csv}")
    if args.plot:
        series = {}
        for d in map(Path, args.run_dirs):
            if (d / "results.json").is_file():
                curves = results_curves(read_json(d / "results.json"))
                series.update({f"{d.name}: {k}": v for k, v in curves.items() if k.endswith("mean")})
        Path(args.plot).write_text(curves_svg(series, title="win rate over training"))
        print(f"wrote {args.plot}")
    return 0
