"""Win-rate tables laid out like the paper's Table 1: source maps, then unseen maps, in %.

A column is one method; its cell is the mean and standard deviation over seeds.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence

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
