"""hygen report: tables, statistics and figures over run directories and sweeps."""

from __future__ import annotations

import json
from pathlib import Path

HELP = "tables (Markdown, CSV, LaTeX), IQM with bootstrap intervals, figures, marl-eval JSON from runs or sweeps"
DESCRIPTION = """\
Aggregate finished runs (their results.json; nothing is re-evaluated) into the paper's table
layouts: per map the mean ± std over seeds, per map group (source, unseen) the mean and the
interquartile mean over runs x maps with its 95 % stratified-bootstrap interval; the
probability that the reference method beats each other one; performance profiles; learning
curves with interval bands, per-map bars and ablation curves (PNG and SVG); and the runs as
marl-eval JSON. Only runs that differ in nothing but the seed are pooled. A DIR is a run
directory or a sweep root (made by hygen sweep).

layouts:
  table1  methods side by side, one table per task set and data quality (the paper's Table 1)
  table2  variants with the reference last, as the paper's ablation table (Table 2)

examples:
  hygen report runs/sweep --out runs/sweep/report
  hygen report runs/hygen-seed* runs/odis-seed* --reference hygen --out report
  hygen report runs/ablations --layout table2 --reference HyGen --estimator iqm
"""


def add_arguments(parser) -> None:
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="run directories or sweep roots")
    parser.add_argument("--out", default=None, help="output folder (default: <first DIR>/report)")
    parser.add_argument("--layout", choices=("table1", "table2"), default="table1",
                        help="table1: methods side by side (the paper's Table 1); table2: variants with the "
                             "reference last (its ablation table); default table1")
    parser.add_argument("--reference", default=None,
                        help="method compared with the others (probability of improvement; table2's last "
                             "column; drawn thicker); default: the first")
    parser.add_argument("--estimator", choices=("mean", "iqm"), default="mean",
                        help="what the learning curves show over seeds (default mean)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap samples (default 2000)")
    parser.add_argument("--include-unfinished", action="store_true",
                        help="also use runs that have not finished (their latest evaluation)")
    parser.add_argument("--no-plots", action="store_true", help="tables and JSON only")


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in s).strip("_") or "all"


