"""Win-rate tables laid out like the paper's Tables 1 and 2: source maps, then unseen maps, in %.

A column is one method; its cell is the mean and standard deviation over seeds. ``hygen report``
adds, per map group, the interquartile mean over runs x maps with its 95 % stratified-bootstrap
interval (hygen.stats), and reads whole sweeps (:func:`collect_runs`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

WinRates = Mapping[str, float]  # map -> win rate in [0, 1] for one seed


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    var = sum((v - m) ** 2 for v in values) / len(values)  # population std over seeds, as the paper's ±
    return m, math.sqrt(var)


def win_rate_rows(columns: Mapping[str, Sequence[WinRates]], source_maps: Sequence[str],
                  unseen_maps: Sequence[str]) -> list[dict]:
    """One row per map (and a mean row per group): {"group", "map", label: (mean%, std%, n) | None}."""
    rows = []
    for group, maps in (("source", source_maps), ("unseen", unseen_maps)):
        if not maps:
            continue
        for m in list(maps) + ["mean"]:
            row = {"group": group, "map": m}
            for label, seeds in columns.items():
                if m == "mean":
                    vals = [sum(s[x] for x in maps) / len(maps) for s in seeds if all(x in s for x in maps)]
                else:
                    vals = [s[m] for s in seeds if m in s]
                row[label] = (*(100 * v for v in _mean_std(vals)), len(vals)) if vals else None
            rows.append(row)
    return rows


def _cell(v) -> str:
    if v is None:
        return "-"
    mean, std, n = v
    return f"{mean:.1f}" if n == 1 else f"{mean:.1f} ± {std:.1f}"


def to_markdown(rows: list[dict], labels: Sequence[str]) -> str:
    head = "| tasks | map | " + " | ".join(labels) + " |"
    sep = "|---|---|" + "---:|" * len(labels)
    lines = [head, sep]
    for r in rows:
        name = f"**{r['map']}**" if r["map"] == "mean" else r["map"]
        lines.append(f"| {r['group']} | {name} | " + " | ".join(_cell(r[lab]) for lab in labels) + " |")
    return "\n".join(lines) + "\n"


def to_text(rows: list[dict], labels: Sequence[str], title: str = "") -> str:
    """A fixed-width table for the terminal."""
    cells = [["tasks", "map", *labels]]
    cells += [[r["group"], r["map"], *(_cell(r[lab]) for lab in labels)] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    out = [title] if title else []
    for i, c in enumerate(cells):
        out.append("  ".join(x.ljust(w) if j < 2 else x.rjust(w) for j, (x, w) in enumerate(zip(c, widths))))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out) + "\n"


def to_csv(rows: list[dict], labels: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["group", "map"] + [f"{lab} {k}" for lab in labels for k in ("mean_pct", "std_pct", "seeds")])
    for r in rows:
        w.writerow([r["group"], r["map"]] + [
            x for lab in labels for x in (r[lab] and (f"{r[lab][0]:.2f}", f"{r[lab][1]:.2f}", r[lab][2])
                                          or ("", "", 0))])
    return buf.getvalue()


_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def curves_svg(series: Mapping[str, Sequence[tuple[float, float]]], title: str = "",
               x_label: str = "step", y_label: str = "win rate (%)", width: int = 640, height: int = 400) -> str:
    """Learning curves as a standalone SVG (no plotting dependency): one polyline per series.

    ``series`` maps a label to (x, y) points; y is plotted on a fixed 0..100 axis.
    """
    left, right, top, bottom = 60, 150, 30, 50
    pw, ph = width - left - right, height - top - bottom
    xs = [x for pts in series.values() for x, _ in pts] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs)
    x1 = x1 if x1 > x0 else x0 + 1

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + (1 - max(0.0, min(100.0, y)) / 100) * ph

    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="12">'),
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="{top - 10}" font-size="14">{title}</text>']
    for tick in range(0, 101, 20):
        y = py(tick)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    for i in range(5):
        x = x0 + (x1 - x0) * i / 4
        out.append(f'<text x="{px(x):.1f}" y="{top + ph + 18}" text-anchor="middle">{x:g}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 10}" text-anchor="middle">{x_label}</text>')
    out.append(f'<text x="15" y="{top + ph / 2}" text-anchor="middle" '
               f'transform="rotate(-90 15 {top + ph / 2})">{y_label}</text>')
    for i, (label, pts) in enumerate(series.items()):
        color = _COLORS[i % len(_COLORS)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{color}"/>')
        ly = top + 14 + 16 * i
        out.append(f'<line x1="{left + pw + 10}" y1="{ly - 4}" x2="{left + pw + 30}" y2="{ly - 4}" '
                   f'stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{left + pw + 35}" y="{ly}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def results_curves(results: Mapping, groups: bool = True) -> dict[str, list[tuple[float, float]]]:
    """Win-rate curves (%) from a results.json: per source map, plus source and unseen means."""
    evals = results.get("evals", [])
    source = list(results.get("source_maps", []))
    unseen = [m for m in results.get("eval_maps", []) if m not in source]
    series: dict[str, list[tuple[float, float]]] = {m: [] for m in source}
    if groups:
        series.update({"source mean": [], "unseen mean": []} if unseen else {"source mean": []})
    for e in evals:
        wr = e["win_rate"]
        for m in source:
            if m in wr:
                series[m].append((e["step"], 100 * wr[m]))
        if groups:
            for name, maps in (("source mean", source), ("unseen mean", unseen)):
                if maps and all(m in wr for m in maps):
                    series[name].append((e["step"], 100 * sum(wr[m] for m in maps) / len(maps)))
    return {k: v for k, v in series.items() if v}


def mean_curves(runs: Mapping[str, Sequence[Mapping]], group: str) -> dict[str, list[tuple[float, float]]]:
    """One curve per label: the ``group`` mean ("source mean" or "unseen mean") averaged over the
    label's runs (seeds) at the steps every run evaluated, as in the paper's learning-curve figures."""
    out = {}
    for label, results in runs.items():
        curves = [dict(results_curves(r).get(group, [])) for r in results]
        steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
        if steps:
            out[label] = [(x, sum(c[x] for c in curves) / len(curves)) for x in steps]
    return out


# ---------------------------------------------------------------------------------------------
# Aggregation over run directories and sweeps (hygen report): groups of seeds, statistics,
# Table-1 / Table-2 layouts, marl-eval JSON.
# ---------------------------------------------------------------------------------------------


@dataclass
class RunGroup:
    """Runs that differ in nothing but the seed (the only runs ever pooled).

    ``block`` is the task set and data quality ("marine_hard, medium"): a Table-1 layout puts
    each block's methods side by side, as the paper's per-quality column groups."""

    label: str
    block: str
    runs: list[dict] = field(default_factory=list)  # results.json contents, one per seed
    run_dirs: list[Path] = field(default_factory=list)
    note: str = ""  # what the label stands for, when it is a numbered variant

    @property
    def seeds(self) -> list[int]:
        return [int(r.get("seed", -1)) for r in self.runs]

    def final_win_rates(self) -> list[dict[str, float]]:
        return [r["final"]["win_rate"] for r in self.runs]


def _block_of(gin_files: Sequence[str]) -> str:
    parts = [Path(f).stem for f in gin_files if Path(f).parts and Path(f).parts[0] in ("tasksets", "data")]
    return ", ".join(parts)


def collect_runs(paths: Sequence[str | Path], include_unfinished: bool = False,
                 skipped: list | None = None) -> dict[tuple[str, str], RunGroup]:
    """Groups of runs keyed by (block, label), from run directories and sweep roots.

    A sweep root (``sweep.json``) contributes its cells, labelled by the sweep (config and grid
    values). Other run directories are labelled as ``hygen evaluate`` labels them (method plus
    ablations; runs differing in anything but the seed get numbered labels). Runs that have not
    finished are left out (listed in ``skipped``) unless ``include_unfinished``."""
    from hygen.commands.evaluate import _settings, run_labels
    from hygen.rundir import read_json
    from hygen.sweep import SPEC_FILE, load_sweep

    entries: list[tuple[Path, str, str, str]] = []  # run dir, label, block, note
    plain = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such directory")
        if (p / SPEC_FILE).is_file():
            _, cells = load_sweep(p)
            for c in cells:
                label = " ".join([c.config, *(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in c.grid)])
                entries.append((c.run_dir(p), label, _block_of(c.gin_files), ""))
        elif (p / "results.json").is_file() or (p / "config.gin").is_file():
            plain.append(p)
        else:
            raise FileNotFoundError(f"{p}: neither a run directory (results.json) nor a sweep ({SPEC_FILE})")
    if plain:
        labels, legend = run_labels(plain)
        for d, label in zip(plain, labels):
            entries.append((d, label, _block_of(_settings(d)[0]), legend.get(label, "")))
    groups: dict[tuple[str, str], RunGroup] = {}
    for d, label, block, note in entries:
        res = read_json(d / "results.json") if (d / "results.json").is_file() else {}
        if not res.get("final") or not (res.get("done") or include_unfinished):
            if skipped is not None:
                skipped.append(d)
            continue
        g = groups.setdefault((block, label), RunGroup(label, block, note=note))
        g.runs.append(res)
        g.run_dirs.append(d)
    return groups


def map_groups(groups: Mapping) -> tuple[list[str], list[str]]:
    """Source and unseen maps over all groups, in first-seen order."""
    source, evals = [], []
    for g in groups.values():
        for r in g.runs:
            source += [m for m in r["source_maps"] if m not in source]
            evals += [m for m in r["eval_maps"] if m not in evals]
    return source, [m for m in evals if m not in source]


def aggregate(group: RunGroup, maps: Sequence[str], reps: int = 2000, seed: int = 0) -> dict | None:
    """Mean ± std (over seeds of the per-run mean over ``maps``) and the IQM over runs x maps
    with its 95 % stratified-bootstrap interval, in %; None if a run lacks one of the maps."""
    import numpy as np

    from hygen import stats

    runs = [wr for wr in group.final_win_rates() if all(m in wr for m in maps)]
    if not maps or len(runs) != len(group.runs):
        return None
    x = 100 * stats.score_matrix(runs, maps)
    per_run = x.mean(axis=1)
    iqm, low, high = stats.stratified_bootstrap_ci(x, stats.iqm, reps=reps, seed=seed)
    return {"mean": float(per_run.mean()), "std": float(np.std(per_run)), "n": len(runs),
            "iqm": iqm, "iqm_low": low, "iqm_high": high}


def _fmt_iqm(a: dict | None) -> str:
    return "-" if a is None else f"{a['iqm']:.1f} [{a['iqm_low']:.1f}, {a['iqm_high']:.1f}]"


def summary_rows(groups: Mapping[tuple[str, str], RunGroup], block: str, source: Sequence[str],
                 unseen: Sequence[str], reps: int = 2000) -> list[dict]:
    """Table-1 rows of one block: per map mean ± std, then per map group the mean and the
    IQM [95 % CI]. Cells: (mean, std, n) tuples, IQM rows: aggregate() dicts."""
    cols = {g.label: g.final_win_rates() for (b, _), g in groups.items() if b == block}
    rows = []
    for r in win_rate_rows(cols, source, unseen):
        rows.append(r)
        if r["map"] == "mean":
            maps = source if r["group"] == "source" else unseen
            iqm_row = {"group": r["group"], "map": "IQM [95% CI]"}
            for (b, label), g in groups.items():
                if b == block:
                    iqm_row[label] = aggregate(g, maps, reps=reps)
            rows.append(iqm_row)
    return rows


def _fmt(v) -> str:
    if isinstance(v, dict):
        return _fmt_iqm(v)
    return _cell(v)


def rows_to_markdown(rows: list[dict], labels: Sequence[str]) -> str:
    lines = ["| tasks | map | " + " | ".join(labels) + " |", "|---|---|" + "---:|" * len(labels)]
    for r in rows:
        bold = r["map"] in ("mean", "IQM [95% CI]")
        name = f"**{r['map']}**" if bold else r["map"]
        lines.append(f"| {r['group']} | {name} | " + " | ".join(_fmt(r.get(lab)) for lab in labels) + " |")
    return "\n".join(lines) + "\n"


def _tex(s: str) -> str:
    return (s.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%").replace("&", "\\&")
            .replace("#", "\\#"))


def rows_to_latex(rows: list[dict], labels: Sequence[str], caption: str = "") -> str:
    """A booktabs table: maps as rows, methods as columns, mean $\\pm$ std and IQM [CI]."""
    def cell(v):
        if isinstance(v, dict):
            return f"{v['iqm']:.1f} [{v['iqm_low']:.1f}, {v['iqm_high']:.1f}]"
        if v is None:
            return "-"
        return f"{v[0]:.1f}" if v[2] == 1 else f"{v[0]:.1f} $\\pm$ {v[1]:.1f}"

    out = ["\\begin{table}[t]", "\\centering", f"\\caption{{{_tex(caption)}}}" if caption else "",
           "\\begin{tabular}{ll" + "r" * len(labels) + "}", "\\toprule",
           "Tasks & Map & " + " & ".join(_tex(lab) for lab in labels) + " \\\\", "\\midrule"]
    prev = None
    for r in rows:
        if prev is not None and r["group"] != prev:
            out.append("\\midrule")
        prev = r["group"]
        out.append(f"{_tex(r['group'])} & {_tex(r['map'])} & " + " & ".join(cell(r.get(lab)) for lab in labels)
                   + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(x for x in out if x) + "\n"


def rows_to_csv(rows: list[dict], labels: Sequence[str], block: str = "") -> str:
    """Long format: one line per (map, method) with mean, std, seeds, and IQM with its interval."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["block", "group", "map", "method", "mean_pct", "std_pct", "seeds", "iqm_pct", "iqm_low_pct",
                "iqm_high_pct"])
    for r in rows:
        for lab in labels:
            v = r.get(lab)
            if isinstance(v, dict):
                w.writerow([block, r["group"], "mean", lab, "", "", v["n"], f"{v['iqm']:.2f}", f"{v['iqm_low']:.2f}",
                            f"{v['iqm_high']:.2f}"])
            elif v is not None:
                w.writerow([block, r["group"], r["map"], lab, f"{v[0]:.2f}", f"{v[1]:.2f}", v[2], "", "", ""])
    return buf.getvalue()


