"""Reproduce the paper's marine-hard comparison: HyGen vs offline-only vs a fixed 50 % ratio.

    python benchmarks/reproduce.py --scale cpu              # reduced protocol, ~2 h on 2 cores
    python benchmarks/reproduce.py --scale cpu --data qmix --data-root data/smac --table docs/results_qmix_data.md
    python benchmarks/reproduce.py --scale cpu_long --data-root data/smac --table docs/results_qmix_data.md  # ~3 h
    python benchmarks/reproduce.py --scale paper --device cuda --backend ray --address ray://head:10001

Built on ``hygen sweep`` and ``hygen report``: the methods x seeds are one sweep under --out
(one run directory per cell; finished cells are skipped and cut-off cells resume, so rerunning
the same command after a kill continues it), and the table is the report's Table-1 layout
(mean ± std over seeds and the IQM over runs x maps with its 95 % bootstrap interval), written to
--table (default docs/results.md) with the protocol, the probability that HyGen beats each
other method, and learning curves with interval bands. A scale is one gin file,
``configs/scales/<scale>.gin``: its first comment block describes it and its ``# data:`` line
names the default dataset source.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hygen import report as rp
from hygen.cli import sigterm_as_interrupt
from hygen.config import CONFIG_DIR
from hygen.sweep import BACKENDS, SweepSpec, run_sweep, write_spec

HYGEN = ["methods/hygen", "runs/hybrid"]  # the method and its run (docs/methods.md, "Configs")
# Method label -> gin files (each an ablation of HyGen's bindings, not a fork): the paper's
# Table 2 (HyGen, its offline-only binding and the ablations). The default comparison is the
# first three; --methods table2 runs all of them.
METHODS = {
    "HyGen": HYGEN,
    "offline-only (R=1)": HYGEN + ["ablations/no_online"],
    "fixed ratio 50%": HYGEN + ["ablations/fixed_ratio_50"],
    "fixed ratio 20%": HYGEN + ["ablations/fixed_ratio_20"],
    "fixed ratio 80%": HYGEN + ["ablations/fixed_ratio_80"],
    "w/o refinement": HYGEN + ["ablations/no_refinement"],
    "w/o CQL": HYGEN + ["ablations/no_cql"],
    "fixed CQL": HYGEN + ["ablations/fixed_cql"],
}
METHOD_SETS = {"comparison": list(METHODS)[:3], "table2": list(METHODS)}

# The paper's claims that Table 2 tests (Sec. 5.2 and the abstract), each "HyGen beats these".
# Decided on the primary outcome (unseen maps) by the protocol's rule, hygen.report.decide.
PAPER_CLAIMS = (
    ("Online data help: HyGen beats its offline-only binding (the abstract; Table 1 against ODIS)",
     ["offline-only (R=1)"]),
    ("The linearly decreasing hybrid ratio beats fixed ratios of 20, 50 and 80 % (Table 2, Fig. 5)",
     ["fixed ratio 20%", "fixed ratio 50%", "fixed ratio 80%"]),
    ("Refining the action decoder in the hybrid phase helps (Table 2, 'w/o Refinement')",
     ["w/o refinement"]),
    ("The dynamic CQL weight beats a fixed weight and no CQL (Table 2)", ["fixed CQL", "w/o CQL"]),
)

# Where the offline datasets come from. The paper's are QMIX episodes (collect trains QMIX per
# source map with the pymarl2 tricks, ~1-2 h per map on 2 cores; resumable); the scripted
# focus-fire policy is the fast stand-in for CPU sweeps and demos.
DATA = {
    "qmix": {"collect_args": ["--policy", "qmix", "--gin_file", "qmix_tuned", "--qmix-steps", "5000",
                              "--episodes", "2000"],
             "about": "datasets from QMIX policies (`hygen collect --policy qmix --gin_file qmix_tuned`, "
                      "2000 episodes each; docs/datasets.md)"},
    "scripted": {"collect_args": ["--policy", "heuristic", "--episodes", "500"],
                 "about": "datasets from the scripted focus-fire policy (expert) and its noisy variant (medium)"},
}

UNTRAINED = "untrained (step 0)"
KEEP_MARKER = "<!-- benchmarks/reproduce.py regenerates the text above this line and keeps the text below -->"


def scales() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "scales").glob("*.gin"))


def read_scale(name: str) -> tuple[str, str]:
    """(description, default data source) from a scale file's first comment block."""
    path = CONFIG_DIR / "scales" / f"{name.replace('-', '_')}.gin"
    about, data = [], None
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        m = re.fullmatch(r"data:\s*(\w+)", text)
        if m:
            data = m.group(1)
        elif not text:
            break
        else:
            about.append(text)
    if data not in DATA:
        raise SystemExit(f"{path}: needs a '# data: {'|'.join(DATA)}' line in its first comment block")
    return " ".join(about).rstrip("."), data