def run(args) -> int:
    from hygen import report as rp

    skipped: list = []
    groups = rp.collect_runs(args.dirs, include_unfinished=args.include_unfinished, skipped=skipped)
    for d in skipped:
        print(f"left out (not finished): {d}")
    if not groups:
        raise FileNotFoundError(f"no finished runs under {', '.join(args.dirs)}; "
                                "pass --include-unfinished to use runs still in progress")
    out = Path(args.out) if args.out else Path(args.dirs[0]) / "report"
    out.mkdir(parents=True, exist_ok=True)
    source, unseen = rp.map_groups(groups)
    blocks = list(dict.fromkeys(b for b, _ in groups))
    md, tex, csv_parts, summary = [], [], [], {"blocks": {}}
    for block in blocks:
        labels = [lab for b, lab in groups if b == block]
        reference = args.reference if args.reference in labels else labels[0]
        if args.reference and args.reference not in labels:
            print(f"note: --reference {args.reference!r} is not a method of block {block or '-'!r} "
                  f"(methods: {', '.join(labels)}); using {reference!r}")
        if args.layout == "table2":
            labels = [lab for lab in labels if lab != reference] + [reference]
        rows = rp.summary_rows(groups, block, source, unseen, reps=args.reps)
        seeds = {lab: groups[(block, lab)].seeds for lab in labels}
        title = f"{block or 'runs'}: final win rate (%), mean ± std over seeds; IQM over runs x maps [95 % CI]"
        md += [f"## {block or 'runs'}", "", rp.rows_to_markdown(rows, labels),
               "Seeds: " + "; ".join(f"{lab}: {', '.join(map(str, s))}" for lab, s in seeds.items()) + ".", ""]
        notes = [f"- {g.label}: {g.note}" for (b, _), g in groups.items() if b == block and g.note]
        md += notes + ([""] if notes else [])
        poi = rp.improvement_rows(groups, block, reference, source, unseen, reps=args.reps)
        if poi:
            md += [(f"Probability that a run of **{reference}** beats a run of the other method on a random map "
                   "(95 % stratified-bootstrap interval):"), "",
                   "| other | source maps | unseen maps |", "|---|---:|---:|"]
            md += [f"| {r['other']} | " + " | ".join("-" if r[g] is None else f"{r[g][0]:.2f} [{r[g][1]:.2f}, {r[g][2]:.2f}]"
                                                     for g in ("source", "unseen")) + " |" for r in poi]
            md.append("")
        paired = rp.paired_rows(groups, block, reference, source, unseen, reps=args.reps)
        if any(r["source"] or r["unseen"] for r in paired):
            md += [(f"Per-seed paired differences, **{reference}** minus the other method, of the mean win rate "
                    "over each map group (points; mean [95 % bootstrap interval over seeds] (per seed)); an "
                    "interval that holds 0 is inside the noise:"), "", rp.paired_rows_to_markdown(paired, reference), ""]
        diag = rp.diagnostics_to_markdown(groups, block, labels, source)
        if diag:
            md += ["Diagnostics at the last evaluation, mean over the source maps and seeds (hygen.diagnostics):",
                   "", diag, ""]
        tex.append(rp.rows_to_latex(rows, labels, caption=title))
        csv_parts.append(rp.rows_to_csv(rows, labels, block))
        summary["blocks"][block] = {
            "methods": {lab: {"seeds": seeds[lab], "run_dirs": [str(d) for d in groups[(block, lab)].run_dirs],
                              **{g: rp.aggregate(groups[(block, lab)], maps, reps=args.reps)
                                 for g, maps in (("source", source), ("unseen", unseen))}} for lab in labels},
            "probability_of_improvement": {"reference": reference, "rows": poi},
            "paired_differences": {"reference": reference, "rows": paired}}
        if not args.no_plots:
            md += _figures(groups, block, labels, reference, source, unseen, args, out)
    (out / "report.md").write_text("# Report\n\n" + "\n".join(md))
    (out / "table.tex").write_text("\n".join(tex))
    (out / "table.csv").write_text(csv_parts[0] + "".join(p.split("\n", 1)[1] for p in csv_parts[1:]))
    (out / "marl_eval.json").write_text(json.dumps(rp.marl_eval_json(groups), indent=1))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print("\n".join(md))
    print(f"wrote {out}/report.md, table.csv, table.tex, marl_eval.json, summary.json")
    return 0


def _figures(groups, block, labels, reference, source, unseen, args, out: Path) -> list[str]:
    from hygen import plots, stats

    runs = {lab: groups[(block, lab)].runs for lab in labels}
    stem = _slug(block)
    panels = {m: [m] for m in source}
    panels["source maps (mean)"] = list(source)
    if unseen:
        panels["unseen maps (mean)"] = list(unseen)
    figs = {
        f"curves_{stem}": plots.learning_curves(runs, panels, title=f"{block}: win rate over training",
                                                estimator=args.estimator, highlight=reference),
        f"ablation_{stem}": plots.ablation_curves(runs, source, unseen, reference=reference,
                                                  title=f"{block}: mean win rate over training"),
        f"bars_{stem}": plots.per_map_bars({lab: groups[(block, lab)].final_win_rates() for lab in labels},
                                           [*source, *unseen], title=f"{block}: final win rate per map",
                                           n_source=len(source)),
    }
    if unseen:
        scores = {lab: 100 * stats.score_matrix(groups[(block, lab)].final_win_rates(), unseen) for lab in labels}
        figs[f"profile_{stem}"] = plots.performance_profile_plot(
            scores, title=f"{block}: performance profile, unseen maps")
    lines = []
    for name, fig in figs.items():
        plots.save(fig, out / name)
        lines.append(f"![{name}]({name}.png)")
    return lines + [""]