def improvement_rows(groups: Mapping[tuple[str, str], RunGroup], block: str, reference: str,
                     source: Sequence[str], unseen: Sequence[str], reps: int = 2000) -> list[dict]:
    """P(reference > other) with a 95 % interval, per other method and map group (over maps as tasks)."""
    from hygen import stats

    ref = groups.get((block, reference))
    if ref is None:
        return []
    out = []
    for (b, label), g in groups.items():
        if b != block or label == reference:
            continue
        row = {"other": label}
        for name, maps in (("source", source), ("unseen", unseen)):
            runs_a = [wr for wr in ref.final_win_rates() if all(m in wr for m in maps)]
            runs_b = [wr for wr in g.final_win_rates() if all(m in wr for m in maps)]
            row[name] = (stats.probability_of_improvement(stats.score_matrix(runs_a, maps),
                                                          stats.score_matrix(runs_b, maps), reps=reps)
                         if maps and runs_a and runs_b else None)
        out.append(row)
    return out


def paired_rows(groups: Mapping[tuple[str, str], RunGroup], block: str, reference: str,
                source: Sequence[str], unseen: Sequence[str], reps: int = 2000) -> list[dict]:
    """Per-seed paired differences, reference minus other, of the per-run mean win rate (%) over
    each map group, for the seeds both methods finished: {"other", "seeds", "<group>":
    {"per_seed": [..], "mean", "low", "high"} or None}. Seed s of every method starts from the
    same networks and data, so the pairing removes the seed's share of the variance."""
    from hygen import stats

    ref = groups.get((block, reference))
    if ref is None:
        return []
    ref_by_seed = dict(zip(ref.seeds, ref.final_win_rates()))
    out = []
    for (b, label), g in groups.items():
        if b != block or label == reference:
            continue
        other = dict(zip(g.seeds, g.final_win_rates()))
        seeds = [s for s in ref_by_seed if s in other]
        row = {"other": label, "seeds": seeds}
        for name, maps in (("source", source), ("unseen", unseen)):
            pairs = [(ref_by_seed[s], other[s]) for s in seeds
                     if maps and all(m in ref_by_seed[s] and m in other[s] for m in maps)]
            if not pairs:
                row[name] = None
                continue
            diffs = [100 * (sum(a[m] for m in maps) - sum(o[m] for m in maps)) / len(maps) for a, o in pairs]
            mean, low, high = stats.paired_difference_ci(diffs, reps=reps)
            row[name] = {"per_seed": diffs, "mean": mean, "low": low, "high": high}
        out.append(row)
    return out