def untrained_group(groups: dict, block: str, label: str) -> rp.RunGroup | None:
    """The first evaluation (step 0) of ``label``'s runs: the floor every method must beat
    (the methods share their initial networks per seed)."""
    g = groups.get((block, label))
    if g is None or not all(r["evals"] and r["evals"][0]["step"] == 0 for r in g.runs):
        return None
    runs = [{**r, "final": {"step": 0, "win_rate": r["evals"][0]["win_rate"]}, "evals": r["evals"][:1]} for r in g.runs]
    return rp.RunGroup(UNTRAINED, block, runs, list(g.run_dirs))


def test_episodes(groups: dict, block: str, labels: list[str]) -> int:
    """Trainer.eval_episodes as the runs' operative configs record it (one value, or an error)."""
    found = set()
    for lab in labels:
        for d in groups[(block, lab)].run_dirs:
            text = (Path(d) / "operative_config.gin").read_text() if (Path(d) / "operative_config.gin").is_file() else ""
            m = re.search(r"^Trainer\.eval_episodes = (\d+)", text, re.MULTILINE)
            if m:
                found.add(int(m.group(1)))
    if len(found) != 1:
        raise SystemExit(f"the runs do not agree on Trainer.eval_episodes (found {sorted(found) or 'none'})")
    return found.pop()


def write_results_json(path: Path, scale: str, seeds: list[int], groups: dict, block: str, labels: list[str],
                       summary: dict, source: list[str]) -> None:
    """docs/results.json (issue 15): win rates in %, the IQM over runs x maps with its 95 % interval."""
    methods = {}
    for lab in labels:
        entry = {}
        for g in ("source", "unseen"):
            a = summary[lab][g]
            entry[g] = None if a is None else {"iqm": a["iqm"], "ci": [a["iqm_low"], a["iqm_high"]]}
        entry["value_return_corr"] = rp.final_diagnostics(groups[(block, lab)], source).get("offline_value_corr")
        methods[lab] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"scale": scale, "seeds": seeds, "test_episodes": test_episodes(groups, block, labels),
                                "methods": methods}, indent=2) + "\n")


def decide_claims(summary: dict, paired: dict) -> list[dict]:
    """PAPER_CLAIMS decided by the protocol's rule: per claim, per other method and map group,
    HyGen's standing (hygen.report.decide), and the claim's verdict on the unseen maps (the
    primary outcome). Claims whose methods were not run are left out."""
    out = []
    for text, others in PAPER_CLAIMS:
        if "HyGen" not in summary or not all(o in summary for o in others):
            continue
        standing = {o: {g: rp.decide(summary["HyGen"][g], summary[o][g], (paired.get(o) or {}).get(g))
                        for g in ("source", "unseen")} for o in others}
        out.append({"claim": text, "standing": standing,
                    "verdict": rp.claim_verdict([standing[o]["unseen"] for o in others])})
    return out


def claim_paragraphs(claims: list[dict]) -> list[str]:
    """One paragraph per claim: the verdict on unseen maps, then HyGen's standing per method."""
    lines = [("Decided by the protocol's rule, fixed before the results (docs/experiments.md): HyGen is "
              "*above* a method where the 95 % IQM intervals do not overlap, *tends above* where they overlap "
              "but the per-seed paired difference's interval excludes 0, otherwise *undecided*; mirrored for "
              "*below*. A claim is **reproduced** when HyGen is above every method it names on the unseen maps "
              "(the primary outcome), **refuted** when it is below any of them, else **undecided at this "
              "scale**."), ""]
    for c in claims:
        parts = "; ".join(f"{o}: {s['unseen']} on unseen, {s['source']} on source maps"
                          for o, s in c["standing"].items())
        lines += [f"- **{c['verdict']}**: {c['claim']}. HyGen against {parts}."]
    return lines


