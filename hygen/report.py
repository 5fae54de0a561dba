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