def paired_rows_to_markdown(rows: list[dict], reference: str) -> str:
    """One line per other method: the mean paired difference with its 95 % interval, and the
    per-seed differences, in win-rate points."""
    def cell(d):
        if d is None:
            return "-"
        per = ", ".join(f"{v:+.1f}" for v in d["per_seed"])
        return f"{d['mean']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}] ({per})"

    lines = [f"| {reference} minus | seeds | source maps | unseen maps |", "|---|---|---|---|"]
    lines += [f"| {r['other']} | {', '.join(map(str, r['seeds']))} | {cell(r['source'])} | {cell(r['unseen'])} |"
              for r in rows]
    return "\n".join(lines)


# The Table-2 protocol's decision rule (docs/experiments.md), fixed before the sweep's results:
# "above" only where the 95 % IQM intervals do not overlap; "tends above" where they overlap but
# the per-seed paired differences' 95 % interval excludes 0; else "undecided". Mirrored below.
ABOVE, TENDS_ABOVE, UNDECIDED, TENDS_BELOW, BELOW = "above", "tends above", "undecided", "tends below", "below"


def decide(ref: dict | None, other: dict | None, paired: dict | None) -> str:
    """Whether the reference method is above the other on one map group, by the decision rule:
    ``ref``, ``other``: aggregate() dicts; ``paired``: a paired_rows() cell (reference minus
    other). Undecided when a number is missing or rests on one seed (one run per map gives a
    bootstrap interval of zero width: no interval at all)."""
    if ref is None or other is None or min(ref.get("n", 2), other.get("n", 2)) < 2:
        return UNDECIDED
    if paired is not None and len(paired.get("per_seed", (0, 0))) < 2:
        paired = None
    if ref["iqm_low"] > other["iqm_high"]:
        return ABOVE
    if ref["iqm_high"] < other["iqm_low"]:
        return BELOW
    if paired is not None and paired["low"] > 0:
        return TENDS_ABOVE
    if paired is not None and paired["high"] < 0:
        return TENDS_BELOW
    return UNDECIDED