def game_label(run_dirs) -> str:
    """Which game the runs played, from their meta.json (``hygen.envs.bound_game``); runs made
    before the record existed played the legacy game (docs/simulator.md, "The switch")."""
    from hygen.envs import CALIBRATED_GAME, LEGACY_GAME, VARIED_GAME, game_differences, recorded_game

    known = {"Built-in simulator, calibrated game": CALIBRATED_GAME,
             "Built-in simulator, varied game (the calibrated game with SC2's run-to-run variation and "
             "loop-ordered fire; `--gin_file envs/varied`)": VARIED_GAME,
             "Built-in simulator, legacy game (every mechanic off; `--gin_file envs/legacy`)": LEGACY_GAME}
    names = set()
    for d in run_dirs:
        meta_path = Path(d) / "meta.json"
        game = recorded_game(json.loads(meta_path.read_text())) if meta_path.is_file() else None
        if game is None:
            names.add("unknown game (no meta.json)")
        elif game.get("backend") == "sc2":
            names.add("StarCraft II")
        else:
            name = next((label for label, g in known.items() if not game_differences(game, {"backend": "sim", **g})),
                        None)
            names.add(name or "Built-in simulator, mechanics " + ", ".join(k for k, v in sorted(game.items()) if v is True))
    return "; ".join(sorted(names)) if len(names) < 2 else "**The runs played different games**: " + "; ".join(sorted(names))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=scales() + ["cpu-long"], default="cpu",
                    help="configs/scales/<scale>.gin (default cpu)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=["comparison"], choices=list(METHODS) + list(METHOD_SETS),
                    help="method labels, or a set: comparison (HyGen, offline-only, fixed 50 %%; default), "
                         "table2 (those and the other ablations of the paper's Table 2)")
    ap.add_argument("--task-set", default="marine_hard")
    ap.add_argument("--quality", default="medium")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "reproduce")
    ap.add_argument("--data", choices=sorted(DATA), default=None,
                    help="source of the offline datasets (default: the scale's '# data:' line)")
    ap.add_argument("--data-root", type=Path, default=None, help="default: <out>/data")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backend", choices=BACKENDS, default="local")
    ap.add_argument("--workers", type=int, default=None, help="cells at once (default: the CPU count)")
    ap.add_argument("--address", default=None, help="Ray cluster address (default: a local instance)")
    ap.add_argument("--gin_file", action="append", default=[], metavar="FILE",
                    help="extra gin file for every run, after the data quality and the scale (e.g. envs/calibrated: "
                         "the simulator with collisions and sticky retaliation)")
    ap.add_argument("--gin_param", action="append", default=[], metavar="BINDING",
                    help="extra gin binding for every run (e.g. a shorter budget for a smoke test)")
    ap.add_argument("--table", type=Path, default=ROOT / "docs" / "results.md")
    ap.add_argument("--json", type=Path, default=None, help="default: <out>/reproduce.json")
    ap.add_argument("--results-json", type=Path, default=None,
                    help="also write the machine-readable result (issue 15's schema: scale, seeds, test "
                         "episodes, per method the source / unseen IQM with its 95 %% interval and the "
                         "value-return correlation), e.g. docs/results.json")
    ap.add_argument("--report-only", action="store_true",
                    help="train nothing; tabulate the finished runs (e.g. of a sweep still in progress)")
    args = ap.parse_args()
    args.methods = list(dict.fromkeys(m for name in args.methods for m in METHOD_SETS.get(name, [name])))

    scale = args.scale.replace("-", "_")
    about_scale, scale_data = read_scale(scale)
    data = args.data or scale_data
    about = f"{about_scale}; {DATA[data]['about']}"
    out = args.out / (scale if data == scale_data else f"{scale}-{data}-data")
    data_root = (args.data_root or (out / "data")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    # 1. datasets (resumable: collect skips what is done)
    if not args.report_only:
        subprocess.run([sys.executable, "-m", "hygen.cli", "collect", "--task-set", args.task_set.replace("_", "-"),
                        "--data-root", str(data_root), *DATA[data]["collect_args"], "--device", args.device,
                        *(x for f in args.gin_file for x in ("--gin_file", f))],  # the data's game is the runs' game
                       check=True, cwd=ROOT)

    # 2. the sweep: methods x seeds, one run directory per cell
    spec = SweepSpec(configs={m: METHODS[m] for m in args.methods}, seeds=args.seeds, task_sets=[args.task_set],
                     gin_files=[f"data/{args.quality}", f"scales/{scale}", *args.gin_file],
                     gin_params=[f"DATA_ROOT = '{data_root}'", *args.gin_param])
    if not args.report_only:
        with sigterm_as_interrupt():  # a kill stops the cells and lets go of the sweep; rerun to resume
            run_sweep(spec, out, backend=args.backend, workers=args.workers, device=args.device,
                      address=args.address, print_fn=lambda s: print(s, flush=True))
    else:
        write_spec(spec, out)  # (the same cells: nothing else changes)

    # 3. the report, over the seeds every method has finished (a partial sweep is labelled so)
    groups = rp.collect_runs([out])
    block = f"{args.task_set}, {args.quality}"
    done_seeds = [s for s in args.seeds if all(s in groups.get((block, m), rp.RunGroup(m, block)).seeds
                                               for m in args.methods)]
    if not done_seeds:
        print("no seed has finished for every method yet; nothing to tabulate")
        return 1
    for g in groups.values():  # the same seeds in every column
        keep = [i for i, s in enumerate(g.seeds) if s in done_seeds]
        g.runs, g.run_dirs = [g.runs[i] for i in keep], [g.run_dirs[i] for i in keep]
    base = untrained_group(groups, block, args.methods[0])
    if base is not None:
        groups[(block, UNTRAINED)] = base
    labels = [m for m in args.methods] + ([UNTRAINED] if base is not None else [])
    source, unseen = rp.map_groups(groups)
    rows = rp.summary_rows(groups, block, source, unseen)
    print(rp.rows_to_markdown(rows, labels))
    summary = {lab: {g: rp.aggregate(groups[(block, lab)], maps) for g, maps in (("source", source), ("unseen", unseen))}
               for lab in labels}
    poi = rp.improvement_rows(groups, block, "HyGen", source, unseen) if "HyGen" in labels else []
    paired = rp.paired_rows(groups, block, "HyGen", source, unseen) if "HyGen" in labels else []
    paired = [r for r in paired if r["other"] != UNTRAINED]
    claims = decide_claims(summary, {r["other"]: r for r in paired})
    wall = time.time() - t0
    train_min = sum(r.get("wall_time_s", 0.0) for lab in args.methods for r in groups[(block, lab)].runs) / 60
    missing = [s for s in args.seeds if s not in done_seeds]
    partial = f" (seeds {', '.join(map(str, missing))} not finished yet: rerun the command to continue)" if missing else ""
    cmd = (f"python benchmarks/reproduce.py --scale {scale}" + (f" --data {data}" if data != scale_data else "")
           + "".join(f" --gin_file {f}" for f in args.gin_file))
    game = game_label([d for lab in args.methods for d in groups[(block, lab)].run_dirs])
    # Cells run the code checked out when each starts: a sweep that spans commits says so.
    revisions = sorted({json.loads((Path(d) / "meta.json").read_text()).get("git_revision", "?").removesuffix("-dirty")
                        for lab in args.methods for d in groups[(block, lab)].run_dirs if (Path(d) / "meta.json").is_file()})
    code = (f"Code: git revision {revisions[0][:10]}." if len(revisions) == 1 else
            f"**The runs span {len(revisions)} git revisions** ({', '.join(r[:10] for r in revisions)}): check that "
            "none of the commits between them changed the learner or the simulator.")
    md = [f"# Results: marine-hard, {args.quality} {data} data, scale `{scale}`", "",
          (f"Protocol ([configs/scales/{scale}.gin](../configs/scales/{scale}.gin)): {about}. Seeds: "
           f"{', '.join(map(str, done_seeds))}{partial}. Win rate in % of greedy test episodes: per map the mean ± "
           "std over seeds; per map group the mean and the interquartile mean over runs x maps with its 95 % "
           f"stratified-bootstrap interval. {game}. Produced by `{cmd}` ({train_min:.0f} min of "
           f"training over the tabulated runs). {code}"), "",
          rp.rows_to_markdown(rows, labels), "## Against the paper's claims", "",
          *claim_paragraphs(claims), ""]
    if poi:
        md += ["Probability that a HyGen run beats a run of the other method on a random map (95 % interval):", "",
               "| other | source maps | unseen maps |", "|---|---:|---:|",
               *(f"| {r['other']} | " + " | ".join("-" if r[g] is None else f"{r[g][0]:.2f} [{r[g][1]:.2f}, {r[g][2]:.2f}]"
                                                   for g in ("source", "unseen")) + " |" for r in poi), ""]
    if paired:
        md += [("Per-seed paired differences, HyGen minus the other method, of the mean win rate over each map "
                "group (points; mean [95 % bootstrap interval over seeds] (per seed)); an interval that holds 0 "
                "is inside the noise:"), "", rp.paired_rows_to_markdown(paired, "HyGen"), ""]
    diag = rp.diagnostics_to_markdown(groups, block, args.methods, source)
    if diag:
        md += [("Diagnostics at the last evaluation, mean over the source maps and seeds (`hygen.diagnostics`): "
                "the value-return correlation and Q_tot against the return on held-out offline episodes, the "
                "online (exploring) against the greedy win rate, the skills greedy play picks and how many forced "
                "skills play differently:"), "", diag, ""]
    moves = rp.last_change_to_markdown(groups, block, args.methods, source, unseen)
    if moves:
        md += [("How far the final win rates moved since the evaluation before (points, over runs x maps; a "
                "diagnostic added on 2026-11-30 in session 10, after seeds 0 and 1 had been seen: it decides "
                "nothing): the mean |change| and the share of run x map pairs that changed by 50 points or more."),
               "", moves, ""]
    md += [(f"`{UNTRAINED}` is the first evaluation of the `{args.methods[0]}` runs, before any update "
            "(every method starts from the same networks for a given seed)."), ""]
    figures = []
    from hygen import plots

    runs = {lab: groups[(block, lab)].runs for lab in args.methods}
    for group, maps in (("source", source), ("unseen", unseen)):
        if maps:
            fig = plots.learning_curves(runs, {f"{group} maps (mean)": maps},
                                        title=f"{block}, scale {scale}, {len(done_seeds)} seed{'s' if len(done_seeds) != 1 else ''}",
                                        highlight="HyGen")
            stem = args.table.with_name(f"{args.table.stem}_{group}")
            plots.save(fig, stem)
            figures.append(f"![{group} maps]({stem.name}.svg)")
    md += ["## Learning curves", "",
           ("Mean over seeds of the mean win rate on the source and the unseen maps, at every evaluation, with "
           "the 95 % stratified-bootstrap interval as a band."), "", *figures, ""]
    args.table.parent.mkdir(parents=True, exist_ok=True)
    kept = ""  # what a maintainer wrote below the marker survives regeneration
    if args.table.is_file() and KEEP_MARKER in args.table.read_text():
        kept = args.table.read_text().split(KEEP_MARKER, 1)[1]
    args.table.write_text("\n".join(md) + "\n" + KEEP_MARKER + kept)
    (args.json or out / "reproduce.json").write_text(json.dumps(
        {"scale": scale, "data": data, "about": about, "seeds": args.seeds, "seeds_done": done_seeds,
         "source_maps": source, "unseen_maps": unseen, "summary": summary, "probability_of_improvement": poi,
         "claims": claims,
         "final_win_rates": {lab: groups[(block, lab)].final_win_rates() for lab in labels},
         "wall_time_s": wall}, indent=2))
    if args.results_json:
        write_results_json(args.results_json, scale, done_seeds, groups, block, args.methods, summary, source)
        print(f"wrote {args.results_json}")
    print(f"wrote {args.table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