def claim_verdict(decisions: Sequence[str]) -> str:
    """A claim "the reference beats each of these" from its per-method decisions on the primary
    outcome: reproduced if above every one, refuted if below any one, else undecided."""
    if decisions and all(d == ABOVE for d in decisions):
        return "reproduced"
    if any(d == BELOW for d in decisions):
        return "refuted"
    return "undecided"


DIAGNOSTIC_COLUMNS = (  # results.json evals[-1]["diagnostics"][map] key -> column heading (hygen.diagnostics)
    ("offline_value_corr", "corr(Q_tot, G) offline"),
    ("online_value_corr", "corr online"),
    ("q_over_return", "Q_tot / G offline"),
    ("online_win_rate", "online win %"),
    ("greedy_win_rate", "greedy win %"),
    ("labels_used", "skills in the labels"),
    ("skills_used", "skills used"),
    ("distinct_forced_play", "distinct forced skills"),
)


def final_diagnostics(group: RunGroup, maps: Sequence[str]) -> dict[str, float]:
    """The last evaluation's diagnostics of each run, averaged over ``maps`` and seeds (NaN
    entries skipped; win rates in %). {} when the runs recorded none."""
    import math

    values: dict[str, list[float]] = {k: [] for k, _ in DIAGNOSTIC_COLUMNS}
    for r in group.runs:
        diag = (r.get("evals") or [{}])[-1].get("diagnostics") or {}
        for m in maps:
            d = dict(diag.get(m) or {})
            if not d:
                continue
            q, g = d.get("offline_q_tot_mean"), d.get("offline_return_mean")
            d["q_over_return"] = q / g if q is not None and g else None
            for k, _ in DIAGNOSTIC_COLUMNS:
                v = d.get(k)
                if isinstance(v, (int, float)) and not math.isnan(v):
                    values[k].append(100 * v if k.endswith("win_rate") else float(v))
    return {k: sum(v) / len(v) for k, v in values.items() if v}


def diagnostics_to_markdown(groups: Mapping[tuple[str, str], RunGroup], block: str, labels: Sequence[str],
                            maps: Sequence[str]) -> str:
    """Per method, the final diagnostics averaged over the source maps and seeds; "" if none."""
    rows = {lab: final_diagnostics(groups[(block, lab)], maps) for lab in labels if (block, lab) in groups}
    if not any(rows.values()):
        return ""
    lines = ["| method | " + " | ".join(h for _, h in DIAGNOSTIC_COLUMNS) + " |",
             "|---|" + "---:|" * len(DIAGNOSTIC_COLUMNS)]
    for lab, d in rows.items():
        lines.append(f"| {lab} | " + " | ".join("-" if k not in d else f"{d[k]:.2f}" if "corr" in k or "over" in k
                                                else f"{d[k]:.1f}" for k, _ in DIAGNOSTIC_COLUMNS) + " |")
    return "\n".join(lines)


def last_change(group: RunGroup, maps: Sequence[str], flip: float = 50.0) -> dict[str, float] | None:
    """How much the final win rates move between a run's last two evaluations, over runs x
    ``maps``: ``mean`` |change| and ``flips``, the share of run x map pairs that changed by
    ``flip`` points or more (win rates in %). None if a run has fewer than two evaluations.

    A final number that swings by tens of points from one evaluation to the next is a
    knife-edge policy: comparing methods by it needs many seeds."""
    changes = []
    for r in group.runs:
        evals = r.get("evals") or []
        if len(evals) < 2:
            return None
        prev, last = evals[-2].get("win_rate") or {}, evals[-1].get("win_rate") or {}
        changes += [100 * abs(last[m] - prev[m]) for m in maps if m in last and m in prev]
    if not changes:
        return None
    return {"mean": sum(changes) / len(changes), "flips": sum(c >= flip for c in changes) / len(changes)}


def last_change_to_markdown(groups: Mapping[tuple[str, str], RunGroup], block: str, labels: Sequence[str],
                            source: Sequence[str], unseen: Sequence[str]) -> str:
    """Per method, ``last_change`` on the source and on the unseen maps; "" if none."""
    cells = {lab: [last_change(groups[(block, lab)], maps) for maps in (source, unseen)]
             for lab in labels if (block, lab) in groups}
    if not any(c for row in cells.values() for c in row):
        return ""
    lines = ["| method | source: mean change | source: flips >= 50 | unseen: mean change | unseen: flips >= 50 |",
             "|---|---:|---:|---:|---:|"]
    for lab, row in cells.items():
        lines.append(f"| {lab} | " + " | ".join("- | -" if c is None else f"{c['mean']:.1f} | {100 * c['flips']:.0f} %"
                                                for c in row) + " |")
    return "\n".join(lines)


def marl_eval_json(groups: Mapping[tuple[str, str], RunGroup], env_name: str = "hygen_smac") -> dict:
    """marl-eval's raw-data layout: env -> task (map) -> algorithm -> run_k -> step_i
    {step_count, win_rate: [..], return_mean: [..]} plus absolute_metrics (the final evaluation).
    One value per list: results.json keeps each evaluation's mean, not its episodes."""
    out: dict = {env_name: {}}
    for (block, label), g in groups.items():
        algo = f"{label} ({block})" if block else label
        for k, r in enumerate(g.runs):
            for m in r["eval_maps"]:
                run = {}
                for i, e in enumerate(r["evals"]):
                    if m in e["win_rate"]:
                        run[f"step_{i}"] = {"step_count": int(e["step"]), "win_rate": [e["win_rate"][m]],
                                            "return_mean": [e.get("return_mean", {}).get(m, 0.0)]}
                fin = r["final"]
                run["absolute_metrics"] = {"win_rate": [fin["win_rate"].get(m, 0.0)],
                                           "return_mean": [fin.get("return_mean", {}).get(m, 0.0)]}
                out[env_name].setdefault(m, {}).setdefault(algo, {})[f"run_{k}"] = run
    return out
